"""chatd.core.log: epoch runs and the shape of one node's log, table-driven.

A log in these tables is written as its runs, e.g. ``[(1, 1), (3, 4)]``:
entries 1..3 of epoch 1, entries 4.. of epoch 3.
"""

from __future__ import annotations

import pytest

from chatd.core.log import EpochRuns, Log
from chatd.core.types import Pos

Runs = list[tuple[int, int]]

# -- EpochRuns --


@pytest.mark.parametrize(
    ("before", "first", "epoch", "started", "after"),
    [
        ([], 1, 1, True, [(1, 1)]),
        ([(1, 1)], 5, 1, False, [(1, 1)]),  # same epoch: the run goes on
        ([(1, 1)], 5, 2, True, [(1, 1), (2, 5)]),
        ([(1, 1), (2, 5)], 9, 1, True, [(1, 1), (2, 5), (1, 9)]),  # only the last run counts
    ],
)
def test_epoch_runs_extend(
    before: Runs, first: int, epoch: int, started: bool, after: Runs
) -> None:
    runs = EpochRuns(before)
    assert runs.extend(first, epoch) is started
    assert runs.pairs == after


@pytest.mark.parametrize(
    ("index", "epoch"),
    [
        (0, None),  # before the first run
        (2, None),
        (3, 1),
        (5, 1),
        (6, 2),
        (8, 2),
        (9, 4),
        (1000, 4),  # the runs alone: the last run reaches on
    ],
)
def test_epoch_runs_epoch_at(index: int, epoch: int | None) -> None:
    assert EpochRuns([(1, 3), (2, 6), (4, 9)]).epoch_at(index) == epoch


@pytest.mark.parametrize(
    ("first", "epoch", "end", "last"),
    [
        (1, 1, 100, 4),  # the run of epoch 1 ends before 5
        (1, 1, 3, 3),  # `end` comes first
        (2, 1, 100, 4),
        (5, 2, 100, 8),
        (5, 2, 6, 6),
        (9, 3, 100, 100),  # the last run: up to `end`
        (9, 3, 12, 12),
    ],
)
def test_epoch_runs_end_of_run(first: int, epoch: int, end: int, last: int) -> None:
    assert EpochRuns([(1, 1), (2, 5), (3, 9)]).end_of_run(first, epoch, end) == last


def test_epoch_runs_copies_what_it_is_given() -> None:
    given = [(1, 1)]
    runs = EpochRuns(given)
    runs.extend(2, 2)
    assert given == [(1, 1)]


# -- Log --

# entries 1..4 of epoch 1, 5..6 of epoch 2, 7..9 of epoch 4
LOG_RUNS = [(1, 1), (2, 5), (4, 7)]


def log_of(start: int = 1) -> Log:
    return Log(Pos(4, 9), LOG_RUNS, start)


@pytest.mark.parametrize(
    ("index", "epoch", "pos"),
    [
        (0, 0, Pos(0, 0)),  # index 0 is the empty log's end, of epoch 0
        (1, 1, Pos(1, 1)),
        (4, 1, Pos(1, 4)),
        (5, 2, Pos(2, 5)),
        (7, 4, Pos(4, 7)),
        (9, 4, Pos(4, 9)),
        (10, None, Pos(0, 10)),  # beyond the end
    ],
)
def test_log_epoch_at_and_pos_at(index: int, epoch: int | None, pos: Pos) -> None:
    log = log_of()
    assert log.epoch_at(index) == epoch
    assert log.pos_at(index) == pos


@pytest.mark.parametrize(
    ("pos", "held"),
    [
        (Pos(0, 0), True),  # every log extends the empty one
        (Pos(1, 4), True),
        (Pos(2, 4), False),  # index held, another epoch: diverged there
        (Pos(2, 5), True),
        (Pos(4, 9), True),
        (Pos(4, 10), False),  # beyond the end
        (Pos(3, 7), False),
    ],
)
def test_log_holds(pos: Pos, held: bool) -> None:
    assert log_of().holds(pos) is held


def test_a_new_log_is_durable_to_its_end() -> None:
    log = log_of()
    assert log.last == log.durable == Pos(4, 9)
    assert log.start == 1


@pytest.mark.parametrize(
    ("first", "last", "runs"),
    [
        (10, Pos(4, 12), [(1, 1), (2, 5), (4, 7)]),  # same epoch: no new run
        (10, Pos(5, 12), [(1, 1), (2, 5), (4, 7), (5, 10)]),
    ],
)
def test_log_append_moves_the_end_not_the_durable_end(first: int, last: Pos, runs: Runs) -> None:
    log = log_of()
    log.append(first, last)
    assert log.last == last
    assert log.durable == Pos(4, 9)  # a slave's append is durable only when persisted
    assert log.runs.pairs == runs
    assert log.epoch_at(last.index) == last.epoch


@pytest.mark.parametrize(
    ("durable", "news", "after"),
    [
        (Pos(4, 10), True, Pos(4, 10)),
        (Pos(4, 12), True, Pos(4, 12)),
        (Pos(4, 9), False, Pos(4, 9)),  # nothing new
        (Pos(1, 3), False, Pos(4, 9)),  # never goes back
    ],
)
def test_log_persisted(durable: Pos, news: bool, after: Pos) -> None:
    log = log_of()
    log.append(10, Pos(4, 12))
    assert log.persisted(durable) is news
    assert log.durable == after


@pytest.mark.parametrize(
    ("pos", "runs", "start", "kept"),
    [
        # the snapshot's runs, up to its end
        (Pos(3, 8), [(1, 1), (3, 5)], 1, [(1, 1), (3, 5)]),
        (Pos(3, 8), [(1, 1), (3, 5), (5, 9)], 1, [(1, 1), (3, 5)]),
        # no runs given: everything up to pos counts as of pos.epoch
        (Pos(3, 8), [], 6, [(3, 8)]),
        (Pos(3, 8), [(5, 9)], 6, [(3, 8)]),  # runs all past the end: the same
    ],
)
def test_log_replace(pos: Pos, runs: Runs, start: int, kept: Runs) -> None:
    log = log_of()
    log.replace(pos, runs, start)
    assert log.last == log.durable == pos
    assert log.runs.pairs == kept
    assert log.start == start


def test_a_replaced_log_keeps_earlier_epochs_so_a_late_append_does_not_look_diverged() -> None:
    log = Log(Pos(), [])
    log.replace(Pos(3, 8), [(1, 1), (3, 5)], 1)
    assert log.holds(Pos(1, 4))
    assert not log.holds(Pos(3, 4))


@pytest.mark.parametrize(
    ("first", "max_count", "start", "batch"),
    [
        (1, 100, 1, (1, 4)),  # cut at the epoch change after 4
        (1, 2, 1, (1, 2)),  # cut at max_count
        (3, 100, 1, (1, 4)),
        (4, 100, 1, (1, 4)),  # a batch of one
        (5, 100, 1, (2, 6)),
        (5, 1, 1, (2, 5)),
        (7, 100, 1, (4, 9)),  # the last run: up to the end
        (7, 2, 1, (4, 8)),
        (3, 100, 4, None),  # truncated away: the follower needs a snapshot
        (4, 100, 4, (1, 4)),  # the first index still held
        (10, 100, 1, None),  # beyond the end: nothing to send
    ],
)
def test_log_batch(first: int, max_count: int, start: int, batch: tuple[int, int] | None) -> None:
    assert log_of(start=start).batch(first, max_count) == batch


# -- what a replacing log drops (a snapshot over a diverged log) --


@pytest.mark.parametrize(
    ("mine", "last", "theirs", "their_last", "dropped"),
    [
        ([(1, 1)], 10, [(1, 1)], 10, []),  # the same log
        ([(1, 1)], 10, [(1, 1)], 20, []),  # behind: nothing of it dropped
        ([(1, 1)], 10, [(1, 1), (3, 6)], 20, [(1, 6, 10)]),  # its tail, under another epoch
        ([(1, 1), (2, 6)], 10, [(1, 1), (3, 6)], 12, [(2, 6, 10)]),  # two masters' tails
        ([(1, 1), (2, 6)], 10, [(1, 1), (3, 8)], 12, [(2, 6, 10)]),  # theirs: 1 at 6..7
        ([(1, 1), (2, 6)], 12, [(1, 1), (2, 6), (3, 9)], 15, [(2, 9, 12)]),  # a part of a run
        ([(1, 1), (2, 6)], 12, [(1, 1), (2, 6)], 8, [(2, 9, 12)]),  # longer than theirs
        ([(1, 1), (2, 4), (4, 7)], 9, [(1, 1), (3, 4)], 9, [(2, 4, 6), (4, 7, 9)]),
        ([], 0, [(1, 1)], 5, []),  # an empty log drops nothing
    ],
)
def test_superseded_by(
    mine: Runs, last: int, theirs: Runs, their_last: int, dropped: list[tuple[int, int, int]]
) -> None:
    top = mine[-1][0] if mine else 0
    log = Log(Pos(top, last), mine)
    assert log.superseded_by(EpochRuns(theirs), their_last) == dropped
