"""The page's account and conversation details against a real node:
changing the password, a refused send shown as such, history paged back
with "Load earlier messages", and a notification for a message that comes
while the tab is hidden (permission asked on a click, never on load)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest_asyncio

from chatd.proto import chat_pb2, chat_pb2_grpc
from tests.server_fixtures import user
from tests.waiting import eventually_async
from tests.web.conftest import WEB_LOOP, WebCluster
from tests.web.pages import ChatPage

pytestmark = WEB_LOOP

# Test instrumentation, before the page's scripts: document.hidden as the
# test sets it, and the Notification API recorded (the permission granted
# on request).
HIDDEN_AND_NOTIFICATIONS = """
  window.__hidden = false;
  Object.defineProperty(document, "hidden", { get: () => window.__hidden });
  window.__asked = 0;
  window.__shown = [];
  class Recorded {
    static permission = "default";
    static async requestPermission() {
      window.__asked += 1;
      Recorded.permission = "granted";
      return "granted";
    }
    constructor(title, options) { window.__shown.push({ title, body: options.body }); }
    addEventListener() {}
    close() {}
  }
  window.Notification = Recorded;
"""


@pytest_asyncio.fixture(loop_scope="session")  # (the loop of the module's tests)
async def stub(web_cluster: WebCluster, web_node: str) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(web_cluster.cluster.addresses["n1"]) as channel:
        yield chat_pb2_grpc.ClientAccountStub(channel)


async def test_change_password(browser: Any, web_node: str) -> None:
    page = await ChatPage.open(await browser.new_context(), web_node)
    await page.sign_up("ann")
    other = await ChatPage.open(await browser.new_context(), web_node)  # ann's other device
    await other.log_in("ann")
    await page.page.click("#password-btn")
    await page.page.fill("#old-pass", "correct horse")
    await page.page.fill("#new-pass", "battery staple")
    await page.page.press("#new-pass", "Enter")
    await page.page.wait_for_selector("#status:has-text('Password changed')")
    # the user's other sessions end: that page is back at the login form, saying so
    await other.page.wait_for_selector("#login-error:has-text('Your session ended')")
    assert await other.session_token() == ""
    await page.page.click("#logout-btn")
    await page.page.fill("#login-user", "ann")
    await page.page.fill("#login-pass", "correct horse")
    await page.page.click("#login-btn")
    await page.page.wait_for_selector("#login-error:has-text('wrong username or password')")
    await page.log_in("ann", "battery staple")


async def test_refused_send_is_shown(browser: Any, web_node: str, stub: Any) -> None:
    session = await user(stub, "bob")
    page = await ChatPage.open(await browser.new_context(), web_node)
    await page.sign_up("ann")
    await page.open_conv("user", "bob")
    r = await stub.DeleteAccount(chat_pb2.DeleteAccountRequest(session_id=session))
    assert r.error_code == 0
    await page.type_and_send("anyone there?")
    failed = page.page.locator('#messages li[data-state="failed"]', has_text="anyone there?")
    await failed.wait_for()
    assert "not sent" in (await failed.locator(".note").text_content() or "")


async def test_history_pages_back(browser: Any, web_node: str, stub: Any) -> None:
    bob = await user(stub, "bob")
    ann = await user(stub, "ann")
    for i in range(60):
        r = await stub.Send(chat_pb2.SendRequest(session_id=bob, to="ann", message=f"old {i}"))
        assert r.error_code == 0
    got = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=ann))  # delivered: history
    assert len(got.message) == 60
    page = await ChatPage.open(await browser.new_context(), web_node)
    await page.log_in("ann")
    await page.page.wait_for_selector('#people [data-conv="user:bob"] .badge:has-text("60")')
    await page.open_conv("user", "bob")
    await page.wait_text("old 59")
    assert len(await page.messages()) == 50
    earlier = page.page.locator("#earlier-btn")
    await earlier.click()
    await page.wait_text("old 0")
    texts = [m["text"] for m in await page.messages()]
    assert texts == [f"old {i}" for i in range(60)]
    await earlier.wait_for(state="hidden")
    # the conversation shown was marked read: no unread count left
    await page.page.wait_for_selector('#people [data-conv="user:bob"] .badge', state="detached")


async def test_notification_while_hidden(browser: Any, web_node: str) -> None:
    context = await browser.new_context()
    await context.add_init_script(HIDDEN_AND_NOTIFICATIONS)
    ann = await ChatPage.open(context, web_node)
    await ann.sign_up("ann")
    bob = await ChatPage.open(await browser.new_context(), web_node)
    await bob.sign_up("bob")
    assert await ann.page.evaluate("window.__asked") == 0  # never on load
    await ann.page.click("#notify-btn")
    assert await ann.page.evaluate("window.__asked") == 1
    await ann.page.wait_for_selector("#notify-offer", state="hidden")

    await bob.open_conv("user", "ann")
    await bob.type_and_send("seen while visible")
    await ann.page.wait_for_selector('#people [data-conv="user:bob"] .badge')
    await ann.page.evaluate("window.__hidden = true")
    await bob.type_and_send("sent while hidden")
    shown = await eventually_async(
        partial(ann.page.evaluate, "window.__shown"), what="a notification"
    )
    assert shown == [{"title": "bob", "body": "sent while hidden"}]


async def test_times_in_the_viewers_time_zone(browser: Any, web_node: str) -> None:
    bob = await ChatPage.open(await browser.new_context(), web_node)
    await bob.sign_up("bob")
    for zone in ("Asia/Tokyo", "America/Los_Angeles"):
        context = await browser.new_context(timezone_id=zone, locale="en-US")
        page = await ChatPage.open(context, web_node)
        await page.sign_up(zone.split("/")[1].lower())
        await page.open_conv("user", "bob")
        await page.type_and_send("what time is it?")
        await page.wait_text("what time is it?")
        when = page.page.locator("#messages li time").first
        stamp = (await when.get_attribute("datetime") or "").replace("Z", "+00:00")
        local = datetime.fromisoformat(stamp).astimezone(ZoneInfo(zone))
        shown = await when.text_content() or ""
        assert local.strftime("%-I:%M") in shown, (zone, stamp, shown)
        assert local.strftime("%b %-d") in shown, (zone, stamp, shown)
