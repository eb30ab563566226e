"""Search in the page, against real nodes (ann's page on a slave),
conversations seeded through the gRPC client library: a word found in a
one-to-one conversation and in a room, never in one ann is not in; newest
first, a page at a time ("More results"), the words marked without any
markup of the text's own; only the open conversation when asked; a result
opens its conversation at the message, history read back to it. People by
the start of their name. `/` and Ctrl+K reach the box. Screenshots
(desktop and phone) of the results go to the artifacts folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatd.client import ChatClient
from chatd.tools.localcluster import PASSWORD
from tests.web.conftest import DESKTOP, PHONE, WEB_LOOP, WebCluster
from tests.web.pages import WAIT_MS, ChatPage
from tests.web.test_web_screens import _contrast_ok

pytestmark = WEB_LOOP

LATE = 20  # the newest matches: one page of the page's searches
FILLER = 60  # between them and an early match: more than a history page


async def _seed(addresses: list[str]) -> None:
    """ann, bob, cat and carl; bob -> ann, a room of ann's and bob's, bob
    -> cat (not ann's), and ann -> cat: an early match far back in its
    history, then LATE matches."""
    clients = {n: ChatClient(addresses) for n in ("ann", "bob", "cat", "carl")}
    try:
        for name, c in clients.items():
            await c.create_account(name, PASSWORD)
            await c.login(name, PASSWORD)
        ann, bob = clients["ann"], clients["bob"]
        await bob.send("ann", "<b>zebra</b> crossing at noon <img src=x>")
        await ann.create_room("crew", "the crew")
        await ann.invite("crew", "bob")
        await bob.join_room("crew")
        await bob.send("", "zebra stripes on the wall", room="crew")
        await bob.send("cat", "secret zebra plans")
        await ann.send("cat", "zebra early one")
        for i in range(FILLER):
            await ann.send("cat", f"filler {i}")
        for i in range(LATE):
            await ann.send("cat", f"zebra late {i}")
    finally:
        for c in clients.values():
            await c.close()


async def _results(page: ChatPage) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.page.eval_on_selector_all(
        "#search-results .result",
        """els => els.map(e => ({
            id: Number(e.dataset.foundId),
            from: e.querySelector('.from').textContent,
            where: e.querySelector('.where').textContent,
            when: e.querySelector('time').textContent,
            text: e.querySelector('.result-text').textContent,
            marks: [...e.querySelectorAll('mark')].map(m => m.textContent),
            elements: [...e.querySelector('.result-text').children].map(c => c.tagName)}))""",
    )
    return found


async def _search(page: ChatPage, query: str) -> None:
    await page.page.fill("#search-input", query)
    await page.page.press("#search-input", "Enter")
    await page.page.wait_for_selector("#search-status:text-matches('found')", timeout=WAIT_MS)


async def test_search_messages_and_people(
    browser: Any, web_cluster: WebCluster, artifacts: Path
) -> None:
    web_cluster.start(2)
    await _seed(list(web_cluster.cluster.addresses.values()))
    page = await ChatPage.open(
        await browser.new_context(viewport=DESKTOP), web_cluster.origins["n2"]
    )
    await page.log_in("ann")

    # `/` (the focus not in a field) reaches the box; a prefix finds whole words
    await page.page.locator("#messages").focus()
    await page.page.keyboard.press("/")
    assert await page.page.evaluate("document.activeElement.id") == "search-input"
    await page.page.keyboard.type("Zeb")
    await page.page.keyboard.press("Enter")
    await page.page.wait_for_selector("#search-status:text-matches('found')", timeout=WAIT_MS)
    first = await _results(page)
    assert [r["text"] for r in first] == [f"zebra late {i}" for i in reversed(range(LATE))]
    assert all(r["from"] == "You" and r["where"] == "to cat" and r["when"] for r in first)
    assert all(r["marks"] == ["zebra"] for r in first), first
    assert await page.page.text_content("#search-status") == "20 messages found, more to see."
    await page.page.screenshot(path=str(artifacts / "desktop-search.png"))
    await _contrast_ok(page, "desktop, search results")

    # More results: the rest, older; the text's markup is text, never elements
    await page.page.click("#search-more")
    await page.page.wait_for_selector("#search-more", state="hidden", timeout=WAIT_MS)
    rest = (await _results(page))[LATE:]
    assert [(r["from"], r["where"], r["text"]) for r in rest] == [
        ("You", "to cat", "zebra early one"),
        ("bob", "in #crew", "zebra stripes on the wall"),
        ("bob", "to you", "<b>zebra</b> crossing at noon <img src=x>"),
    ], rest
    assert rest[2]["marks"] == ["zebra"] and rest[2]["elements"] == ["MARK"], rest[2]
    ids = [r["id"] for r in await _results(page)]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert await page.page.text_content("#search-status") == "23 messages found."
    assert await page.page.evaluate("document.activeElement.dataset.foundId") == str(rest[0]["id"])
    # (bob's "secret zebra plans" to cat is not ann's to find)
    assert not any("secret" in r["text"] for r in await _results(page))

    # a result opens its conversation at the message, read back to it
    await page.page.click(f'#search-results [data-found-id="{rest[0]["id"]}"]')
    target = page.item(rest[0]["id"])
    await target.wait_for(timeout=WAIT_MS)
    await page.page.wait_for_function(
        "id => document.activeElement.dataset.messageId === String(id)", arg=rest[0]["id"]
    )
    assert await page.page.text_content("#conv-title") == "cat"
    box = await target.bounding_box()
    view = await page.page.locator("#messages").bounding_box()
    assert box is not None and view is not None
    assert view["y"] <= box["y"] and box["y"] + box["height"] <= view["y"] + view["height"]
    shown = await page.messages()
    assert len(shown) > 50, len(shown)  # (more than the first history page)

    # only the open conversation, when asked (Ctrl+K from the composer)
    await page.open_conv("user", "bob")
    await page.page.keyboard.press("Control+k")
    assert await page.page.evaluate("document.activeElement.id") == "search-input"
    assert await page.page.text_content("#search-here-label") == "Only with bob"
    await page.page.check("#search-here")
    await _search(page, "zebra")
    here = await _results(page)
    assert [r["text"] for r in here] == ["<b>zebra</b> crossing at noon <img src=x>"]
    assert await page.page.text_content("#search-title") == "Results for “zebra” with bob"
    await page.page.uncheck("#search-here")
    await _search(page, "stripes wall")
    assert [(r["text"], r["marks"]) for r in await _results(page)] == [
        ("zebra stripes on the wall", ["stripes", "wall"])
    ]
    await _search(page, "giraffe")
    assert await page.page.text_content("#search-status") == "No messages found."

    # people by the start of their name, and a chat opened with one found
    await page.page.fill("#people-search", "ca")
    found = page.page.locator("#people-found [data-found-user]")
    await page.page.wait_for_selector("#people-found:not([hidden])", timeout=WAIT_MS)
    assert await found.evaluate_all("bs => bs.map(b => b.dataset.foundUser)") == ["carl", "cat"]
    await page.page.fill("#people-search", "zz")
    await page.page.wait_for_selector("#people-note:has-text('starts with')", timeout=WAIT_MS)
    assert await page.page.locator("#people-found").is_hidden()
    await page.page.fill("#people-search", "CAR")
    await page.page.wait_for_selector('#people-found [data-found-user="carl"]', timeout=WAIT_MS)
    await page.page.click('#people-found [data-found-user="carl"]')
    await page.page.wait_for_selector("#conv-title:text-is('carl')", timeout=WAIT_MS)

    # the phone: the results in the list's place
    await page.page.set_viewport_size(PHONE)
    await page.page.keyboard.press("Control+k")
    await _search(page, "zebra")
    assert await page.page.locator("#search-results").is_visible()
    await page.page.screenshot(path=str(artifacts / "phone-search.png"))
    await _contrast_ok(page, "phone, search results")
    width = await page.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width}px"
    await page.page.click("#search-close")
    assert await page.page.locator("#search-panel").is_hidden()
    assert await page.page.evaluate("document.activeElement.id") == "search-input"
    assert page.errors == [], page.errors
