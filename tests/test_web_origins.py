"""Every node knows the members' web origins (--web-listen, --web-advertise):
a slave tells its master its own in its periodic report, the master answers
with its table of them, and `chatd status` shows them. The table itself
(own origin first, members only, junk refused, a slave's replaced by its
master's); then three nodes in this process (`Node.web_origins_now`, a
member removed), and three `chatd serve` processes (`chatd status --json`)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.proto import cluster_pb2
from chatd.server.cluster import wire
from chatd.server.cluster.web_origins import WebOrigins
from chatd.server.node import Node
from chatd.tools.admin import format_status
from chatd.tools.localcluster import free_port
from tests.cluster import Cluster
from tests.server_fixtures import three_nodes
from tests.waiting import eventually, eventually_async

pytestmark = pytest.mark.timeout(120)

A, B, C = "http://127.0.0.1:8081", "http://127.0.0.1:8082", "https://chat3.example.com"


# -- the table --


def test_a_nodes_own_origin_comes_first_then_the_members_known() -> None:
    w = WebOrigins("n2", B)
    w.told("n3", C)
    w.told("n1", A)
    assert w.origins(["n1", "n2", "n3"]) == [B, A, C]
    assert w.table(["n1", "n2", "n3"]) == [("n1", A), ("n2", B), ("n3", C)]
    assert (w.of("n1"), w.of("n2"), w.of("n4")) == (A, B, "")


def test_a_node_without_a_page_names_the_others_only() -> None:
    w = WebOrigins("n1", "")
    w.told("n2", B)
    assert w.origins(["n1", "n2", "n3"]) == [B]
    assert w.table(["n1", "n2"]) == [("n2", B)]


def test_a_node_no_longer_a_member_is_not_named() -> None:
    w = WebOrigins("n1", A)
    w.told("n2", B)
    w.told("n3", C)
    assert w.origins(["n1", "n3"]) == [A, C]
    assert w.table(["n1", "n3"]) == [("n1", A), ("n3", C)]


def test_an_origin_is_named_once_and_an_empty_report_forgets() -> None:
    w = WebOrigins("n1", A)
    w.told("n2", A)  # (two nodes behind one proxy)
    w.told("n3", C)
    assert w.origins(["n1", "n2", "n3"]) == [A, C]
    w.told("n3", "")  # restarted without --web-listen
    assert w.origins(["n1", "n2", "n3"]) == [A]
    w.told("n1", B)  # (its own is its own flag's)
    assert w.of("n1") == A


def test_junk_is_refused_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    w = WebOrigins("n1", A)
    w.told("n2", B)
    junk = ["javascript:alert(1)", "http://x/<script>", "ftp://h:21", "http://h:99999", "x" * 400]
    with caplog.at_level(logging.WARNING, logger="chatd.server.cluster.web_origins"):
        for value in junk:
            w.told("n2", value)
            w.told("n2", value)  # (again: not said again)
    assert w.origins(["n1", "n2"]) == [A, B]  # what it knew stays
    said = [r for r in caplog.records if "ignored the web origin" in r.getMessage()]
    assert len(said) == len(junk)
    assert all(len(r.getMessage()) < 300 for r in said)  # (a long value is cut short)


def test_an_origin_is_kept_as_browsers_send_it() -> None:
    w = WebOrigins("n1", "")
    w.told("n2", "HTTP://Chat2.Example.com:443/")
    w.told("n3", "https://chat3.example.com:443")
    assert w.origins(["n2", "n3"]) == ["http://chat2.example.com:443", C]


def test_a_slave_takes_its_masters_table_in_place_of_its_own() -> None:
    w = WebOrigins("n2", B)
    w.learned([("n1", A), ("n2", "http://elsewhere:1"), ("n3", C)])
    assert w.origins(["n1", "n2", "n3"]) == [B, A, C]  # its own stays its own
    w.learned([("n1", A), ("n4", "http://n4:4")])
    assert w.origins(["n1", "n2", "n3", "n4"]) == [B, A, "http://n4:4"]
    w.learned([("n1", "not an origin"), ("bad id!", "http://x:1"), ("n3", C)])
    assert w.origins(["n1", "n2", "n3", "bad id!"]) == [B, C]


# -- three nodes in this process --


@pytest.fixture
async def trio(tmp_path: Path) -> AsyncIterator[list[Node]]:
    """n1 the master, n2 and n3 its slaves, each with its own --web-listen."""
    async with three_nodes(tmp_path, web=True) as nodes:
        yield nodes  # (a test that stops one takes it out of the list)


def names_after_its_own(others: list[str], got: list[str]) -> bool:
    return sorted(got[1:]) == others


async def test_every_node_names_every_members_origin_its_own_first(trio: list[Node]) -> None:
    own = [n.config.web_origin for n in trio]
    assert len(set(own)) == 3 and all(o.startswith("http://127.0.0.1:") for o in own)

    for node, mine in zip(trio, own, strict=True):
        others = sorted(set(own) - {mine})
        got = await eventually_async(
            node.web_origins_now,
            f"{node.node_id} to name the three origins",
            until=functools.partial(names_after_its_own, others),
            timeout=15,
        )
        assert got[0] == mine, got  # its own first

    # a member removed is named no more, by the master or by the slave left
    master, slave, gone = trio
    trio.remove(gone)
    await gone.stop()
    removed = False
    for _ in range(100):  # (bounded: a membership change may be under way)
        if removed := master.repl.remove_member("n3"):
            break
        await asyncio.sleep(0.1)
    assert removed
    for node in (master, slave):
        await eventually_async(
            node.web_origins_now,
            f"{node.node_id} to name n1's and n2's origins only",
            until=lambda got: sorted(got) == sorted(own[:2]),
            timeout=15,
        )


async def test_a_junk_origin_costs_the_report_nothing_and_reaches_no_page(
    trio: list[Node],
) -> None:
    master = trio[0]
    own = [n.config.web_origin for n in trio]
    await eventually_async(
        master.web_origins_now,
        "the master to know the three origins",
        until=lambda got: sorted(got) == sorted(own),
        timeout=15,
    )
    index = master.store.last_index
    digests = master.store.digests_at(index)
    assert digests is not None
    for junk in ("javascript:alert(1)", "http://x/<script>", "http://x:1/" + "a" * 300):
        report = cluster_pb2.DigestReport(
            node_id="n2",
            epoch=master.repl.epoch,
            index=index,
            log_digest=digests[0],
            state_digest=digests[1],
            web_origin=junk,
        )
        ack = master.digests.receive(wire.digest_report_from(report))
        assert ack.compared and ack.agrees  # the digests were compared as ever
        table = {w.node_id: w.origin for w in ack.web_origins}
        assert table == {"n1": own[0], "n2": own[1], "n3": own[2]}  # n2's as it was
        assert junk not in master.web_origins_now()


# -- three processes, `chatd status` --


def test_status_shows_every_members_web_origin(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    webs = {n: f"127.0.0.1:{free_port()}" for n in ("n1", "n2", "n3")}
    origins = {n: f"http://{w}" for n, w in webs.items()}
    timing = ("--heartbeat-interval", "100ms", "--failover-timeout", "500ms")
    try:
        c.add("n1", *timing, "--web-listen", webs["n1"])
        c.wait_role("n1", "master")
        for name in ("n2", "n3"):
            c.add(name, *timing, "--web-listen", webs[name], join=c.peers["n1"])
        c.wait(lambda: c.in_sync_count() == 3, what="3 nodes in sync", timeout=40)

        def members_origins(name: str) -> dict[str, str]:
            doc = c.cli_status(name)  # `chatd status --server ADDRESS --json`
            assert doc["web_origin"] == origins[name]
            members = doc["members"]
            assert isinstance(members, list)
            return {m["node_id"]: m["web_origin"] for m in members}

        for name in ("n1", "n2", "n3"):
            eventually(
                functools.partial(members_origins, name),
                f"{name}'s status to show the three web origins",
                until=lambda got: got == origins,
                timeout=15,
                interval=0.3,
            )

        text = c.cli("status", "--server", c.addresses["n3"])
        assert text.returncode == 0, text.stderr
        assert f", web at {origins['n3']}" in text.stdout.splitlines()[0]
        assert "WEB ORIGIN" in text.stdout
        assert all(o in text.stdout for o in origins.values())
    finally:
        c.stop_all()


def test_status_text_has_no_web_column_when_no_member_has_a_page() -> None:
    member = {
        "node_id": "n1",
        "address": "127.0.0.1:1",
        "role": "master",
        "in_sync": True,
        "alive": True,
        "applied_index": 3,
        "lag": 0,
        "min_in_sync": 1,
        "web_origin": "",
    }
    doc: dict[str, object] = {
        "node_id": "n1",
        "role": "master",
        "address": "127.0.0.1:2",
        "web_origin": "",
        "epoch": 1,
        "master_id": "n1",
        "applied_index": 3,
        "commit_index": 3,
        "log_digest": "00",
        "state_digest": "00",
        "diverged": [],
        "members_seen_by": "n1",
        "members": [member],
    }
    text = format_status(doc)
    assert "WEB" not in text and "web at" not in text
    member["web_origin"] = A
    assert "WEB ORIGIN" in format_status(doc) and A in format_status(doc)
