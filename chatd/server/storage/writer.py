"""The write path: group commit of log entries.

Callers submit entries and await their outcome. One task takes everything
pending as a batch, stamps it with the master's time and epoch, appends and
applies it in one transaction on the event loop, and makes it durable with
one commit in the database thread (one thread hop per batch). The replication
driver is told as soon as the batch is appended, so the slaves write it while
the master does; outcomes are handed back (and live deliveries published)
only when the batch is both durable here and reported committed, i.e. durable
on every in-sync node. `visible_message_id` is the newest message any reader
may see.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from chatd.proto import log_pb2
from chatd.server.errors import NotWritable, TooFewCopies, WriterClosed
from chatd.server.storage.rows import ReadReceipt
from chatd.server.storage.store import Applied, Store, StoredMessage, now_us

log = logging.getLogger(__name__)

MAX_BATCH = 1024
PACE_CAP_S = 0.005  # the longest a batch waits for a slower voter
CLOSE_TIMEOUT_S = 10.0


class Replication(Protocol):
    def writable_epoch(self) -> int | None:
        """The epoch to write at, or None when this node may not write."""

    def appended(self, epoch: int, last_index: int) -> None:
        """Entries up to last_index (at `epoch`) are durable locally."""

    def refusal(self) -> str:
        """Why the master takes no write now ("" if it does): too few copies."""


class Readers(Protocol):
    """The live readers of what is committed (the chat layer's hub): told of
    each new message, read receipt and of what ended, once it is durable
    and committed."""

    def publish(self, message: StoredMessage, to: list[str] | None = None) -> None: ...

    def receipt(self, receipt: ReadReceipt) -> None: ...

    def refresh_all(self) -> None: ...

    def end_sessions(self, session_hashes: list[bytes]) -> None: ...

    def end_user(self, username: str) -> None: ...


class GroupCommitWriter:
    def __init__(
        self,
        store: Store,
        hub: Readers,
        db_thread: ThreadPoolExecutor,
        replication: Replication,
        on_fatal: Callable[[BaseException], Awaitable[None]],
        store_lock: asyncio.Lock,
    ) -> None:
        self._store_lock = store_lock
        self.store = store
        self.hub = hub
        self._db_thread = db_thread
        self.replication = replication
        self._on_fatal = on_fatal
        self._pending: list[tuple[log_pb2.Entry, asyncio.Future[Applied]]] = []
        # (index, the caller's future or None for a slave's received entry, outcome)
        self._uncommitted: deque[tuple[int, asyncio.Future[Applied] | None, Applied]] = deque()
        self._committed_index = 0  # the replication's word: on every in-sync node
        self._unsynced_from: int | None = None  # first index of a commit in flight
        self._replicated = asyncio.Event()
        self._replicated.set()
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        # (log index, message id) of the last entry this node holds that was
        # not published here: from an earlier master when it starts writing
        # at an epoch, from its store when it starts, from a snapshot it
        # installed. Visible once committed (a stored entry may be an
        # uncommitted tail that a new master replaces), before anything
        # published after it. Until then a starting node shows nothing: it
        # cannot tell its committed prefix from its tail before a master's
        # commit reaches it (milliseconds after it joins or takes office).
        self.visible_message_id = 0
        self._epoch = 0
        self._inherited: tuple[int, int] | None = None
        if store.last_message_id:
            self._inherited = (store.last_index, store.last_message_id)
        # majority mode: the highest index on every voter still answering
        # (None in in-sync mode, where committed means exactly that)
        self._settled: int | None = None
        self._paced: asyncio.Future[None] | None = None
        self._appended_at = 0.0
        self._commit_took = 0.0
        self.batches = 0
        self.entries = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    def writable(self) -> bool:
        return not self._closed and self.replication.writable_epoch() is not None

    async def submit(self, entry: log_pb2.Entry) -> Applied:
        return await self.enqueue(entry)

    def enqueue(self, entry: log_pb2.Entry) -> asyncio.Future[Applied]:
        """Queues `entry` for the next batch; its outcome, once committed
        (or the refusal, at once: WriterClosed, NotWritable, TooFewCopies).
        A future, not a coroutine: a caller with many writes (a Connect
        stream) attaches a callback instead of keeping a task per write."""
        if self._closed:
            raise WriterClosed("the node is shutting down")
        if self.replication.writable_epoch() is None:
            raise NotWritable("this node is not the master")
        if why := self.replication.refusal():
            raise TooFewCopies(why)
        fut: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, fut))
        self._wake.set()
        return fut

    async def close(self) -> None:
        """Refuses new writes, finishes the pending ones, and stops."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), CLOSE_TIMEOUT_S)
            except TimeoutError:  # replication cannot finish: answer what is left
                self.abandon("the node is shutting down")
                await self._task

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            try:
                async with self._store_lock:
                    await self._commit(batch)
                # One batch in flight: the next one gathers while this one
                # replicates, so batches grow with the load (measured: with
                # batches pipelined they stayed at ~3 entries and throughput
                # was lower).
                await self._replicated.wait()
                await self._pace()
            except BaseException as exc:
                for _, fut in batch + self._pending:
                    if not fut.done():
                        fut.set_exception(WriterClosed("the store failed"))
                self._pending.clear()
                self._closed = True
                if isinstance(exc, asyncio.CancelledError):
                    raise
                log.critical("cannot commit to the store: %s", exc)
                await self._on_fatal(exc)
                return

    async def _pace(self) -> None:
        """Majority mode: once a majority has a batch, its writes are answered
        at once, but the next batch gathers until the slower voters have it
        too, for at most as long again as the commit took (capped). Measured:
        starting the next batch at the first voter's acknowledgement made
        batches smaller (8.3 against 10.4 entries) and throughput lower (0.93
        of in-sync mode) on a CPU-bound node; a voter that has gone slow or
        silent costs each batch that moment, never more."""
        settled = self._settled
        target = self.store.last_index
        if settled is None or settled >= target or self._closed:
            return
        loop = asyncio.get_running_loop()
        paced = self._paced = loop.create_future()
        timer = loop.call_later(min(self._commit_took, PACE_CAP_S), _release, paced)
        try:
            await paced
        finally:
            timer.cancel()
            self._paced = None

    def settled(self, index: int) -> None:
        """Majority mode: entries up to `index` are on every voter heard from
        lately."""
        self._settled = max(self._settled or 0, index)
        paced = self._paced
        if paced is not None and index >= self.store.last_index:
            _release(paced)

    async def _commit(self, batch: list[tuple[log_pb2.Entry, asyncio.Future[Applied]]]) -> None:
        store = self.store
        epoch = self.replication.writable_epoch()
        if epoch is None:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(NotWritable("this node is not the master"))
            return
        if epoch != self._epoch:
            self._epoch = epoch
            if store.last_message_id > self.visible_message_id:
                self._inherited = (store.last_index, store.last_message_id)
        stamp = max(now_us(), store.last_time_us)
        self._unsynced_from = store.last_index + 1
        done: list[tuple[asyncio.Future[Applied], Applied]] = []
        store.begin()
        for entry, fut in batch:
            entry.time_us = stamp
            data = entry.SerializeToString(deterministic=True)
            try:
                applied = store.append(entry, data, epoch)
            except Exception as exc:  # a bug in apply: refuse this entry only
                log.exception("entry refused by apply: %s", entry.WhichOneof("op"))
                if not fut.done():
                    fut.set_exception(exc)
                continue
            done.append((fut, applied))
        if done:
            # The slaves write the batch while this node does (measured: the
            # commit's thread hop no longer adds to every write's latency).
            # Nothing is answered before both are durable; should the local
            # commit fail, the node stops and the clients retry elsewhere.
            self._uncommitted.extend((applied.index, fut, applied) for fut, applied in done)
            self._replicated.clear()
            self._appended_at = asyncio.get_running_loop().time()
            self.replication.appended(epoch, store.last_index)
        try:
            await asyncio.get_running_loop().run_in_executor(self._db_thread, store.commit)
        finally:
            self._unsynced_from = None
        self.batches += 1
        self.entries += len(done)
        self._answer()

    def replicated(self, applied: list[Applied]) -> None:
        """Slave: entries received from the master are durable here; their
        messages reach this node's readers once the master's commit covers
        them (a slave's Committed), never before: an uncommitted entry may
        yet be replaced."""
        self._uncommitted.extend((a.index, None, a) for a in applied)
        self._answer()

    def replaced(self) -> None:
        """Slave: the store was replaced by a snapshot (a copy of the
        master's store, which may end in entries not yet committed): its
        messages become visible once the commit covers its last entry."""
        self._uncommitted.clear()
        store = self.store
        self.visible_message_id = min(self.visible_message_id, store.last_message_id)
        self._inherited = None
        if store.last_message_id > self.visible_message_id:
            self._inherited = (store.last_index, store.last_message_id)
        self._answer()

    def committed(self, index: int) -> None:
        """Entries up to `index` are on every in-sync node: answer their callers
        (once they are durable here too)."""
        self._committed_index = max(self._committed_index, index)
        self._answer()

    def _answer(self) -> None:
        index = self._committed_index
        if self._unsynced_from is not None:
            index = min(index, self._unsynced_from - 1)
        inherited = self._inherited
        if inherited is not None and index >= inherited[0]:
            # an earlier master's messages are committed: readers see them
            # before any newer one is published (measured: a subscriber got
            # a resent message's successor first and dropped the message,
            # whose id was lower, in 1 of about 8 failovers under 8 senders)
            self._inherited = None
            if inherited[1] > self.visible_message_id:
                self.visible_message_id = inherited[1]
                self.hub.refresh_all()
        waiting = self._uncommitted
        while waiting and waiting[0][0] <= index:
            _, fut, applied = waiting.popleft()
            self._publish(applied)
            if fut is not None and not fut.done():
                fut.set_result(applied)
        if not waiting:
            if not self._replicated.is_set():
                self._commit_took = asyncio.get_running_loop().time() - self._appended_at
            self._replicated.set()
            if (
                index >= self.store.last_index
                and self.store.last_message_id > self.visible_message_id
            ):
                # entries inherited from an earlier master are committed too:
                # their messages were never published, streams read them
                self.visible_message_id = self.store.last_message_id
                self.hub.refresh_all()

    def abandon(self, reason: str) -> None:
        """This node is no master now: its uncommitted writes are not
        acknowledged (they may still survive; clients retry by request id).
        Their entries, and those a slave received, stay queued for this
        node's readers, published in log order once a master's commit
        covers them (or dropped with a snapshot that replaces them): were
        they dropped here, a newer message published first would hide them
        from every stream for good (measured: 1 receiver in about 6 runs of
        the 8-sender failover test missed one message, its stream on a
        slave that became a candidate for a moment)."""
        kept: deque[tuple[int, asyncio.Future[Applied] | None, Applied]] = deque()
        for index, fut, applied in self._uncommitted:
            if fut is not None and not fut.done():
                fut.set_exception(NotWritable(reason))
            kept.append((index, None, applied))
        self._uncommitted = kept
        for _, fut in self._pending:
            if not fut.done():
                fut.set_exception(NotWritable(reason))
        self._pending.clear()
        self._replicated.set()

    def _publish(self, applied: Applied) -> None:
        if applied.new_message is not None:
            self.visible_message_id = max(self.visible_message_id, applied.new_message.id)
            self.hub.publish(applied.new_message, applied.room_recipients)
        if applied.receipt is not None:
            self.hub.receipt(applied.receipt)
        if applied.ended_sessions:
            self.hub.end_sessions(applied.ended_sessions)
        if applied.deleted_user is not None:
            self.hub.end_user(applied.deleted_user)


def _release(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
