"""Multi-process cluster tests: real `chatd serve` processes killed with
SIGKILL (and paused with SIGSTOP). After each, every acknowledged message is
stored exactly once, all nodes agree (applied index and digest from `chatd
status`), and sessions still work."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from chatd.proto import chat_pb2, chat_pb2_grpc
from tests.cluster import Cluster, Load, check_no_loss
from tests.waiting import eventually_async

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = await asyncio.to_thread(Cluster.start, tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


async def acked_at_least(load: Load, n: int, timeout: float = 30.0) -> None:
    await eventually_async(
        lambda: len(load.acked), f"{n} acknowledged", until=lambda k: k >= n, timeout=timeout
    )


async def run_load(c: Cluster, writers: int = 4) -> tuple[Load, str, list[asyncio.Task[None]]]:
    load = Load(list(c.addresses.values()))
    alice = await load.session("alice")
    await load.session("bob")
    tasks = [asyncio.create_task(load.writer(alice, "bob", f"w{i}")) for i in range(writers)]
    return load, alice, tasks


async def finish(c: Cluster, load: Load, alice: str, tasks: list[asyncio.Task[None]]) -> None:
    load.stop.set()
    await asyncio.gather(*tasks)
    await asyncio.to_thread(c.converged)
    master = await asyncio.to_thread(c.master)
    assert master is not None
    await check_no_loss(c.addresses[master], alice, "bob", load)


async def test_kill_the_master_under_load(cluster: Cluster) -> None:
    c = cluster
    load, alice, tasks = await run_load(c)
    await acked_at_least(load, 50)
    old = await asyncio.to_thread(c.master)
    assert old is not None
    c.kill(old)
    await acked_at_least(load, len(load.acked) + 50)
    new = await asyncio.to_thread(c.master)
    assert new not in (None, old)
    await finish(c, load, alice, tasks)
    # the old master, restarted with its own command line, rejoins as a slave
    c.restart(old)
    await asyncio.to_thread(c.converged)
    assert (await asyncio.to_thread(c.status, old))["role"] == "slave"  # type: ignore[index]
    await check_no_loss(c.addresses[new], alice, "bob", load)


async def test_a_killed_master_is_replaced_before_its_silence_times_out(
    tmp_path: Path,
) -> None:
    """A killed process's connections close at once: its slaves see the log
    stream end, find the master unreachable, and elect without waiting out
    the failover timeout (10 s here; the new master comes in well under)."""
    c = await asyncio.to_thread(Cluster.start, tmp_path, 3, "--failover-timeout", "10s")
    try:
        load, alice, tasks = await run_load(c)
        await acked_at_least(load, 30)
        old = await asyncio.to_thread(c.master)
        assert old is not None
        c.kill(old)
        await asyncio.to_thread(
            c.wait,
            lambda: any((c.status(n) or {}).get("role") == "master" for n in c.alive()),
            "a new master before the failover timeout",
            5.0,
        )
        await acked_at_least(load, len(load.acked) + 30, timeout=5.0)
        await finish(c, load, alice, tasks)
    finally:
        c.stop_all()


async def test_kill_both_slaves_and_keep_writing(cluster: Cluster) -> None:
    c = cluster
    load, alice, tasks = await run_load(c)
    await acked_at_least(load, 30)
    master = await asyncio.to_thread(c.master)
    slaves = [n for n in c.nodes if n != master]
    for s in slaves:
        c.kill(s)
    await acked_at_least(load, len(load.acked) + 50)  # the master alone acknowledges
    await finish(c, load, alice, tasks)
    for s in slaves:
        c.restart(s)
    await asyncio.to_thread(c.converged)
    assert await asyncio.to_thread(c.master) == master
    await check_no_loss(c.addresses[master], alice, "bob", load)  # type: ignore[index]


async def test_kill_master_then_new_master_leaves_one_node(cluster: Cluster) -> None:
    c = cluster
    load, alice, tasks = await run_load(c)
    await acked_at_least(load, 30)
    first = await asyncio.to_thread(c.master)
    c.kill(first)  # type: ignore[arg-type]
    await acked_at_least(load, len(load.acked) + 30)
    second = await asyncio.to_thread(c.master)
    assert second not in (None, first)
    c.kill(second)
    await acked_at_least(load, len(load.acked) + 30)
    (last,) = c.alive()
    assert await asyncio.to_thread(c.master) == last
    await finish(c, load, alice, tasks)
    for n in (first, second):
        c.restart(n)  # type: ignore[arg-type]
    await asyncio.to_thread(c.converged)
    await check_no_loss(c.addresses[last], alice, "bob", load)


async def test_full_cluster_restart_keeps_everything(cluster: Cluster) -> None:
    c = cluster
    load, alice, tasks = await run_load(c)
    await acked_at_least(load, 100)
    load.stop.set()
    await asyncio.gather(*tasks)
    for n in list(c.nodes):
        c.kill(n)
    for n in c.nodes:
        c.restart(n)
    await asyncio.to_thread(c.converged)
    master = await asyncio.to_thread(c.master)
    # the old session still works on the new master
    await check_no_loss(c.addresses[master], alice, "bob", load)  # type: ignore[index]
    more, _, extra = await run_load(c, writers=1)
    await acked_at_least(more, 10)
    await finish(c, more, alice, extra)


async def test_catch_up_from_the_log(cluster: Cluster) -> None:
    c = cluster
    c.kill("n3")
    load, alice, tasks = await run_load(c)
    await acked_at_least(load, 300)
    c.restart("n3")
    await finish(c, load, alice, tasks)
    assert "snapshot" not in c.nodes["n3"].log()


async def test_catch_up_from_a_snapshot_when_the_log_is_truncated(tmp_path: Path) -> None:
    c = await asyncio.to_thread(Cluster.start, tmp_path, 3, "--log-retention", "100")
    try:
        c.kill("n3")
        load, alice, tasks = await run_load(c)
        await acked_at_least(load, 400)
        load.stop.set()
        await asyncio.gather(*tasks)
        master = await asyncio.to_thread(c.master)
        log = c.nodes[master].log  # type: ignore[index]
        await asyncio.to_thread(
            c.wait, lambda: "log truncated" in log(), "the master to truncate its log"
        )
        c.restart("n3")
        await asyncio.to_thread(c.converged)
        assert "installed a snapshot" in c.nodes["n3"].log()
        assert "sending a snapshot" in log()
        await check_no_loss(c.addresses["n3"], alice, "bob", load)
    finally:
        c.stop_all()


async def test_paused_master_steps_down_and_rejoins(cluster: Cluster) -> None:
    c = cluster
    load, alice, tasks = await run_load(c)
    await acked_at_least(load, 30)
    old = await asyncio.to_thread(c.master)
    assert old is not None
    c.nodes[old].kill(signal.SIGSTOP)
    try:
        await asyncio.to_thread(
            c.wait,
            lambda: any((c.status(n) or {}).get("role") == "master" for n in c.nodes if n != old),
            "a new master",
        )
        await acked_at_least(load, len(load.acked) + 30)
    finally:
        c.nodes[old].kill(signal.SIGCONT)
    await asyncio.to_thread(c.wait_role, old, "slave")
    await finish(c, load, alice, tasks)


async def test_cluster_secret_and_removing_a_member(tmp_path: Path) -> None:
    c = await asyncio.to_thread(Cluster.start, tmp_path, 3, "--cluster-secret", "s3cret")
    try:
        address = c.addresses["n2"]
        async with (
            grpc.aio.insecure_channel(c.peers["n2"]) as ch,
            grpc.aio.insecure_channel(address) as clients,
        ):
            for method in (
                "/MasterService/RegisterSlave",
                "/MasterService/HeartBeat",
                "/MasterService/CheckMaster",
                "/MasterService/ReportDigest",
                "/SlaveService/UpdateMaster",
                "/SlaveService/UpdateSlaves",
                "/NodeAdmin/Status",
                "/ClientAccount/ListUsers",  # on the peer listener, relays only
            ):
                call = ch.unary_unary(method)  # type: ignore[call-arg]
                for meta in ((), (("x-chatd-secret", "wrong"),)):
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await call(b"\xff\xff not a message", metadata=meta, timeout=5)
                    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, method
                # the client listener serves no replication at all, and
                # NodeAdmin only with the secret
                expected = {
                    "/NodeAdmin/Status": grpc.StatusCode.UNAUTHENTICATED,
                    "/ClientAccount/ListUsers": None,
                }.get(method, grpc.StatusCode.UNIMPLEMENTED)
                if expected is not None:
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await clients.unary_unary(method)(b"", timeout=5)  # type: ignore[call-arg]
                    assert info.value.code() == expected, method
            # health checks alone need no secret, on the peer listener too
            # (serve --help says so; tests/test_operator_cli.py asks through chatd health)
            check = ch.unary_unary("/grpc.health.v1.Health/Check")  # type: ignore[call-arg]
            # answered (SERVING, or NOT_SERVING while n2 catches up), not refused
            assert await check(b"", timeout=5) in (b"\x08\x01", b"\x08\x02")
            stream = ch.stream_stream("/SlaveService/AcceptUpdates")(metadata=())  # type: ignore[call-arg]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stream.read()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # the client API needs no secret
        load, alice, tasks = await run_load(c, writers=1)
        await acked_at_least(load, 10)
        # retire n3 for good, asking a node that is not necessarily the master
        out = await asyncio.to_thread(c.cli, "members", "remove", "n3", "--server", address)
        assert out.returncode == 0, out.stderr
        await asyncio.to_thread(
            c.wait, lambda: "n3" not in str(c.cli_status("n2")["members"]), "n3 to be removed"
        )
        # n3, still running, knows it is out; restarted with its unchanged
        # command line it stays out (it does not join again)
        await asyncio.to_thread(c.wait_role, "n3", "retired")
        c.kill("n3")
        c.restart("n3")
        await asyncio.to_thread(c.wait_role, "n3", "retired")
        health = await asyncio.to_thread(c.cli, "health", "--server", c.addresses["n3"])
        assert health.returncode != 0 and "NOT_SERVING" in health.stdout + health.stderr
        async with grpc.aio.insecure_channel(c.addresses["n3"]) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await chat_pb2_grpc.ClientAccountStub(ch).ListUsers(chat_pb2.Empty(), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        await acked_at_least(load, len(load.acked) + 20)  # no wait for the retired node
        assert "n3" not in str(c.cli_status(c.master() or "n1")["members"])
        c.kill("n3")
        await finish(c, load, alice, tasks)
        bad = await asyncio.to_thread(c.cli, "members", "remove", "nobody", "--server", address)
        assert bad.returncode == 1 and "not a member" in bad.stderr
    finally:
        c.stop_all()


def test_free_ports_are_never_handed_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel may give the same free port to two calls in a row (a cluster
    once got one client port for two nodes): free_port never repeats one."""
    import socket

    from chatd.tools import localcluster

    given = iter([40001, 40001, 40001, 40002])

    class Fixed(socket.socket):
        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", next(given))

    monkeypatch.setattr(socket, "socket", Fixed)
    monkeypatch.setattr(localcluster, "_HANDED_OUT", set())
    assert [localcluster.free_port(), localcluster.free_port()] == [40001, 40002]


def test_a_cluster_that_fails_to_start_leaves_no_node_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cluster.start that times out (here: every node handed the same client
    port, so n2 cannot start) stops the nodes it started: the caller never
    got the cluster to stop, and a node left behind outlived the test run."""
    from chatd.tools import localcluster

    port = localcluster.free_port()
    peer_ports = iter([localcluster.free_port() for _ in range(4)])
    calls = iter(range(100))

    def same_client_port() -> int:
        return port if next(calls) % 2 == 0 else next(peer_ports)

    monkeypatch.setattr(localcluster, "free_port", same_client_port)
    started: list[localcluster.NodeProcess] = []
    real_add = localcluster.Cluster.add

    def add(self: localcluster.Cluster, name: str, *extra: str, join: str | None = None) -> Any:
        proc = real_add(self, name, *extra, join=join)
        started.append(proc)
        return proc

    monkeypatch.setattr(localcluster.Cluster, "add", add)
    monkeypatch.setattr(localcluster.Cluster, "wait", _short_wait(localcluster.Cluster.wait))
    with pytest.raises(AssertionError, match="in sync"):
        localcluster.Cluster.start(tmp_path, 2)
    assert len(started) == 2
    for proc in started:
        assert proc.proc is not None
        proc.proc.wait(timeout=10)  # (stopped: wait returns)


def _short_wait(wait: Any) -> Any:
    def short(self: Any, pred: object, what: str, timeout: float = 20.0) -> None:
        wait(self, pred, what, min(timeout, 3.0) if "in sync" in what else timeout)

    return short
