"""Keepalive (chatd.contract's one policy). No connection may be closed for
pinging too often (GOAWAY ENHANCE_YOUR_CALM "too_many_pings"), which ends
every call on it (on a slave, every stream it relays at once):

- every gRPC option string chatd passes is one the installed gRPC knows
  (it ignores one it does not, without a word);
- idle, with a short keepalive period (CHATD_KEEPALIVE_MS): the nodes'
  connections to each other, then two terminal clients' as well, keep
  pinging and are never closed, and the clients' streams still deliver;
- a GOAWAY a client does get is its one status line on the terminal, never
  gRPC's own log line;
- under load, writers send to the master of a real 3-node cluster while
  Subscribe streams held on the slaves are relayed to it, for 20 periods
  of the nodes' short keepalive period (10 s; with the default 10 s as many
  would take over three minutes): no stream or call fails (about 15 s).

Each checks the nodes' gRPC ping trace: pings are received, and no server
counts strikes up to its limit."""

from __future__ import annotations

import asyncio
import collections
import io
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pexpect
import pytest

from chatd.client import ChatClient
from chatd.contract import KEEPALIVE_ENV, PING_STRIKES
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.tools.localcluster import LOCAL_POOL, PASSWORD, NodeProcess, free_port
from tests.cluster import Cluster, Load
from tests.conftest import spawn_chatd, wait_serving

pytestmark = pytest.mark.timeout(300)

PERIOD_MS = 500  # the tests' short keepalive period (a server permits a ping every 100 ms)
LOAD_SECONDS = 20 * PERIOD_MS / 1000  # 20 periods under load
SAMPLE_SECONDS = LOAD_SECONDS / 5  # every relayed stream must have delivered more at each sample
STREAMS = 8
WRITERS = 4
STRIKES = re.compile(r"received ping \S+: .* ping_strikes=(\d+)")
GOAWAY = re.compile(r"too_many_pings|ENHANCE_YOUR_CALM|GOAWAY", re.IGNORECASE)
PINGED = re.compile(r"SERVER\[(0x[0-9a-f]+)\]: received ping \S+: .* ping_strikes=(\d+)")
# a line of gRPC's C core (absl's format: "E1207 04:21:06.090342 493 chttp2_transport.cc:1435] ...")
GRPC_LINE = re.compile(r"[EWI]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+\.cc:\d+\]")
IDLE_PERIODS = 10
TRACE = {"GRPC_VERBOSITY": "debug", "GRPC_TRACE": "http_keepalive"}
ROOT = Path(__file__).resolve().parent.parent


def test_every_grpc_option_chatd_passes_is_one_grpc_knows() -> None:
    """gRPC reads a channel argument by its name and ignores any other: a
    misspelt one (grpc.http2.min_recv_ping_interval_without_data_ms) left the
    server's 5-minute minimum between pings in place, and every keepalive
    ping of a client was a strike. The names the installed gRPC knows are
    the strings of its C core."""
    cygrpc = Path(grpc.__file__).parent / "_cython"
    libraries = list(cygrpc.glob("cygrpc*.so"))
    if not libraries:
        print(f"SKIP: no cygrpc shared library in {cygrpc}")
        pytest.skip(f"no cygrpc shared library in {cygrpc}")
    known = libraries[0].read_bytes()
    passed = {
        name
        for part in ("chatd", "benchmarks", "scripts", "tests")
        for path in (ROOT / part).rglob("*.py")
        for name in re.findall(r"\(\s*\"(grpc\.[\w.]+)\",", path.read_text())
    }
    assert "grpc.keepalive_time_ms" in passed and len(passed) >= 10, passed
    unknown = sorted(n for n in passed if n.encode() + b"\0" not in known)
    assert not unknown, f"gRPC {grpc.__version__} knows no such option: {unknown}"


def pings(log: str) -> collections.Counter[str]:
    """Pings each server transport (a connection) received."""
    return collections.Counter(t for t, _ in PINGED.findall(log))


def strikes(log: str) -> int:
    return max((int(s) for _, s in PINGED.findall(log)), default=0)


def terminal(address: str, user: str, keepalive_ms: int) -> tuple[pexpect.spawn[str], io.StringIO]:
    """`chatd chat` logged in as `user`, with everything it writes kept; the
    user's environment asks gRPC for its most verbose log, which must not
    reach the screen all the same."""
    child = spawn_chatd(
        "chat", "--server", address, "--user", user, env={KEEPALIVE_ENV: str(keepalive_ms), **TRACE}
    )
    screen = io.StringIO()
    child.logfile_read = screen
    child.expect("password:")
    child.sendline(PASSWORD)
    child.expect(f"logged in as {user}")
    return child, screen


async def accounts(addresses: list[str], *names: str) -> None:
    async with ChatClient(addresses) as c:
        for name in names:
            await c.create_account(name, PASSWORD)


def test_idle_nodes_and_clients_keep_their_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEEPALIVE_ENV, str(PERIOD_MS))  # the nodes (child processes) too
    for k, v in TRACE.items():
        monkeypatch.setenv(k, v)
    idle = IDLE_PERIODS * PERIOD_MS / 1000
    c = Cluster.start(tmp_path)
    children: list[pexpect.spawn[str]] = []
    try:
        # the nodes alone: their channels to each other (the master's log
        # streams carry heartbeats, which put its pings off: the slaves'
        # channels to the master ping)
        seen = {n: len(p.log()) for n, p in c.nodes.items()}
        time.sleep(idle)  # (held idle: the idle time is what is tested)
        peers = {n: pings(p.log()[seen[n] :]) for n, p in c.nodes.items()}
        most = max((n for counted in peers.values() for n in counted.values()), default=0)
        assert most >= IDLE_PERIODS // 3, peers  # (10 s apart, the default: 0 or 1)
        addresses = list(c.addresses.values())
        asyncio.run(accounts(addresses, "alice", "bob"))
        alice, alice_screen = terminal(",".join(addresses), "alice", PERIOD_MS)
        bob, bob_screen = terminal(",".join(addresses), "bob", PERIOD_MS)
        children += [alice, bob]
        for child, other in ((alice, "bob"), (bob, "alice")):
            child.sendline(f"/chat {other}")
            child.expect(f"→ {other}>")
        seen = {n: len(p.log()) for n, p in c.nodes.items()}
        time.sleep(idle)  # (held idle: the idle time is what is tested)
        bob.sendline("after the quiet")
        alice.expect("bob: after the quiet")  # alice's stream still delivers
        # the clients' connections pinged all along
        counts = [
            count
            for n, p in c.nodes.items()
            for transport, count in pings(p.log()[seen[n] :]).items()
            if transport not in peers[n]
        ]
        assert sum(1 for count in counts if count >= IDLE_PERIODS // 2) >= 2, counts
        for child in children:
            child.sendline("/quit")
            child.expect(pexpect.EOF)
    finally:
        for child in children:
            if child.isalive():
                child.kill(9)
                child.wait()
        c.stop_all()
    logs = {n: p.log() for n, p in c.nodes.items()}
    for screen in (alice_screen.getvalue(), bob_screen.getvalue()):
        assert "lost" not in screen and "reconnect" not in screen, screen[-2000:]
        assert not GRPC_LINE.search(screen) and not GOAWAY.search(screen), screen[-2000:]
    for name, log in logs.items():
        assert not GOAWAY.search(log), (name, GOAWAY.search(log))
        assert strikes(log) < PING_STRIKES, (name, strikes(log))


def test_a_goaway_is_the_clients_status_line_not_grpcs_log(tmp_path: Path) -> None:
    """The node a terminal client is logged in at stops (SIGTERM: its server
    sends a GOAWAY) and starts again: the client's screen shows its own two
    status lines and nothing of gRPC's, though the user's environment asks
    gRPC for its every line. (A GOAWAY for too many pings cannot be forced
    any more: the client's rooms, listed every 3 s, are data that clears the
    node's count of strikes before a third ping.)"""
    address = f"127.0.0.1:{free_port()}"
    node = NodeProcess.serve(
        tmp_path,
        "n1",
        address,
        f"127.0.0.1:{free_port()}",
        "--password-hash-cost",
        "8",
        env=dict(os.environ, **TRACE),
    ).start()
    child = None
    try:
        wait_serving(address)
        asyncio.run(accounts([address], "alice"))
        child, screen = terminal(address, "alice", PERIOD_MS)
        node.kill(signal.SIGTERM)  # a graceful stop: GOAWAY to every connection
        child.expect("connection to .* lost, reconnecting", timeout=30)
        node.start()
        child.expect("reconnected to", timeout=30)
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        if child is not None and child.isalive():
            child.kill(9)
            child.wait()
        node.kill()
    text = screen.getvalue()
    assert not GRPC_LINE.search(text), text[-2000:]
    assert not re.search(r"too_many_pings|ENHANCE_YOUR_CALM|GOAWAY", text), text[-2000:]


async def hold(address: str, session: str, received: list[int], errors: list[str], i: int) -> None:
    """A Subscribe stream on `address`, resumed after the last id on an error
    (each error counted)."""
    async with grpc.aio.insecure_channel(address, options=LOCAL_POOL) as ch:
        stub = chat_pb2_grpc.ClientAccountStub(ch)
        after = 0
        while True:
            call = stub.Subscribe(
                chat_pb2.SubscribeRequest(session_id=session, after_message_id=after)
            )
            try:
                async for m in call:
                    after = m.message_id
                    received[i] += 1
            except grpc.aio.AioRpcError as exc:
                errors.append(f"{address}: {exc.code().name} {exc.details()}")
                await asyncio.sleep(0.1)


async def test_no_connection_is_closed_for_pinging_under_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the nodes (child processes) log every ping they receive, with its
    # strikes, and ping with the idle tests' short period
    monkeypatch.setenv(KEEPALIVE_ENV, str(PERIOD_MS))
    monkeypatch.setenv("GRPC_VERBOSITY", "debug")
    monkeypatch.setenv("GRPC_TRACE", "http_keepalive")
    c = await asyncio.to_thread(Cluster.start, tmp_path)
    try:
        master = await asyncio.to_thread(c.master)
        assert master is not None
        slaves = [n for n in c.nodes if n != master]
        load = Load([c.addresses[master]])
        alice = await load.session("alice")
        bob = await load.session("bob")
        received = [0] * STREAMS
        errors: list[str] = []
        streams = [
            asyncio.create_task(hold(c.addresses[slaves[i % 2]], bob, received, errors, i))
            for i in range(STREAMS)
        ]
        writers = [asyncio.create_task(load.writer(alice, "bob", f"w{i}")) for i in range(WRITERS)]
        started = time.monotonic()
        samples = []
        while time.monotonic() - started < LOAD_SECONDS:
            await asyncio.sleep(SAMPLE_SECONDS)  # (the load's duration is what is tested)
            samples.append(list(received))
        load.stop.set()
        await asyncio.gather(*writers)
        for s in streams:
            s.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    finally:
        c.stop_all()
    assert not errors, errors[:10]
    assert load.errors == 0
    # every relayed stream kept delivering through the whole load
    for before, after in itertools.pairwise(samples):
        assert all(b > a for a, b in zip(before, after, strict=True)), samples
    strikes = {}
    for name, proc in c.nodes.items():
        log = proc.log()
        assert not GOAWAY.search(log), (name, GOAWAY.search(log))
        seen = [int(s) for s in STRIKES.findall(log)]
        assert seen, f"{name}: no ping trace (GRPC_TRACE=http_keepalive)"
        strikes[name] = (len(seen), max(seen))
    # (pings received, most strikes counted at once): a ping too soon may
    # happen, two in a row would be one away from the GOAWAY
    assert all(most < PING_STRIKES for _, most in strikes.values()), strikes


@pytest.mark.parametrize("value", ["abc", "50", "-1000"])
def test_a_keepalive_period_out_of_bounds_is_one_line(value: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chatd", "chat"],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **{KEEPALIVE_ENV: value}),
    )
    assert out.returncode == 2
    assert (
        out.stderr
        == f"chatd: error: {KEEPALIVE_ENV}={value!r}: milliseconds from 100 to 3600000 are needed\n"
    )
