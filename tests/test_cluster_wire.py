"""Bad cluster messages against a real 3-node cluster (`chatd serve`
processes): a caller holding the cluster secret sends what the wire's checks
(chatd/server/cluster/wire.py) refuse. Each call gets INVALID_ARGUMENT and one log
line on the node asked; nothing changes: the master stays, every node keeps
its epoch, writes go on, and a node restarted afterwards rejoins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from chatd.proto import cluster_pb2 as pb
from chatd.proto import cluster_pb2_grpc
from tests.cluster import Cluster, Load, check_no_loss
from tests.waiting import eventually_async

pytestmark = pytest.mark.timeout(300)

SECRET = "s3cret"
MD = (("x-chatd-secret", SECRET),)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = await asyncio.to_thread(Cluster.start, tmp_path, 3, "--cluster-secret", SECRET)
    try:
        yield c
    finally:
        c.stop_all()


async def acked_at_least(load: Load, n: int, timeout: float = 30.0) -> None:
    await eventually_async(
        lambda: len(load.acked), f"{n} acknowledged", until=lambda k: k >= n, timeout=timeout
    )


def epochs(c: Cluster) -> dict[str, object]:
    return {n: (s or {}).get("epoch") for n in c.nodes if (s := c.status(n)) is not None}


async def test_update_master_with_an_epoch_sqlite_cannot_hold_is_refused(
    cluster: Cluster,
) -> None:
    c = cluster
    load = Load(list(c.addresses.values()))
    alice = await load.session("alice")
    await load.session("bob")
    writer = asyncio.create_task(load.writer(alice, "bob", "w"))
    await acked_at_least(load, 20)
    master = await asyncio.to_thread(c.master)
    assert master is not None
    before = await asyncio.to_thread(epochs, c)
    for bad in (2**64 - 1, 2**63, 2**63 - 1):  # (epochs stop at 2**62: room to count up)
        request = pb.NewMasterRequest(
            node_id="n2",
            epoch=bad,
            membership=pb.MembershipInfo(
                epoch=bad,
                members=[pb.ClusterMember(node_id=n, address=a) for n, a in c.peers.items()],
                in_sync=sorted(c.addresses),
            ),
            last=pb.LogPos(epoch=bad, index=bad),
        )
        for name, address in c.peers.items():
            async with grpc.aio.insecure_channel(address) as ch:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await cluster_pb2_grpc.SlaveServiceStub(ch).UpdateMaster(
                        request, metadata=MD, timeout=5
                    )
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert f"epoch {bad} is outside 0..2**62" in (info.value.details() or "")
    # nothing moved: the same master, the same epochs, and writes go on
    await acked_at_least(load, len(load.acked) + 50)
    assert await asyncio.to_thread(c.master) == master
    assert await asyncio.to_thread(epochs, c) == before
    for name, proc in c.nodes.items():
        log = proc.log()
        assert log.count("refused UpdateMaster from") == 3, (name, log[-3000:])
        assert "Traceback" not in log and "Value out of range" not in log, name
    # what each node persisted is sound: a slave restarted rejoins
    slave = next(n for n in c.nodes if n != master)
    c.kill(slave)
    c.restart(slave)
    await asyncio.to_thread(c.wait, lambda: c.in_sync_count() == 3, f"{slave} back in sync")
    await acked_at_least(load, len(load.acked) + 20)
    load.stop.set()
    await writer
    await asyncio.to_thread(c.converged)
    await check_no_loss(c.addresses[master], alice, "bob", load)
    assert await asyncio.to_thread(c.master) == master


async def test_a_snapshot_stream_without_an_accepted_offer_is_refused(cluster: Cluster) -> None:
    c = cluster
    master = await asyncio.to_thread(c.master)
    assert master is not None
    state = await asyncio.to_thread(c.converged)
    epoch = int(state["epoch"])  # type: ignore[call-overload]
    junk = pb.SnapshotChunk(data=b"junk" * 256, pos=pb.LogPos(epoch=epoch, index=10**6))
    junk.total_bytes = 4 * len(junk.data)  # promises more chunks
    streams = [
        # a node that is not the master this node follows
        (next(n for n in c.nodes if n != master), "intruder", epoch, "does not take"),
        # the master itself, at an epoch older than the cluster's
        (next(n for n in c.nodes if n != master), master, max(epoch - 1, 0), "does not take"),
        # a master never takes a snapshot
        (master, next(n for n in c.nodes if n != master), epoch + 1, "does not take"),
    ]
    for name, src, at, reason in streams:
        async with grpc.aio.insecure_channel(c.peers[name]) as ch:
            # one chunk: the node ends the call at the first, and a client
            # writing on after that sees its own INTERNAL error, not the status
            chunks = [pb.AcceptUpdatesRequest(node_id=src, epoch=at, snapshot=junk)]
            call = cluster_pb2_grpc.SlaveServiceStub(ch).AcceptUpdates(iter(chunks), metadata=MD)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in call:
                    pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert reason in (info.value.details() or ""), info.value.details()
        assert not (c.base / name / "snapshot-in.tmp").exists()
    # nothing changed: same master, same epoch, same data everywhere
    after = await asyncio.to_thread(c.converged)
    assert await asyncio.to_thread(c.master) == master
    assert (after["epoch"], after["applied_index"], after["digest"]) == (
        state["epoch"],
        state["applied_index"],
        state["digest"],
    )
    for name, proc in c.nodes.items():
        assert "Traceback" not in proc.log(), name
