"""The master's view of one follower: how far its log is known to reach,
what is in flight to it, and when it was last heard from.

A follower is replicating (`inflight` is the size of the last Append sent
and not yet answered, 0 when none; any answer clears it, a late answer to
an older Append too: the master may then send the next batch early, which
the follower refuses if it leaves a gap, and the master resends from the
match) or receiving a snapshot (`snapshot`: nothing else is sent until the
snapshot is done or fails). The transitions are the methods below; the
master decides when.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Progress:
    match: int = 0  # last index known durable on the follower
    next: int = 1  # first index to send
    inflight: int = 0  # entries in the unanswered Append (0: none)
    sent_tick: int = 0
    heard_tick: int = 0
    snapshot: bool = False  # a snapshot is on its way
    echo: int = 0  # the follower's last probe (see AppendReply.probe)
    asked: bool = False  # a call to it failed: the master asked it whether it lives
    told: int = 0  # the commit index the last Append to it carried
    told_in_sync: bool = False  # the in_sync flag the last Append to it carried
    answered: bool = False  # it answered this master at least once
    # `next` is the master's guess at the end of its own log (it took office
    # knowing nothing of this follower), not yet checked against the
    # follower's answer
    guessed: bool = False

    def out_of_sync(self, now: int, failover: int, dropped_for: str = "") -> str:
        """Why a member outside the in-sync set is there: not heard from
        since this master took over (a dead old master), silent now, else
        why the master dropped it (`dropped_for`: lagging), else catching up
        (after a silence that dropped it, if one did)."""
        if not self.answered:
            return "not heard from since this master took over"
        if self.silent(now, failover):
            return "silent"
        if dropped_for == "silent":
            return "catching up (dropped when silent)"
        return dropped_for or "catching up"

    def silent(self, now: int, failover: int) -> bool:
        """Not heard from for the failover timeout: presumed dead."""
        return now - self.heard_tick >= failover

    def heard(self, now: int, probe: int = 0) -> None:
        """An answer came: nothing is in flight any more."""
        self.heard_tick = now
        self.answered = True
        self.asked = False
        self.inflight = 0
        self.echo = max(self.echo, probe)

    def sent_batch(self, end: int, count: int, now: int) -> None:
        self.inflight = count
        self.sent_tick = now
        self.next = end + 1

    def lost(self) -> None:
        """What was in flight is lost: send again from the last match."""
        self.inflight = 0
        self.next = self.match + 1

    def acked(self, index: int, *, batch: bool = True) -> None:
        """The follower has everything up to `index` durable (`batch`:
        entries were in flight to it when it answered)."""
        self.match = max(self.match, index)
        self.next = max(self.next, self.match + 1)
        if self.guessed and not batch:
            # the answer to a heartbeat, with `next` still a guess: it
            # lacks what follows its match, and is sent it now rather than
            # when a new write's Append is refused (a batch in flight
            # checks the guess by itself)
            self.guessed = False
            self.next = self.match + 1

    def reset_to(self, index: int) -> None:
        """The follower's log ends at `index` (a refusal, or a registration)."""
        self.match = index
        self.next = index + 1
        self.guessed = False

    def start_snapshot(self) -> bool:
        """A snapshot is needed; True if one is not already on its way."""
        if self.snapshot:
            return False
        self.snapshot = True
        return True

    def snapshot_done(self, index: int | None) -> None:
        """The snapshot ended at `index` on the follower (None: it failed)."""
        self.snapshot = False
        if index is not None:
            self.match = max(self.match, index)
            self.next = self.match + 1
            self.inflight = 0
