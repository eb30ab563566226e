"""The master's log stream to a slave (chatd/server/cluster/peers.py `Link`), against a real
gRPC server on 127.0.0.1 that keeps every stream open and never answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc

from chatd.core import Pos
from chatd.core.types import Append
from chatd.proto import cluster_pb2 as pb
from chatd.proto import cluster_pb2_grpc, log_pb2
from chatd.server.cluster.peers import Link, Peers
from chatd.server.storage.store import Store
from tests.waiting import eventually_async


class SilentSlave(cluster_pb2_grpc.SlaveServiceServicer):
    """Takes log streams and holds them open, as a live slave does (it
    serves nothing else, hence abstract to mypy)."""

    def __init__(self) -> None:
        self.opened = 0

    async def AcceptUpdates(self, request_iterator: Any, context: Any) -> Any:
        self.opened += 1
        async for _ in request_iterator:
            pass
        return
        yield


async def test_a_stream_whose_writing_fails_is_reopened(tmp_path: Path) -> None:
    """A batch the master cannot read back from its log (here: the store
    does not hold it) fails the stream's writer; the stream must then be
    closed and reopened, not left open with nothing written on it while the
    slave, still connected, waits for heartbeats that never come."""
    server = grpc.aio.server()
    slave = SilentSlave()  # type: ignore[abstract]
    cluster_pb2_grpc.add_SlaveServiceServicer_to_server(slave, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    store = Store(tmp_path / "master.db")
    fed: list[tuple[str, tuple[Any, ...]]] = []
    repl = SimpleNamespace(
        node_id="n1",
        store=store,
        tick_seconds=0.05,
        timing=SimpleNamespace(election=2),
        rpc_timeout=0.2,
        epoch=1,
        address_of=lambda node: None,
        step=lambda *args, **kw: fed.append(("step", args)),
        report_unreachable=lambda *args: fed.append(("report_unreachable", args)),
        snapshot_sent=lambda *args: fed.append(("snapshot_sent", args)),
    )
    peers = Peers(repl, None, tmp_path)
    peers.directory["n2"] = f"127.0.0.1:{port}"
    link = Link(peers, "n2")
    try:
        await eventually_async(
            lambda: slave.opened, "the stream open", until=lambda n: n >= 1, timeout=5
        )
        assert slave.opened == 1, "opened twice"
        link.put(
            Append(
                src="n1",
                dst="n2",
                epoch=1,
                prev=Pos(0, 0),
                count=1,
                entry_epoch=1,
                commit=0,
                in_sync=True,
                echo=0,
            )
        )
        await eventually_async(
            lambda: slave.opened,
            "the stream opened again after its writer failed",
            until=lambda n: n >= 2,
            timeout=5,
        )
    finally:
        link.close()
        await asyncio.gather(link.task, return_exceptions=True)
        await peers.close()
        await server.stop(None)
        store.close()


class RecordingSlave(cluster_pb2_grpc.SlaveServiceServicer):
    """Takes log streams and keeps every batch it is sent (it never answers)."""

    def __init__(self) -> None:
        self.batches: list[pb.AcceptUpdatesRequest] = []

    async def AcceptUpdates(self, request_iterator: Any, context: Any) -> Any:
        async for r in request_iterator:
            self.batches.append(r)
        return
        yield


async def test_a_batch_for_two_slaves_is_read_from_the_log_once(tmp_path: Path) -> None:
    """The master sends each slave the same batch: its entries are read (here
    from the log: they are no longer among the store's recent ones) and
    encoded once for both, and each slave gets all of them, in order."""
    servers, slaves, ports = [], [], []
    for _ in range(2):
        server = grpc.aio.server()
        slave = RecordingSlave()  # type: ignore[abstract]
        cluster_pb2_grpc.add_SlaveServiceServicer_to_server(slave, server)
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        servers.append(server)
        slaves.append(slave)
    store = Store(tmp_path / "master.db")
    entries = [
        log_pb2.Entry(create_account=log_pb2.CreateAccount(username=f"u{i}", password_hash="h"))
        for i in range(5)
    ]
    store.begin()
    data = [e.SerializeToString(deterministic=True) for e in entries]
    for e, d in zip(entries, data, strict=True):
        store.append(e, d, 1)
    store.commit()
    store.recent.clear()
    reads: list[tuple[int, int]] = []
    log_entries = store.log_entries

    def counted(first: int, last: int) -> list[bytes]:
        reads.append((first, last))
        return log_entries(first, last)

    store.log_entries = counted  # type: ignore[method-assign]
    repl = SimpleNamespace(
        node_id="n1",
        store=store,
        tick_seconds=0.05,
        timing=SimpleNamespace(election=2),
        rpc_timeout=0.2,
        epoch=1,
        address_of=lambda node: None,
        step=lambda *args, **kw: None,
        report_unreachable=lambda *args: None,
        snapshot_sent=lambda *args: None,
    )
    peers = Peers(repl, None, tmp_path)
    links = []
    for name, port in zip(("n2", "n3"), ports, strict=True):
        peers.directory[name] = f"127.0.0.1:{port}"
        links.append(Link(peers, name))
    try:
        for link in links:
            link.put(
                Append(
                    src="n1",
                    dst=link.dst,
                    epoch=1,
                    prev=Pos(0, 0),
                    count=5,
                    entry_epoch=1,
                    commit=0,
                    in_sync=True,
                    echo=0,
                )
            )
        for slave in slaves:
            await eventually_async(
                lambda: len(slave.batches),  # noqa: B023 (awaited in the loop)
                "the batch received",
                until=bool,
                timeout=5,
            )
            assert [list(r.batch.entries) for r in slave.batches] == [data]
        assert reads == [(1, 5)], "the batch was read once for both slaves"
    finally:
        for link in links:
            link.close()
        await asyncio.gather(*(link.task for link in links), return_exceptions=True)
        await peers.close()
        for server in servers:
            await server.stop(None)
        store.close()
