"""chatd.core.progress: every transition of the master's view of one follower."""

from __future__ import annotations

import pytest

from chatd.core.progress import Progress


def test_a_new_follower_is_probed_from_the_start() -> None:
    p = Progress()
    assert (p.match, p.next, p.inflight, p.snapshot, p.echo) == (0, 1, 0, False, 0)


@pytest.mark.parametrize(
    ("heard_tick", "now", "silent"),
    [
        (10, 10, False),
        (10, 14, False),
        (10, 15, True),  # failover ticks without a word
        (10, 30, True),
    ],
)
def test_silent_after_the_failover_timeout(heard_tick: int, now: int, silent: bool) -> None:
    assert Progress(heard_tick=heard_tick).silent(now, failover=5) is silent


def test_heard_clears_what_is_in_flight_and_keeps_the_highest_probe() -> None:
    p = Progress(inflight=4, echo=2)
    p.heard(7, probe=3)
    assert (p.heard_tick, p.inflight, p.echo) == (7, 0, 3)
    p.heard(8, probe=1)  # an older probe does not lower the echo
    assert (p.heard_tick, p.echo) == (8, 3)
    p.heard(9)
    assert p.echo == 3


def test_sent_batch_records_what_is_in_flight() -> None:
    p = Progress(match=3, next=4)
    p.sent_batch(end=10, count=7, now=5)
    assert (p.match, p.next, p.inflight, p.sent_tick) == (3, 11, 7, 5)


def test_lost_sends_again_from_the_last_match() -> None:
    p = Progress(match=3, next=11, inflight=7)
    p.lost()
    assert (p.match, p.next, p.inflight) == (3, 4, 0)


@pytest.mark.parametrize(
    ("match", "next_", "index", "after"),
    [
        (3, 4, 8, (8, 9)),
        (3, 12, 8, (8, 12)),  # a batch beyond 8 is in flight: next stays
        (8, 9, 5, (8, 9)),  # a late, older ack never goes backwards
        (8, 12, 8, (8, 12)),
    ],
)
def test_acked_never_goes_backwards(
    match: int, next_: int, index: int, after: tuple[int, int]
) -> None:
    p = Progress(match=match, next=next_)
    p.acked(index)
    assert (p.match, p.next) == after


@pytest.mark.parametrize("index", [0, 2, 9])
def test_reset_to_takes_the_follower_at_its_word(index: int) -> None:
    p = Progress(match=5, next=12)
    p.reset_to(index)  # a refusal may move the match back: its log ends there
    assert (p.match, p.next) == (index, index + 1)


def test_start_snapshot_only_once() -> None:
    p = Progress()
    assert p.start_snapshot() is True
    assert p.snapshot
    assert p.start_snapshot() is False
    assert p.snapshot


def test_snapshot_done_at_an_index() -> None:
    p = Progress(match=2, next=7, inflight=3)
    assert p.start_snapshot()
    p.snapshot_done(40)
    assert (p.snapshot, p.match, p.next, p.inflight) == (False, 40, 41, 0)
    assert p.start_snapshot()  # another may start later


def test_snapshot_done_older_than_the_match_keeps_the_match() -> None:
    p = Progress(match=50, next=51)
    p.start_snapshot()
    p.snapshot_done(40)
    assert (p.match, p.next) == (50, 51)


def test_a_failed_snapshot_changes_nothing_but_the_flag() -> None:
    p = Progress(match=2, next=7, inflight=3)
    p.start_snapshot()
    p.snapshot_done(None)
    assert (p.snapshot, p.match, p.next, p.inflight) == (False, 2, 7, 3)
    assert p.start_snapshot()  # it may be tried again


@pytest.mark.parametrize(
    ("answered", "heard_tick", "dropped_for", "why"),
    [
        (False, 0, "", "not heard from since this master took over"),  # a dead old master
        (False, 0, "silent", "not heard from since this master took over"),
        (True, 2, "silent", "silent"),  # silent now
        (True, 9, "silent", "catching up (dropped when silent)"),  # heard again since
        (True, 9, "lagging: held the commit back", "lagging: held the commit back"),
        (True, 9, "", "catching up"),
    ],
)
def test_why_a_member_is_out_of_sync_is_never_empty(
    answered: bool, heard_tick: int, dropped_for: str, why: str
) -> None:
    p = Progress(heard_tick=heard_tick, answered=answered)
    assert p.out_of_sync(10, failover=5, dropped_for=dropped_for) == why
