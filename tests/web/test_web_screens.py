"""The page at desktop (1280x800) and phone (390x844) width: screenshots
saved under the artifacts folder ($CHATD_ARTIFACTS, or the test's own) for
a person to look at, and what can be checked without looking: every
visible text's contrast against its background (WCAG AA, 4.5:1), the
phone layout showing the list or the conversation (never both), and the
keyboard reaching every control with a visible focus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.web.conftest import DESKTOP, PHONE, WEB_LOOP
from tests.web.pages import ChatPage

pytestmark = WEB_LOOP

CONTRAST = """() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = ({ r, g, b }) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const low = [];
  let checked = 0;
  for (const el of document.querySelectorAll("body *")) {
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0 || rect.right < 0) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const fg = parse(getComputedStyle(el).color);
    const l1 = lum(fg), l2 = lum(background(el));
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    checked += 1;
    const text = el.textContent.trim().slice(0, 30);
    if (ratio < 4.5) low.push(`${el.tagName}.${el.className} "${text}" ${ratio.toFixed(2)}`);
  }
  return { checked, low };
}"""


UNLABELLED = """() => [...document.querySelectorAll("input, textarea, button, select")]
  .filter((e) => {
    const named = (e.labels && e.labels.length > 0) || e.getAttribute("aria-label")
      || (e.tagName === "BUTTON" && e.textContent.trim());
    return !named;
  })
  .map((e) => e.outerHTML.slice(0, 80))"""


async def _contrast_ok(page: ChatPage, what: str) -> int:
    assert await page.page.evaluate(UNLABELLED) == [], what  # (what a screen reader names)
    found = await page.page.evaluate(CONTRAST)
    assert found["low"] == [], (what, found["low"])
    checked: int = found["checked"]
    return checked


async def _shot(page: ChatPage, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    await page.page.screenshot(path=str(path))
    print(f"screenshot: {path}")


async def _chatting(browser: Any, origin: str, size: dict[str, int]) -> tuple[ChatPage, Any]:
    """ann in a conversation with bob (a few lines both ways), a room, and
    an unread message from cat; returns ann's page and bob's."""
    pages = {}
    for name in ("ann", "bob", "cat"):
        context = await browser.new_context(viewport=size)
        pages[name] = await ChatPage.open(context, origin)
        await pages[name].sign_up(f"{name}{size['width']}")
    ann, bob, cat = pages["ann"], pages["bob"], pages["cat"]
    w = size["width"]
    await cat.open_conv("user", f"ann{w}")
    await cat.type_and_send("are you there? ping me when you are back")
    await cat.wait_text("are you there", "sent")
    await ann.page.fill("#room-name", f"ops{w}")
    await ann.page.fill("#room-topic", "deploys and incidents")
    await ann.page.click("#room-form button[type=submit]")
    await ann.page.wait_for_selector(f"#conv-title:has-text('#ops{w}')")
    if w < 700:
        await ann.page.click("#back-btn")
    await ann.open_conv("user", f"bob{w}")
    await ann.type_and_send("Hi Bob! Is the release still planned for Thursday?")
    await ann.wait_text("release still planned", "sent")
    await bob.open_conv("user", f"ann{w}")
    await bob.type_and_send("Yes, Thursday 10:00. I will post the notes in the room.")
    await ann.wait_text("post the notes")
    await ann.type_and_send("Great, thanks.\nI'll review them tonight.")
    await ann.wait_text("review them tonight", "sent")
    return ann, bob


async def test_desktop_screens(browser: Any, web_node: str, artifacts: Path) -> None:
    context = await browser.new_context(viewport=DESKTOP)
    login = await ChatPage.open(context, web_node)
    await _shot(login, artifacts, "desktop-login")
    assert await _contrast_ok(login, "desktop login") > 5

    ann, _ = await _chatting(browser, web_node, DESKTOP)
    await ann.page.wait_for_selector('#people [data-conv="user:cat1280"] .badge')
    await _shot(ann, artifacts, "desktop-chat")
    assert await _contrast_ok(ann, "desktop chat") > 20
    # the list and the conversation side by side
    assert await ann.page.locator("#sidebar").is_visible()
    assert await ann.page.locator("#messages").is_visible()

    await ann.open_conv("room", "ops1280")
    await ann.page.wait_for_selector('#members [data-member="ann1280"]')
    await _shot(ann, artifacts, "desktop-room")
    assert await _contrast_ok(ann, "desktop room") > 10


async def test_phone_screens(browser: Any, web_node: str, artifacts: Path) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    login = await ChatPage.open(context, web_node)
    await _shot(login, artifacts, "phone-login")
    await _contrast_ok(login, "phone login")

    ann, _ = await _chatting(browser, web_node, PHONE)
    # the conversation alone, with a way back to the list
    assert not await ann.page.locator("#sidebar").is_visible()
    assert await ann.page.locator("#back-btn").is_visible()
    await _shot(ann, artifacts, "phone-chat")
    await _contrast_ok(ann, "phone chat")
    width = await ann.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width}px"

    await ann.page.click("#back-btn")
    assert await ann.page.locator("#sidebar").is_visible()
    assert not await ann.page.locator("#messages").is_visible()
    await ann.page.wait_for_selector('#people [data-conv="user:cat390"] .badge')
    await _shot(ann, artifacts, "phone-list")
    await _contrast_ok(ann, "phone list")

    await ann.open_conv("room", "ops390")
    await ann.page.wait_for_selector('#members [data-member="ann390"]')
    await _shot(ann, artifacts, "phone-room")
    await _contrast_ok(ann, "phone room")
    width = await ann.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the room scrolls sideways: {width}px"


async def test_keyboard_only(browser: Any, web_node: str) -> None:
    """Log in, open a conversation and send with the keyboard alone; the
    focused element always shows an outline."""
    context = await browser.new_context(viewport=DESKTOP)
    bob = await ChatPage.open(context, web_node)
    await bob.sign_up("bob")
    page = (await ChatPage.open(await browser.new_context(viewport=DESKTOP), web_node)).page
    keys = page.keyboard
    assert await page.evaluate("document.activeElement.id") == "login-user"
    await keys.type("ann")
    await keys.press("Tab")
    await keys.type("correct horse")
    await keys.press("Tab")  # Log in
    await keys.press("Tab")  # Sign up
    assert await page.evaluate("document.activeElement.id") == "signup-btn"
    await keys.press("Enter")
    await page.wait_for_selector('body[data-user="ann"]')
    await page.wait_for_selector('#people [data-conv="user:bob"]')
    for _ in range(30):  # Tab to bob's entry in the list (bounded)
        await keys.press("Tab")
        if await page.evaluate("document.activeElement.dataset.conv || ''") == "user:bob":
            break
        outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", await page.evaluate("document.activeElement.outerHTML")
    else:
        raise AssertionError("Tab never reached bob's entry")
    await keys.press("Enter")
    await page.wait_for_selector("#composer:not([hidden])")
    assert await page.evaluate("document.activeElement.id") == "composer-input"
    await keys.type("sent by keyboard")
    await keys.press("Enter")
    await page.locator('#messages li[data-state="sent"]', has_text="sent by keyboard").wait_for()
