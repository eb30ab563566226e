"""Typing notices and read receipts in the page, against a real 3-node
cluster: ann's page on the master, bob's and cat's on the slaves. bob sees
"ann is typing…" while she types, until it expires, and at once no more
when her message comes; a room shows two typers by name. ann sees "Seen"
under her newest message bob has read (live, once he opens the
conversation), and in a room "Seen by 2" naming who; once ann stops sharing
her receipts, bob sees no new one from her (and, the conversation opened
again, none of hers at all), and her page remembers the choice. Screenshots
(desktop and phone) of typing and of receipts go to the artifacts folder."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.waiting import eventually_async
from tests.web.conftest import DESKTOP, PHONE, WEB_LOOP, WebCluster
from tests.web.pages import WAIT_MS, ChatPage
from tests.web.test_web_screens import _contrast_ok

pytestmark = WEB_LOOP

TYPING_EXPIRES_S = 6.0  # (chatd.server.chat.presence.TYPING_EXPIRES_MS)


async def _person(browser: Any, origin: str, name: str) -> ChatPage:
    page = await ChatPage.open(await browser.new_context(viewport=DESKTOP), origin)
    await page.sign_up(name)
    return page


async def _typing_line(page: ChatPage) -> str:
    text: str = await page.page.text_content("#typing") or ""
    return text


async def _until_typing(page: ChatPage, want: str, timeout: float = 10) -> None:
    await eventually_async(
        lambda: _typing_line(page),
        until=lambda t: t == want,
        what=f"the typing line to read {want!r}",
        timeout=timeout,
    )


async def _seen(page: ChatPage) -> list[tuple[int, str, str]]:
    """(message id, text, title) of each receipt line the open
    conversation shows."""
    found: list[list[Any]] = await page.page.eval_on_selector_all(
        "#messages li .seen",
        """els => els.map(e => [Number(e.closest('li').dataset.messageId),
            e.firstChild.textContent, e.title])""",
    )
    return [(int(i), str(text), str(title)) for i, text, title in found]


async def _until_seen(page: ChatPage, want: list[tuple[int, str, str]], what: str) -> None:
    await eventually_async(lambda: _seen(page), until=lambda s: s == want, what=what, timeout=15)


async def _sent(page: ChatPage, text: str) -> int:
    await page.type_and_send(text)
    await page.wait_text(text, "sent")
    shown = [m["id"] for m in await page.messages() if m["text"] == text and m["state"] == "sent"]
    assert len(shown) == 1, shown
    return int(shown[0])


async def _type(page: ChatPage, text: str) -> None:
    """Keys typed into the composer, one by one, as a person types."""
    await page.page.locator("#composer-input").press_sequentially(text, delay=20)


async def test_typing_and_read_receipts_across_nodes(
    browser: Any, web_cluster: WebCluster, artifacts: Path
) -> None:
    web_cluster.start(3)
    origins = web_cluster.origins
    ann = await _person(browser, origins["n1"], "ann")
    bob = await _person(browser, origins["n2"], "bob")
    cat = await _person(browser, origins["n3"], "cat")

    # ann writes to bob before he looks: no receipt yet
    await ann.open_conv("user", "bob")
    first = await _sent(ann, "the plan is ready")
    second = await _sent(ann, "have a look when you can")
    assert await _seen(ann) == []
    # bob opens the conversation: ann sees "Seen" under her newest, live
    await bob.open_conv("user", "ann")
    await bob.wait_text("have a look")
    await _until_seen(ann, [(second, "Seen", "Seen by bob")], "Seen under ann's newest")
    assert first < second

    # ann types: bob sees it, until it expires
    await _type(ann, "looks go")
    await _until_typing(bob, "ann is typing…")
    assert await bob.page.get_attribute("#typing", "aria-live") == "polite"
    await bob.page.screenshot(path=str(artifacts / "desktop-typing.png"))
    await _contrast_ok(bob, "desktop, ann typing")
    shown_at = time.monotonic()
    await _until_typing(bob, "", timeout=TYPING_EXPIRES_S + 5)
    waited = time.monotonic() - shown_at
    assert waited > TYPING_EXPIRES_S - 2.5, f"the notice went after {waited:.1f} s"
    # she types again (a new notice: the page sends one every 3 s at most)
    # and sends: her message ends it at once, long before it would expire
    await _type(ann, "od to me")
    await _until_typing(bob, "ann is typing…")
    await ann.page.locator("#composer-input").press("Enter")
    await bob.wait_text("looks good to me")
    assert await _typing_line(bob) == ""
    third = max(m["id"] for m in await ann.messages())
    # bob has it open: "Seen" moves to ann's newest, and only there
    await _until_seen(ann, [(third, "Seen", "Seen by bob")], "Seen moved to the newest")
    await ann.page.screenshot(path=str(artifacts / "desktop-seen.png"))
    await _contrast_ok(ann, "desktop, Seen")
    await ann.page.set_viewport_size(PHONE)
    await ann.page.screenshot(path=str(artifacts / "phone-seen.png"))
    await _contrast_ok(ann, "phone, Seen")
    width = await ann.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width}px"
    await ann.page.set_viewport_size(DESKTOP)

    # a room: two typing at once by name; "Seen by 2" naming who
    await ann.page.fill("#room-name", "crew")
    await ann.page.press("#room-name", "Enter")
    await ann.page.wait_for_selector("#conv-title:has-text('#crew')")
    for who in ("bob", "cat"):
        await ann.page.fill("#invite-user", who)
        await ann.page.press("#invite-user", "Enter")
        await ann.page.wait_for_selector(f'#members [data-member="{who}"]')
    in_room = await _sent(ann, "room plan: ship on Thursday")
    assert await _seen(ann) == []
    for p in (bob, cat):
        if await p.page.evaluate("innerWidth") <= 700:
            await p.page.click("#back-btn")
        await p.page.click('#rooms [data-invite="crew"] button:has-text("Join")', timeout=WAIT_MS)
        await p.page.wait_for_selector("#conv-title:has-text('#crew')")
        await p.wait_text("room plan")
    await _until_seen(ann, [(in_room, "Seen by 2", "Seen by bob and cat")], "Seen by 2")
    await _type(bob, "on it")
    await _type(cat, "me too")
    await _until_typing(ann, "bob and cat are typing…")
    await ann.page.screenshot(path=str(artifacts / "desktop-room-typing.png"))
    await _contrast_ok(ann, "desktop, a room with two typing and Seen by 2")
    await ann.page.set_viewport_size(PHONE)
    await _type(bob, " now")  # (keeps it shown for the phone's picture)
    await ann.page.screenshot(path=str(artifacts / "phone-room-typing.png"))
    await _contrast_ok(ann, "phone, a room with two typing and Seen by 2")
    await ann.page.set_viewport_size(DESKTOP)
    await bob.page.locator("#composer-input").press("Enter")
    await ann.wait_text("on it now")
    assert "bob" not in await _typing_line(ann)  # (his message ended his notice)

    # bob writes to ann; ann reads it: bob sees "Seen" (both share)
    await bob.page.click('#sidebar [data-conv="user:ann"]')
    await bob.page.wait_for_selector("#conv-title:has-text('ann')")
    bobs = await _sent(bob, "one question for you")
    await ann.open_conv("user", "bob")
    await ann.wait_text("one question")
    await _until_seen(bob, [(bobs, "Seen", "Seen by ann")], "bob's Seen from ann")

    # ann stops sharing: bob sees no new receipt from her
    share = ann.page.locator("#share-receipts")
    assert await share.is_checked()
    await share.uncheck()
    await eventually_async(share.is_enabled, what="the setting changed")
    assert await ann.page.text_content("#share-error") == ""
    later = await _sent(bob, "and another one")
    await ann.wait_text("and another one")  # (shown, read: her page marks it read)
    await asyncio.sleep(1.5)
    assert await _seen(bob) == [(bobs, "Seen", "Seen by ann")]  # (not moved)
    # opened again, bob's page lists none of hers
    await bob.page.click('#sidebar [data-conv="room:crew"]')
    await bob.page.wait_for_selector("#conv-title:has-text('#crew')")
    await bob.open_conv("user", "ann")
    await bob.wait_text("and another one")
    assert later > bobs
    await eventually_async(lambda: _seen(bob), until=lambda s: s == [], what="no Seen at all")
    # ann's other device (a fresh browser profile) reads her choice from the node
    other = await ChatPage.open(await browser.new_context(viewport=DESKTOP), origins["n3"])
    await other.log_in("ann")
    box = other.page.locator("#share-receipts")
    await eventually_async(box.is_checked, until=lambda on: not on, what="the setting read")
    assert other.errors == [], other.errors

    for p in (ann, bob, cat):
        assert p.errors == [], p.errors
