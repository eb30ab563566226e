"""Account administration: a user's ChangePassword (the library), and an
operator's `chatd users ...` asked of a slave in a 3-node cluster behind a
cluster secret; every change replicated (the nodes' state digests agree)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatd.client import AccountDisabled, ChatClient, NoSuchUser, NotLoggedIn, WrongPassword
from chatd.tools.localcluster import PASSWORD, Cluster

SECRET = "operators-only-secret"


def users(
    cluster: Cluster, node: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return cluster.cli("users", *args, "--server", cluster.addresses[node], stdin=stdin)


async def logged_in(addresses: list[str], name: str, password: str = PASSWORD) -> ChatClient:
    c = ChatClient(addresses, retry_for=5.0)
    await c.login(name, password)
    return c


def test_change_password_and_the_operators_commands(tmp_path: Path) -> None:
    cluster = Cluster.start(tmp_path, 3, "--cluster-secret", SECRET)
    try:
        asyncio.run(scenario(cluster))
        cluster.converged()  # every change replicated alike
    finally:
        cluster.stop_all()


async def scenario(cluster: Cluster) -> None:
    addresses = list(cluster.addresses.values())
    slave = next(n for n in cluster.nodes if cluster.status(n)["role"] == "slave")  # type: ignore[index]

    async def operator(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(users, cluster, slave, *args, stdin=stdin)

    c = ChatClient(addresses)
    for name in ("ann", "bob"):
        await c.create_account(name, PASSWORD)
    await c.close()

    # a user's new password: the other sessions end, this one stays
    phone, laptop = await logged_in(addresses, "ann"), await logged_in(addresses, "ann")
    with pytest.raises(WrongPassword):
        await phone.change_password("not the password", "a new password")
    await phone.change_password(PASSWORD, "a new password")
    await phone.unread()
    with pytest.raises(NotLoggedIn):
        await laptop.unread()
    with pytest.raises(WrongPassword):
        await logged_in(addresses, "ann")
    again = await logged_in(addresses, "ann", "a new password")

    # the operator, at a slave
    out = await operator("list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "SESSIONS", "ONLINE", "LAST", "ACTIVE"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["ann", "active", "2"],
        ["bob", "active", "0"],
    ]
    out = await operator("show", "ann", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["username"] == "ann" and shown["sessions"] == 2 and not shown["disabled"]
    assert shown["created"].endswith("UTC") and shown["disabled_since"] == "-"

    out = await operator("disable", "ann")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "disabled ann: logins are refused (2 sessions ended)\n"
    for session in (phone, again):
        with pytest.raises(NotLoggedIn):
            await session.unread()
    with pytest.raises(AccountDisabled):
        await logged_in(addresses, "ann", "a new password")
    with pytest.raises(WrongPassword):  # (said only to one who knows the password)
        await logged_in(addresses, "ann", "a guess at it")
    assert "disabled" in (await operator("list", "an")).stdout
    assert (await operator("enable", "ann")).stdout == "enabled ann\n"
    ann = await logged_in(addresses, "ann", "a new password")

    out = await operator("reset-password", "ann", stdin="reset by the operator\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "set a new password for ann (1 session ended)\n"
    with pytest.raises(NotLoggedIn):
        await ann.unread()
    ann2 = await logged_in(addresses, "ann", "reset by the operator")

    bob = await logged_in(addresses, "bob")
    assert (
        await operator("logout", "bob")
    ).stdout == "logged bob out everywhere (1 session ended)\n"
    with pytest.raises(NotLoggedIn):
        await bob.unread()
    assert (await operator("delete", "bob")).returncode == 0
    with pytest.raises(NoSuchUser):
        await logged_in(addresses, "bob")

    # clear refusals
    out = await operator("disable", "nobody")
    assert out.returncode == 1 and "nobody: no such user" in out.stderr
    out = await operator("reset-password", "ann", stdin="short\n")
    assert out.returncode == 1 and "password" in out.stderr
    no_secret = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "chatd", "users", "list", "--server", cluster.addresses[slave]],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if k != "CHATD_CLUSTER_SECRET"},
    )
    assert no_secret.returncode == 1 and "UNAUTHENTICATED" in no_secret.stderr
    for client in (phone, laptop, again, ann, ann2, bob):
        await client.close()
