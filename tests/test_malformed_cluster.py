"""Bytes that are not the request, with the cluster secret, on the peer and
operator services: INVALID_ARGUMENT naming the request type, as the client
service answers, never UNKNOWN with a traceback in the node's log; and an
operator's Resend without a request id is refused (it would not be
idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from chatd.contract import SECRET_HEADER
from chatd.proto import chat_pb2, chat_pb2_grpc, cluster_pb2, cluster_pb2_grpc
from chatd.server.build import build
from tests.conftest import PASSWORD, node_config

JUNK = b"\xff\xff"
IDENTITY: dict[str, Any] = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
SECRET = (SECRET_HEADER, "s3cret")


async def test_junk_with_the_secret_is_invalid_argument_on_every_service(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = await build(node_config(tmp_path / "n", cluster_secret="s3cret"))
    await node.start()
    try:
        for address, methods in (
            (
                node.peer_address,
                [
                    f"/MasterService/{m}"
                    for m in ("RegisterSlave", "HeartBeat", "CheckMaster", "ReportDigest")
                ]
                + ["/SlaveService/UpdateMaster", "/SlaveService/UpdateSlaves"]
                + [f"/NodeAdmin/{m}" for m in ("Status", "ManageUser", "RemoveMember", "Resend")],
            ),
            (
                node.address,
                [f"/NodeAdmin/{m}" for m in ("Status", "ManageUser", "RemoveMember", "Resend")],
            ),
        ):
            async with grpc.aio.insecure_channel(address) as ch:
                for method in methods:
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await ch.unary_unary(method, **IDENTITY)(
                            JUNK, metadata=(SECRET,), timeout=5
                        )
                    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
                    assert "is not a valid" in (info.value.details() or ""), method
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    stream = ch.unary_stream("/NodeAdmin/Backup", **IDENTITY)
                    async for _ in stream(JUNK, metadata=(SECRET,), timeout=5):
                        pass
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= 40]
        # and it still answers
        async with grpc.aio.insecure_channel(node.address) as ch:
            status = await cluster_pb2_grpc.NodeAdminStub(ch).Status(
                cluster_pb2.StatusRequest(), metadata=(SECRET,), timeout=5
            )
            assert status.node_id
    finally:
        await node.stop()


async def test_a_resend_without_a_request_id_is_refused(tmp_path: Path) -> None:
    node = await build(node_config(tmp_path / "n", cluster_secret="s3cret"))
    await node.start()
    try:
        async with grpc.aio.insecure_channel(node.address) as ch:
            stub = chat_pb2_grpc.ClientAccountStub(ch)
            for name in ("alice", "bob"):
                await stub.CreateAccount(
                    chat_pb2.CreateAccountRequest(username=name, password=PASSWORD)
                )
            admin = cluster_pb2_grpc.NodeAdminStub(ch)
            request = cluster_pb2.ResendRequest(sender="alice", recipient="bob", body="hi")
            for _ in range(2):
                answer = await admin.Resend(request, metadata=(SECRET,), timeout=10)
                assert not answer.ok
                assert "request_id" in answer.error
            sent = await admin.Resend(
                cluster_pb2.ResendRequest(
                    sender="alice", recipient="bob", body="hi", request_id="r1"
                ),
                metadata=(SECRET,),
                timeout=10,
            )
            assert sent.ok and not sent.duplicate
            assert sent.message_id == 1  # the first message written
    finally:
        await node.stop()
