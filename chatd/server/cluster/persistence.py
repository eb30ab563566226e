"""What the replication driver keeps in the store: the epoch and the
membership (node meta; the membership as JSON), the entries a slave
receives, the snapshots it installs (keeping the entries one drops in a
rollback file: chatd.server.storage.rollback), and the log's truncation.

Each method does its store work under the store lock, the slow part in
the database thread. The driver (replication) decides when, feeds the core
what came of it, and stops the node when one fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chatd.core import Core
from chatd.core.quorum import IN_SYNC
from chatd.core.types import Durable, Membership, Pos
from chatd.proto import log_pb2
from chatd.server.storage import rollback
from chatd.server.storage.backup import NODE_META
from chatd.server.storage.store import Applied, Store

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


class Persistence:
    """One node's store, as the replication driver writes it."""

    def __init__(
        self,
        node_id: str,
        store: Store,
        store_lock: asyncio.Lock,
        db_thread: ThreadPoolExecutor,
        data_dir: Path,
    ) -> None:
        self.node_id = node_id
        self.store = store
        self.store_lock = store_lock
        self._db_thread = db_thread
        self.data_dir = data_dir
        # the rollback files in the data dir and the entries they hold
        self.rolled_back = rollback.Tally.of(data_dir)

    def durable(self) -> Durable:
        s = self.store
        return Durable(
            epoch=int(s.get_meta("epoch", 0)),
            last=Pos(s.last_epoch, s.last_index),
            epochs=tuple(s.runs.pairs),
            membership=membership_from_json(s.get_meta("membership")),
            log_start=s.log_start(),
        )

    async def set_meta(self, key: str, value: object) -> None:
        async with self.store_lock:
            await asyncio.get_running_loop().run_in_executor(
                self._db_thread, self.store.set_meta, key, value
            )

    async def append(self, work: PersistBatch) -> list[Applied] | None:
        """Appends and applies received entries, durably; what they did,
        or None (logged, nothing written) if they do not continue the log."""
        store = self.store
        async with self.store_lock:
            if store.last_index + 1 != work.first:
                log.warning(
                    "node %s: received entries from %d but the log ends at %d",
                    self.node_id,
                    work.first,
                    store.last_index,
                )
                return None
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
        return applied

    async def install_snapshot(self, path: Path, pos: Pos, core: Core) -> None:
        """Replaces the store by the snapshot at `path`, ending at `pos`; what
        of this node's log it drops (`core.superseded_by`, a question) is kept first."""
        loop = asyncio.get_running_loop()
        async with self.store_lock:
            theirs, last = await loop.run_in_executor(self._db_thread, Store.log_of, path)
            dropped = core.superseded_by(Pos(0, last), tuple(theirs.pairs))
            if dropped:  # kept before anything of them goes
                await self._keep_rolled_back(dropped, core.commit, core.epoch)
            await loop.run_in_executor(
                self._db_thread, self.store.install_snapshot, path, NODE_META
            )
        log.info(
            "node %s installed a snapshot at index %d (epoch %d)",
            self.node_id,
            pos.index,
            pos.epoch,
        )

    async def _keep_rolled_back(
        self, dropped: list[tuple[int, int, int]], commit: int, epoch: int
    ) -> None:
        """Writes the entries a snapshot is about to drop to a rollback file
        (chatd.server.storage.rollback) and says so in one ERROR line."""
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

    async def truncate_log(self, keep: int, epoch: int) -> int:
        """Drops old entries (keeping `keep`); where the log now starts."""
        async with self.store_lock:
            start: int = await asyncio.get_running_loop().run_in_executor(
                self._db_thread, self.store.truncate_log, keep
            )
        log.info(
            "node %s epoch %d: log truncated, it now starts at index %d", self.node_id, epoch, start
        )
        return start
