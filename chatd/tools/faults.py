"""Real faults for the fault tests and the gray-failure benchmark, as root on
Linux: a small tmpfs to fill, a cgroup CPU quota to starve a process, and
network namespaces on a bridge whose links can be cut (partitions).

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


@dataclass
class Network:
    """Nodes in network namespaces of their own, joined by veth pairs to one
    bridge in this namespace (which can reach every node through it): see
    `network`. Addresses are 10.231.SUBNET.K, the bridge's .254."""

    tag: str
    subnet: int
    size: int

    def ns(self, k: int) -> str:
        return f"{self.tag}n{k}"

    def ip(self, k: int) -> str:
        return f"10.231.{self.subnet}.{k}"

    def veth(self, k: int) -> str:
        return f"{self.tag}v{k}"  # the bridge's end

    def exec_prefix(self, k: int) -> list[str]:
        """Runs a command inside node k's namespace, in place (same pid)."""
        return ["ip", "netns", "exec", self.ns(k)]

    def cut(self, k: int) -> None:
        """Node k loses the network (its own namespace still reaches it)."""
        _ip("link", "set", self.veth(k), "down")

    def heal(self, k: int) -> None:
        _ip("link", "set", self.veth(k), "up")

    def cut_pair(self, a: int, b: int) -> None:
        """a and b no longer reach each other; both still reach the rest (their
        neighbour entries for each other point at a MAC nobody has)."""
        for x, y in ((a, b), (b, a)):
            _ip(
                "netns", "exec", self.ns(x), "ip", "neigh", "replace", self.ip(y),
                "lladdr", "02:00:00:00:0b:ad", "nud", "permanent", "dev", "eth0",
            )  # fmt: skip

    def heal_pair(self, a: int, b: int) -> None:
        for x, y in ((a, b), (b, a)):
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns(x),
                    "ip",
                    "neigh",
                    "del",
                    self.ip(y),
                    "dev",
                    "eth0",
                ],
                capture_output=True,
                timeout=10,
            )


def _ip(*args: str) -> None:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")


@contextlib.contextmanager
def network(size: int) -> Iterator[Network]:
    """`size` network namespaces on one bridge (FAULTS.md's recipe), named
    after this process so that concurrent runs do not meet; all of it deleted
    afterwards (deleting a namespace deletes its end of the veth pair, and
    with it the bridge's end)."""
    need_root()
    if shutil.which("ip") is None:
        raise Unavailable("no ip(8) to make network namespaces")
    pid = os.getpid()
    net = Network(tag=f"c{pid % 100000}", subnet=pid % 200 + 20, size=size)
    bridge = f"{net.tag}br"
    probe = subprocess.run(["ip", "netns", "add", net.ns(0)], capture_output=True, text=True)
    if probe.returncode != 0:
        raise Unavailable(f"cannot make a network namespace: {probe.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", net.ns(0)], capture_output=True)
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{net.ip(254)}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for k in range(1, size + 1):
            _ip("netns", "add", net.ns(k))
            _ip("link", "add", net.veth(k), "type", "veth", "peer", "name", f"{net.tag}p{k}")
            _ip("link", "set", f"{net.tag}p{k}", "netns", net.ns(k))
            _ip("link", "set", net.veth(k), "master", bridge)
            _ip("link", "set", net.veth(k), "up")
            inside = ["netns", "exec", net.ns(k), "ip"]
            _ip(*inside, "link", "set", "lo", "up")
            _ip(*inside, "link", "set", f"{net.tag}p{k}", "name", "eth0")
            _ip(*inside, "addr", "add", f"{net.ip(k)}/24", "dev", "eth0")
            _ip(*inside, "link", "set", "eth0", "up")
        yield net
    finally:
        for k in range(1, size + 1):
            subprocess.run(["ip", "netns", "del", net.ns(k)], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=10)
