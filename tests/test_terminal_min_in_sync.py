"""A master that refuses writes under --min-in-sync, seen from the terminal
client (`chatd chat` on a pseudo-terminal, pexpect) on a real 3-node
cluster with --min-in-sync 2 and both slaves killed: the node answers, so
the client says nothing of a lost connection; a line typed meanwhile is
written once a slave is back; a login it refuses for the whole retry time
shows the node's own reason, not "no node answers" (the retry time is the
client's --retry-for, short here). A slave passes on its master's refusal."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from chatd.client import ChatClient, ConnectionEvent, RefusedForNow
from chatd.tools.localcluster import Cluster, free_port
from tests.conftest import PASSWORD
from tests.test_min_in_sync import cluster
from tests.test_terminal import run
from tests.waiting import eventually_async

pytestmark = pytest.mark.timeout(240)

RETRY_FOR = 6.0  # the terminal's --retry-for: a refused login fails after it

REFUSAL = (
    r"only 1 copy is in sync \(n1\), fewer than the 2 that --min-in-sync asks for: "
    r"writes are refused until a slave is back in sync"
)


def refusing(c: Cluster) -> bool:
    doc = c.status("n1")
    return doc is not None and bool(doc["writes_refused"])


def test_a_refusing_master_is_no_lost_connection(
    tmp_path: Path, chat_process: Callable[..., pexpect.spawn[str]]
) -> None:
    c = cluster(tmp_path, 2, free_port())
    try:
        master = c.addresses["n1"]

        async def accounts() -> None:
            async with ChatClient([master]) as client:
                for name in ("alice", "bob", "carol"):
                    await client.create_account(name, PASSWORD)

        run(accounts())
        child = chat_process("--server", master, "--user", "alice", "--retry-for", str(RETRY_FOR))
        child.timeout = 60
        shown = io.StringIO()
        child.logfile_read = shown
        child.expect("password:")
        child.sendline(PASSWORD)
        child.expect("logged in as alice")
        child.sendline("/chat bob")
        child.expect("alice → bob>")
        c.kill("n2")
        c.kill("n3")
        c.wait(lambda: refusing(c), what="writes refused", timeout=30)
        # a line typed while writes are refused waits, and goes once n2 is back
        child.sendline("typed while refused")
        child.expect("alice → bob>")
        c.restart("n2")

        async def bob_reads() -> list[str]:
            async with ChatClient([master], retry_for=60) as bob:
                await bob.login("bob", PASSWORD)
                got = await eventually_async(
                    bob.get_messages, "bob's message", timeout=20, interval=0.1
                )
                return [m.body for m in got]

        assert run(bob_reads()) == ["typed while refused"]
        c.wait(lambda: not refusing(c), what="writes taken again", timeout=30)
        c.kill("n2")
        c.wait(lambda: refusing(c), what="writes refused again", timeout=30)
        # a login refused for the whole retry time (--retry-for): the node's reason
        child.sendline("/login carol")
        child.expect("password:")
        child.sendline(PASSWORD)
        asked = time.monotonic()
        child.expect(REFUSAL, timeout=RETRY_FOR + 30)
        assert time.monotonic() - asked >= RETRY_FOR - 1  # (tried all that time)
        child.expect("alice → bob>")  # alice's session goes on
        child.sendline("/quit")
        child.expect(pexpect.EOF)
        text = shown.getvalue()
        assert not re.search("lost|reconnect|no chatd node answers|no node answered", text), text
        assert "not delivered" not in text and "UNAVAILABLE" not in text
    finally:
        c.stop_all()


async def test_a_slave_passes_on_its_masters_refusal(tmp_path: Path) -> None:
    """--min-in-sync 3 with n3 killed, a client of n2 only (a slave, which
    relays): its login, and a send on its Connect stream, end with the
    master's reason as RefusedForNow after retry_for; no connection event
    says n2 or the master was lost; the stream's deliveries go on."""
    c = await asyncio.to_thread(cluster, tmp_path, 3, free_port())
    try:
        slave = c.addresses["n2"]
        events: list[ConnectionEvent] = []
        async with ChatClient([c.addresses["n1"]]) as setup:
            for name in ("alice", "bob"):
                await setup.create_account(name, PASSWORD)
        alice = ChatClient([slave], retry_for=3, on_connection=events.append)
        await alice.login("alice", PASSWORD)
        got: list[str] = []

        async def read() -> None:
            async for m in alice.inbox():
                got.append(m.body)

        reader = asyncio.create_task(read())
        try:
            c.kill("n3")
            await asyncio.to_thread(c.wait, lambda: refusing(c), what="writes refused", timeout=30)
            reason = "only 2 copies are in sync (n1, n2), fewer than the 3 that --min-in-sync"
            with pytest.raises(RefusedForNow, match=re.escape(reason)):
                await alice.send("bob", "refused")
            other = ChatClient([slave], retry_for=3, on_connection=events.append)
            with pytest.raises(RefusedForNow, match=re.escape(reason)):
                await other.login("bob", PASSWORD)
            await other.close()
            assert [e for e in events if e.state != "connected"] == []
            assert not reader.done()  # the deliveries go on
            await asyncio.to_thread(c.restart, "n3")
            await asyncio.to_thread(c.wait, lambda: not refusing(c), what="writes", timeout=40)
            async with ChatClient([c.addresses["n1"]], retry_for=30) as bob:
                await bob.login("bob", PASSWORD)
                await bob.send("alice", "after n3 came back")
            await eventually_async(
                lambda: got, "alice's message", until=lambda g: g == ["after n3 came back"]
            )
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await alice.close()
    finally:
        c.stop_all()
