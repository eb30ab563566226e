"""One process a data dir: a second `chatd serve` on a dir a node holds
waits a bounded time for it, saying so once, then refuses with one line and
exit status 1, leaving the running node as it was; a restart while the old
process is still stopping waits for it and then starts."""

from __future__ import annotations

import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path

from chatd.server.storage.dirlock import LOCK_FILE, WAIT_S
from tests.conftest import NodeProcess, free_port, wait_serving
from tests.waiting import eventually


def second(tmp_path: Path, name: str, data_dir: Path) -> NodeProcess:
    """Another `chatd serve` on `data_dir`, on ports of its own."""
    port = free_port()
    args = ["serve", "--listen", f"127.0.0.1:{port}", "--peer-listen", f"127.0.0.1:{free_port()}"]
    p = NodeProcess([*args, "--data-dir", str(data_dir)], tmp_path / f"{name}.log").start()
    p.address = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
    return p


def test_a_second_node_on_a_data_dir_in_use_is_refused(
    tmp_path: Path, spawn_node: Callable[..., NodeProcess]
) -> None:
    first = spawn_node("n3", "--node-id", "n3")
    wait_serving(first.address)  # type: ignore[attr-defined]
    lock = tmp_path / "n3" / LOCK_FILE
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    began = time.monotonic()
    other = second(tmp_path, "again", tmp_path / "n3")
    try:
        assert other.proc is not None
        rc = other.proc.wait(timeout=WAIT_S + 30)
    finally:
        other.kill()
    waited = time.monotonic() - began
    assert rc == 1, other.log()
    lines = other.log().strip().splitlines()
    waiting = [line for line in lines if "waiting" in line]
    assert len(waiting) == 1 and f"in use by pid {first.pid}" in waiting[0], lines
    assert lines[-1].startswith("chatd: error: ") and f"pid {first.pid}" in lines[-1], lines
    assert len(lines) == 2, lines  # the wait, said once, and the refusal
    assert waited >= WAIT_S - 1, waited
    # the first node goes on, with its dir and its membership as they were
    assert first.running
    wait_serving(first.address)  # type: ignore[attr-defined]


def test_a_restart_waits_for_the_stopping_node(
    tmp_path: Path, spawn_node: Callable[..., NodeProcess]
) -> None:
    old = spawn_node("n1")
    wait_serving(old.address)  # type: ignore[attr-defined]
    old.kill(signal.SIGSTOP)  # still holding the dir, as while it stops
    try:
        new = second(tmp_path, "restart", tmp_path / "n1")
        try:
            eventually(
                new.log, "'waiting' in its log", until=lambda log: "waiting" in log, timeout=30
            )
            assert "serving" not in new.log()
        finally:
            old.kill(signal.SIGCONT)
        old.kill(signal.SIGTERM)  # (waits for it to exit)
        wait_serving(new.address, timeout=30)  # type: ignore[attr-defined]
        assert new.running
    finally:
        new.kill()
