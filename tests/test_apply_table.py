"""The apply table (chatd/server/storage/apply.py) against the log proto:
every kind of log entry (protos/chatd/proto/log.proto's Entry oneof `op`,
read from the generated descriptor) has its apply function, and the table
names no kind the proto lacks. The check itself catches a kind left out."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from chatd.proto import log_pb2
from chatd.server.storage import apply, meta


def entry_kinds() -> set[str]:
    return {f.name for f in log_pb2.Entry.DESCRIPTOR.oneofs_by_name["op"].fields}


def mismatch(table: Mapping[str, object]) -> tuple[set[str], set[str]]:
    """(kinds of the proto without an apply function, kinds of the table
    that the proto lacks)."""
    return entry_kinds() - set(table), set(table) - entry_kinds()


def test_every_entry_kind_has_an_apply_function() -> None:
    assert len(entry_kinds()) >= 17
    assert mismatch(apply.KINDS) == (set(), set())
    assert all(callable(fn) for fn in apply.KINDS.values())


@pytest.mark.parametrize("kind", sorted(entry_kinds()))
def test_a_kind_without_one_is_caught(kind: str) -> None:
    table = {k: fn for k, fn in apply.KINDS.items() if k != kind}
    assert mismatch(table) == ({kind}, set())


def test_a_kind_claimed_by_two_families_is_refused() -> None:
    with pytest.raises(ValueError, match="two apply functions for entry kind 'noop'"):
        apply.assemble(meta.APPLY, meta.APPLY)
