"""Edits, deletions, reactions and replies in the page, against real nodes:
ann's page on the master, bob's on a slave. Every change shows live on
both pages (the stream's events), and the same after a reload (history);
what bob may not do to ann's message he is not offered, and a call forged
from his page's console is refused; a room's admin deletes a member's
message. Across a master SIGKILL, an edit and a reaction acknowledged
before it are shown once after it. Screenshots (desktop and phone) of
such a conversation go to the artifacts folder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from chatd.contract import REACTIONS
from tests.waiting import eventually_async
from tests.web.conftest import DESKTOP, PHONE, WEB_LOOP, WebCluster
from tests.web.pages import ChatPage
from tests.web.test_web_screens import _contrast_ok

pytestmark = WEB_LOOP

THUMBS, HEART, JOY, PARTY, EYES, CHECK = (REACTIONS[i] for i in (0, 1, 2, 5, 6, 7))

# A call from the page's console with the page's own modules (a second
# connection, the page's session): what the page does not offer, forged.
FORGE = """async (calls) => {
  const { Net } = await import("/static/net.js");
  const { Api } = await import("/static/api.js");
  const net = new Net(location.origin);
  net.start();
  const api = new Api(net);
  api.session = JSON.parse(sessionStorage.getItem("chatd.session")).session;
  const out = [];
  for (const [name, request] of calls) {
    try {
      const r = await api.call(name, request);
      out.push([name, 0, JSON.stringify(r)]);
    } catch (err) {
      out.push([name, err.code, err.message]);
    }
  }
  return out;
}"""


async def _until(
    page: ChatPage, message_id: int, holds: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    shown: dict[str, Any] = await eventually_async(
        lambda: page.message(message_id), until=holds, what=what, timeout=15
    )
    return shown


async def _sent(page: ChatPage, text: str, timeout_ms: int = 15000) -> int:
    """Sends `text` in the open conversation; its id once acknowledged."""
    await page.type_and_send(text)
    await page.wait_text(text, "sent", timeout_ms=timeout_ms)
    shown = [m["id"] for m in await page.messages() if m["text"] == text and m["state"] == "sent"]
    assert len(shown) == 1, shown
    return int(shown[0])


async def _edit(page: ChatPage, message_id: int, text: str) -> None:
    """Edits a message with the keyboard alone: Enter on Edit, the text, Enter."""
    await page.item(message_id).locator('.act[data-key="edit"]').focus()
    await page.page.keyboard.press("Enter")
    box = page.item(message_id).locator(".editor textarea")
    await box.wait_for()
    assert await box.evaluate("e => e === document.activeElement")
    await box.fill(text)
    await page.page.keyboard.press("Enter")
    await page.item(message_id).locator(".editor").wait_for(state="detached")


async def _react(page: ChatPage, message_id: int, emoji: str) -> None:
    """Toggles a reaction through the picker, by keyboard: Enter on React,
    Tab to the emoji, Enter."""
    await page.item(message_id).locator('.act[data-key="react"]').focus()
    await page.page.keyboard.press("Enter")
    picker = page.item(message_id).locator(".picker")
    await picker.wait_for()
    for _ in range(len(REACTIONS)):
        if await page.page.evaluate("document.activeElement.dataset.emoji || ''") == emoji:
            break
        await page.page.keyboard.press("Tab")
    await page.page.keyboard.press("Enter")
    await picker.wait_for(state="detached")


def _reactions(want: list[list[Any]], shown: dict[str, Any]) -> bool:
    return bool(shown["reactions"] == want)


def _state(shown: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a reload must show again (not the actions: the same too, checked)."""
    return [
        (m["id"], m["from"], m["text"], m["quote"], m["edited"], m["deleted"], m["reactions"])
        for m in shown
    ]


async def _person(browser: Any, origin: str, name: str) -> ChatPage:
    page = await ChatPage.open(await browser.new_context(viewport=DESKTOP), origin)
    await page.sign_up(name)
    return page


async def test_reply_edit_react_delete_live_and_after_a_reload(
    browser: Any, web_cluster: WebCluster, artifacts: Path
) -> None:
    web_cluster.start(2)
    ann = await _person(browser, web_cluster.origins["n1"], "ann")  # the master's page
    bob = await _person(browser, web_cluster.origins["n2"], "bob")  # a slave's
    await ann.open_conv("user", "bob")
    first = await _sent(ann, "first from ann")
    second = await _sent(ann, "second from ann")
    await bob.open_conv("user", "ann")
    await bob.wait_text("second from ann")

    # bob may reply and react to ann's messages, never edit or delete them
    assert (await bob.message(first))["actions"] == ["reply", "react"]
    assert (await ann.message(first))["actions"] == ["reply", "react", "edit", "delete"]
    # the picker offers exactly the server's reactions
    await bob.act(first, "react")
    picks = bob.item(first).locator(".picker .pick")
    assert await picks.evaluate_all("bs => bs.map(b => b.dataset.emoji)") == list(REACTIONS)
    await bob.page.keyboard.press("Escape")  # closes the picker, the focus back on React
    await bob.item(first).locator(".picker").wait_for(state="detached")
    assert await bob.page.evaluate("document.activeElement.dataset.key") == "react"
    assert await bob.page.evaluate("document.body.dataset.view") == "conv"

    # bob replies quoting ann's first message
    await bob.act(first, "reply")
    assert await bob.page.text_content("#reply-text") == "Replying to ann: first from ann"
    assert await bob.page.evaluate("document.activeElement.id") == "composer-input"
    answer = await _sent(bob, "bob answers the first")
    assert await bob.page.locator("#reply-bar").is_hidden()
    for p, who in ((ann, "You"), (bob, "ann")):
        shown = await _until(p, answer, lambda m: m["quote"] != "", "the reply's quote")
        assert shown["quote"] == f"↩ {who}first from ann", shown

    # ann edits her first (by keyboard); a cancelled edit changes nothing
    await ann.act(second, "edit")
    await ann.item(second).locator(".editor textarea").fill("not this")
    await ann.page.screenshot(path=str(artifacts / "desktop-editing.png"))
    await _contrast_ok(ann, "desktop, a message in its editor")
    await ann.page.keyboard.press("Escape")
    await ann.item(second).locator(".editor").wait_for(state="detached")
    assert (await ann.message(second))["text"] == "second from ann"
    await _edit(ann, first, "first, edited")
    for p, who in ((ann, "You"), (bob, "ann")):
        shown = await _until(p, first, lambda m: m["edited"], "the edit")
        assert shown["text"] == "first, edited", shown
        quoted = await _until(p, answer, lambda m: "edited" in m["quote"], "the quote edited")
        assert quoted["quote"] == f"↩ {who}first, edited", quoted

    # bob reacts (by keyboard), then takes one back (the chip); ann reacts too
    await _react(bob, first, THUMBS)
    await _react(bob, first, PARTY)
    await ann.act(answer, "react")
    await ann.item(answer).locator(f'.pick[data-emoji="{HEART}"]').click()
    await bob.item(first).locator(f'.chip[data-emoji="{THUMBS}"]').click()
    for p, bobs in ((ann, False), (bob, True)):
        party = [[PARTY, 1, bobs, f"party: 1, from {'you' if bobs else 'bob'}"]]
        await _until(p, first, partial(_reactions, party), "bob's reactions")
        heart = [[HEART, 1, not bobs, f"heart: 1, from {'ann' if bobs else 'you'}"]]
        await _until(p, answer, partial(_reactions, heart), "ann's reaction")
    # (the chip taken back is gone: the focus is on its message's React)
    assert await bob.page.evaluate("document.activeElement.dataset.key || ''") == "react"
    # a 4th reaction of bob's on one message: the server's refusal, in its words
    await _react(bob, first, EYES)
    await _react(bob, first, CHECK)
    await _until(bob, first, lambda m: len(m["reactions"]) == 3, "bob's 3 reactions")
    await _react(bob, first, JOY)
    await bob.page.wait_for_selector(
        "#conv-error:has-text('Could not react: not an allowed reaction')", timeout=15000
    )
    assert len((await bob.message(first))["reactions"]) == 3

    # ann deletes her second, asked first (Cancel keeps it)
    await ann.act(second, "delete")
    assert await ann.page.locator("#delete-dialog").is_visible()
    assert await ann.page.evaluate("document.activeElement.id") == "delete-cancel"
    await ann.page.screenshot(path=str(artifacts / "desktop-delete.png"))
    await _contrast_ok(ann, "desktop, the delete dialog")
    await ann.page.keyboard.press("Escape")
    assert not await ann.page.locator("#delete-dialog").is_visible()
    await ann.act(second, "delete")
    await ann.page.click("#delete-confirm")
    for p in (ann, bob):
        shown = await _until(p, second, lambda m: m["deleted"], "the deletion")
        assert shown["text"] == "Message deleted" and shown["actions"] == [], shown
        assert shown["reactions"] == [] and not shown["edited"], shown

    # what bob's page does not offer, forged from its console: refused
    forged = await bob.page.evaluate(
        FORGE,
        [
            ["EditMessage", {"message_id": first, "message": "bob was here"}],
            ["DeleteMessage", {"message_id": first}],
            ["EditMessage", {"message_id": second, "message": "back"}],
            ["React", {"message_id": first, "emoji": "x"}],
        ],
    )
    assert [(name, code) for name, code, _ in forged] == [
        ("EditMessage", 23),
        ("DeleteMessage", 23),
        ("EditMessage", 27),
        ("React", 29),
    ], forged
    assert forged[0][2] == "only the room's admins (or the message's author) may do that"
    assert forged[2][2] == "no such message"

    # screenshots: ann replying to bob, at desktop and at phone width
    await ann.act(answer, "reply")
    assert (await ann.page.text_content("#reply-text")).startswith("Replying to bob: bob answers")
    await ann.page.screenshot(path=str(artifacts / "desktop-edits.png"))
    await _contrast_ok(ann, "desktop edits")
    await ann.page.set_viewport_size(PHONE)
    await ann.act(answer, "react")  # (the picker open)
    await ann.page.screenshot(path=str(artifacts / "phone-edits.png"))
    await _contrast_ok(ann, "phone edits")
    width = await ann.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width}px"
    print(f"screenshots: {artifacts / 'desktop-edits.png'}, {artifacts / 'phone-edits.png'}")

    # a reload shows the same (history), on both pages
    await ann.page.set_viewport_size(DESKTOP)
    live = {p: _state(await p.messages()) for p in (ann, bob)}
    actions = {p: [m["actions"] for m in await p.messages()] for p in (ann, bob)}
    for p, peer in ((ann, "bob"), (bob, "ann")):
        await p.page.reload()
        await p.open_conv("user", peer)
        await p.page.wait_for_selector(f'#messages li[data-message-id="{answer}"]')
        assert _state(await p.messages()) == live[p]
        assert [m["actions"] for m in await p.messages()] == actions[p]

    # in a room, an admin deletes a member's message; the member may not delete the admin's
    await ann.page.fill("#room-name", "team")
    await ann.page.press("#room-name", "Enter")
    await ann.page.wait_for_selector("#conv-title:has-text('#team')")
    await ann.page.fill("#invite-user", "bob")
    await ann.page.press("#invite-user", "Enter")
    await bob.page.click('#rooms [data-invite="team"] button:has-text("Join")', timeout=15000)
    await bob.page.wait_for_selector("#conv-title:has-text('#team')")
    theirs = await _sent(bob, "bob in the team room")
    anns = await _sent(ann, "ann in the team room")
    await bob.wait_text("ann in the team room")
    assert (await bob.message(anns))["actions"] == ["reply", "react"]
    await _until(ann, theirs, lambda m: "delete" in m["actions"], "the admin's Delete")
    await ann.act(theirs, "delete")
    await ann.page.click("#delete-confirm")
    for p in (ann, bob):
        await _until(p, theirs, lambda m: m["deleted"], "the admin's deletion")
    for p in (ann, bob):
        assert p.errors == [], p.errors


async def test_an_edit_and_a_reaction_survive_a_master_kill_once(
    browser: Any, web_cluster: WebCluster
) -> None:
    web_cluster.start(3)
    origins = web_cluster.origins
    ann = await _person(browser, origins["n1"], "ann")  # the master's page
    bob = await _person(browser, origins["n2"], "bob")
    await ann.open_conv("user", "bob")
    mid = await _sent(ann, "before the kill")
    await bob.open_conv("user", "ann")
    await bob.wait_text("before the kill")
    await _edit(ann, mid, "edited before the kill")  # acknowledged: shown on ann's page
    await _until(ann, mid, lambda m: m["edited"], "ann's edit acknowledged")
    await bob.act(mid, "react")
    await bob.item(mid).locator(f'.pick[data-emoji="{THUMBS}"]').click()
    await _until(bob, mid, lambda m: m["reactions"] != [], "bob's reaction acknowledged")

    await asyncio.to_thread(web_cluster.cluster.kill, "n1")
    # ann's page moves to a live node; a message after the kill reaches bob
    after = await _sent(ann, "after the kill", timeout_ms=45000)
    await bob.wait_text("after the kill")
    node = await ann.page.evaluate("document.body.dataset.node")
    assert node in (origins["n2"], origins["n3"]), node

    want = (mid, "edited before the kill", True, [[THUMBS, 1]])

    def once(shown: list[dict[str, Any]]) -> bool:
        got = [
            (m["id"], m["text"], m["edited"], [r[:2] for r in m["reactions"]])
            for m in shown
            if m["id"] == mid
        ]
        return got == [want] and [m["id"] for m in shown] == [mid, after]

    for p in (ann, bob):
        await eventually_async(p.messages, until=once, what="the edit and reaction, once")
    await ann.page.goto(node + "/")  # (history, from the new master: another origin, log in)
    await ann.log_in("ann")
    await ann.open_conv("user", "bob")
    await eventually_async(ann.messages, until=once, what="the same after a reload")
    for p in (ann, bob):
        assert p.errors == [] or all("WebSocket" in e for e in p.errors), p.errors
