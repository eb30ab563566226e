"""Operations: the gRPC health service, server reflection."""

from __future__ import annotations

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
    for expected in ("ClientAccount", "MasterService", "SlaveService", "grpc.health.v1.Health"):
        assert expected in names
    quiet = spawn_node("n2", "--no-reflection")
    wait_serving(quiet.address)  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as info:
        reflected_services(quiet.address)  # type: ignore[attr-defined]
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
