"""`chatd bench` against a real node and against the no-op baseline."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import grpc

from chatd.proto import chat_pb2, chat_pb2_grpc
from tests.conftest import NodeProcess, free_port, wait_serving


def bench(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "chatd", "bench", "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_bench_against_a_node(spawn_node: Callable[..., NodeProcess]) -> None:
    node = spawn_node("n1")
    address = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    r = bench("--server", address, "--users", "4", "--concurrency", "4", "--duration", "1")
    assert r["target"] == "chatd" and r["errors"] == 0
    assert isinstance(r["sends"], int) and r["sends"] > 0
    assert r["delivered"] == r["sends"]  # every message reached its recipient's stream
    p50, p99 = r["send_ms_p50"], r["send_ms_p99"]
    assert isinstance(p50, float) and isinstance(p99, float) and 0 < p50 <= p99
    assert isinstance(r["delivery_ms_p99"], float) and r["delivery_ms_p99"] > 0
    # over Connect: one stream per user carries its sends and deliveries
    args = ("--server", address, "--users", "4", "--concurrency", "4", "--duration", "1")
    s = bench(*args, "--transport", "stream")
    assert s["target"] == "chatd" and s["transport"] == "stream" and s["errors"] == 0
    assert isinstance(s["sends"], int) and s["sends"] > 0 and s["delivered"] == s["sends"]


def test_a_window_of_sends_in_flight_on_each_stream(
    spawn_node: Callable[..., NodeProcess],
) -> None:
    """--window 8 over Connect: each of the 4 workers writes its sends on
    its user's stream without waiting for the previous result; the bench
    saw more than one of them written and unanswered at once on a stream,
    never more than the window, and every one was answered and delivered."""
    node = spawn_node("n1")
    address = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    args = ("--server", address, "--users", "4", "--concurrency", "4", "--duration", "2")
    s = bench(*args, "--transport", "stream", "--window", "8")
    assert s["target"] == "chatd" and s["window"] == 8 and s["errors"] == 0
    assert isinstance(s["sends"], int) and s["sends"] > 0 and s["delivered"] == s["sends"]
    assert isinstance(s["max_in_flight"], int) and 1 < s["max_in_flight"] <= 8
    # unary: the window is Send calls of one user under way at once
    u = bench(*args, "--transport", "unary", "--window", "3")
    assert u["errors"] == 0 and isinstance(u["sends"], int) and u["sends"] > 0
    assert isinstance(u["max_in_flight"], int) and 1 < u["max_in_flight"] <= 3


def test_a_window_must_be_a_whole_number_above_0() -> None:
    for bad in ("0", "-2", "1.5"):
        out = subprocess.run(
            [sys.executable, "-m", "chatd", "bench", "--json", "--window", bad],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2 and "argument --window" in out.stderr, out


def test_bench_over_the_web_listener(spawn_node: Callable[..., NodeProcess]) -> None:
    """--transport web: each user's Connect stream on a WebSocket of the
    node's web listener, its sends answered and its messages delivered there."""
    web = f"127.0.0.1:{free_port()}"
    node = spawn_node("n1", "--web-listen", web)
    address = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    args = ("--server", address, "--users", "4", "--concurrency", "4", "--duration", "1.5")
    w = bench(*args, "--transport", "web", "--web", f"http://{web}")
    assert w["target"] == "chatd" and w["transport"] == "web" and w["web"] == f"http://{web}"
    assert w["errors"] == 0 and isinstance(w["sends"], int) and w["sends"] > 0
    assert isinstance(w["delivered"], int) and w["delivered"] > 0
    assert isinstance(w["delivery_ms_p99"], float) and w["delivery_ms_p99"] > 0
    # several sends of a socket's stream in flight at once, each answered
    p = bench(*args, "--transport", "web", "--web", f"http://{web}", "--window", "4")
    assert p["errors"] == 0 and isinstance(p["sends"], int) and p["sends"] > 0
    assert isinstance(p["max_in_flight"], int) and 1 < p["max_in_flight"] <= 4


def test_a_web_socket_that_does_not_open_is_reported(
    spawn_node: Callable[..., NodeProcess],
) -> None:
    """--web naming no web listener: exit 1, one line saying which socket
    did not open, no traceback."""
    node = spawn_node("n1")
    address = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    nowhere = f"http://127.0.0.1:{free_port()}"
    args = ("--server", address, "--users", "2", "--concurrency", "2", "--duration", "1")
    web = ("--transport", "web", "--web", nowhere)
    out = subprocess.run(
        [sys.executable, "-m", "chatd", "bench", "--json", *args, *web],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out
    assert f"a web socket to {nowhere} did not open" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "Unclosed" not in out.stderr, out.stderr


def test_bench_over_the_web_needs_its_origins() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chatd", "bench", "--json", "--transport", "web"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--transport web needs --web" in out.stderr, out


def test_bench_against_the_noop_server() -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "chatd", "bench", "--noop-server", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for = f"127.0.0.1:{port}"
        assert server.stdout is not None
        assert wait_for in server.stdout.readline().decode()
        r = bench("--server", wait_for, "--concurrency", "4", "--duration", "1")
        assert r["target"] == "noop" and r["errors"] == 0
        assert isinstance(r["sends"], int) and r["sends"] > 0 and r["delivered"] == 0
        args = ("--server", wait_for, "--concurrency", "4", "--duration", "1")
        s = bench(*args, "--transport", "stream", "--users", "4")
        assert s["target"] == "noop" and s["errors"] == 0 and s["transport"] == "stream"
        assert isinstance(s["sends"], int) and s["sends"] > 0
        # pipelined send frames: each answered, by request id
        p = bench(*args, "--transport", "stream", "--users", "4", "--window", "16")
        assert p["target"] == "noop" and p["errors"] == 0 and p["window"] == 16
        assert isinstance(p["sends"], int) and p["sends"] > 0
        assert isinstance(p["max_in_flight"], int) and 1 <= p["max_in_flight"] <= 16
    finally:
        server.kill()
        server.wait()


async def test_a_stream_the_node_ends_mid_run_is_reported_with_its_status() -> None:
    """A node that ends a Connect stream mid-run (here at its third send,
    RESOURCE_EXHAUSTED): the bench exits 1 with one line naming the
    stream's status and details, not a traceback of a later write."""

    class EndsStreams(chat_pb2_grpc.ClientAccountServicer):
        async def Connect(self, frames: Any, context: Any) -> Any:
            await context.send_initial_metadata(())
            answered = 0
            async for frame in frames:
                if frame.HasField("send"):
                    if answered == 2:
                        # ends the stream while its client waits for a result:
                        # a client whose write races the end of its call sees
                        # grpc's own INTERNAL ("Internal error from Core")
                        # instead of the node's status, on a loaded machine
                        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "pushed out")
                    result = chat_pb2.SendResult(request_id=frame.send.request_id)
                    yield chat_pb2.ServerFrame(result=result)
                    answered += 1

    server = grpc.aio.server()
    # CreateAccount answers UNIMPLEMENTED: the bench only sends
    chat_pb2_grpc.add_ClientAccountServicer_to_server(EndsStreams(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        # one send at a time: no write races the end of a stream (see above)
        args = ("--concurrency", "1", "--duration", "2", "--transport", "stream", "--users", "4")
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "chatd", "bench", "--json", "--server", f"127.0.0.1:{port}"),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            _, err = await proc.communicate()
    finally:
        await server.stop(None)
    said = err.decode()
    assert proc.returncode == 1, said
    assert "Traceback" not in said, said
    assert "a Connect stream ended: RESOURCE_EXHAUSTED: pushed out" in said, said
