"""Deliberate breaks of the majority rules, applied to the core's source for
the length of a test: the simulation must catch each of them.

A mutation names a function of `chatd.core`, a piece of its source and what
replaces it; `applied` recompiles the function with the change in its own
module's namespace and puts it in place, and puts the original back after.
A mutation whose piece of source is gone (the rule was rewritten) fails
loudly rather than testing nothing.
"""

from __future__ import annotations
import __future__

import contextlib
import inspect
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from chatd.core import leader, machine, progress, quorum


@dataclass(frozen=True)
class Mutation:
    name: str
    owner: Any  # the class or module holding the function
    attr: str
    old: str
    new: str


MUTATIONS = {
    m.name: m
    for m in (
        # a commit counted with one voter fewer than a majority
        Mutation(
            "commit-short-of-majority",
            quorum,
            "quorum_index",
            "acked[needed(mode, len(v)) - 1]",
            "acked[max(needed(mode, len(v)) - 2, 0)]",
        ),
        # a voter accepts a claimant whose log is shorter than its own
        Mutation(
            "accept-shorter-log",
            machine.Core,
            "_on_update_master",
            "fresh = m.src in newest.in_sync and m.last >= self.log.durable",
            "fresh = m.src in newest.in_sync",
        ),
        # a voter accepts two claimants in one epoch
        Mutation(
            "accept-two-claimants",
            machine.Core,
            "_on_update_master",
            "fresh = m.epoch > self.epoch"
            " or (m.epoch == self.epoch and self.voted == (m.epoch, m.src))",
            "fresh = m.epoch >= self.epoch",
        ),
        # an older epoch's entry committed by counting (Raft's figure 8)
        Mutation(
            "commit-older-epoch",
            leader.Master,
            "_advance_commit",
            "(not voters.majority or core.log.epoch_at(top) == core.epoch)",
            "True",
        ),
    )
}


# breaks of the core's own invariants (Core.check), not of a majority rule:
# the core itself stops at the first event after which one no longer holds
INVARIANT_BREAKS = {
    m.name: m
    for m in (
        # a follower's next index left at its match (an entry never resent)
        Mutation(
            "next-at-match",
            progress.Progress,
            "reset_to",
            "self.next = index + 1",
            "self.next = index",
        ),
    )
}


def _mutant(fn: Callable[..., Any], old: str, new: str) -> Callable[..., Any]:
    src = textwrap.dedent(inspect.getsource(fn))
    if src.count(old) != 1:
        raise AssertionError(f"{fn.__qualname__}: the source to mutate is not there once: {old!r}")
    code = compile(
        src.replace(old, new),
        inspect.getsourcefile(fn) or "<mutant>",
        "exec",
        flags=__future__.annotations.compiler_flag,
        dont_inherit=True,
    )
    namespace: dict[str, Any] = {}
    exec(code, fn.__globals__, namespace)  # the core's own source, altered
    mutant: Callable[..., Any] = namespace[fn.__name__]
    return mutant


@contextlib.contextmanager
def applied(name: str) -> Iterator[None]:
    m = MUTATIONS[name] if name in MUTATIONS else INVARIANT_BREAKS[name]
    original = m.owner.__dict__[m.attr] if isinstance(m.owner, type) else getattr(m.owner, m.attr)
    mutant = _mutant(original, m.old, m.new)
    # tables that hold the function itself (a dispatch table) get the mutant too
    tables = [
        (t, k)
        for mod in (leader, machine)
        for t in vars(mod).values()
        if isinstance(t, dict)
        for k, v in t.items()
        if v is original
    ]
    setattr(m.owner, m.attr, mutant)
    for t, k in tables:
        t[k] = mutant
    try:
        yield
    finally:
        setattr(m.owner, m.attr, original)
        for t, k in tables:
            t[k] = original
