"""`chatd demo`: a first look. Starts a 3-node cluster on loopback (child
processes, data in a temporary directory), prints the addresses and how to
open a second client, opens the terminal client, and stops the nodes
cleanly on exit."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from chatd import logs
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.tools.localcluster import NodeProcess, free_port

NODES = ("n1", "n2", "n3")
START_TIMEOUT_S = 30.0


def _in_sync(address: str) -> int:
    try:
        with grpc.insecure_channel(address) as ch:
            st = cluster_pb2_grpc.NodeAdminStub(ch).Status(cluster_pb2.StatusRequest(), timeout=1)
    except grpc.RpcError:
        return 0
    return sum(m.in_sync for m in st.members) if st.role == "master" else 0


class DemoCluster:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.addresses = {n: f"127.0.0.1:{free_port()}" for n in NODES}
        self.peers = {n: f"127.0.0.1:{free_port()}" for n in NODES}
        self.webs = {n: f"http://127.0.0.1:{free_port()}" for n in NODES}  # the web client's
        self.procs: dict[str, NodeProcess] = {}

    def start(self) -> None:
        first = self.addresses["n1"]
        # the nodes run on the defaults, not on the caller's CHATD_* settings, and
        # in sessions of their own: the terminal's Ctrl-C reaches the demo, which
        # then stops them
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
        env = logs.grpc_log_env(env)  # (gRPC's log lines go to their logs, not the screen)
        for name, address in self.addresses.items():
            args = ["--role", "master"] if name == "n1" else ["--join", self.peers["n1"]]
            args += ["--web-listen", self.webs[name].removeprefix("http://")]
            self.procs[name] = NodeProcess.serve(
                self.base, name, address, self.peers[name], *args, env=env, new_session=True
            ).start()
            if name == "n1":
                self._wait(lambda: _in_sync(first) >= 1)
        self._wait(lambda: _in_sync(first) == len(NODES))

    def _wait(self, ready: object) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready():  # type: ignore[operator]
                return
            if not all(p.running for p in self.procs.values()):
                break
            time.sleep(0.1)
        raise RuntimeError(f"the demo cluster did not start; see the logs in {self.base}")

    def stop(self) -> None:
        """SIGTERM to every node at once, then waits for each (SIGKILL after 10 s)."""
        procs = [p.proc for p in self.procs.values() if p.proc is not None]
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Stop(Exception):
    """SIGTERM or SIGHUP (the terminal closed): stop as Ctrl-C does."""


def _stop(signum: int, frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def main(args: argparse.Namespace) -> int:
    # Ctrl-C (KeyboardInterrupt), SIGTERM and SIGHUP all end in the `finally`
    # below: the nodes, which run in sessions of their own and so get none
    # of these, are stopped by their PIDs there
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    base = Path(tempfile.mkdtemp(prefix="chatd-demo-"))
    cluster = DemoCluster(base)
    keep = args.keep_data
    try:
        print("starting a 3-node chatd cluster on loopback…", flush=True)
        cluster.start()
        servers = ",".join(cluster.addresses.values())
        print(f"nodes (data and logs in {base}):")
        for name, address in cluster.addresses.items():
            web = cluster.webs[name]
            print(f"  {name}  {address}  web {web}/  pid {cluster.procs[name].pid}")
        print(f"open the web client:  {cluster.webs['n1']}/  (any node's; it fails over)")
        print(f"open a second client:  chatd chat --server {servers}")
        print(f"or the GUI:            chatd gui --server {servers}")
        print("try killing the master (see `chatd status --server ADDRESS`) with kill -9 PID")
        if args.no_client:
            print("running; Ctrl-C stops the nodes", flush=True)
            while True:
                time.sleep(3600)
        print(
            "/quit (or Ctrl-D) leaves the client and stops the nodes; Ctrl-C clears the line",
            flush=True,
        )
        from chatd.client import terminal

        chat = argparse.Namespace(server=servers, user=None, retry_for=30.0)  # (chat's defaults)
        return terminal.main(chat)
    except (KeyboardInterrupt, Stop):
        return 0
    except RuntimeError as exc:
        keep = True  # (the message names the logs)
        print(f"chatd demo: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second one does not cut the clean-up short
        cluster.stop()
        _say("demo nodes stopped")
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            _say(f"data kept in {base}")


def _say(line: str) -> None:
    """A line on stdout, if there still is one (after SIGHUP the terminal is
    gone, and a failed write must not stop the clean-up)."""
    with contextlib.suppress(OSError):
        print(line, flush=True)
