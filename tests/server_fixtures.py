"""The server's fixtures: real nodes on 127.0.0.1 port 0 with real SQLite files.

`node` runs a node in this test's event loop (uvloop); `spawn_node` runs
`chatd serve` as a child process that a test may SIGKILL. Every process a
test starts is stopped by its PID when the test ends. The child-process
helpers (`NodeProcess`, `free_port`, `wait_serving`, `PASSWORD`...) live in
chatd.tools.localcluster, which the benchmarks use too.
"""

from __future__ import annotations

# isort: off
import chatd  # noqa: F401  (before grpc: it turns gRPC's fork handlers off)

# isort: on
import asyncio
import contextlib
import gc
import os
import select
import shutil
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

from chatd.client.gui import NO_TK
from chatd.config import Config
from chatd.core.types import Role
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.build import build
from chatd.server.node import Node
from chatd.tools.localcluster import LOCAL_POOL as LOCAL_POOL
from chatd.tools.localcluster import PASSWORD as PASSWORD
from chatd.tools.localcluster import TEST_HASH_COST as TEST_HASH_COST
from chatd.tools.localcluster import NodeProcess as NodeProcess
from chatd.tools.localcluster import free_port as free_port
from chatd.tools.localcluster import wait_serving as wait_serving
from tests.waiting import eventually, eventually_async


def pytest_asyncio_loop_factories(config: pytest.Config) -> dict[str, object]:
    """Every async test runs on uvloop, as the node does."""
    return {"uvloop": uvloop.new_event_loop}


def node_config(data_dir: Path, **overrides: object) -> Config:
    cfg = Config(
        listen="127.0.0.1:0",
        peer_listen="127.0.0.1:0",
        data_dir=data_dir,
        password_hash_cost=TEST_HASH_COST,
        send_rate=0,
        account_rate=0,
        room_rate=0,
        invite_rate=0,
        room_write_rate=0,
    )
    return replace(cfg, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = await build(node_config(tmp_path / "node"))
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


@contextlib.asynccontextmanager
async def three_nodes(tmp_path: Path, web: bool = False) -> AsyncIterator[list[Node]]:
    """n1 the master, n2 and n3 its slaves, all in sync (in this process;
    `web`: each with a --web-listen of its own). Stopped slaves first; a
    test that stops one takes it out of the list."""
    nodes: list[Node] = []
    try:
        for i in (1, 2, 3):
            join = (nodes[0].peer_address,) if nodes else ()
            more = {"web_listen": f"127.0.0.1:{free_port()}"} if web else {}
            cfg = node_config(tmp_path / f"n{i}", node_id=f"n{i}", join=join, **more)
            node = await build(cfg)
            nodes.append(node)
            await node.start()

        def all_in_sync() -> bool:
            c = nodes[0].repl.status()
            return c.role is Role.MASTER and len(c.membership.in_sync) == 3

        await eventually_async(all_in_sync, "3 nodes in sync", timeout=30)
        yield nodes
    finally:
        for node in reversed(nodes):  # the slaves first
            await node.stop()


@pytest.fixture
def spawn_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    started: list[NodeProcess] = []

    def spawn(name: str = "n1", *extra: str, port: int | None = None) -> NodeProcess:
        port = port or free_port()
        peer = f"127.0.0.1:{free_port()}"
        args = [
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--peer-listen",
            peer,
            "--data-dir",
            str(tmp_path / name),
            "--password-hash-cost",
            str(TEST_HASH_COST),
            "--send-rate",
            "0",
            "--account-rate",
            "0",
            *extra,
        ]
        p = NodeProcess(args, tmp_path / f"{name}.log").start()
        p.address = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
        p.peer_address = peer  # type: ignore[attr-defined]
        started.append(p)
        return p

    yield spawn
    for p in started:
        p.kill(signal.SIGKILL)


def run_async(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def spawn_chatd(
    *args: str, timeout: float = 15, env: dict[str, str] | None = None
) -> pexpect.spawn[str]:
    """`python -m chatd ARGS` on a pseudo-terminal, as a user's shell runs it
    (`env`: variables the user set besides)."""
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
            **(env or {}),
        },
    )


def stop_demo(child: pexpect.spawn[str]) -> None:
    """Ends a `chatd demo` the way a user does, with SIGTERM: it then stops
    its nodes (which run in sessions of their own, so a SIGKILL of the demo
    would leave them running) and removes its directory; SIGKILL only if it
    has not ended 40 s later."""
    if not child.isalive():
        return
    child.kill(signal.SIGTERM)
    try:
        child.expect(pexpect.EOF, timeout=40)
    except pexpect.TIMEOUT:
        child.kill(signal.SIGKILL)
    child.wait()


@pytest.fixture
def chat_process() -> Iterator[Callable[..., pexpect.spawn[str]]]:
    """Starts `chatd chat ARGS` on a pseudo-terminal (15 s for each expect);
    each one still running at the end is killed."""
    started: list[pexpect.spawn[str]] = []

    def start(*args: str) -> pexpect.spawn[str]:
        child = spawn_chatd("chat", *args, timeout=15)
        started.append(child)
        return child

    yield start
    for child in started:
        if child.isalive():
            child.kill(9)
            child.wait()


# -- a virtual screen for the GUI's tests --

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
XVFB_WAIT = 10.0  # seconds for Xvfb to accept connections


def _missing(what: str) -> None:
    """Fails under CI (the GUI test must run there), skips elsewhere."""
    if CI:
        pytest.fail(f"{what} (CI=true: ./scripts/test-deps installs it)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def xvfb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An Xvfb server on a display number it picks (free), as DISPLAY: one for
    the whole run, shared by every module that shows a window, as Tk keeps
    its connection to a display until the process ends (and the process
    exits, pytest with it, once that display goes away)."""
    tmp_path = tmp_path_factory.mktemp("xvfb")
    if shutil.which("Xvfb") is None:
        _missing("Xvfb is not installed (Debian: apt-get install -y xvfb)")
    if NO_TK is not None:
        _missing(f"tkinter is not available: {NO_TK} (Debian: apt-get install -y python3-tk)")
    read_end, write_end = os.pipe()
    with (tmp_path / "xvfb.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                "Xvfb",
                "-displayfd",
                str(write_end),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ],
            pass_fds=(write_end,),
            stdout=log,
            stderr=log,
        )
    os.close(write_end)
    try:
        # -displayfd: Xvfb writes the display number once it accepts connections
        deadline, number = time.monotonic() + XVFB_WAIT, b""
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                pytest.fail(f"Xvfb did not start: {(tmp_path / 'xvfb.log').read_text()}")
            if select.select([read_end], [], [], left)[0]:
                number += os.read(read_end, 16)
        display = f":{int(number)}"
        path = f"/tmp/.X11-unix/X{int(number)}"
        with socket.socket(socket.AF_UNIX) as s:  # and it does (Linux: abstract socket too)
            s.settimeout(XVFB_WAIT)
            s.connect(path if os.path.exists(path) else "\0" + path)
        before = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = display
        try:
            yield display
        finally:
            if before is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = before
    finally:
        os.close(read_end)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def has_undelivered(node: Node, username: str) -> bool:
    """Whether any message to `username` waits undelivered on `node` (read
    from its store: nothing is taken or marked)."""
    return node.store.has_undelivered(node.store.users[username].uid)


def logged(node: NodeProcess, text: str, timeout: float = 30.0) -> str:
    """Waits until `text` is in the node's log (failing at once if the node
    exits); the log."""

    def log() -> str:
        if not node.running:
            pytest.fail(f"the node exited before {text!r}: {node.log()[-3000:]}")
        return node.log()

    return eventually(
        log, f"{text!r} in the node's log", until=lambda s: text in s, timeout=timeout, interval=0.1
    )


@pytest.fixture(autouse=True)
def tk_garbage_collected_here(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that showed windows, collects its garbage in the main
    thread: a closed window's Tk objects left in reference cycles would
    otherwise be freed by whichever thread next triggers a collection (a
    client's event-loop thread), and Tk called from another thread aborts
    the whole process ("Fatal Python error: Aborted")."""
    yield
    if "xvfb" in request.fixturenames:
        gc.collect()
