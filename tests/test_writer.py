"""The group-commit writer's promise: a write is answered only once it is
durable on this node and reported committed by replication (on every
in-sync slave), whichever of the two comes last. The slaves write a batch
while this node commits it, so either may come first."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from chatd.proto import log_pb2
from chatd.server.chat.hub import Hub
from chatd.server.storage import writer as writer_module
from chatd.server.storage.store import Store
from chatd.server.storage.writer import GroupCommitWriter
from tests.waiting import eventually_async


class Replication:
    """A master's replication at epoch 1; `on_appended` plays the slaves."""

    def __init__(self) -> None:
        self.on_appended: Callable[[int], None] = lambda index: None

    def writable_epoch(self) -> int | None:
        return 1

    def refusal(self) -> str:
        return ""

    def appended(self, epoch: int, last_index: int) -> None:
        self.on_appended(last_index)


async def fatal(exc: BaseException) -> None:
    raise AssertionError(f"the store failed: {exc}")


@pytest.fixture
async def parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[GroupCommitWriter, Replication, threading.Event]]:
    """A writer over a real store whose commit waits for the returned event."""
    store = Store(tmp_path / "chatd.sqlite3")
    disk = threading.Event()
    commit = store.commit

    def slow_commit() -> None:
        assert disk.wait(10)
        commit()

    monkeypatch.setattr(store, "commit", slow_commit)
    repl = Replication()
    db_thread = ThreadPoolExecutor(1)
    writer = GroupCommitWriter(store, Hub(), db_thread, repl, fatal, asyncio.Lock())
    writer.start()
    yield writer, repl, disk
    disk.set()
    await writer.close()
    db_thread.shutdown()
    store.close()


def entry(name: str) -> log_pb2.Entry:
    return log_pb2.Entry(create_account=log_pb2.CreateAccount(username=name, password_hash="h"))


async def test_not_answered_before_this_nodes_commit(
    parts: tuple[GroupCommitWriter, Replication, threading.Event],
) -> None:
    writer, repl, disk = parts

    # the slaves have the batch at once, before this node's disk does
    def slaves_have_it(index: int) -> None:
        asyncio.get_running_loop().call_soon(writer.committed, index)

    repl.on_appended = slaves_have_it
    answer = asyncio.ensure_future(writer.submit(entry("alice")))
    await asyncio.sleep(0.2)  # (a while: not answered meanwhile)
    assert not answer.done()
    disk.set()
    applied = await asyncio.wait_for(answer, 5)
    assert applied.index == writer.store.last_index


async def test_not_answered_before_replication_commits(
    parts: tuple[GroupCommitWriter, Replication, threading.Event],
) -> None:
    writer, repl, disk = parts
    appended: list[int] = []
    repl.on_appended = appended.append
    disk.set()
    answer = asyncio.ensure_future(writer.submit(entry("bob")))
    await asyncio.sleep(0.2)  # (a while: not answered meanwhile)
    assert appended and not answer.done()  # durable here, not yet on the slaves
    writer.committed(appended[-1])
    applied = await asyncio.wait_for(answer, 5)
    assert applied.index == appended[-1]


async def test_majority_mode_paces_the_next_batch_by_the_slower_voter(
    parts: tuple[GroupCommitWriter, Replication, threading.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write is answered at a majority; the next batch waits until every
    voter still answering has the last one, for at most as long again as
    the commit took."""
    monkeypatch.setattr(writer_module, "PACE_CAP_S", 10.0)
    writer, repl, disk = parts
    appended: list[int] = []
    repl.on_appended = appended.append
    disk.set()
    writer.settled(0)  # majority mode: the driver reports where the voters are
    first = asyncio.ensure_future(writer.submit(entry("carol")))
    await asyncio.sleep(0.3)
    writer.committed(appended[-1])  # a majority has it, 0.3 s after it was appended
    await asyncio.wait_for(first, 5)
    second = asyncio.ensure_future(writer.submit(entry("dave")))
    await asyncio.sleep(0.1)  # (a while: not appended meanwhile)
    assert appended == [1]  # gathering: the slower voter has not got entry 1
    writer.settled(1)
    await asyncio.sleep(0.05)  # (at once, well before the pace's cap)
    assert appended == [1, 2]
    writer.committed(2)
    await asyncio.wait_for(second, 5)
    # a voter that stays behind holds a batch back for the commit's time only
    third = asyncio.ensure_future(writer.submit(entry("erin")))
    await asyncio.sleep(0.01)  # (the batch goes out)
    writer.committed(3)
    await asyncio.wait_for(third, 5)
    started = asyncio.get_running_loop().time()
    fourth = asyncio.ensure_future(writer.submit(entry("frank")))
    await eventually_async(lambda: appended, "entry 4 appended", until=lambda a: len(a) >= 4)
    assert appended == [1, 2, 3, 4]
    assert asyncio.get_running_loop().time() - started < 0.3
    writer.committed(4)
    await asyncio.wait_for(fourth, 5)


async def test_in_sync_mode_does_not_pace(
    parts: tuple[GroupCommitWriter, Replication, threading.Event],
) -> None:
    writer, repl, disk = parts
    appended: list[int] = []
    repl.on_appended = appended.append
    disk.set()
    first = asyncio.ensure_future(writer.submit(entry("carol")))
    await asyncio.sleep(0.3)
    writer.committed(appended[-1])
    await asyncio.wait_for(first, 5)
    second = asyncio.ensure_future(writer.submit(entry("dave")))
    # within 0.2 s: a pace would hold it back as long as the commit took (0.3 s)
    await eventually_async(
        lambda: appended, "entry 2 appended, unpaced", until=lambda a: len(a) >= 2, timeout=0.2
    )
    assert appended == [1, 2]
    writer.committed(2)
    await asyncio.wait_for(second, 5)


def message_entry(body: str) -> log_pb2.Entry:
    op = log_pb2.SendMessage(sender="alice", recipient="bob", body=body)
    return log_pb2.Entry(send_message=op)


class RecordingHub(Hub):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[object] = []

    def publish(self, message: Any, to: list[str] | None = None) -> None:
        self.events.append(("publish", message.id))
        super().publish(message, to)

    def refresh_all(self) -> None:
        self.events.append("refresh")
        super().refresh_all()


async def test_inherited_messages_become_visible_before_newer_ones_are_published(
    tmp_path: Path,
) -> None:
    """A node that becomes master holds a message of the old master's (here
    written as replication writes it, not by this writer). Once the new
    master's first write commits, readers are told of the inherited message
    (refresh) before the new one is published: a subscriber that got the
    newer one first dropped the older for good."""
    store = Store(tmp_path / "chatd.sqlite3")
    hub = RecordingHub()
    repl = Replication()
    db_thread = ThreadPoolExecutor(1)
    writer = GroupCommitWriter(store, hub, db_thread, repl, fatal, asyncio.Lock())
    old_master = [
        entry("alice"),
        entry("bob"),
        log_pb2.Entry(send_message=log_pb2.SendMessage(sender="alice", recipient="bob", body="x")),
    ]
    store.begin()
    for e in old_master:
        store.append(e, e.SerializeToString(deterministic=True), 1)
    store.commit()
    assert store.last_message_id == 1 and writer.visible_message_id == 0
    appended: list[int] = []
    repl.on_appended = appended.append
    writer.start()
    try:
        new = log_pb2.SendMessage(sender="bob", recipient="alice", body="y", request_id="r")
        answer = asyncio.ensure_future(writer.submit(log_pb2.Entry(send_message=new)))
        await eventually_async(lambda: appended, "the new entry appended")
        more = asyncio.ensure_future(writer.submit(entry("carol")))  # still waiting after
        writer.committed(appended[0])
        applied = await asyncio.wait_for(answer, 5)
        assert applied.message_id == 2
        assert hub.events[:2] == ["refresh", ("publish", 2)], hub.events
        assert writer.visible_message_id == 2
        await asyncio.sleep(0.05)  # (carol's entry waits on meanwhile)
        writer.committed(store.last_index)
        await asyncio.wait_for(more, 5)
    finally:
        await writer.close()
        db_thread.shutdown()
        store.close()


async def test_a_slave_publishes_what_it_received_once_committed_in_log_order(
    tmp_path: Path,
) -> None:
    """A slave's received entries reach its readers only once a master's
    commit covers them, in log order; a role change (the slave a candidate
    for a moment) keeps them queued: dropped, the newer message published
    first would hide the older one from every stream."""
    store = Store(tmp_path / "chatd.sqlite3")
    hub = RecordingHub()
    writer = GroupCommitWriter(
        store, hub, ThreadPoolExecutor(1), Replication(), fatal, asyncio.Lock()
    )

    def receive(*entries: log_pb2.Entry) -> None:
        store.begin()
        applied = [store.append(e, e.SerializeToString(deterministic=True), 1) for e in entries]
        store.commit()
        writer.replicated(applied)

    try:
        receive(entry("alice"), entry("bob"), message_entry("one"))
        assert hub.events == [] and writer.visible_message_id == 0  # not committed yet
        writer.committed(2)
        assert hub.events == []  # the message is entry 3
        writer.abandon("the master changed")
        receive(message_entry("two"))
        writer.committed(4)
        assert hub.events == [("publish", 1), ("publish", 2)]
        assert writer.visible_message_id == 2
    finally:
        store.close()


async def test_stored_messages_are_shown_once_a_commit_covers_them(tmp_path: Path) -> None:
    """A node starting on a store, or installing a snapshot (a copy of the
    master's store), may hold a tail no master committed, which a new master
    can replace: its messages stay hidden from readers until a commit
    covers the last entry, then every stream reads them (refresh)."""
    store = Store(tmp_path / "chatd.sqlite3")
    hub = RecordingHub()
    store.begin()
    for e in (entry("alice"), entry("bob"), message_entry("one"), message_entry("two")):
        store.append(e, e.SerializeToString(deterministic=True), 1)
    store.commit()
    writer = GroupCommitWriter(
        store, hub, ThreadPoolExecutor(1), Replication(), fatal, asyncio.Lock()
    )
    try:
        assert writer.visible_message_id == 0  # starting: committed or not, unknown
        writer.committed(3)
        assert writer.visible_message_id == 0 and hub.events == []
        writer.committed(4)
        assert writer.visible_message_id == 2 and hub.events == ["refresh"]
        store.begin()  # a snapshot brings two more messages, the last uncommitted
        for e in (message_entry("three"), message_entry("four")):
            store.append(e, e.SerializeToString(deterministic=True), 1)
        store.commit()
        writer.replaced()
        writer.committed(5)
        assert writer.visible_message_id == 2 and hub.events == ["refresh"]
        writer.committed(6)
        assert writer.visible_message_id == 4 and hub.events == ["refresh", "refresh"]
    finally:
        store.close()
