"""Operations: the gRPC health service, server reflection."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.cluster import Cluster
from tests.conftest import NodeProcess, free_port, wait_serving
from tests.waiting import eventually, eventually_async


def health_cli(address: str) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "-m", "chatd", "health", "--server", address],
        capture_output=True,
        text=True,
        timeout=20,
    )
    return out.returncode, out.stdout.strip()


def check(address: str, service: str = "") -> str:
    with grpc.insecure_channel(address) as ch:
        r = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))


def answers(address: str) -> bool:
    try:
        check(address)
    except grpc.RpcError:
        return False
    return True


def test_health_follows_the_role(tmp_path: Path) -> None:
    c = Cluster.start(tmp_path)
    try:
        for name in c.nodes:  # master and in-sync slaves serve (within a heartbeat or so)
            c.wait(lambda n=name: check(c.addresses[n]) == "SERVING", f"{name} serving", 5)
            assert check(c.addresses[name], "ClientAccount") == "SERVING"
        assert health_cli(c.addresses["n2"]) == (0, "SERVING")
        # a node that cannot find its master does not serve
        lonely = c.add("n4", join=f"127.0.0.1:{free_port()}")
        c.wait(lambda: answers(c.addresses["n4"]), "n4 to answer")
        assert check(c.addresses["n4"]) == "NOT_SERVING"
        assert health_cli(c.addresses["n4"]) == (1, "NOT_SERVING")
        lonely.kill()
        # slaves whose master is gone stop serving until a new one is elected
        master = c.master()
        assert master is not None
        c.kill(master)
        c.wait(lambda: c.master() not in (None, master), "a new master")
        for name in c.alive():
            c.wait(lambda n=name: check(c.addresses[n]) == "SERVING", f"{name} serving")
    finally:
        c.stop_all()


def reflected_services(address: str) -> list[str]:
    with grpc.insecure_channel(address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        return [s.name for r in responses for s in r.list_services_response.service]


def test_reflection_lists_the_services(spawn_node: Callable[..., NodeProcess]) -> None:
    node = spawn_node("n1")
    wait_serving(node.address)  # type: ignore[attr-defined]
    names = reflected_services(node.address)  # type: ignore[attr-defined]
    assert set(names) == {
        "ClientAccount",
        "NodeAdmin",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }  # clients are shown what they may call
    names = reflected_services(node.peer_address)  # type: ignore[attr-defined]
    for expected in ("ClientAccount", "MasterService", "SlaveService", "NodeAdmin"):
        assert expected in names
    quiet = spawn_node("n2", "--no-reflection")
    wait_serving(quiet.address)  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as info:
        reflected_services(quiet.address)  # type: ignore[attr-defined]
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_send_rate_and_stream_limits(tmp_path: Path) -> None:
    from chatd.proto import chat_pb2, chat_pb2_grpc
    from chatd.server.build import build
    from tests.conftest import login, node_config, user

    n = await build(node_config(tmp_path / "n", send_rate=5, send_burst=3, max_streams_per_user=2))
    await n.start()
    try:
        async with grpc.aio.insecure_channel(n.address) as ch:
            stub = chat_pb2_grpc.ClientAccountStub(ch)
            a = await user(stub, "alice")
            b = await user(stub, "bob")
            send = chat_pb2.SendRequest(to="bob", message="x", session_id=a)
            for _ in range(3):  # the burst
                assert (await stub.Send(send)).error_code == 0
            index = n.store.last_index
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Send(send)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert n.store.last_index == index  # refused: nothing changed
            # another user has a budget of their own; alice's other sessions
            # share hers; it refills with time
            other = chat_pb2.SendRequest(to="alice", message="y", session_id=b)
            assert (await stub.Send(other)).error_code == 0
            for _ in range(3):
                again = await login(stub, "alice")
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.Send(chat_pb2.SendRequest(to="bob", message="z", session_id=again))
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            await asyncio.sleep(0.3)  # (the budget refills with time: the time is the test)
            assert (await stub.Send(send)).error_code == 0
            streams = [stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b)) for _ in range(2)]
            for s in streams:
                await s.initial_metadata()
            third = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in third:
                    pass
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            for s in streams:
                s.cancel()
    finally:
        await n.stop()


def test_json_logs_carry_node_and_epoch(spawn_node: Callable[..., NodeProcess]) -> None:
    import json

    node = spawn_node("n1", "--log-format", "json", "--node-id", "logged")
    wait_serving(node.address)  # type: ignore[attr-defined]
    node.kill()
    lines = [json.loads(line) for line in node.log().splitlines() if line.startswith("{")]
    became = [d for d in lines if "became master" in d["message"]]
    assert became and became[0]["node"] == "logged" and became[0]["epoch"] == 1
    assert all({"ts", "level", "logger", "message"} <= set(d) for d in lines)
    # RFC 3339 with its zone: 2026-11-30T18:05:01.123+00:00
    from datetime import datetime

    assert all(datetime.fromisoformat(d["ts"]).utcoffset() is not None for d in lines)


def scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def metric(text: str, name: str) -> float:
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, f"{name} not exported"
    return total


def test_metrics(tmp_path: Path) -> None:
    from chatd.client import ChatClient
    from tests.conftest import PASSWORD

    ports = {n: free_port() for n in ("n1", "n2", "n3")}
    c = Cluster(tmp_path)
    c.add("n1", "--metrics-port", str(ports["n1"]))
    c.wait_role("n1", "master")
    for n in ("n2", "n3"):
        c.add(n, "--metrics-port", str(ports[n]), join=c.peers["n1"])
    try:
        c.wait(lambda: c.in_sync_count() == 3, "3 in sync")

        async def traffic() -> None:
            cl = ChatClient([c.addresses["n1"]])
            await cl.create_account("alice", PASSWORD)
            await cl.login("alice", PASSWORD)
            stream = cl.subscribe()
            first = asyncio.ensure_future(anext(stream))
            for i in range(5):
                await cl.send("alice", f"m{i}")
            await asyncio.wait_for(first, 5)
            await eventually_async(  # gauges are refreshed every heartbeat
                lambda: metric(scrape(ports["n1"]), "chatd_subscribers"),
                "chatd_subscribers 1",
                until=lambda v: v == 1,
                interval=0.05,
            )
            await stream.aclose()
            await cl.close()

        asyncio.run(traffic())
        text = scrape(ports["n1"])
        assert metric(text, 'chatd_requests_total{code="OK",error_code="0",rpc="Send"}') == 5
        assert metric(text, "chatd_send_latency_seconds_count") == 5
        # by Prometheus's conventions: counters end in _total, a latency
        # histogram per RPC, the standard process and GC series, build info
        assert metric(text, 'chatd_request_duration_seconds_count{rpc="Send"}') == 5
        assert metric(text, 'chatd_request_duration_seconds_count{rpc="Login"}') == 1
        # (brought up to date every heartbeat) account, session, 5 sends
        entries = "chatd_group_commit_entries_total"
        c.wait(lambda: metric(scrape(ports["n1"]), entries) >= 7, "7 entries counted", 5)
        text = scrape(ports["n1"])
        assert 1 <= metric(text, "chatd_group_commits_total") <= metric(text, entries)
        assert "# TYPE chatd_group_commits_total counter" in text  # (it was a gauge)
        assert metric(text, "process_cpu_seconds_total") > 0
        assert metric(text, "process_resident_memory_bytes") > 0
        assert 'python_gc_objects_collected_total{generation="0"}' in text
        from chatd import __version__

        assert f'chatd_build_info{{grpc="{grpc.__version__}",python="' in text
        assert f'version="{__version__}"}} 1.0' in text
        assert metric(text, 'chatd_role{role="master"}') == 1
        assert metric(text, "chatd_in_sync_size") == 3
        assert "chatd_replication_lag_entries{slave=" in text
        c.kill("n1")
        c.wait(lambda: c.master() in ("n2", "n3"), "a new master")
        new = c.master()
        assert new is not None
        c.wait(lambda: metric(scrape(ports[new]), "chatd_elections_won_total") == 1, "election")
        c.wait(lambda: metric(scrape(ports[new]), "chatd_in_sync_size") == 2, "in-sync 2")
    finally:
        c.stop_all()


def test_every_rpc_of_the_client_service_is_measured(
    spawn_node: Callable[..., NodeProcess],
) -> None:
    """Each RPC the protos declare for ClientAccount, called once (an empty
    request: most answer an error, which is counted too), shows in
    chatd_requests_total under its name; the list comes from the protos, so
    an RPC added later is checked as well."""
    from chatd.proto import chat_pb2

    port = free_port()
    node = spawn_node("n1", "--metrics-port", str(port))
    address = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    service = chat_pb2.DESCRIPTOR.services_by_name["ClientAccount"]
    with grpc.insecure_channel(address) as ch:
        for m in service.methods:
            request = getattr(chat_pb2, m.input_type.name)()
            response = getattr(chat_pb2, m.output_type.name)
            path = f"/{service.full_name}/{m.name}"
            kw = {
                "request_serializer": type(request).SerializeToString,
                "response_deserializer": response.FromString,
            }
            try:
                if m.client_streaming:  # Connect: a stream opened and closed at once
                    list(ch.stream_stream(path, **kw)(iter(()), timeout=5))
                elif m.server_streaming:  # Subscribe without a session: refused
                    list(ch.unary_stream(path, **kw)(request, timeout=5))
                else:
                    ch.unary_unary(path, **kw)(request, timeout=5)
            except grpc.RpcError as exc:
                assert exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED, m.name
    # (a stream is counted when the node has ended it, just after the client sees it)
    measured = eventually(
        lambda: set(re.findall(r'^chatd_requests_total\{.*rpc="(\w+)"', scrape(port), re.M)),
        "every method in chatd_requests_total",
        until=lambda m: len(m) >= len(service.methods),
        interval=0.1,
    )
    assert measured == {m.name for m in service.methods}


def test_status_at_a_slave_tells_the_truth_about_the_others(tmp_path: Path) -> None:
    """`chatd status` asked of a slave shows every member's liveness as the
    master sees it (only the master keeps their progress): all alive, then
    the other slave dead once it is killed."""
    c = Cluster.start(tmp_path)
    try:
        master = c.master()
        slaves = sorted(n for n in c.nodes if n != master)
        doc = c.cli_status(slaves[0])
        assert doc["role"] == "slave" and doc["members_seen_by"] == master
        assert {m["node_id"]: m["alive"] for m in doc["members"]} == dict.fromkeys(c.nodes, True)  # type: ignore[attr-defined]
        out = c.cli("status", "--server", c.addresses[slaves[0]])
        assert f"members  as the master {master} sees them" in out.stdout
        c.kill(slaves[1])

        def dead_there() -> bool:
            members = c.cli_status(slaves[0])["members"]
            return {m["node_id"]: m["alive"] for m in members}[slaves[1]] is False  # type: ignore[attr-defined]

        c.wait(dead_there, f"{slaves[1]} shown dead at {slaves[0]}")
    finally:
        c.stop_all()
