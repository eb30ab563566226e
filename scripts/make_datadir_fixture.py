"""Makes a data-dir fixture with the chatd of a given commit, for the upgrade
tests (tests/test_upgrade.py): a node of that commit's code holds the data
of a few users, and stops; its store and a manifest of what it holds go to
tests/fixtures/datadirs/COMMIT/.

    python3 scripts/make_datadir_fixture.py COMMIT

The commit's tree is taken with `git archive` (the working tree is not
touched) and run from a temporary directory with the Python packages
installed here; the data goes in through the client API, which every chatd
since the first speaks, with this checkout's client library. Run it for
4e557bd (the oldest store a node must open) and for every release.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatd.client import ChatClient  # noqa: E402

PASSWORD = "fixture password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def extract(commit: str, into: Path) -> str:
    full = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", commit], capture_output=True, text=True, check=True
    ).stdout.strip()
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", full], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        t.extractall(into, filter="data")
    return full


async def fill(address: str) -> dict[str, object]:
    """What the fixture holds, written through the client API."""
    clients = {}
    for name in ("alice", "bob", "carol"):
        c = ChatClient([address], streams=False, retry_for=10.0)
        await c.create_account(name, PASSWORD)
        await c.login(name, PASSWORD)
        clients[name] = c
    sent = []
    for i in range(12):
        sender, to = ("alice", "bob") if i % 3 else ("bob", "alice")
        mid = await clients[sender].send(to, f"message {i} from {sender}")
        sent.append({"id": mid, "from": sender, "to": to, "body": f"message {i} from {sender}"})
    await clients["carol"].send("alice", "carol was here")
    taken = [m.id for m in await clients["bob"].get_messages()]  # bob read his: delivered
    await clients["carol"].delete_account()
    for c in clients.values():
        await c.close()
    return {
        "users": ["alice", "bob"],
        "password": PASSWORD,
        "messages": sent,
        "delivered_to_bob": taken,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("commit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatd-fixture-") as tmp:
        code, data = Path(tmp) / "code", Path(tmp) / "data"
        commit = extract(args.commit, code)
        port = free_port()
        address = f"127.0.0.1:{port}"
        env = dict(os.environ, PYTHONPATH=str(code))
        node = subprocess.Popen(
            [
                sys.executable, "-m", "chatd", "serve", "--role", "master",
                "--node-id", "fixture", "--listen", address, "--data-dir", str(data),
                "--password-hash-cost", "8",
            ],
            env=env,
            cwd=tmp,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    manifest = asyncio.run(fill(address))
                    break
                except Exception:
                    if time.monotonic() > deadline or node.poll() is not None:
                        raise
                    time.sleep(0.2)
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=30)
        out = ROOT / "tests" / "fixtures" / "datadirs" / commit[:7]
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / "chatd.sqlite3", out / "chatd.sqlite3")
        manifest["commit"] = commit
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
