"""Under the usual umask (022) no other local account reads a node's data:
its data dir is 0700 and its store, write-ahead log and every other file in
it 0600; `chatd backup` and `chatd export` write 0600 too; a data dir left
open to others is made private at start, in one WARNING line. All of it with
real nodes and commands, each run under umask 022."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

from chatd.client import ChatClient
from chatd.tools.localcluster import NodeProcess, free_port
from tests.cluster import Cluster
from tests.conftest import PASSWORD, TEST_HASH_COST

SECRET = "private-files-test-secret"
UMASK_022 = ["sh", "-c", 'umask 022 && exec "$@"', "sh"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def modes(data_dir: Path) -> dict[str, str]:
    """The data dir's mode and each of its files', as `stat -c %a` says them."""
    paths = [data_dir, *sorted(data_dir.iterdir())]
    return {p.name: f"{mode(p):o}" for p in paths}


def serve(c: Cluster, name: str, *more: str, join: str | None = None) -> None:
    address, peer = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    extra = ["--cluster-secret", SECRET, "--password-hash-cost", str(TEST_HASH_COST), *more]
    if join is not None:
        extra += ["--join", join]
    proc = NodeProcess.serve(c.base, name, address, peer, *extra)
    proc.prefix = UMASK_022
    c.nodes[name], c.addresses[name], c.peers[name] = proc.start(), address, peer


def chatd(*args: str, stdout: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`chatd ARGS` under umask 022 (its output to `stdout`, as `> FILE` does)."""
    command = [*UMASK_022, sys.executable, "-m", "chatd", *args]
    if stdout is not None:  # the shell makes the file, under the umask
        command = ["sh", "-c", 'umask 022 && exec "$@" > "$0"']
        command += [str(stdout), sys.executable, "-m", "chatd", *args]
    env = dict(os.environ, CHATD_CLUSTER_SECRET=SECRET)
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


async def write(address: str, notes: int = 1) -> None:
    c = ChatClient([address])
    try:
        await c.create_account("alice", PASSWORD)
        await c.login("alice", PASSWORD)
        for i in range(notes):
            await c.send("alice", f"a private note {i}")
    finally:
        await c.close()


def test_node_files_backups_and_exports_are_private_under_umask_022(tmp_path: Path) -> None:
    c = Cluster(tmp_path, SECRET)
    try:
        serve(c, "n1", "--log-retention", "100")
        c.wait_role("n1", "master")
        asyncio.run(write(c.addresses["n1"], 150))
        # the master keeps 100 entries of its log: n2 gets a snapshot
        c.wait(lambda: "log truncated" in c.nodes["n1"].log(), "n1 to truncate its log")
        serve(c, "n2", join=c.peers["n1"])
        c.wait(lambda: c.in_sync_count() == 2, "2 nodes in sync")
        c.converged()
        assert "installed a snapshot" in c.nodes["n2"].log()
        for name in ("n1", "n2"):
            found = modes(tmp_path / name)
            print(f"under umask 022: {name}: {found}")
            assert found.pop(name) == "700", found
            assert "chatd.sqlite3" in found and "chatd.sqlite3-wal" in found, found
            assert set(found.values()) == {"600"}, found

        backup = tmp_path / "backup.sqlite3"
        out = chatd("backup", "--server", c.addresses["n2"], str(backup))
        assert out.returncode == 0, out.stderr
        print(f"chatd backup under umask 022: {mode(backup):o} {backup}")
        assert mode(backup) == 0o600
        taken = backup.read_bytes()

        # an existing FILE is not overwritten without --force, and says so
        again = chatd("backup", "--server", c.addresses["n2"], str(backup))
        assert again.returncode == 1
        assert again.stderr.strip() == (
            f"chatd backup: {backup} exists: name another FILE, or add --force to replace it"
        )
        assert backup.read_bytes() == taken
        inode = backup.stat().st_ino
        forced = chatd("backup", "--force", "--server", c.addresses["n2"], str(backup))
        assert forced.returncode == 0, forced.stderr
        assert backup.stat().st_ino != inode and mode(backup) == 0o600
        assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []

        export = tmp_path / "alice.jsonl"
        out = chatd("export", "--user", "alice", "--backup", str(backup), stdout=export)
        assert out.returncode == 0, out.stderr
        assert "a private note" in export.read_text()
        print(f"chatd export > FILE under umask 022: {mode(export):o} {export}")
        assert mode(export) == 0o600
    finally:
        c.stop_all()


def test_a_data_dir_open_to_others_is_made_private_at_start(tmp_path: Path) -> None:
    """As an older chatd left it: 0755 and 0644 (it warns, once, and fixes)."""
    c = Cluster(tmp_path, SECRET)
    data = tmp_path / "n1"
    try:
        serve(c, "n1")
        c.wait_role("n1", "master")
        asyncio.run(write(c.addresses["n1"]))
        c.kill("n1")
        data.chmod(0o755)
        for f in data.iterdir():
            f.chmod(0o644)
        before = len(c.nodes["n1"].log().splitlines())
        c.restart("n1")
        c.wait_role("n1", "master")
        found = modes(data)
        assert found.pop("n1") == "700" and set(found.values()) == {"600"}, found
        warnings = [
            line
            for line in c.nodes["n1"].log().splitlines()[before:]
            if " WARNING " in line and "open to other local users" in line
        ]
        assert len(warnings) == 1, warnings
        assert f"{data} (0755)" in warnings[0] and f"{data / 'chatd.sqlite3'} (0644)" in warnings[0]
    finally:
        c.stop_all()
