"""`chatd demo` stops as it says: on a pseudo-terminal, as a user runs it,
with real Ctrl-C, SIGTERM and SIGHUP. Whatever ends it, its three nodes
(by their PIDs) are gone and its temporary directory is removed; a start
that fails keeps the logs it names."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.waiting import eventually

START_S = 120  # three nodes on a loaded machine
STOP_S = 40  # SIGTERM to each node, 10 s each at most before SIGKILL


def spawn_demo(*args: str, env: dict[str, str] | None = None) -> pexpect.spawn[str]:
    return pexpect.spawn(
        sys.executable,
        ["-m", "chatd", "demo", *args],
        encoding="utf-8",
        timeout=START_S,
        dimensions=(40, 160),
        env={
            "TERM": "xterm",
            "PROMPT_TOOLKIT_NO_CPR": "1",
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(Path.cwd()),
            **(env or {}),
        },
    )


def alive(pid: int) -> bool:
    """A process `pid` runs (not a zombie) and is a chatd node."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return b"serve" in cmdline and state != "Z"


class Demo:
    def __init__(self, child: pexpect.spawn[str]) -> None:
        self.child = child
        child.expect(r"data and logs in (\S+)\):")
        self.base = Path(child.match.group(1))  # type: ignore[union-attr]
        self.pids: list[int] = []
        for _ in range(3):
            child.expect(r"n\d  127\.0\.0\.1:\d+  web http://127\.0\.0\.1:\d+/  pid (\d+)")
            self.pids.append(int(child.match.group(1)))  # type: ignore[union-attr]
        assert self.base.is_dir() and all(alive(p) for p in self.pids)
        child.expect(r"open the web client:  (http://127\.0\.0\.1:\d+/)")
        self.web = str(child.match.group(1))  # type: ignore[union-attr]
        with urllib.request.urlopen(self.web, timeout=10) as r:  # the page it says to open
            assert r.status == 200 and b'<script type="module"' in r.read()

    def stopped(self) -> str:
        """Waits for the demo to end; what it printed from here on."""
        self.child.expect(pexpect.EOF, timeout=STOP_S)
        said = str(self.child.before)
        self.child.wait()
        assert self.child.exitstatus == 0, (self.child.exitstatus, self.child.signalstatus)
        eventually(
            lambda: [p for p in self.pids if alive(p)],
            "no node left running",
            until=lambda left: not left,
            timeout=5,
            interval=0.1,
        )
        assert not self.base.exists(), f"{self.base} left behind"
        return said

    def clean_up(self) -> None:
        """(a failed test stops what it started, by PID)"""
        for pid in self.pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.child.isalive():
            self.child.kill(signal.SIGKILL)
        remove(self.base)


def remove(base: Path) -> None:
    if re.fullmatch(r"chatd-demo-\w+", base.name):
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def demo(*args: str) -> Iterator[Demo]:
    child = spawn_demo(*args)
    try:
        d = Demo(child)
    except BaseException:
        child.kill(signal.SIGKILL)
        raise
    try:
        yield d
    finally:
        d.clean_up()


def ctrl_c(d: Demo) -> None:
    d.child.sendcontrol("c")  # the terminal's SIGINT, to its foreground process group


def sigterm(d: Demo) -> None:
    d.child.kill(signal.SIGTERM)


def sighup(d: Demo) -> None:
    d.child.kill(signal.SIGHUP)  # as when the terminal closes


@pytest.mark.parametrize("stop", [ctrl_c, sigterm, sighup], ids=["ctrl-c", "sigterm", "sighup"])
def test_no_client_stops_the_nodes(stop: object) -> None:
    with demo("--no-client") as d:
        d.child.expect("running; Ctrl-C stops the nodes")
        stop(d)  # type: ignore[operator]
        said = d.stopped()
        assert "demo nodes stopped" in said
        assert "type /help" not in said  # no client opened


def test_with_the_client_ctrl_c_does_what_the_banner_says() -> None:
    with demo() as d:
        d.child.expect(r"/quit \(or Ctrl-D\) leaves the client and stops the nodes; (.*)\r?\n")
        said = d.child.match.group(1)  # type: ignore[union-attr]
        assert "Ctrl-C clears the line" in said
        d.child.expect("chatd>")
        d.child.send("half a li")
        ctrl_c(d)
        d.child.expect("chatd>")
        time.sleep(1)  # (what is tested: the demo and its nodes go on after Ctrl-C)
        assert d.child.isalive() and all(alive(p) for p in d.pids)
        d.child.sendline("/help")  # the line was cleared: a command runs
        d.child.expect("/quit")
        d.child.sendline("/quit")
        assert "demo nodes stopped" in d.stopped()


@pytest.mark.parametrize("stop", [sigterm, sighup], ids=["sigterm", "sighup"])
def test_with_the_client_a_signal_stops_the_nodes(stop: object) -> None:
    with demo() as d:
        d.child.expect("chatd>")
        stop(d)  # type: ignore[operator]
        d.stopped()


def test_a_failed_start_keeps_the_logs_it_names(tmp_path: Path) -> None:
    """Nodes that exit at once (a start-up error injected in each `chatd
    serve`): the demo says where the logs are, and they are there."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import sys\n"
        "if 'serve' in sys.argv:\n"
        "    sys.exit('chatd: error: injected start-up failure')\n"
    )
    child = spawn_demo("--no-client", env={"PYTHONPATH": f"{inject}:{Path.cwd()}"})
    base: Path | None = None
    try:
        child.expect(r"see the logs in (\S+)")
        base = Path(child.match.group(1).rstrip("\r"))  # type: ignore[union-attr]
        child.expect(pexpect.EOF, timeout=STOP_S)
        child.wait()
        assert child.exitstatus == 1
        logs = sorted(p.name for p in base.glob("*.log"))
        assert logs, f"no logs in {base}"
        assert "injected start-up failure" in (base / logs[0]).read_text()
    finally:
        if child.isalive():
            child.kill(signal.SIGKILL)
        if base is not None:
            remove(base)
