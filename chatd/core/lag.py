"""Which in-sync slaves hold the master's commits back: the slow-node rule.

A write is acknowledged only when every in-sync node has it, so one slow
slave slows every write. Kafka drops a follower from its in-sync set when it
has not caught up with the leader's log end for `replica.lag.time.max.ms`;
that rule alone never fires here: clients wait for their writes, so the log
end stops growing while the slow slave catches up, and it is "caught up"
again every time it answers. What marks a slow slave instead is that the
others have to wait for it. Once a tick the master looks at each in-sync
slave and notes whether it is the one holding the commit back at that
moment: the other in-sync slaves have durable an entry it has not
acknowledged. (A lone slave is not compared with anyone: relative slowness
never drops the in-sync set below the master and one slave.) Two healthy
slaves take turns at being last, each for a small share of the time; a
slave held to a few percent of a core is last almost always. A slave leaves
the in-sync set when:

- it held the commit back at `share` (half) or more of the last `window`
  ticks (`--max-lag-time`): without it, writes would have gone up to twice
  as fast. (Measured with 16 writers on 3 nodes: a healthy slave held it
  back at 0-3 of 10 ticks; one held to 10 % of a core by a cgroup quota at
  3-10 of 10, to 2 % at 9-10.) Or:
- it has not acknowledged what the master had durable `window` ticks ago
  (Kafka's rule: it stopped making progress while still answering).

It leaves through the ordinary two-phase membership change, and may come
back when it has caught up with the log end, but not before a hold-off of
ten windows, doubled each time it is dropped again (up to 80 windows): a
slave that is slow at every load would otherwise rejoin at each lull and
slow the writes again for a window each time.

Pure: ticks in, decisions out; the master (chatd/core/leader.py) acts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

HOLD_OFF = 10  # windows a dropped slave waits before it may rejoin (doubling)
MAX_DOUBLINGS = 3


@dataclass(slots=True)
class LagWatch:
    window: int  # ticks; 0 turns the rule off
    share: float = 0.5
    ends: deque[int] = field(default_factory=deque)  # the master's durable index, a tick each
    held: dict[str, deque[bool]] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)  # times dropped for lagging
    hold_until: dict[str, int] = field(default_factory=dict)  # tick it may rejoin at
    left: dict[str, str] = field(default_factory=dict)  # why a member is out of sync

    def sample(
        self, durable: int, matches: Mapping[str, int], watched: frozenset[str] | set[str]
    ) -> dict[str, str]:
        """One tick: `durable` is the master's durable index, `matches` every
        follower's acknowledged index, `watched` the in-sync slaves to judge.
        Returns the lagging ones, each with why."""
        if self.window <= 0:
            return {}
        self.ends.append(durable)
        if len(self.ends) > self.window + 1:
            self.ends.popleft()
        for nid in list(self.held):
            if nid not in watched:
                del self.held[nid]
        lagging: dict[str, str] = {}
        for nid in sorted(watched):
            mine = matches.get(nid, 0)
            h = self.held.setdefault(nid, deque(maxlen=self.window))
            others = [matches.get(o, 0) for o in watched if o != nid]
            # (with no other slave to compare with, a slave is last by
            # construction: the master sends what it has made durable)
            h.append(bool(others) and mine < min(others))
            old_end = self.ends[0]
            if len(self.ends) > self.window and mine < old_end:
                lagging[nid] = (
                    f"lagging: index {old_end} not acknowledged {self.window} ticks after"
                    " the master had it"
                )
            elif len(h) == self.window and sum(h) >= self.share * self.window:
                lagging[nid] = (
                    f"lagging: held the commit back at {sum(h)} of the last {self.window} ticks"
                )
        return lagging

    def dropped(self, nid: str, now: int, why: str) -> None:
        """`nid` is being dropped from the in-sync set for lagging."""
        n = self.drops[nid] = self.drops.get(nid, 0) + 1
        self.hold_until[nid] = now + HOLD_OFF * self.window * 2 ** min(n - 1, MAX_DOUBLINGS)
        self.held.pop(nid, None)
        self.left[nid] = why

    def may_rejoin(self, nid: str, now: int) -> bool:
        return now >= self.hold_until.get(nid, 0)

    def rejoined(self, nid: str) -> None:
        self.left.pop(nid, None)
        self.held.pop(nid, None)
