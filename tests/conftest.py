"""Shared fixtures: real nodes on 127.0.0.1 port 0 with real SQLite files.

`node` runs a node in this test's event loop (uvloop); `spawn_node` runs
`chatd serve` as a child process that a test may SIGKILL. Every process a
test starts is stopped by its PID when the test ends.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pexpect
import pytest
import uvloop

from chatd.config import Config
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.node import Node

# Cheap password hashing keeps account-heavy tests fast; the cost is a flag.
TEST_HASH_COST = 8
PASSWORD = "correct horse"
# Channel option: do not share subchannels (and their reconnect backoff)
# with other channels of this process.
LOCAL_POOL = [("grpc.use_local_subchannel_pool", 1)]


def pytest_asyncio_loop_factories(config: pytest.Config) -> dict[str, object]:
    """Every async test runs on uvloop, as the node does."""
    return {"uvloop": uvloop.new_event_loop}


def node_config(data_dir: Path, **overrides: object) -> Config:
    cfg = Config(
        listen="127.0.0.1:0", data_dir=data_dir, password_hash_cost=TEST_HASH_COST, send_rate=0
    )
    return replace(cfg, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(node_config(tmp_path / "node"))
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


@pytest.fixture
async def stub(node: Node) -> AsyncIterator[chat_pb2_grpc.ClientAccountAsyncStub]:
    async with grpc.aio.insecure_channel(node.address) as channel:
        yield chat_pb2_grpc.ClientAccountStub(channel)


async def create_user(stub: chat_pb2_grpc.ClientAccountAsyncStub, name: str) -> None:
    r = await stub.CreateAccount(chat_pb2.CreateAccountRequest(username=name, password=PASSWORD))
    assert r.error_code == 0, r


async def login(stub: chat_pb2_grpc.ClientAccountAsyncStub, name: str) -> str:
    r = await stub.Login(chat_pb2.LoginRequest(username=name, password=PASSWORD))
    assert r.error_code == 0, r
    assert r.session_id
    return str(r.session_id)


async def user(stub: chat_pb2_grpc.ClientAccountAsyncStub, name: str) -> str:
    """Creates an account and returns a fresh session id for it."""
    await create_user(stub, name)
    return await login(stub, name)


# -- child processes --


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NodeProcess:
    """A `chatd serve` child process with its command line kept for restarts."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatd", *self.args], stdout=log, stderr=log
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_serving(address: str, timeout: float = 10.0) -> None:
    """Waits (bounded) until the node at `address` answers ListUsers."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    with grpc.insecure_channel(address) as channel:
        stub = chat_pb2_grpc.ClientAccountStub(channel)
        while time.monotonic() < deadline:
            try:
                stub.ListUsers(chat_pb2.Empty(), timeout=1.0)
                return
            except grpc.RpcError as exc:
                last = exc
                time.sleep(0.05)
    raise TimeoutError(f"{address} did not start serving: {last}")


@pytest.fixture
def spawn_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    started: list[NodeProcess] = []

    def spawn(name: str = "n1", *extra: str, port: int | None = None) -> NodeProcess:
        port = port or free_port()
        args = [
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(tmp_path / name),
            "--password-hash-cost",
            str(TEST_HASH_COST),
            "--send-rate",
            "0",
            *extra,
        ]
        p = NodeProcess(args, tmp_path / f"{name}.log").start()
        p.address = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
        started.append(p)
        return p

    yield spawn
    for p in started:
        p.kill(signal.SIGKILL)


def run_async(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def spawn_chatd(*args: str, timeout: float = 15) -> pexpect.spawn[str]:
    """`python -m chatd ARGS` on a pseudo-terminal, as a user's shell runs it."""
    return pexpect.spawn(
        sys.executable,
        ["-m", "chatd", *args],
        encoding="utf-8",
        timeout=timeout,
        dimensions=(40, 160),
        env={
            "TERM": "xterm",
            "PROMPT_TOOLKIT_NO_CPR": "1",
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(Path.cwd()),
        },
    )
