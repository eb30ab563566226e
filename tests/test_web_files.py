"""The page's file transfers over HTTP (chatd.server.web.file_routes), as a
page or an attacker speaks to them: a real node in this process, a real
HTTP client (aiohttp's). The session only in a header, the origin checked,
the body bounded before it is read, and a download that no browser would
run: its type the node's, nosniff, the strict CSP, an attachment unless an
image asked for display."""

from __future__ import annotations

import hashlib
import io
import os
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from chatd.server.node import Node
from tests.test_files import png
from tests.test_web_gateway import page, started

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = await started(tmp_path / "n1", upload_rate=0, max_file_bytes=200_000)
    try:
        yield n
    finally:
        await n.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def upload(
    http: aiohttp.ClientSession,
    node: Node,
    session: str,
    data: bytes,
    name: str = "f.bin",
    claimed: str = "application/octet-stream",
    **headers: str,
) -> tuple[int, dict[str, Any]]:
    sent = {
        "Origin": node.web_origin,
        "X-Chatd-Session": session,
        "X-File-Name": urllib.parse.quote(name),
        "Content-Type": claimed,
    } | headers
    async with http.post(node.web_origin + "/files", data=data, headers=sent) as r:
        return r.status, await r.json()


async def download(
    http: aiohttp.ClientSession, node: Node, session: str, path: str, **headers: str
) -> tuple[int, Any, bytes]:
    sent = {"Origin": node.web_origin, "X-Chatd-Session": session} | headers
    async with http.get(node.web_origin + path, headers=sent) as r:
        return r.status, r.headers, await r.read()


async def test_a_page_uploads_and_downloads_with_the_strict_headers(
    node: Node, http: aiohttp.ClientSession
) -> None:
    p = await page(http, node)
    ann, bob = await p.user("ann"), await p.user("bob")
    data = os.urandom(150_000)
    status, answer = await upload(http, node, ann, data, name='r\u00e9sum\u00e9 "x".bin')
    assert status == 200 and answer["response"]["error_code"] == 0, answer
    ref = answer["response"]["file"]
    assert ref["size"] == str(len(data)) and ref["sha256"] == hashlib.sha256(data).hexdigest()
    assert ref["name"] == 'r\u00e9sum\u00e9 "x".bin'
    fid = ref["file_id"]
    status, headers, body = await download(http, node, ann, f"/files/{fid}")
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == (
        "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22x%22.bin"
    )
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "img-src 'self' data: blob:" in headers["Content-Security-Policy"]
    assert "no-store" in headers["Cache-Control"]
    # bob may not, until a message carries it; then he may
    assert (await download(http, node, bob, f"/files/{fid}"))[0] == 404
    sent = await p.call("Send", session_id=ann, to="bob", message="", file_id=fid)
    assert sent["response"]["error_code"] == 0, sent
    assert (await download(http, node, bob, f"/files/{fid}"))[2] == data


async def test_html_claimed_as_an_image_is_an_attachment_and_images_display(
    node: Node, http: aiohttp.ClientSession
) -> None:
    p = await page(http, node)
    ann = await p.user("ann")
    html = b"<!doctype html><html><script>alert(document.cookie)</script></html>"
    _, answer = await upload(http, node, ann, html, name="x.html", claimed="image/png")
    fid = answer["response"]["file"]["file_id"]
    assert answer["response"]["file"]["content_type"] == "application/octet-stream"
    for query in ("", "?display=1"):
        status, headers, body = await download(http, node, ann, f"/files/{fid}{query}")
        assert status == 200 and body == html
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["Content-Disposition"].startswith("attachment;")
    assert (await download(http, node, ann, f"/files/{fid}?thumbnail=1"))[0] == 404
    picture = png(300, 200)
    _, answer = await upload(http, node, ann, picture, name="p.png", claimed="text/html")
    fid = answer["response"]["file"]["file_id"]
    status, headers, body = await download(http, node, ann, f"/files/{fid}?display=1")
    assert (status, body, headers["Content-Type"]) == (200, picture, "image/png")
    assert headers["Content-Disposition"].startswith("inline;")
    status, headers, body = await download(http, node, ann, f"/files/{fid}")
    assert headers["Content-Disposition"].startswith("attachment;")
    status, headers, body = await download(http, node, ann, f"/files/{fid}?thumbnail=1")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(body)).size == (256, 171)


async def test_an_avatar_is_its_thumbnail_or_the_small_image_itself(
    node: Node, http: aiohttp.ClientSession
) -> None:
    p = await page(http, node)
    ann, bob = await p.user("ann"), await p.user("bob")
    ids = {}
    for name, data in (("big.png", png(300, 200)), ("small.png", png(40, 30)), ("x.bin", b"x")):
        _, answer = await upload(http, node, ann, data, name=name)
        ids[name] = answer["response"]["file"]["file_id"]
    status, headers, body = await download(http, node, ann, f"/files/{ids['big.png']}?avatar=1")
    assert (status, headers["Content-Type"]) == (200, "image/png")
    assert headers["Content-Disposition"].startswith("inline;")
    assert Image.open(io.BytesIO(body)).size == (256, 171)
    status, headers, body = await download(http, node, ann, f"/files/{ids['small.png']}?avatar=1")
    assert (status, body, headers["Content-Type"]) == (200, png(40, 30), "image/png")
    assert headers["Content-Disposition"].startswith("inline;")
    # no image: never inline; another's file that is no avatar, or none: 404
    status, headers, body = await download(http, node, ann, f"/files/{ids['x.bin']}?avatar=1")
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert (await download(http, node, bob, f"/files/{ids['small.png']}?avatar=1"))[0] == 404
    assert (await download(http, node, ann, "/files/nothing?avatar=1"))[0] == 404


async def test_what_an_attacker_tries_over_http_is_refused(
    node: Node, http: aiohttp.ClientSession
) -> None:
    p = await page(http, node)
    ann = await p.user("ann")
    _, answer = await upload(http, node, ann, b"mine")
    fid = answer["response"]["file"]["file_id"]
    # no session, a forged one, the session in the URL (not read there)
    for session, path in (("", f"/files/{fid}"), ("forged", f"/files/{fid}")):
        status, _, body = await download(http, node, session, path)
        assert status == 401, body
    status, _, _ = await download(http, node, "", f"/files/{fid}?session_id={ann}")
    assert status == 401
    # a guessed id, one that is no id, a path out
    for path in (f"/files/{os.urandom(16).hex()}", "/files/..%2f..%2fetc%2fpasswd", "/files/x"):
        assert (await download(http, node, ann, path))[0] == 404, path
    # another origin: refused, upload and download
    status, _, _ = await download(http, node, ann, f"/files/{fid}", Origin="http://evil.example")
    assert status == 403
    async with http.post(
        node.web_origin + "/files",
        data=b"x",
        headers={"Origin": "http://evil.example", "X-Chatd-Session": ann},
    ) as r:
        assert r.status == 403
    # a body over the limit: refused from its Content-Length, before it is read
    status, answer = await upload(http, node, ann, b"x" * 200_001)
    assert status == 413 and answer["error"]["code"] == "FILE_TOO_LARGE"

    async def endless() -> AsyncIterator[bytes]:  # no Content-Length (chunked)
        for _ in range(4):
            yield b"x" * 1000

    async with http.post(
        node.web_origin + "/files",
        data=endless(),
        headers={"Origin": node.web_origin, "X-Chatd-Session": ann},
    ) as r:
        assert r.status == 411
    # a refusal of the servicer's: in the answer's error_code
    status, answer = await upload(http, node, "forged", b"abc")
    assert status == 200 and answer["response"]["error_code"] == 14
    # the node serves on
    assert (await download(http, node, ann, f"/files/{fid}"))[2] == b"mine"
