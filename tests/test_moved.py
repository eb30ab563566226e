"""A node that comes back on another address, as a container does on every
restart (a new IP under the same name): the others dial it where it is now
and it serves again within seconds, a slave or an old master, named by its
address or by a DNS name.

The DNS name lives in a hosts file of the test's own, which each node sees
as /etc/hosts in a mount namespace of its own (root, or a kernel that lets
`unshare` make one: else the DNS cases skip, saying why)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chatd.tools.localcluster import TEST_HASH_COST, NodeProcess, free_port
from tests.cluster import Cluster

SECRET = "moved-test-secret"
# A container's name was looked up again only every 30 s (gRPC's default):
# a restarted one went unreached for 25-45 s. Within this it must serve.
SERVES_AGAIN_WITHIN_S = 10.0
ON_HOSTS_FILE = 'mount --bind "$0" /etc/hosts && exec "$@"'


class Hosts:
    """A hosts file that the nodes started with `prefix` see as /etc/hosts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names: dict[str, str] = {}
        self._write()

    @property
    def prefix(self) -> list[str]:
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", ON_HOSTS_FILE]

    def why_not(self) -> str | None:
        """Why the nodes cannot have a hosts file of their own, if not."""
        try:
            r = subprocess.run(
                [*self.prefix, str(self.path), "true"], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unshare: {exc}"
        return None if r.returncode == 0 else f"no mount namespace: {r.stderr.strip()}"

    def set(self, name: str, ip: str) -> None:
        self.names[name] = ip
        self._write()

    def _write(self) -> None:
        lines = ["127.0.0.1 localhost", *(f"{ip} {n}" for n, ip in self.names.items())]
        # in place: the nodes' bind mounts hold this very file (inode)
        with self.path.open("a+") as f:
            f.seek(0)
            f.truncate()
            f.write("\n".join(lines) + "\n")


@dataclass
class MovingCluster(Cluster):
    """Nodes on loopback addresses of their own, keeping their ports
    wherever they move; with a hosts file each advertises NAME.test."""

    hosts: Hosts | None = None
    ports: dict[str, tuple[int, int]] = field(default_factory=dict)  # client, peer
    ips: dict[str, str] = field(default_factory=dict)

    def serve(self, name: str, ip: str, join: str | None = None) -> None:
        client, peer = self.ports.setdefault(name, (free_port(), free_port()))
        self.ips[name] = ip
        extra = ["--cluster-secret", SECRET, "--password-hash-cost", str(TEST_HASH_COST)]
        host = ip
        if self.hosts is not None:
            host = f"{name}.test"
            self.hosts.set(host, ip)
            extra += ["--advertise", f"{host}:{client}", "--peer-advertise", f"{host}:{peer}"]
        if join is not None:
            extra += ["--join", join]
        proc = NodeProcess.serve(self.base, name, f"{ip}:{client}", f"{ip}:{peer}", *extra)
        if self.hosts is not None:
            proc.prefix = [*self.hosts.prefix, str(self.hosts.path)]
        self.nodes[name] = proc.start()
        # (this process reaches the nodes at their IPs: it has no hosts file)
        self.addresses[name] = f"{ip}:{client}"
        self.peers[name] = f"{ip}:{peer}"

    def seed(self, name: str) -> str:
        """Where a joining node finds `name`: its peer address as it says it."""
        host = f"{name}.test" if self.hosts is not None else self.ips[name]
        return f"{host}:{self.ports[name][1]}"

    def healthy(self, name: str) -> bool:
        out = self.cli("health", "--server", self.addresses[name], "--timeout", "1")
        return out.returncode == 0 and out.stdout.strip() == "SERVING"

    def serves_in_sync(self, name: str) -> bool:
        master = self.master()
        s = self.status(master) if master is not None else None
        return s is not None and name in s["in_sync"] and self.healthy(name)  # type: ignore[operator]


@pytest.mark.parametrize("named", ["by-address", "by-dns-name"])
@pytest.mark.parametrize("who", ["slave", "master"])
def test_a_node_back_on_another_address_serves_within_seconds(
    tmp_path: Path, who: str, named: str
) -> None:
    hosts = Hosts(tmp_path / "hosts") if named == "by-dns-name" else None
    c = MovingCluster(tmp_path, SECRET, hosts=hosts)
    if hosts is not None and (why := hosts.why_not()) is not None:
        print(f"SKIP: nodes named by DNS need a hosts file of their own: {why}")
        pytest.skip(f"nodes named by DNS need a hosts file of their own: {why}")
    try:
        c.serve("n1", "127.0.0.11")
        c.wait_role("n1", "master")
        c.serve("n2", "127.0.0.12", join=c.seed("n1"))
        c.serve("n3", "127.0.0.13", join=c.seed("n1"))
        c.wait(lambda: c.in_sync_count() == 3, "3 nodes in sync")
        moving = "n1" if who == "master" else "n3"
        c.kill(moving)
        if who == "master":
            c.wait(lambda: c.master() in ("n2", "n3"), "a new master")
        else:
            c.wait(lambda: c.in_sync_count() == 2, "n3 out of the in-sync set")
        new_ip = c.ips[moving].replace("127.0.0.1", "127.0.0.2")  # 127.0.0.2x
        started = time.monotonic()
        c.serve(moving, new_ip)  # its data dir, node id and ports; another IP
        c.wait(
            lambda: c.serves_in_sync(moving),
            f"{moving}, back on {new_ip}, to serve in sync",
            timeout=SERVES_AGAIN_WITHIN_S,
        )
        took = time.monotonic() - started
        print(f"{who} {moving} back on {new_ip} ({named}): serving in sync after {took:.2f} s")
        if who == "master":  # it came back as a slave of the new master
            assert c.master() not in (None, moving)
        status = c.cli_status(moving)  # `chatd status --json`, as an operator sees it
        (me,) = [m for m in status["members"] if m["node_id"] == moving]  # type: ignore[attr-defined]
        assert me["in_sync"] and me["alive"], status
        if c.hosts is None:  # the membership holds where it is now
            assert me["address"] == c.peers[moving], status
    finally:
        c.stop_all()
