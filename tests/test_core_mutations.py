"""The simulation catches each deliberate break of the majority rules within
the schedules CI runs (tests/test_core_simulation.py): each test applies one
break to the core's source (tests/mutations.py) and runs CI's majority-mode
schedules until one fails, as it must: well inside them, within the first
half, so that a change to the fault mix that makes a break rare shows."""

from __future__ import annotations

import pytest

from chatd.core import machine, quorum
from chatd.core.quorum import MAJORITY
from chatd.core.roles import Slave
from chatd.core.types import UpdateMaster
from tests import mutations
from tests.simulation import CI_SCHEDULES, Violation, run_schedule

WELL_INSIDE = CI_SCHEDULES // 2


def _first_caught(name: str) -> int | None:
    with mutations.applied(name):
        for seed in range(WELL_INSIDE):
            try:
                run_schedule(seed, quorum=MAJORITY)
            except Violation:
                return seed
    return None


@pytest.mark.parametrize("name", sorted(mutations.MUTATIONS))
def test_the_simulation_catches_a_broken_majority_rule(name: str) -> None:
    seed = _first_caught(name)
    assert seed is not None, f"{name}: none of CI's first {WELL_INSIDE} majority schedules fails"


def test_a_mutation_reaches_the_dispatch_table_and_is_undone() -> None:
    """A handler is found through `_STEP`, not the class: the mutant must
    be put there too (else the break is never run), and both put back."""
    original = machine.Core.__dict__["_on_update_master"]
    with mutations.applied("accept-two-claimants"):
        mutant = machine._STEP[(Slave, UpdateMaster)]
        assert mutant is not original and machine.Core.__dict__["_on_update_master"] is mutant
    assert machine._STEP[(Slave, UpdateMaster)] is original
    assert machine.Core.__dict__["_on_update_master"] is original
    original_index = quorum.quorum_index
    with mutations.applied("commit-short-of-majority"):
        assert vars(quorum)["quorum_index"] is not original_index
    assert vars(quorum)["quorum_index"] is original_index


def test_a_mutation_of_source_that_is_gone_fails_loudly() -> None:
    gone = mutations.Mutation("gone", quorum, "quorum_index", "no such text", "x")
    mutations.MUTATIONS["gone"] = gone
    try:
        with pytest.raises(AssertionError, match="not there once"), mutations.applied("gone"):
            pass
    finally:
        del mutations.MUTATIONS["gone"]
