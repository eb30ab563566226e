"""The page's security from outside: the headers on the page and its files,
a WebSocket from a foreign origin refused, the session token never in a
URL (the page's, or any request or WebSocket the page made) nor in the
node's log, and the page running under its strict CSP without a violation."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import aiohttp
import pytest

from tests.web.conftest import WEB_LOOP, WebCluster
from tests.web.pages import ChatPage

pytestmark = WEB_LOOP

FILES = ("/", "/static/app.js", "/static/net.js", "/static/style.css", "/static/icon.svg")


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()


async def test_headers_on_the_page_and_its_files(node_origin: str) -> None:
    for path in FILES:
        status, headers, body = await asyncio.to_thread(_get, node_origin + path)
        assert status == 200 and body, path
        csp = headers["content-security-policy"]
        for rule in (
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ):
            assert rule in csp, (path, csp)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
        assert headers["x-frame-options"] == "DENY", path
    _, headers, _ = await asyncio.to_thread(_get, node_origin + "/static/app.js")
    assert headers["content-type"].startswith("text/javascript")


async def test_the_page_has_no_inline_script_or_style(node_origin: str) -> None:
    _, _, body = await asyncio.to_thread(_get, node_origin + "/")
    html = body.decode()
    assert "style=" not in html and "<style" not in html
    assert "<script>" not in html and " onclick=" not in html and "javascript:" not in html


async def test_websocket_refuses_a_foreign_origin(node_origin: str) -> None:
    url = node_origin.replace("http://", "ws://") + "/ws"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, origin="http://evil.example")
        assert refused.value.status == 403
        async with http.ws_connect(url, origin=node_origin) as ws:  # its own page's: taken
            hello = await ws.receive_json(timeout=5)
            assert hello["hello"]["protocol"] == 1
            assert hello["hello"]["web"][0] == node_origin
            assert hello["hello"]["answer_timeout_ms"] == 10000  # --web-answer-timeout


async def test_token_never_in_a_url_nor_the_log(
    browser: Any, web_cluster: WebCluster, web_node: str
) -> None:
    context = await browser.new_context()
    seen: list[str] = []
    context.on("request", lambda r: seen.append(r.url))
    page = await ChatPage.open(context, web_node)
    page.page.on("websocket", lambda ws: seen.append(ws.url))
    await page.sign_up("ann")
    token = await page.session_token()
    assert len(token) >= 16

    await page.page.fill("#room-name", "ops")
    await page.page.click("#room-form button[type=submit]")
    await page.type_and_send("a message")
    await page.wait_text("a message", "sent")
    await page.page.reload()  # the session survives a reload (sessionStorage), not in the URL
    await page.page.wait_for_selector('body[data-user="ann"]')
    await page.page.wait_for_selector(f'body[data-node="{web_node}"]')
    await page.page.click("#logout-btn")
    await page.page.wait_for_selector('body[data-view="login"]')
    assert await page.session_token() == ""

    assert seen, "no request seen"
    assert any(u.endswith("/ws") for u in seen), seen
    for url in [*seen, page.page.url]:
        assert token not in url, url
    assert token not in web_cluster.log("n1")
    assert page.errors == [], page.errors  # (a CSP violation is a console error)
