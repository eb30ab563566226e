"""Real faults for the fault tests and the gray-failure benchmark, as root on
Linux: a small tmpfs to fill, a cgroup CPU quota to starve a process.

Each is a context manager that removes what it made, also on an error
(umount; the processes moved back and the cgroup removed). Where the
mechanism is missing (not root, no tmpfs mount, no cgroup cpu controller) it
raises `Unavailable` with the reason before changing anything, for the
caller to skip or stop. Pausing a process needs nothing: `NodeProcess.kill`
with SIGSTOP and SIGCONT.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class Unavailable(Exception):
    """This machine (or this user) cannot inject the fault; says why."""


def need_root() -> None:
    if os.geteuid() != 0:
        raise Unavailable(f"needs root to inject this fault (running as uid {os.geteuid()})")


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount(8) syntax: "4m") mounted on `directory`, made
    if missing; unmounted afterwards, lazily if something still holds it."""
    need_root()
    if shutil.which("mount") is None:
        raise Unavailable("no mount(8) to make a tmpfs")
    directory.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if out.returncode != 0:
        raise Unavailable(f"cannot mount a tmpfs on {directory}: {out.stderr.strip()}")
    try:
        yield directory
    finally:
        for _ in range(20):  # bounded: 2 s for the last holder to let go
            if subprocess.run(["umount", str(directory)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def resize(directory: Path, size: str) -> None:
    """Grows (or shrinks) the tmpfs on `directory`: the operator's fix."""
    out = subprocess.run(
        ["mount", "-o", f"remount,size={size}", str(directory)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if out.returncode != 0:
        raise RuntimeError(f"cannot resize the tmpfs on {directory}: {out.stderr.strip()}")


@dataclass
class CpuGroup:
    """A cgroup with a CPU quota: v1 `cpu.cfs_quota_us`, v2 `cpu.max`."""

    path: Path
    v2: bool
    period_us: int = 100_000

    def limit(self, percent: float) -> None:
        """At most `percent` of one core, per period (100 ms)."""
        quota = max(1000, int(self.period_us * percent / 100))
        if self.v2:
            (self.path / "cpu.max").write_text(f"{quota} {self.period_us}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(self.period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))

    def add(self, pid: int) -> None:
        """The whole process, every thread (cgroup.procs)."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def release(self) -> None:
        """Every process back to the parent group: no quota any more."""
        for _ in range(20):  # bounded: a process may fork meanwhile
            pids = (self.path / "cgroup.procs").read_text().split()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(OSError):  # it exited meanwhile
                    (self.path.parent / "cgroup.procs").write_text(pid)


def cpu_hierarchy() -> tuple[Path, bool] | None:
    """Where the cgroup cpu controller is mounted, and whether it is v2."""
    v2: Path | None = None
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mnt, fstype, opts, *_ = line.split()
        if fstype == "cgroup" and "cpu" in opts.split(","):
            return Path(mnt), False
        if fstype == "cgroup2" and v2 is None:
            controllers = Path(mnt) / "cgroup.controllers"
            if controllers.exists() and "cpu" in controllers.read_text().split():
                v2 = Path(mnt)
    return (v2, True) if v2 else None


@contextlib.contextmanager
def cpu_group(name: str) -> Iterator[CpuGroup]:
    """A fresh cgroup `name` at the top of the cpu hierarchy (no quota until
    `limit`); afterwards its processes go back to the top and it is removed."""
    need_root()
    found = cpu_hierarchy()
    if found is None:
        raise Unavailable("no cgroup cpu controller (neither a v1 cpu hierarchy nor v2 with cpu)")
    root, v2 = found
    if v2:
        try:
            (root / "cgroup.subtree_control").write_text("+cpu")
        except OSError as exc:
            raise Unavailable(
                f"cannot enable the cgroup v2 cpu controller in {root}: {exc}"
            ) from exc
    path = root / name
    try:
        path.mkdir()
    except OSError as exc:
        raise Unavailable(f"cannot make cgroup {path}: {exc}") from exc
    group = CpuGroup(path, v2)
    try:
        quota = path / ("cpu.max" if v2 else "cpu.cfs_quota_us")
        if not quota.exists():
            raise Unavailable(f"{path} has no {quota.name}: no CPU quotas here")
        yield group
    finally:
        group.release()
        for _ in range(20):  # bounded: the last process may still be leaving
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)
