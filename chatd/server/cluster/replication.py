"""The replication driver: runs the role core on the event loop.

It turns timers and cluster RPCs into core events, and carries out the core's
actions in order through one pump task: persist (epoch, membership, received
entries: `chatd.server.cluster.persistence`) before anything that follows is
sent, or a reply handed to the request waiting for it
(`chatd.server.cluster.replies`). An action the pump cannot carry out stops
the node (the same fatal path as the writer's): what follows it may depend
on it, and a node that cannot persist must look crashed, not answer as if
it had. Outgoing log streams (one per slave, `SlaveService.AcceptUpdates`)
and unary cluster calls live in `chatd.server.cluster.peers`; this module
holds no gRPC servicer.

Everything else reads the core through `status()` and feeds it through the
methods below, never through its fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatd.core import Core, CoreError, Status
from chatd.core.quorum import IN_SYNC
from chatd.core.types import (
    Action,
    Append,
    AppendEntries,
    Committed,
    Durable,
    ElectionStalled,
    InSyncChanged,
    Message,
    PersistEpoch,
    PersistMembership,
    Pos,
    ResetLog,
    Role,
    RoleChanged,
    Send,
    SendSnapshot,
    Settled,
    Timing,
    received,
)
from chatd.server.cluster.persistence import PersistBatch, Persistence, membership_to_json
from chatd.server.cluster.ports import Streams, Transport
from chatd.server.cluster.replies import REPLY_TYPES, Replies, Reply
from chatd.server.storage.store import Store

if TYPE_CHECKING:
    from chatd.server.storage.writer import GroupCommitWriter

log = logging.getLogger(__name__)

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
        self.hub = hub
        self.timing = timing
        self.tick_seconds = tick_seconds
        self.data_dir = data_dir
        self._on_fatal = on_fatal
        self.writer: GroupCommitWriter | None = None  # given at start()
        self.peers: Transport
        self.core: Core
        self._work: deque[Work] = deque()
        self._pumping = False  # the pump is carrying out an action
        self._failed = False  # an action failed: nothing more is carried out
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.replies = Replies(node_id, self.step)
        self.on_role_change = on_role_change
        self.on_in_sync_change = on_in_sync_change
        self._telling: asyncio.Handle | None = None
        self.persistence = Persistence(node_id, store, store_lock, db_thread, data_dir)
        # the rollback files in the data dir and the entries they hold
        self.rolled_back = self.persistence.rolled_back

    # -- startup --

    def durable(self) -> Durable:
        return self.persistence.durable()

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
        self._seeds = seeds
        self._new_core(found=found, quorum=quorum)
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
        self._new_core(found=False)

    def _new_core(self, *, found: bool, quorum: str = IN_SYNC) -> None:
        """A core from what is durable (`quorum`: the founded cluster's mode)."""
        self.core = Core(
            self.node_id,
            self.address,
            self.durable(),
            self.timing,
            found=found,
            seeds=self._seeds,
            quorum=quorum,
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
            elif isinstance(action, Send) and isinstance(action.message, REPLY_TYPES):
                if (request_id := self.replies.claim(action.message)) is not None:
                    self._work.append(Reply(action.message, request_id))
            elif isinstance(action, Send) and self._idle():
                # nothing queued or under way before it: sent now, as the pump
                # would (measured, benchmarks/timeline.py: a master's batch
                # waited 1.03 ms median at concurrency 32 for its turn to be
                # written to the slaves, 0.69 ms with this)
                self.peers.send(action.message)
            else:
                self._work.append(action)
        self._wake.set()

    def _idle(self) -> bool:
        """Whether an action may be carried out at once, in order: nothing
        queued, none under way, the pump not stopped by a failure."""
        return not self._work and not self._pumping and not self._failed

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
            self._pumping = True
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
                self._failed = True
                await self._fail(f"failed to carry out {type(work).__name__}", exc)
                return
            finally:
                self._pumping = False

    async def _fail(self, what: str, exc: BaseException) -> None:
        """Stops the node: the same fatal path as a writer whose store failed."""
        log.critical("node %s %s: %s; stopping", self.node_id, what, exc, exc_info=exc)
        self._work.clear()
        await self._on_fatal(exc)

    async def _do(self, work: Work) -> None:
        if isinstance(work, Reply):
            self.replies.complete(work.request_id, work.message)
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
            await self.persistence.set_meta("epoch", work.epoch)
        elif isinstance(work, PersistMembership):
            await self.persistence.set_meta("membership", membership_to_json(work.membership))
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

    async def _persist_batch(self, work: PersistBatch) -> None:
        applied = await self.persistence.append(work)
        if applied is None:
            return
        if self.writer is not None:  # published to this node's readers once committed
            self.writer.replicated(applied)
        store = self.store
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
        try:
            await self.persistence.install_snapshot(path, pos, self.core)
        except Exception as exc:
            await self._fail("failed to install a snapshot", exc)
            raise
        if self.writer is not None:
            self.writer.replaced()
        runs = tuple(self.store.runs.pairs)
        self.feed(self.core.snapshot_installed, pos, runs, self.store.log_start())

    # -- log retention --

    async def truncate_log(self, keep: int) -> None:
        try:
            start = await self.persistence.truncate_log(keep, self.core.epoch)
        except Exception as exc:
            await self._fail("failed to truncate the log", exc)
            return
        self.feed(self.core.log_truncated, start)
