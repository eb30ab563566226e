"""Golden traces of the role core, in the style of etcd-io/raft's datadriven
tests: each tests/core_traces/*.txt is a script of commands against a few
cores wired by a hand-driven network (nothing random, nothing timed), and
after each command the actions every core produced are printed, one a line,
and compared with the expected block in the file.

A case is a command line, a line "----", and the expected output up to the
next blank line; lines starting with "#" between cases are comments.
CHATD_REWRITE_TRACES=1 rewrites the expected blocks with what the code does
now: read the diff before committing it.

Commands (node ids are n1, n2, ...; `[x]` is optional):
  found n1 [quorum=majority]   a new node founds a cluster (in-sync mode by default)
  start n2 [seeds=n1,...]      a new, empty node starts (joins through the seeds)
  cluster n1 n2 n3 [quorum=majority]
                               found n1, join the others, run until all are in sync
                               and confirmed so; prints only the resulting status
  tick [n1 n2 ...] [count]     tick these nodes (default: every running one) count times
  run [n1 n2 ...] [count]      count times: tick these nodes, then stabilize
  deliver [a->b]               deliver every queued message once, in order (only
                               a's messages to b); a message to a down node is
                               refused and its sender told (report_unreachable)
  stabilize                    deliver until nothing is left to deliver
  drop a->b [report]           lose the queued messages from a to b (and tell a)
  partition n1 [n2 ...]        cut these nodes off from the others: a message across
                               the cut is lost when delivered, its sender not told
  heal                         undo the partition
  persist-mode manual|auto     auto: a slave's AppendEntries is durable at once
  persist n2                   carry out n2's pending AppendEntries
  write n1 [count]             the master appends count entries (local_appended)
  crash n1 / restart n1 [seeds=n2,...]
  pause n1 / resume n1         a paused node neither ticks nor receives
  suspect n1                   the driver saw n1 was frozen
  stream-lost n2 from=n1       n2's log stream from n1 ended
  unreachable n1 peer=n2       a call from n1 to n2 failed
  snapshot n1->n2              a snapshot n1 offered is streamed and installed
  remove n1 n3                 ask master n1 to remove n3
  status n1                    the core's status
  log n1                       the node's durable log
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum
from pathlib import Path

import pytest

from chatd.core import Core, Membership, Pos, Role, Timing
from chatd.core.quorum import IN_SYNC
from chatd.core.types import Action, AppendEntries, Message, Send
from tests import core_driver
from tests.core_driver import Payload

TRACES = Path(__file__).parent / "core_traces"
REWRITE = os.environ.get("CHATD_REWRITE_TRACES") == "1"
TIMING = Timing(failover=3, election=2, retry=2, max_batch=4)


# -- rendering, stable and short --


def fmt(value: object) -> str:
    if isinstance(value, Pos):
        return f"{value.epoch}.{value.index}"
    if isinstance(value, Membership):
        out = f"{value.epoch}.{value.seq}[{' '.join(n for n, _ in value.members)}"
        out += f" | in_sync={','.join(sorted(value.in_sync))}"
        if value.retired:
            out += f" retired={','.join(sorted(value.retired))}"
        if value.majority:
            out += " majority"
        return out + "]"
    if isinstance(value, frozenset | set):
        return "{" + ",".join(sorted(str(v) for v in value)) + "}"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}.{value[1]}"
    if isinstance(value, str) and (" " in value or not value):
        return repr(value)
    return str(value)


def fmt_fields(obj: object, skip: tuple[str, ...] = ()) -> str:
    """Every field not at its default, as name=value."""
    parts = []
    for f in fields(obj):  # type: ignore[arg-type]
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if f.default is not MISSING and value == f.default and f.name != "count":
            continue
        parts.append(f"{f.name}={fmt(value)}")
    return " ".join(parts)


def fmt_message(m: Message) -> str:
    rest = fmt_fields(m, skip=("src", "dst"))
    return f"{type(m).__name__} {m.src}->{m.dst} {rest}".rstrip()


def fmt_action(a: Action) -> str:
    if isinstance(a, Send):
        return "Send " + fmt_message(a.message)
    return f"{type(a).__name__} {fmt_fields(a)}".rstrip()


# -- the hand-driven world --


@dataclass
class Queued:
    msg: Message
    payload: Payload = ()  # the entries an Append carries


@dataclass
class Node(core_driver.Node):
    # AppendEntries not yet carried out (manual persist mode)
    pending: list[tuple[AppendEntries, Payload]] = field(default_factory=list)


class World(core_driver.Driver):
    timing = TIMING

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, Node] = {}  # type: ignore[assignment]
        self.queue: list[Queued] = []
        self.out: list[str] = []
        self.auto_persist = True
        self.writes = 0
        self.offered: list[tuple[str, str]] = []  # SendSnapshot (master, dst) not yet streamed
        self.cut: set[str] = set()  # the nodes on the far side of a partition

    # -- plumbing --

    def node(self, nid: str) -> Node:
        if nid not in self.nodes:
            raise ValueError(f"no node {nid}")
        return self.nodes[nid]

    def core(self, nid: str) -> Core:
        c = self.node(nid).core
        if c is None:
            raise ValueError(f"{nid} is down")
        return c

    def observe(self, n: core_driver.Node, action: Action) -> None:
        self.out.append(f"{n.id}: {fmt_action(action)}")

    def send(self, n: core_driver.Node, msg: Message, payload: Payload) -> None:
        self.queue.append(Queued(msg, payload))

    def offer_snapshot(self, n: core_driver.Node, dst: str) -> None:
        self.offered.append((n.id, dst))

    def write_entries(self, n: core_driver.Node, action: AppendEntries, entries: Payload) -> None:
        assert isinstance(n, Node)
        n.pending.append((action, entries))
        if self.auto_persist:
            self.persist(n)

    def persist(self, n: Node) -> None:
        pending, n.pending = n.pending, []
        for action, entries in pending:
            self.make_durable(n, action, entries)

    def deliver_one(self, q: Queued) -> None:
        m = q.msg
        dst = self.target(m.dst)
        src = self.nodes.get(m.src)
        if dst is not None and (m.src in self.cut) != (dst.id in self.cut):
            self.out.append(f"~ {m.src}->{m.dst} {type(m).__name__} lost: partitioned")
            return
        if dst is None or dst.core is None:
            self.out.append(f"~ {m.src}->{m.dst} {type(m).__name__} refused: down")
            if src is not None and src.core is not None:
                self.unreachable(src, m.dst)
            return
        self.deliver(dst, m, q.payload)

    def deliver_all(self, link: tuple[str, str] | None = None) -> None:
        now = list(self.queue)
        self.queue = []
        for q in now:
            dst = self.target(q.msg.dst)
            chosen = link is None or (q.msg.src, dst.id if dst else q.msg.dst) == link
            if not chosen or (dst is not None and dst.paused):
                self.queue.append(q)  # stays queued (a paused node's socket holds it)
                continue
            self.deliver_one(q)

    def deliverable(self) -> bool:
        return any(not (d := self.target(q.msg.dst)) or not d.paused for q in self.queue)

    def stabilize(self) -> None:
        for _ in range(100):
            if not self.deliverable():
                return
            self.deliver_all()
        raise AssertionError("messages still flowing after 100 rounds")

    def start(
        self, nid: str, *, found: bool = False, seeds: tuple[str, ...] = (), quorum: str = IN_SYNC
    ) -> None:
        n = self.nodes.setdefault(nid, Node(nid, f"{nid}:1"))
        if n.core is not None:
            raise ValueError(f"{nid} is running")
        addresses = tuple(self.node(s).address for s in seeds)
        n.paused = False
        self.boot(n, found=found, seeds=addresses, quorum=quorum)

    def running(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.core is not None and not n.paused]

    # -- commands --

    def run(self, line: str) -> str:
        self.out = []
        cmd, *args = line.split()
        kw = dict(a.split("=", 1) for a in args if "=" in a)
        pos = [a for a in args if "=" not in a]
        handler = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {cmd!r}")
        handler(pos, kw)
        return "\n".join(self.out) or "ok"

    def cmd_found(self, pos: list[str], kw: dict[str, str]) -> None:
        self.start(pos[0], found=True, quorum=kw.get("quorum", IN_SYNC))

    def cmd_start(self, pos: list[str], kw: dict[str, str]) -> None:
        seeds = tuple(kw["seeds"].split(",")) if "seeds" in kw else ()
        self.start(pos[0], seeds=seeds)

    cmd_restart = cmd_start

    def cmd_cluster(self, pos: list[str], kw: dict[str, str]) -> None:
        first, *rest = pos
        self.start(first, found=True, quorum=kw.get("quorum", IN_SYNC))
        for nid in rest:
            self.start(nid, seeds=(first,))
        master = self.core(first)
        for _ in range(50):
            self.stabilize()
            if set(pos) <= master.membership.in_sync and all(
                self.core(n).role is Role.SLAVE for n in rest
            ):
                break
            for n in self.running():
                assert n.core is not None
                n.core.tick()
                self.drain(n)
        else:
            raise AssertionError("the cluster did not form")
        master.tick()  # a heartbeat confirms every slave in sync
        self.drain(self.node(first))
        self.stabilize()
        self.out = [self.status(nid) for nid in pos]

    def cmd_tick(self, pos: list[str], kw: dict[str, str]) -> None:
        count = int(pos.pop()) if pos and pos[-1].isdigit() else 1
        for _ in range(count):
            for n in [self.node(nid) for nid in pos] if pos else self.running():
                assert n.core is not None and not n.paused, f"{n.id} cannot tick"
                n.core.tick()
                self.drain(n)

    def cmd_run(self, pos: list[str], kw: dict[str, str]) -> None:
        count = int(pos.pop()) if pos and pos[-1].isdigit() else 1
        for _ in range(count):
            self.cmd_tick(list(pos), {})
            self.stabilize()

    def cmd_deliver(self, pos: list[str], kw: dict[str, str]) -> None:
        if pos:
            a, b = pos[0].split("->")
            self.deliver_all((a, b))
        else:
            self.deliver_all()

    def cmd_stabilize(self, pos: list[str], kw: dict[str, str]) -> None:
        self.stabilize()

    def cmd_drop(self, pos: list[str], kw: dict[str, str]) -> None:
        a, b = pos[0].split("->")
        kept = []
        for q in self.queue:
            dst = self.target(q.msg.dst)
            if (q.msg.src, dst.id if dst else q.msg.dst) != (a, b):
                kept.append(q)
                continue
            self.out.append(f"~ {a}->{q.msg.dst} {type(q.msg).__name__} lost")
            if "report" in pos[1:] and self.node(a).core is not None:
                self.unreachable(self.node(a), q.msg.dst)
        self.queue = kept

    def cmd_partition(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in pos:
            self.node(nid)
        self.cut = set(pos)

    def cmd_heal(self, pos: list[str], kw: dict[str, str]) -> None:
        self.cut = set()

    def cmd_persist_mode(self, pos: list[str], kw: dict[str, str]) -> None:
        self.auto_persist = {"auto": True, "manual": False}[pos[0]]

    def cmd_persist(self, pos: list[str], kw: dict[str, str]) -> None:
        self.persist(self.node(pos[0]))

    def cmd_write(self, pos: list[str], kw: dict[str, str]) -> None:
        n = self.node(pos[0])
        c = self.core(n.id)
        for _ in range(int(pos[1]) if len(pos) > 1 else 1):
            self.writes += 1
            n.log.append((c.epoch, f"w{self.writes}"))
        c.local_appended(n.last())
        self.drain(n)

    def cmd_crash(self, pos: list[str], kw: dict[str, str]) -> None:
        n = self.node(pos[0])
        n.core, n.paused, n.pending = None, False, []
        # what was on its way to it dies with its connections
        self.queue = [q for q in self.queue if self.target(q.msg.dst) is not n]

    def cmd_pause(self, pos: list[str], kw: dict[str, str]) -> None:
        self.core(pos[0])
        self.node(pos[0]).paused = True

    def cmd_resume(self, pos: list[str], kw: dict[str, str]) -> None:
        self.node(pos[0]).paused = False

    def cmd_suspect(self, pos: list[str], kw: dict[str, str]) -> None:
        self.core(pos[0]).suspect()
        self.drain(self.node(pos[0]))

    def cmd_stream_lost(self, pos: list[str], kw: dict[str, str]) -> None:
        self.core(pos[0]).stream_lost(kw["from"])
        self.drain(self.node(pos[0]))

    def cmd_unreachable(self, pos: list[str], kw: dict[str, str]) -> None:
        self.core(pos[0]).report_unreachable(kw["peer"])
        self.drain(self.node(pos[0]))

    def cmd_snapshot(self, pos: list[str], kw: dict[str, str]) -> None:
        a, b = pos[0].split("->")
        self.offered.remove((a, b))
        m, d = self.node(a), self.node(b)
        if not self.core(b).snapshot_offered(a, self.core(a).epoch):
            self.out.append(f"~ {b} refuses the snapshot")
            self.refuse_snapshot(m, b)
            return
        self.install_snapshot(m, d)

    def cmd_remove(self, pos: list[str], kw: dict[str, str]) -> None:
        done = self.core(pos[0]).remove_member(pos[1])
        self.out.append(f"remove {pos[1]}: {done}")
        self.drain(self.node(pos[0]))

    def cmd_status(self, pos: list[str], kw: dict[str, str]) -> None:
        self.out.append(self.status(pos[0]))

    def cmd_log(self, pos: list[str], kw: dict[str, str]) -> None:
        n = self.node(pos[0])
        self.out.append(f"{n.id} log: " + (" ".join(f"{e}:{p}" for e, p in n.log) or "empty"))

    def status(self, nid: str) -> str:
        n = self.node(nid)
        if n.core is None:
            return f"{nid}: down epoch={n.epoch} last={fmt(n.last())}"
        s = n.core.status()
        line = (
            f"{nid}: {s.role.value} epoch={s.epoch} master={fmt(s.master)} last={fmt(s.last)}"
            f" durable={fmt(s.durable)} commit={s.commit} eligible={s.eligible}"
            f" membership={fmt(s.membership)}"
        )
        if s.pending is not None:
            line += f" pending={fmt(s.pending)}"
        for fid, f in sorted(s.followers.items()):
            line += f" {fid}=match:{f.match}{'' if f.alive else ',silent'}"
        return line


# -- the datadriven file format --


@dataclass
class Case:
    command: str
    expected: list[str]
    line: int


Item = str | Case  # a comment or blank line between cases, or a case


def parse(text: str) -> list[Item]:
    items: list[Item] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            items.append(line)
            i += 1
            continue
        if i + 1 >= len(lines) or lines[i + 1] != "----":
            raise ValueError(f"line {i + 1}: {line!r} has no ---- after it")
        j = i + 2
        while j < len(lines) and lines[j].strip():
            j += 1
        items.append(Case(line, lines[i + 2 : j], i + 1))
        i = j + 1  # the blank line ending the case
    return items


def render(items: list[Item], actual: dict[int, list[str]]) -> str:
    out: list[str] = []
    for k, item in enumerate(items):
        if isinstance(item, str):
            out.append(item)
            continue
        out += [item.command, "----", *actual.get(item.line, item.expected)]
        if k + 1 < len(items):
            out.append("")
    return "\n".join(out) + "\n"


def run_script(path: Path) -> tuple[str, str]:
    """(expected, actual) renderings of the script at `path`."""
    items = parse(path.read_text())
    world = World()
    actual: dict[int, list[str]] = {}
    for item in items:
        if isinstance(item, Case):
            try:
                actual[item.line] = world.run(item.command).splitlines()
            except Exception as exc:
                raise AssertionError(f"{path.name}:{item.line}: {item.command}: {exc!r}") from exc
    return render(items, {}), render(items, actual)


SCRIPTS = sorted(TRACES.glob("*.txt"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_trace(path: Path) -> None:
    expected, actual = run_script(path)
    if REWRITE:
        path.write_text(actual)
        return
    assert actual == expected, f"{path.name}: rewrite with CHATD_REWRITE_TRACES=1 and read the diff"


def test_every_script_says_what_it_demonstrates() -> None:
    assert len(SCRIPTS) >= 6
    for path in SCRIPTS:
        assert path.read_text().startswith("# "), path.name


def test_the_format_round_trips() -> None:
    text = "# about\n\nfound n1\n----\nn1: a\nn1: b\n\n# next\ntick\n----\nok\n"
    items = parse(text)
    assert render(items, {}) == text
    assert [i.command for i in items if isinstance(i, Case)] == ["found n1", "tick"]
    changed = render(items, {3: ["n1: c"]})
    assert changed == text.replace("n1: a\nn1: b", "n1: c")
