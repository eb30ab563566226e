"""The slow-node rule: which in-sync slaves the master drops for holding its
commits back (chatd/core/lag.py), alone and inside the simulated cluster."""

from __future__ import annotations

from chatd.core import Role
from chatd.core.lag import HOLD_OFF, LagWatch
from chatd.core.roles import Master
from tests.simulation import TIMING, Node, Sim


def feed(w: LagWatch, rounds: list[tuple[int, dict[str, int]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for durable, matches in rounds:
        out = w.sample(durable, matches, frozenset(matches))
    return out


def test_a_slave_that_alone_holds_the_commit_back_half_the_time_lags() -> None:
    w = LagWatch(10, 0.5)
    rounds = [(10 * i, {"a": 10 * i, "b": 10 * i - (5 if i % 2 else 0)}) for i in range(1, 11)]
    assert feed(w, rounds) == {"b": "lagging: held the commit back at 5 of the last 10 ticks"}


def test_slaves_taking_turns_at_being_last_do_not_lag() -> None:
    w = LagWatch(10, 0.5)
    for i in range(1, 101):
        last = "a" if i % 3 == 0 else "b" if i % 3 == 1 else ""
        matches = {n: 10 * i - (2 if n == last else 0) for n in ("a", "b")}
        assert w.sample(10 * i, matches, frozenset(matches)) == {}


def test_not_judged_before_a_whole_window() -> None:
    w = LagWatch(10, 0.5)
    rounds = [(10 * i, {"a": 10 * i, "b": 0}) for i in range(1, 10)]
    assert feed(w, rounds) == {}


def test_a_lone_slave_is_never_dropped_for_being_last() -> None:
    """The master sends what it has made durable, so its one slave is always
    last while writes flow; relative slowness needs another slave."""
    w = LagWatch(10, 0.5)
    rounds = [(10 * i, {"a": 10 * i - 3}) for i in range(1, 40)]
    assert feed(w, rounds) == {}


def test_a_slave_that_stopped_acknowledging_lags_even_alone() -> None:
    """Kafka's rule: what the master had a window ago is still missing."""
    w = LagWatch(10, 0.5)
    rounds = [(10 * i, {"a": 7}) for i in range(1, 12)]
    assert feed(w, rounds) == {
        "a": "lagging: index 10 not acknowledged 10 ticks after the master had it"
    }


def test_an_idle_cluster_lags_nobody() -> None:
    w = LagWatch(10, 0.5)
    assert feed(w, [(5, {"a": 5, "b": 5})] * 50) == {}


def test_window_zero_turns_the_rule_off() -> None:
    w = LagWatch(0, 0.5)
    assert feed(w, [(10 * i, {"a": 10 * i, "b": 0}) for i in range(1, 50)]) == {}


def test_hold_off_doubles_each_time_and_stops_doubling() -> None:
    w = LagWatch(10, 0.5)
    waits = []
    for _ in range(6):
        w.dropped("b", 0, "lagging")
        waits.append(w.hold_until["b"])
        assert not w.may_rejoin("b", waits[-1] - 1) and w.may_rejoin("b", waits[-1])
    unit = HOLD_OFF * 10
    assert waits == [unit, 2 * unit, 4 * unit, 8 * unit, 8 * unit, 8 * unit]
    assert w.left["b"] == "lagging"
    w.rejoined("b")
    assert "b" not in w.left


def _settled(seed: int) -> Sim:
    sim = Sim(seed, 3, drop=0.0)
    for _ in range(30):
        sim.step(faults=False)
    m = sim.current_master()
    assert m is not None and m.core is not None
    assert m.core.membership.in_sync == set(sim.nodes)
    return sim


def test_a_slave_with_a_slow_disk_is_dropped_and_rejoins_once_fast_again() -> None:
    """Its writes take 3 ticks; it answers heartbeats on time all along, so
    it is never silent. The master drops it (saying why), commits go on at
    the others' pace meanwhile, and it comes back after the hold-off."""
    for seed in range(10):
        sim = _settled(seed)
        m = sim.current_master()
        assert m is not None and m.core is not None
        slow = next(n for n in sim.nodes.values() if n is not m)
        slow.slow = 3
        for tick in range(40):  # noqa: B007 (read after the loop)
            sim.step(faults=False)
            if slow.id not in m.core.membership.in_sync:
                break
        else:
            raise AssertionError(f"seed {seed}: the slow slave was never dropped")
        dropped_at = m.core.now
        # not at once: most of a window's samples must show it holding back
        assert tick >= 4
        assert m.core.role is Role.MASTER
        left = m.core.status().followers[slow.id].left
        assert left.startswith("lagging: held the commit back"), left
        # the others alone decide the commit now: it trails the writes by
        # what a healthy round trip takes, not by the slow disk's 3 ticks
        assert trailing(sim, m, 60, out=slow.id) < 3.5
        # (held out all along: the slow disk keeps up with the writes, only
        # late, so without the hold-off it would be back at the first lull)
        slow.slow = 0
        hold = HOLD_OFF * TIMING.max_lag
        for _ in range(hold + 60):
            sim.step(faults=False)
            if slow.id in m.core.membership.in_sync:
                break
        else:
            raise AssertionError(f"seed {seed}: the slave never rejoined")
        assert m.core.now >= dropped_at + hold  # caught up long before: held off
        assert m.core.status().followers[slow.id].left == ""


def test_a_slow_slave_stays_in_sync_with_the_rule_off() -> None:
    sim = _settled(0)
    m = sim.current_master()
    assert m is not None and m.core is not None and isinstance(m.core.state, Master)
    m.core.state.lag.window = 0  # as --max-lag-time 0 gives it
    assert trailing(sim, m) < 3.5  # healthy
    slow = next(n for n in sim.nodes.values() if n is not m)
    slow.slow = 3
    for _ in range(100):
        sim.step(faults=False)
        assert slow.id in m.core.membership.in_sync
    assert trailing(sim, m) > 4.0  # every write waits for the slow disk


def trailing(sim: Sim, m: Node, steps: int = 200, out: str | None = None) -> float:
    """How many written entries the commit trails by, on average."""
    total = 0
    for _ in range(steps):
        sim.step(faults=False)
        assert m.core is not None
        total += len(m.log) - m.core.commit
        if out is not None:
            assert out not in m.core.membership.in_sync
    return total / steps
