"""The replication driver: runs the role core on the event loop.

It turns timers and cluster RPCs into core events, and carries out the core's
actions in order through one pump task: persist (epoch, membership, received
entries) before anything that follows is sent. An action the pump cannot
carry out stops the node (the same fatal path as the writer's): what follows
it may depend on it, and a node that cannot persist must look crashed, not
answer as if it had. Outgoing log streams (one per slave,
`SlaveService.AcceptUpdates`) and unary cluster calls live in
`chatd.server.cluster.peers`; this module holds no gRPC servicer.

Everything else reads the core through `status()` and feeds it through the
methods below, never through its fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatd.core import Core, CoreError, Status
from chatd.core.quorum import IN_SYNC
from chatd.core.types import (
    Action,
    Append,
    AppendEntries,
    CheckMasterReply,
    Committed,
    Durable,
    ElectionStalled,
    InSyncChanged,
    Membership,
    Message,
    PersistEpoch,
    PersistMembership,
    Pos,
    RegisterReply,
    ResetLog,
    Role,
    RoleChanged,
    Send,
    SendSnapshot,
    Settled,
    Timing,
    UpdateAck,
    received,
)
from chatd.proto import log_pb2
from chatd.server.cluster.ports import Streams, Transport
from chatd.server.storage import rollback
from chatd.server.storage.backup import NODE_META
from chatd.server.storage.store import Store

if TYPE_CHECKING:
    from chatd.server.storage.writer import GroupCommitWriter

log = logging.getLogger(__name__)


def membership_to_json(m: Membership) -> str:
    return json.dumps(
        {
            "epoch": m.epoch,
            "seq": m.seq,
            "members": m.members,
            "in_sync": sorted(m.in_sync),
            "retired": sorted(m.retired),
            "quorum": m.quorum,
        }
    )


def membership_from_json(text: str | None) -> Membership:
    if not text:
        return Membership()
    d = json.loads(text)
    return Membership(
        epoch=int(d["epoch"]),
        seq=int(d["seq"]),
        members=tuple((str(a), str(b)) for a, b in d["members"]),
        in_sync=frozenset(d["in_sync"]),
        retired=frozenset(d.get("retired", ())),
        quorum=str(d.get("quorum", IN_SYNC)),  # (older files: in-sync, all there was)
    )


@dataclass(frozen=True, slots=True)
class PersistBatch:
    """A slave's received entries, with their bytes, to append and apply."""

    first: int
    epoch: int
    entries: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """Hands a core reply to the cluster RPC that waits for it."""

    message: Message
    future: asyncio.Future[Message]


Work = Action | PersistBatch | Reply


class Replicator:
    """One node's core, its pump, and the glue to the store and the writer."""

    def __init__(
        self,
        node_id: str,
        store: Store,
        store_lock: asyncio.Lock,
        db_thread: ThreadPoolExecutor,
        hub: Streams,
        timing: Timing,
        tick_seconds: float,
        data_dir: Path,
        on_fatal: Callable[[BaseException], Awaitable[None]],
        on_role_change: Callable[[RoleChanged], None] = lambda change: None,
        on_in_sync_change: Callable[[InSyncChanged], None] = lambda change: None,
        *,
        min_in_sync: int = 1,
    ) -> None:
        self.node_id = node_id
        self.min_in_sync = min_in_sync
        self.address = ""  # given at start(), once the server listens
        self.store = store
        self.store_lock = store_lock
        self._db_thread = db_thread
        self.hub = hub
        self.timing = timing
        self.tick_seconds = tick_seconds
        self.data_dir = data_dir
        self._on_fatal = on_fatal
        self.writer: GroupCommitWriter | None = None  # given at start()
        self.peers: Transport
        self.core: Core
        self._work: deque[Work] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting_replies: dict[tuple[type, str], deque[asyncio.Future[Message]]] = {}
        self.on_role_change = on_role_change
        self.on_in_sync_change = on_in_sync_change
        self._telling: asyncio.Handle | None = None
        # the rollback files in the data dir and the entries they hold
        self.rolled_back = rollback.Tally.of(data_dir)

    # -- startup --

    def durable(self) -> Durable:
        s = self.store
        return Durable(
            epoch=int(s.get_meta("epoch", 0)),
            last=Pos(s.last_epoch, s.last_index),
            epochs=tuple(s.runs.pairs),
            membership=membership_from_json(s.get_meta("membership")),
            log_start=s.log_start(),
        )

    def start(
        self,
        *,
        peers: Transport,
        writer: GroupCommitWriter,
        address: str,
        found: bool,
        seeds: tuple[str, ...],
        quorum: str = IN_SYNC,
    ) -> None:
        self.peers = peers
        self.writer = writer
        self.address = address
        self.core = Core(
            self.node_id,
            self.address,
            self.durable(),
            self.timing,
            found=found,
            seeds=seeds,
            quorum=quorum,
            min_in_sync=self.min_in_sync,
        )
        self._seeds = seeds
        self._collect()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._pump(), name="replication-pump"))
        self._tasks.append(loop.create_task(self._ticker(), name="replication-tick"))

    async def stop(self) -> None:
        if self._telling is not None:
            self._telling.cancel()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def _tell_commit(self) -> None:
        self._telling = None
        self.feed(self.core.tell_commit)

    def _restart_core(self, reason: str) -> None:
        """Rebuilds the core from what is durable, as after a crash."""
        log.warning("node %s restarts its role core: %s", self.node_id, reason)
        self.core = Core(
            self.node_id,
            self.address,
            self.durable(),
            self.timing,
            found=False,
            seeds=self._seeds,
            min_in_sync=self.min_in_sync,
        )
        self._collect()

    # -- the writer's side --

    def writable_epoch(self) -> int | None:
        c = self.core
        return c.epoch if c.role is Role.MASTER else None

    def refusal(self) -> str:
        return self.core.refusal()

    def appended(self, epoch: int, last_index: int) -> None:
        c = self.core
        if c.role is not Role.MASTER or c.epoch != epoch:
            if self.writer is not None:
                self.writer.abandon("the master stepped down")
            self._restart_core(f"wrote at epoch {epoch} after stepping down")
            return
        self.feed(c.local_appended, Pos(epoch, last_index))

    def remove_member(self, node_id: str) -> bool:
        ok = self.core.remove_member(node_id)
        self._collect()
        return ok

    # -- reading the core --

    def status(self) -> Status:
        return self.core.status()

    @property
    def epoch(self) -> int:
        return self.core.epoch

    def route(self) -> tuple[Role, str]:
        """(role, the master's address or ""): where a client call goes. Read
        on every client call, so without building a whole `status()`."""
        c = self.core
        return c.role, c.membership.addresses.get(c.master, "")

    def address_of(self, node: str) -> str | None:
        return self.core.membership.addresses.get(node)

    def accepts_snapshot(self, src: str, epoch: int) -> bool:
        return self.core.snapshot_offered(src, epoch)

    # -- feeding the core --

    def step(self, msg: Message, payload: tuple[bytes, ...] = ()) -> None:
        self.feed(self.core.step, msg, payload=payload)

    def report_unreachable(self, peer: str) -> None:
        self.feed(self.core.report_unreachable, peer)

    def stream_lost(self, src: str) -> None:
        self.feed(self.core.stream_lost, src)

    def snapshot_sent(self, dst: str, pos: Pos | None) -> None:
        self.feed(self.core.snapshot_sent, dst, pos)

    def feed(self, fn: Callable[..., None], *args: Any, payload: tuple[bytes, ...] = ()) -> None:
        """Calls one core event method and queues the actions it produced."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s <- %s%r", self.node_id, getattr(fn, "__name__", fn), args)
        try:
            fn(*args)
        except CoreError as exc:
            log.error("node %s: %s", self.node_id, exc)
            self._restart_core(str(exc))
            return
        self._collect(payload, args[0] if args else None)

    def _collect(self, payload: tuple[bytes, ...] = (), msg: Any = None) -> None:
        for action in self.core.take_actions():
            if isinstance(action, AppendEntries):
                assert isinstance(msg, Append), "entries come with an Append"
                data = received(action, msg, payload)
                self._work.append(PersistBatch(action.prev.index + 1, action.entry_epoch, data))
            elif isinstance(action, Send) and isinstance(
                action.message, CheckMasterReply | RegisterReply | UpdateAck
            ):
                waiters = self._waiting_replies.get((type(action.message), action.message.dst))
                if waiters:
                    self._work.append(Reply(action.message, waiters.popleft()))
            else:
                self._work.append(action)
        self._wake.set()

    def expect_reply(self, kind: type, src: str) -> asyncio.Future[Message]:
        """A cluster RPC handler registers before stepping its request in."""
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting_replies.setdefault((kind, src), deque()).append(fut)
        return fut

    def forget_reply(self, kind: type, src: str, fut: asyncio.Future[Message]) -> None:
        waiters = self._waiting_replies.get((kind, src))
        if waiters and fut in waiters:
            waiters.remove(fut)

    # -- the pump: actions in order --

    @property
    def rpc_timeout(self) -> float:
        """How long a call to another node may take before it counts as failed."""
        return max(0.2, self.tick_seconds * self.timing.election)

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        # A freeze must be noticed whenever the other nodes could have
        # elected meanwhile: after a closed stream that takes one failed
        # call and an election round, so well over one call's timeout
        frozen_after = min(self.tick_seconds * self.timing.failover, self.rpc_timeout)
        last = loop.time()
        while True:
            await asyncio.sleep(self.tick_seconds)
            now = loop.time()
            if now - last > frozen_after:
                # the process was frozen (SIGSTOP, a VM pause, a long stall):
                # what it knew of the in-sync set may be stale
                log.warning(
                    "node %s was frozen for %.1f s; it confirms the in-sync set again",
                    self.node_id,
                    now - last,
                )
                self.feed(self.core.suspect)
            last = now
            self.feed(self.core.tick)

    async def _pump(self) -> None:
        while True:
            if not self._work:
                self._wake.clear()
                await self._wake.wait()
                continue
            work = self._work.popleft()
            try:
                if isinstance(work, Send):  # the common case, without a coroutine
                    self.peers.send(work.message)
                else:
                    await self._do(work)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # nothing queued after it may run: a send must never follow
                # a persistence that failed
                await self._fail(f"failed to carry out {type(work).__name__}", exc)
                return

    async def _fail(self, what: str, exc: BaseException) -> None:
        """Stops the node: the same fatal path as a writer whose store failed."""
        log.critical("node %s %s: %s; stopping", self.node_id, what, exc, exc_info=exc)
        self._work.clear()
        await self._on_fatal(exc)

    async def _do(self, work: Work) -> None:
        if isinstance(work, Reply):
            if not work.future.done():
                work.future.set_result(work.message)
        elif isinstance(work, PersistBatch):
            await self._persist_batch(work)
        elif isinstance(work, Committed):
            if self.writer is not None:
                self.writer.committed(work.index)
            if self.core.role is Role.MASTER and self._telling is None:
                # followers deliver what is committed to their own readers:
                # a master tells the idle ones at once, after the writer had
                # its turn (woken by this commit, its next batch carries the
                # commit to the followers under load, and nothing is told)
                self._telling = asyncio.get_running_loop().call_soon(self._tell_commit)
        elif isinstance(work, Settled):
            if self.writer is not None:
                self.writer.settled(work.index)
        elif isinstance(work, PersistEpoch):
            await self._set_meta("epoch", work.epoch)
        elif isinstance(work, PersistMembership):
            await self._set_meta("membership", membership_to_json(work.membership))
        elif isinstance(work, SendSnapshot):
            self.peers.send_snapshot(work.dst)
        elif isinstance(work, RoleChanged):
            self._role_changed(work)
        elif isinstance(work, InSyncChanged):
            log.log(
                logging.WARNING if work.left else logging.INFO,
                "node %s epoch %d: in-sync set is now %s (%s)",
                self.node_id,
                self.core.epoch,
                sorted(work.in_sync),
                work.reason,
            )
            self.on_in_sync_change(work)
            if self.core.role is Role.MASTER and self._telling is None:
                # the nodes it took in learn so at once (Core.tell_commit)
                self._telling = asyncio.get_running_loop().call_soon(self._tell_commit)
        elif isinstance(work, ElectionStalled):
            if not self.core.membership.in_sync:  # it never joined: it looks via its seeds
                failed = self.peers.seed_failures()
                log.warning(
                    "node %s has not joined a cluster yet: looking for the master via its "
                    "seeds %s; %s",
                    self.node_id,
                    ", ".join(self._seeds) or "(none: give --join)",
                    "; ".join(failed) if failed else work.reason,
                )
            else:
                log.warning(
                    "node %s epoch %d: no master can be elected: %s",
                    self.node_id,
                    self.core.epoch,
                    work.reason,
                )
        elif isinstance(work, ResetLog):
            log.warning(
                "node %s: log diverged from the master's at epoch %d; waiting for a snapshot",
                self.node_id,
                self.core.epoch,
            )

    async def _set_meta(self, key: str, value: object) -> None:
        async with self.store_lock:
            await asyncio.get_running_loop().run_in_executor(
                self._db_thread, self.store.set_meta, key, value
            )

    async def _persist_batch(self, work: PersistBatch) -> None:
        store = self.store
        async with self.store_lock:
            if store.last_index + 1 != work.first:
                log.warning(
                    "node %s: received entries from %d but the log ends at %d",
                    self.node_id,
                    work.first,
                    store.last_index,
                )
                return
            store.begin()
            try:
                applied = [
                    store.append(log_pb2.Entry.FromString(data), data, work.epoch)
                    for data in work.entries
                ]
            except Exception:
                store.rollback()
                raise
            await asyncio.get_running_loop().run_in_executor(self._db_thread, store.commit)
        if self.writer is not None:  # published to this node's readers once committed
            self.writer.replicated(applied)
        self.feed(self.core.persisted, Pos(store.last_epoch, store.last_index))

    def _role_changed(self, change: RoleChanged) -> None:
        log.info(
            "node %s became %s at epoch %d%s: %s",
            self.node_id,
            change.role.value,
            change.epoch,
            f" (master {change.master})" if change.master and change.role is Role.SLAVE else "",
            change.reason,
        )
        if change.role is not Role.MASTER:
            if self.writer is not None:
                self.writer.abandon(f"no longer master: {change.reason}")
            self.peers.close_links()
            self.hub.end_all("the master changed")
        self.on_role_change(change)

    # -- snapshots, slave side --

    async def install_snapshot(self, path: Path, pos: Pos) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with self.store_lock:
                theirs, last = await loop.run_in_executor(self._db_thread, Store.log_of, path)
                dropped = self.core.superseded_by(Pos(0, last), tuple(theirs.pairs))
                if dropped:  # kept before anything of them goes
                    await self._keep_rolled_back(dropped)
                await loop.run_in_executor(
                    self._db_thread, self.store.install_snapshot, path, NODE_META
                )
        except Exception as exc:
            await self._fail("failed to install a snapshot", exc)
            raise
        if self.writer is not None:
            self.writer.replaced()
        log.info(
            "node %s installed a snapshot at index %d (epoch %d)",
            self.node_id,
            pos.index,
            pos.epoch,
        )
        runs = tuple(self.store.runs.pairs)
        self.feed(self.core.snapshot_installed, pos, runs, self.store.log_start())

    async def _keep_rolled_back(self, dropped: list[tuple[int, int, int]]) -> None:
        """Writes the entries a snapshot is about to drop to a rollback file
        (chatd.server.storage.rollback) and says so in one ERROR line."""
        commit, epoch = self.core.commit, self.core.epoch
        path, count, missing = await asyncio.get_running_loop().run_in_executor(
            self._db_thread, self._write_rollback, dropped, commit, epoch
        )
        self.rolled_back.add(count)
        stretches = ", ".join(f"{first}..{last} of epoch {e}" for e, first, last in dropped)
        log.error(
            "node %s epoch %d: another master's log replaces %d entries of this node's "
            "(%s; %s acknowledged as far as it knew); they are in %s%s. "
            "Resend the messages with: chatd rollback resend %s",
            self.node_id,
            epoch,
            count,
            stretches,
            sum(max(0, min(last, commit) - first + 1) for _, first, last in dropped),
            path,
            f" ({missing} more were no longer in its log)" if missing else "",
            path,
        )

    def _write_rollback(
        self, dropped: list[tuple[int, int, int]], commit: int, epoch: int
    ) -> tuple[Path, int, int]:
        """(file, entries written, entries no longer held). In the database thread."""
        records = []
        wanted = 0
        for e, first, last in dropped:
            wanted += last - first + 1
            for index, data in self.store.log_rows(first, last):
                entry = log_pb2.Entry.FromString(data)
                records.append(rollback.describe(entry, e, index, index <= commit))
        messages = [r for r in records if r["kind"] == rollback.MESSAGE]
        if messages:  # (their rows are the store's newest)
            rollback.identify(messages, self.store.newest_message_ids(len(messages)))
        path = rollback.write(self.data_dir, records, epoch, datetime.now(UTC))
        return path, len(records), wanted - len(records)

    # -- log retention --

    async def truncate_log(self, keep: int) -> None:
        try:
            async with self.store_lock:
                start = await asyncio.get_running_loop().run_in_executor(
                    self._db_thread, self.store.truncate_log, keep
                )
        except Exception as exc:
            await self._fail("failed to truncate the log", exc)
            return
        self.feed(self.core.log_truncated, start)
        log.info(
            "node %s epoch %d: log truncated, it now starts at index %d",
            self.node_id,
            self.core.epoch,
            start,
        )
