"""Failover in the page: three real nodes, ann's page on the master and
bob's on a slave, both sending while the master is SIGKILLed. ann's page
loses its socket and goes to the next web origin of its last hello; bob's
node stays up, ends bob's stream (its master was lost) and bob's page
opens it again there. Both keep chatting: every send is acknowledged, and
every acknowledged message is shown once, in order, on both pages. dan's
page, on the master too, had shown nothing yet (no id to resume after):
a message sent to dan after the kill is shown there once.

And a node that hangs (SIGSTOP) without closing its socket: the page finds
its calls unanswered for the node's --web-answer-timeout (told in its
hello; short here), leaves it for the next origin and chats on."""

from __future__ import annotations

import asyncio
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

import grpc

from chatd.proto import chat_pb2, chat_pb2_grpc
from tests.waiting import eventually_async
from tests.web.conftest import WEB_LOOP, WebCluster
from tests.web.pages import ChatPage

pytestmark = WEB_LOOP

RECORD_STATUS = """() => {
  window.__statuses = [];
  const status = document.getElementById("status");
  new MutationObserver(() => window.__statuses.push(status.textContent))
    .observe(status, { childList: true, characterData: true, subtree: true });
}"""
ANSWER_TIMEOUT_S = 3  # the nodes' --web-answer-timeout here (default 10 s)
PER_PAGE = 12  # messages each page sends
KILL_AFTER = 4  # ...the master dies once each page sent this many, while they send on


async def _sender(page: ChatPage, name: str, started: asyncio.Event) -> None:
    """Sends PER_PAGE messages, one every 0.1 s, without waiting for any."""
    for i in range(PER_PAGE):
        await page.type_and_send(f"{name} {i}")
        if i + 1 == KILL_AFTER:
            started.set()
        await asyncio.sleep(0.1)


async def _all_sent(page: ChatPage) -> list[dict[str, Any]]:
    shown = await page.messages()
    assert not [m for m in shown if m["state"] == "failed"], shown
    return shown


def _acknowledged(shown: list[dict[str, Any]]) -> bool:
    return sum(1 for m in shown if m["from"] == "You" and m["state"] == "sent") == PER_PAGE


async def _send_until_stored(address: str, session: str, to: str, text: str) -> int:
    """Send over gRPC, again with the same request id until stored (bounded)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = chat_pb2_grpc.ClientAccountStub(channel)
        request = chat_pb2.SendRequest(session_id=session, to=to, message=text, request_id="d-1")
        for _ in range(100):
            try:
                r = await stub.Send(request, timeout=2)
            except grpc.aio.AioRpcError:
                r = None
            if r is not None and r.error_code == 0:
                return int(r.message_id)
            await asyncio.sleep(0.2)
    raise AssertionError("the send was never stored")


async def test_both_pages_keep_chatting_through_a_master_kill(
    browser: Any, web_cluster: WebCluster
) -> None:
    web_cluster.start(3)
    origins = web_cluster.origins
    ann = await ChatPage.open(await browser.new_context(), origins["n1"])  # the master's page
    bob = await ChatPage.open(await browser.new_context(), origins["n2"])
    await ann.sign_up("ann")
    await bob.sign_up("bob")
    dan = await ChatPage.open(await browser.new_context(), origins["n1"])
    await dan.sign_up("dan")
    await ann.open_conv("user", "bob")
    await bob.open_conv("user", "ann")
    await dan.open_conv("user", "bob")

    for page in (ann, bob):  # every text the status line shows, from now on
        await page.page.evaluate(RECORD_STATUS)

    started = [asyncio.Event(), asyncio.Event()]
    senders = [
        asyncio.create_task(_sender(ann, "ann", started[0])),
        asyncio.create_task(_sender(bob, "bob", started[1])),
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), timeout=30)
    await asyncio.to_thread(web_cluster.cluster.kill, "n1")
    killed_at = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*senders), timeout=60)
    address = web_cluster.cluster.addresses["n3"]
    to_dan = await _send_until_stored(address, await bob.session_token(), "dan", "for dan")

    # every send acknowledged (none failed, none pending)
    for page, name in ((ann, "ann"), (bob, "bob")):
        await eventually_async(
            partial(_all_sent, page),
            until=_acknowledged,
            what=f"{name}'s {PER_PAGE} sends acknowledged",
            timeout=45,
        )
    print(f"every send acknowledged {time.monotonic() - killed_at:.1f} s after the kill")
    acked = {m["id"] for p in (ann, bob) for m in await p.messages() if m["from"] == "You"}
    assert len(acked) == 2 * PER_PAGE and 0 not in acked

    for page in (ann, bob):  # every acknowledged message shown, once, in order
        shown = await eventually_async(
            page.messages,
            until=lambda shown: {m["id"] for m in shown} >= acked,
            what="every acknowledged message on both pages",
            timeout=30,
        )
        ids = [m["id"] for m in shown]
        assert ids == sorted(set(ids)), ids
        assert set(ids) == acked, (sorted(set(ids) - acked), sorted(acked - set(ids)))
        for name in ("ann", "bob"):  # each sender's messages in the order sent
            mine = [m["text"] for m in shown if m["text"].startswith(name + " ")]
            assert mine == [f"{name} {i}" for i in range(PER_PAGE)], mine
        assert page.errors == [] or all("WebSocket" in e for e in page.errors), page.errors

    # ann's page lost its node, said so, moved to a live node and says so;
    # bob's stayed on its node
    ann_said = await ann.page.evaluate("window.__statuses")
    bob_said = await bob.page.evaluate("window.__statuses")
    print("ann's status line:", ann_said, "bob's:", bob_said)
    assert any(t.startswith("Connection lost — reconnecting to http://") for t in ann_said)
    node = await ann.page.evaluate("document.body.dataset.node")
    assert node in (origins["n2"], origins["n3"]), node
    assert await ann.page.text_content("#status") == f"Connected to {node}"
    assert await bob.page.evaluate("document.body.dataset.node") == origins["n2"]

    await dan.wait_text("for dan")
    assert [(m["id"], m["text"]) for m in await dan.messages()] == [(to_dan, "for dan")]
    assert await dan.page.evaluate("document.body.dataset.node") != origins["n1"]


async def test_a_hung_node_is_left_for_the_next(
    browser: Any, web_cluster: WebCluster, artifacts: Path
) -> None:
    web_cluster.start(3, "--web-answer-timeout", f"{ANSWER_TIMEOUT_S}s")
    origins = web_cluster.origins
    ann = await ChatPage.open(await browser.new_context(), origins["n1"])
    bob = await ChatPage.open(await browser.new_context(), origins["n3"])  # a slave's page
    await ann.sign_up("ann")
    await bob.sign_up("bob")
    await bob.open_conv("user", "ann")
    await bob.type_and_send("before")
    await bob.wait_text("before", "sent")

    await bob.page.evaluate(RECORD_STATUS)
    web_cluster.cluster.nodes["n3"].kill(signal.SIGSTOP)  # its socket stays, silent
    started = time.monotonic()
    await bob.type_and_send("while n3 hangs")
    await bob.wait_text("while n3 hangs", "pending")
    await bob.page.screenshot(path=str(artifacts / "desktop-pending.png"))
    print(f"screenshot: {artifacts / 'desktop-pending.png'}")
    # (the page waits the node's answer timeout, not its own default of 10 s)
    await bob.wait_text("while n3 hangs", "sent", timeout_ms=9000)
    waited = time.monotonic() - started
    print(f"sent through another node {waited:.1f} s after n3 hung")
    assert waited >= ANSWER_TIMEOUT_S, waited
    node = await bob.page.evaluate("document.body.dataset.node")
    assert node in (origins["n1"], origins["n2"]), node
    said = await bob.page.evaluate("window.__statuses")
    assert said[0] == f"Waiting for {origins['n3']} to answer…", said
    assert f"Connection lost — reconnecting to {node}" in said, said
    await ann.open_conv("user", "bob")
    await ann.wait_text("while n3 hangs")
    assert [m["text"] for m in await ann.messages()] == ["before", "while n3 hangs"]
