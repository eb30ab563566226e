"""Real `chatd serve` processes on loopback, for the tests, the benchmarks
and the demo: start, restart, kill and stop nodes by their PID, wait until
they serve or converge, drive a failover-aware load through them and check
that no acknowledged write was lost.

It runs nodes as child processes and talks to them over gRPC only; it never
imports the server. Whoever starts a node stops it (`NodeProcess.kill`,
`Cluster.stop_all`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from chatd.proto import chat_pb2, chat_pb2_grpc, cluster_pb2, cluster_pb2_grpc
from chatd.tools.admin import status_document

# Cheap password hashing keeps account-heavy runs fast; the cost is a flag.
TEST_HASH_COST = 8
PASSWORD = "correct horse"
# Channel option: do not share subchannels (and their reconnect backoff)
# with other channels of this process.
LOCAL_POOL = [("grpc.use_local_subchannel_pool", 1)]


def _check(ok: bool, what: object) -> None:
    """A failed check raises AssertionError, under `python -O` too."""
    if not ok:
        raise AssertionError(what)


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 now and never handed out before by this
    process: the kernel may give the same free port to two calls in a row,
    before the first taker binds it (two nodes of one cluster were once given
    one client port, and the second could not start)."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port on 127.0.0.1 that was not handed out before")


class NodeProcess:
    """A `chatd` child process (`serve ...`) with its command line kept for
    restarts. `env` replaces the inherited environment; `new_session` keeps
    the terminal's Ctrl-C from reaching it."""

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        new_session: bool = False,
        prefix: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.args = args
        self.cwd = cwd  # (`python -m chatd` runs the chatd found there first)
        self.log_path = log_path
        self.env = env
        self.new_session = new_session
        self.prefix = prefix or []  # e.g. `ip netns exec NS`, which runs it in place
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def serve(
        cls,
        base: Path,
        name: str,
        address: str,
        peer_address: str,
        *extra: str,
        env: dict[str, str] | None = None,
        new_session: bool = False,
    ) -> NodeProcess:
        """`chatd serve` as node `name`, serving clients on `address` and the
        other nodes on `peer_address`, its data in base/name and its output
        in base/name.log (not started yet)."""
        args = ["serve", "--node-id", name, "--listen", address, "--peer-listen", peer_address]
        args += ["--data-dir", str(base / name)]
        return cls([*args, *extra], base / f"{name}.log", env=env, new_session=new_session)

    def start(self) -> NodeProcess:
        with self.log_path.open("ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "chatd", *self.args],
                stdout=log,
                stderr=log,
                env=self.env,
                start_new_session=self.new_session,
                cwd=self.cwd,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def rss_mib(pid: int) -> int:
    """Process `pid`'s resident memory, in MiB (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise ValueError(f"no VmRSS for process {pid}")


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


@dataclass
class Cluster:
    base: Path
    secret: str | None = None
    tls: tuple[Path, Path, Path] | None = None  # CA, client certificate, key
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)  # where clients reach each node
    peers: dict[str, str] = field(default_factory=dict)  # where the other nodes do

    def add(self, name: str, *extra: str, join: str | None = None) -> NodeProcess:
        """Node `name`, joining through the peer address `join` if given."""
        address = f"127.0.0.1:{free_port()}"
        peer = f"127.0.0.1:{free_port()}"
        proc = NodeProcess.serve(
            self.base,
            name,
            address,
            peer,
            "--password-hash-cost",
            str(TEST_HASH_COST),
            "--send-rate",
            "0",
            "--account-rate",
            "0",
            *(["--join", join] if join else []),
            *extra,
        ).start()
        self.nodes[name] = proc
        self.addresses[name] = address
        self.peers[name] = peer
        return proc

    @classmethod
    def start(cls, base: Path, size: int = 3, *extra: str) -> Cluster:
        secret = extra[extra.index("--cluster-secret") + 1] if "--cluster-secret" in extra else None
        c = cls(base, secret)
        try:
            c.add("n1", *extra)
            c.wait_role("n1", "master")
            for i in range(2, size + 1):
                c.add(f"n{i}", *extra, join=c.peers["n1"])
            c.wait(lambda: c.in_sync_count() == size, what=f"{size} nodes in sync")
        except BaseException:
            c.stop_all()  # the caller never gets the cluster to stop: no node outlives it
            raise
        return c

    def stop_all(self) -> None:
        for proc in self.nodes.values():
            if proc.running:
                proc.kill(signal.SIGCONT)
                proc.kill(signal.SIGKILL)

    def kill(self, name: str) -> None:
        self.nodes[name].kill(signal.SIGKILL)

    def restart(self, name: str) -> None:
        """Starts a node again with its very own first command line."""
        proc = self.nodes[name]
        if proc.running:
            raise AssertionError(f"{name} still runs")
        proc.start()

    def alive(self) -> list[str]:
        return [n for n, p in self.nodes.items() if p.running]

    def _channel(self, address: str) -> grpc.Channel:
        if self.tls is None:
            return grpc.insecure_channel(address, options=LOCAL_POOL)
        ca, cert, key = (p.read_bytes() for p in self.tls)
        creds = grpc.ssl_channel_credentials(ca, key, cert)
        return grpc.secure_channel(address, creds, options=LOCAL_POOL)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-chatd-secret", self.secret),) if self.secret else ()

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        if self.secret:
            env["CHATD_CLUSTER_SECRET"] = self.secret
        return subprocess.run(
            [sys.executable, "-m", "chatd", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
        )

    def status(self, name: str, timeout: float = 1.0) -> dict[str, object] | None:
        try:
            # (the peer listener: it serves NodeAdmin even under mutual TLS
            # without a secret, where the client listener does not)
            with self._channel(self.peers.get(name) or self.addresses[name]) as ch:
                s = cluster_pb2_grpc.NodeAdminStub(ch).Status(
                    cluster_pb2.StatusRequest(), timeout=timeout, metadata=self.metadata
                )
        except grpc.RpcError:
            return None
        doc = status_document(s)  # what `chatd status --json` prints
        doc["in_sync"] = sorted(m.node_id for m in s.members if m.in_sync)
        return doc

    def cli_status(self, name: str) -> dict[str, object]:
        out = self.cli("status", "--server", self.addresses[name], "--json")
        _check(out.returncode == 0, out.stderr)
        return dict(json.loads(out.stdout))

    def master(self) -> str | None:
        for n in self.alive():
            s = self.status(n)
            if s is not None and s["role"] == "master":
                return n
        return None

    def in_sync_count(self) -> int:
        m = self.master()
        s = self.status(m) if m else None
        return len(s["in_sync"]) if s else 0  # type: ignore[arg-type]

    def wait(self, pred: object, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():  # type: ignore[operator]
                return
            time.sleep(0.05)
        states = {n: self.status(n) for n in self.nodes}
        raise AssertionError(f"timed out waiting for {what}: {states}")

    def wait_role(self, name: str, role: str, timeout: float = 20.0) -> None:
        self.wait(
            lambda: (s := self.status(name)) is not None and s["role"] == role,
            what=f"{name} to be {role}",
            timeout=timeout,
        )

    def converged(self, names: list[str] | None = None, timeout: float = 30.0) -> dict[str, object]:
        """Waits until the given (default: all running) nodes report the same
        applied index, log digest and state digest, with one master; returns
        that state, checked once more through `chatd status --json`."""
        names = names or self.alive()

        def same() -> bool:
            ss = [self.status(n) for n in names]
            if any(s is None for s in ss):
                return False
            roles = [s["role"] for s in ss]  # type: ignore[index]
            keys = {(s["applied_index"], s["digest"], s["state_digest"]) for s in ss}  # type: ignore[index]
            return (
                roles.count("master") == 1
                and roles.count("slave") == len(names) - 1
                and len(keys) == 1
            )

        self.wait(same, what=f"{names} to converge", timeout=timeout)
        docs = [self.cli_status(n) for n in names]
        _check(
            len({(d["applied_index"], d["log_digest"], d["state_digest"]) for d in docs}) == 1,
            docs,
        )
        return docs[0]


@dataclass
class Load:
    """Writers that send through any live address, retrying with the same
    request id until acknowledged, and remember what was acknowledged.

    Each message's request id is its writer's prefix and sequence number
    ("w0-17"); `body_chars` pads the body past it to that many characters
    (to fill a disk sooner), the request id staying short."""

    addresses: list[str]
    body_chars: int = 0
    acked: dict[str, int] = field(default_factory=dict)  # body -> message_id
    errors: int = 0
    sent: int = 0
    # (start of the successful attempt, its acknowledgement), monotonic seconds
    ack_log: list[tuple[float, float]] = field(default_factory=list)
    call_timeout: float = 1.0  # seconds a Send may take before it is tried again
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def session(self, name: str) -> str:
        for _ in range(400):
            for address in self.addresses:
                try:
                    async with grpc.aio.insecure_channel(address, options=LOCAL_POOL) as ch:
                        stub = chat_pb2_grpc.ClientAccountStub(ch)
                        r = await stub.CreateAccount(
                            chat_pb2.CreateAccountRequest(username=name, password=PASSWORD),
                            timeout=2,
                        )
                        if r.error_code not in (0, 8):
                            raise AssertionError(r)
                        lr = await stub.Login(
                            chat_pb2.LoginRequest(username=name, password=PASSWORD), timeout=2
                        )
                        if lr.error_code == 0:
                            return str(lr.session_id)
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.05)
        raise AssertionError(f"could not log {name} in")

    async def send_until_acked(
        self,
        session: str,
        to: str,
        body: str,
        channels: list[grpc.aio.Channel],
        request_id: str | None = None,
    ) -> None:
        request_id = body if request_id is None else request_id
        stubs = [chat_pb2_grpc.ClientAccountStub(ch) for ch in channels]
        for attempt in itertools.count():
            stub = stubs[attempt % len(stubs)]
            started = time.monotonic()
            try:
                r = await stub.Send(
                    chat_pb2.SendRequest(
                        to=to, message=body, session_id=session, request_id=request_id
                    ),
                    timeout=self.call_timeout,
                )
            except grpc.aio.AioRpcError:
                self.errors += 1
                await asyncio.sleep(0.02)
                if attempt > 2000:
                    raise
                continue
            _check(r.error_code == 0, r)
            self.acked[body] = r.message_id
            self.ack_log.append((started, time.monotonic()))
            return

    async def writer(self, session: str, to: str, prefix: str, limit: int | None = None) -> None:
        channels = [grpc.aio.insecure_channel(a, options=LOCAL_POOL) for a in self.addresses]
        try:
            for i in itertools.count():
                if self.stop.is_set() or (limit is not None and i >= limit):
                    return
                self.sent += 1
                rid = f"{prefix}-{i}"
                body = f"{rid} ".ljust(self.body_chars, "x") if self.body_chars else rid
                await self.send_until_acked(session, to, body, channels, rid)
        finally:
            for ch in channels:
                await ch.close(None)


async def history(address: str, session: str, peer: str) -> list[tuple[int, str]]:
    """The whole conversation (id, body), oldest first, read page by page."""
    out: list[tuple[int, str]] = []
    before = 0
    async with grpc.aio.insecure_channel(address, options=LOCAL_POOL) as ch:
        stub = chat_pb2_grpc.ClientAccountStub(ch)
        for _ in range(10_000):
            r = await stub.GetChat(
                chat_pb2.ChatRequest(
                    session_id=session, username=peer, before_message_id=before, limit=500
                ),
                timeout=10,
            )
            if r.error_code == 17:
                break
            _check(r.error_code == 0, r)
            out[:0] = [(m.message_id, m.message) for m in r.message]
            before = r.message[0].message_id
    return out


async def check_no_loss(address: str, session: str, peer: str, load: Load) -> None:
    """Every acknowledged message is stored exactly once, under the id it was
    acknowledged with; the session still works."""
    stored = await history(address, session, peer)
    bodies = [b for _, b in stored]
    _check(len(bodies) == len(set(bodies)), "a message is stored twice")
    by_body = dict((b, i) for i, b in stored)
    missing = [b for b in load.acked if b not in by_body]
    _check(not missing, f"acknowledged messages lost: {missing[:10]} of {len(missing)}")
    changed = [b for b, i in load.acked.items() if by_body[b] != i]
    _check(not changed, f"acknowledged ids changed: {changed[:10]}")
