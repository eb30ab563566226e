"""The replication driver (chatd/server/cluster/replication.py) against a fake
transport: a real store in a temp dir, the real core, and peers that only
record what they were asked to send."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chatd.core import Membership, Pos, Role, Timing
from chatd.core.types import (
    CheckMaster,
    CheckMasterReply,
    Message,
    PersistEpoch,
    Send,
    UpdateAck,
    UpdateMaster,
)
from chatd.server.chat.hub import Hub
from chatd.server.cluster import peer_service
from chatd.server.cluster.replication import Replicator
from chatd.server.cluster.replies import Replies
from chatd.server.storage.store import Store


class RecordingPeers:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, msg: Message) -> None:
        self.sent.append(msg)

    def send_snapshot(self, dst: str) -> None:
        raise AssertionError("no snapshot expected")

    def close_links(self) -> None:
        pass

    def seed_failures(self) -> list[str]:
        return []


class IdleWriter:
    visible_message_id = 0

    def abandon(self, reason: str) -> None:
        pass

    def committed(self, index: int) -> None:
        pass


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.store = Store(tmp_path / "chatd.sqlite3")
        self.db_thread = ThreadPoolExecutor(1)
        self.fatal: list[BaseException] = []
        self.peers = RecordingPeers()

        async def on_fatal(exc: BaseException) -> None:
            self.fatal.append(exc)

        self.repl = Replicator(
            "n1",
            self.store,
            asyncio.Lock(),
            self.db_thread,
            Hub(),
            Timing(),
            3600.0,  # no tick during the test
            tmp_path,
            on_fatal,
        )

    def start(self) -> None:
        self.repl.start(
            peers=self.peers,
            writer=IdleWriter(),  # type: ignore[arg-type]
            address="127.0.0.1:1",
            found=True,
            seeds=(),
        )

    async def settle(self) -> None:
        for _ in range(50):  # bounded: the pump runs on this loop
            await asyncio.sleep(0.01)
            if not self.repl._work:
                return


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    yield h
    await h.repl.stop()
    h.store.close()
    h.db_thread.shutdown()


def _claim(epoch: int) -> UpdateMaster:
    members = (("n1", "127.0.0.1:1"), ("n2", "127.0.0.1:2"))
    membership = Membership(epoch=epoch, members=members, in_sync=frozenset({"n1", "n2"}))
    return UpdateMaster(src="n2", dst="n1", epoch=epoch, membership=membership, last=Pos(0, 0))


async def test_a_founded_master_persists_its_epoch_and_membership(harness: Harness) -> None:
    harness.start()
    await harness.settle()
    assert harness.fatal == []
    assert harness.repl.status().role is Role.MASTER
    assert int(harness.store.get_meta("epoch", 0)) == 1
    assert "n1" in str(harness.store.get_meta("membership"))


async def test_a_failed_persistence_stops_the_node_before_anything_that_follows_is_sent(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new master's claim makes this node persist the new epoch and then
    answer; with the disk failing, the answer must never go out (it would
    promise what this node does not hold durably) and the node must stop."""
    harness.start()
    await harness.settle()
    real = harness.store.set_meta

    def failing(key: str, value: object) -> None:
        if key == "epoch":
            raise OSError("database or disk is full")
        real(key, value)

    monkeypatch.setattr(harness.store, "set_meta", failing)
    answer = asyncio.ensure_future(harness.repl.replies.ask(_claim(5), UpdateAck))
    await harness.settle()
    assert len(harness.fatal) == 1 and "disk is full" in str(harness.fatal[0])
    assert not answer.done(), "an answer followed a failed persistence"
    answer.cancel()
    assert harness.peers.sent == []
    assert int(harness.store.get_meta("epoch", 0)) == 1


async def test_with_a_working_disk_the_same_claim_is_persisted_then_answered(
    harness: Harness,
) -> None:
    harness.start()
    await harness.settle()
    answer = asyncio.ensure_future(harness.repl.replies.ask(_claim(5), UpdateAck))
    await harness.settle()
    assert harness.fatal == []
    assert answer.done() and isinstance(answer.result(), UpdateAck)
    # (alone in its membership, it stepped down and elected itself at 6
    # before taking the claim: what it persisted is at least the claim's)
    assert int(harness.store.get_meta("epoch", 0)) >= 5


async def test_a_send_goes_out_at_once_only_with_nothing_before_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Send the core makes with nothing queued or under way is carried out
    at once (a master's batch, without waiting for the pump's turn); behind
    a persistence it waits for it, and after a persistence that failed it
    never goes out."""
    harness.start()
    await harness.settle()
    made: list[list[object]] = []
    monkeypatch.setattr(harness.repl.core, "take_actions", lambda: made.pop(0) if made else [])
    first, second, third = (CheckMaster(src="n1", dst="n2", epoch=e) for e in (7, 8, 9))
    made.append([Send(message=first)])
    harness.repl._collect()
    assert harness.peers.sent == [first]  # at once, before any turn of the loop
    made.append([PersistEpoch(epoch=8), Send(message=second)])
    harness.repl._collect()
    assert harness.peers.sent == [first]  # behind the persistence
    await harness.settle()
    assert harness.peers.sent == [first, second]
    assert int(harness.store.get_meta("epoch", 0)) == 8

    def failing(key: str, value: object) -> None:
        raise OSError("database or disk is full")

    monkeypatch.setattr(harness.store, "set_meta", failing)
    made.append([PersistEpoch(epoch=9)])
    harness.repl._collect()
    await harness.settle()
    assert len(harness.fatal) == 1
    made.append([Send(message=third)])
    harness.repl._collect()  # (nothing queued now: only the failure holds it)
    await harness.settle()
    assert harness.peers.sent == [first, second]


async def test_a_failed_log_truncation_stops_the_node(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.start()
    await harness.settle()

    def failing(keep: int) -> int:
        raise OSError("disk I/O error")

    monkeypatch.setattr(harness.store, "truncate_log", failing)
    start = harness.repl.status().log_start
    await harness.repl.truncate_log(10)
    assert len(harness.fatal) == 1 and "I/O error" in str(harness.fatal[0])
    assert harness.repl.status().log_start == start


async def test_a_log_truncation_reaches_the_core(harness: Harness) -> None:
    """The core learns where the log now starts (a follower needing older
    entries then gets a snapshot), from the store, not from a field set aside."""
    harness.start()
    await harness.settle()
    harness.store.truncate_log = lambda keep: 7  # type: ignore[method-assign]
    await harness.repl.truncate_log(10)
    await harness.settle()
    assert harness.fatal == []
    assert harness.repl.status().log_start == 7


# -- replies to other nodes' requests, matched by request id --


async def test_a_reply_completes_its_own_request_and_no_other(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request the core refuses (an event it cannot take: it restarts)
    gets no reply, and its caller times out; the next request of the same
    kind from the same node gets its own reply, which is not handed to the
    request still waiting before it."""
    harness.start()
    await harness.settle()
    monkeypatch.setattr(peer_service, "REPLY_TIMEOUT_S", 0.5)
    refused = asyncio.ensure_future(
        peer_service._exchange(
            harness.repl, CheckMaster(src="n2", dst="n9", epoch=1), CheckMasterReply
        )
    )
    await asyncio.sleep(0)  # stepped (and refused) first
    answered = await peer_service._exchange(
        harness.repl, CheckMaster(src="n2", dst="n1", epoch=1), CheckMasterReply
    )
    assert answered.src == "n1" and answered.dst == "n2"
    with pytest.raises(TimeoutError):
        await refused
    assert harness.fatal == []


async def test_a_duplicated_or_stray_reply_is_dropped_and_counted() -> None:
    replies = Replies("n1", step=lambda msg: None)
    first = replies.open(CheckMaster(src="n2", dst="n1", epoch=1), CheckMasterReply)
    second = replies.open(CheckMaster(src="n2", dst="n1", epoch=1), CheckMasterReply)
    reply = CheckMasterReply(
        src="n1",
        dst="n2",
        epoch=1,
        role=Role.MASTER,
        master="n1",
        last=Pos(1, 1),
        eligible=True,
        membership=Membership(),
    )
    assert replies.claim(reply) is None  # produced outside any request's step
    with replies.stepping(second):
        ack = UpdateAck(src="n1", dst="n2", epoch=1, version=(1, 0), ok=True)
        assert replies.claim(ack) is None  # not the type it awaits
        assert replies.claim(dataclasses.replace(reply, dst="n3")) is None  # nor to its sender
        assert replies.claim(reply) == second.id
        assert replies.claim(reply) is None  # a duplicate
    replies.complete(second.id, reply)
    replies.complete(second.id, dataclasses.replace(reply, epoch=2))  # again: dropped
    assert second.future.result() is reply
    assert not first.future.done()
    replies.close(first)  # its caller gave up: a late reply goes nowhere
    replies.complete(first.id, reply)
    assert not first.future.done()
    assert replies.unmatched == 6
