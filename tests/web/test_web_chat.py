"""The web page against a real node, in headless Chromium: two people sign
up and chat both ways; a room of three where one is removed; a
conversation read on one device clears its unread count on another."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from tests.waiting import eventually_async
from tests.web.conftest import WEB_LOOP
from tests.web.pages import ChatPage

pytestmark = WEB_LOOP


async def _person(browser: Any, origin: str, name: str, *, new: bool = True) -> ChatPage:
    context = await browser.new_context()
    page = await ChatPage.open(context, origin)
    await page.sign_up(name, new=new)
    return page


async def test_two_people_chat_both_ways(browser: Any, web_node: str) -> None:
    ann = await _person(browser, web_node, "ann")
    bob = await _person(browser, web_node, "bob")

    await ann.open_conv("user", "bob")
    # the composer has the focus: typing and Enter send
    assert await ann.page.evaluate("document.activeElement.id") == "composer-input"
    await ann.type_and_send("hello bob")
    await ann.wait_text("hello bob", "sent")

    # bob sees ann's message counted as unread, opens it, answers
    await eventually_async(lambda: bob.badge("user", "ann"), what="bob's unread from ann")
    await bob.open_conv("user", "ann")
    await bob.wait_text("hello bob")
    await bob.type_and_send("hi ann, bob here")
    await bob.wait_text("hi ann, bob here", "sent")
    await ann.wait_text("hi ann, bob here")  # live, on ann's stream

    for p in (ann, bob):
        shown = await p.messages()
        assert [m["text"] for m in shown] == ["hello bob", "hi ann, bob here"], shown
        ids = [m["id"] for m in shown]
        assert ids == sorted(set(ids)) and all(ids), shown
        assert p.errors == [], p.errors
    # presence: each sees the other online
    bob_entry = ann.page.locator('#people [data-conv="user:bob"] .presence')
    assert await bob_entry.text_content() == "online"


async def test_room_of_three_one_removed(browser: Any, web_node: str) -> None:
    ann = await _person(browser, web_node, "ann")
    bob = await _person(browser, web_node, "bob")
    cat = await _person(browser, web_node, "cat")

    await ann.page.fill("#room-name", "ops")
    await ann.page.fill("#room-topic", "the ops room")
    await ann.page.click("#room-form button[type=submit]")
    await ann.page.wait_for_selector("#conv-title:has-text('#ops')")
    for who in ("bob", "cat"):
        await ann.page.fill("#invite-user", who)
        await ann.page.press("#invite-user", "Enter")
        await ann.page.wait_for_selector(f'#members [data-member="{who}"]')

    for p in (bob, cat):  # the invitation shows in the list: join it
        await p.page.click('#rooms [data-invite="ops"] button:has-text("Join")', timeout=15000)
        await p.page.wait_for_selector("#conv-title:has-text('#ops')")

    await ann.type_and_send("welcome both")
    await bob.type_and_send("thanks ann")
    for p in (ann, bob, cat):
        await p.wait_text("welcome both")
        await p.wait_text("thanks ann")

    # ann (the creator, an admin) removes cat
    await ann.page.click('#members [data-member="cat"] button:has-text("Remove")')
    await ann.page.wait_for_selector('#members [data-member="cat"]', state="detached")
    await cat.page.wait_for_selector("#conv-error:has-text('no longer in #ops')", timeout=15000)
    assert await cat.page.locator("#composer").is_hidden()

    await ann.type_and_send("cat is gone")
    await bob.wait_text("cat is gone")
    await asyncio.sleep(1.0)  # (what is tested is that nothing arrives meanwhile)
    assert "cat is gone" not in [m["text"] for m in await cat.messages()]
    for p in (ann, bob, cat):
        assert p.errors == [], p.errors


async def test_read_on_one_device_clears_the_other(browser: Any, web_node: str) -> None:
    ann = await _person(browser, web_node, "ann")
    bob1 = await _person(browser, web_node, "bob")
    bob2 = await _person(browser, web_node, "bob", new=False)

    await ann.open_conv("user", "bob")
    for text in ("one", "two", "three"):
        await ann.type_and_send(text)
    await ann.wait_text("three", "sent")

    for p in (bob1, bob2):
        count = partial(p.badge, "user", "ann")
        await eventually_async(count, until=lambda n: n == 3, what="3 unread")
    await bob1.open_conv("user", "ann")
    await bob1.wait_text("three")
    # the server's count, read by bob's other device within its refresh
    await eventually_async(
        lambda: bob2.badge("user", "ann"), until=lambda n: n == 0, what="0 unread", timeout=10
    )
    # and on the device that read, at once (not at its next timed refresh)
    await eventually_async(
        lambda: bob1.badge("user", "ann"), until=lambda n: n == 0, what="0 here", timeout=2
    )


async def test_room_admin_decline_and_leave(browser: Any, web_node: str) -> None:
    ann = await _person(browser, web_node, "ann")
    bob = await _person(browser, web_node, "bob")
    dan = await _person(browser, web_node, "dan")

    await ann.page.fill("#room-name", "dev")
    await ann.page.press("#room-name", "Enter")
    await ann.page.wait_for_selector("#conv-title:has-text('#dev')")
    await ann.page.fill("#invite-user", "bob")
    await ann.page.press("#invite-user", "Enter")
    await bob.page.click('#rooms [data-invite="dev"] button:has-text("Join")', timeout=15000)
    await bob.page.wait_for_selector("#conv-title:has-text('#dev')")
    assert await bob.page.locator("#invite-form").is_hidden()  # not an admin (yet)

    # the creator names bob an admin: bob may invite now
    await ann.page.click('#members [data-member="bob"] button:has-text("Make admin")')
    await ann.page.wait_for_selector('#members [data-member="bob"]:has-text("admin")')
    await bob.page.wait_for_selector("#invite-form:not([hidden])", timeout=15000)
    await bob.page.fill("#invite-user", "dan")
    await bob.page.press("#invite-user", "Enter")
    await bob.page.wait_for_selector('#members [data-member="dan"]:has-text("invited")')

    # dan declines: the invitation goes, from dan's list and the room's members
    decline = dan.page.locator('#rooms [data-invite="dev"] button:has-text("Decline")')
    await decline.click(timeout=15000)
    await dan.page.wait_for_selector('#rooms [data-invite="dev"]', state="detached")
    await ann.page.wait_for_selector('#members [data-member="dan"]', state="detached")

    # bob leaves: the room leaves bob's list; ann sees one member
    await bob.page.click("#leave-btn")
    await bob.page.wait_for_selector("#conv-error:has-text('You left #dev')")
    await bob.page.wait_for_selector('#rooms [data-conv="room:dev"]', state="detached")
    await ann.page.wait_for_selector('#members [data-member="bob"]', state="detached")
    for p in (ann, bob, dan):
        assert p.errors == [], p.errors


async def test_errors_are_shown(browser: Any, web_node: str) -> None:
    ann = await _person(browser, web_node, "ann")
    await ann.page.fill("#room-name", "ops")
    await ann.page.press("#room-name", "Enter")
    await ann.page.wait_for_selector("#conv-title:has-text('#ops')")
    bob = await _person(browser, web_node, "bob")
    await bob.page.fill("#room-name", "OPS")  # names are unique regardless of case
    await bob.page.press("#room-name", "Enter")
    await bob.page.wait_for_selector("#side-error:has-text('that room name is taken')")

    other = await ChatPage.open(await browser.new_context(), web_node)
    await other.page.fill("#login-user", "ann")
    await other.page.fill("#login-pass", "not the password")
    await other.page.click("#signup-btn")  # taken, and not ann's password
    await other.page.wait_for_selector("#login-error:has-text('that username is taken')")
    await other.page.fill("#login-pass", "correct horse")
    await other.page.click("#signup-btn")  # taken, with ann's password: logged in
    await other.page.wait_for_selector('body[data-user="ann"]')
