"""Files in the page, against a real 3-node cluster: ann's page on one
slave sends bob (his page on the other slave) a picture and an HTML file.
bob sees the picture's thumbnail (fetched with the session in a header, shown
through a blob: URL), opens it in a dialog (Escape closes it, the focus goes
back) and downloads it: the bytes are the ones ann sent. The HTML file is a
chip with its name and size; its download is an attachment of
application/octet-stream, never a page. The master is SIGKILLed: after the
failover both pages still show the picture, and bob's page, reloaded, reads
it from history and its thumbnail from a surviving node. Screenshots
(desktop and phone) of the conversation and of the open image go to the
artifacts folder. A file over the node's --max-file-bytes is refused in the
conversation's error line, and nothing is sent; a display name and an
avatar set in Settings show beside the username in another's page (the
avatar a small image through a blob: URL)."""

from __future__ import annotations

import asyncio
import io
import random
from pathlib import Path
from typing import Any

from PIL import Image

from tests.test_files import png
from tests.waiting import eventually_async
from tests.web.conftest import DESKTOP, PHONE, WEB_LOOP, WebCluster, wait_page
from tests.web.pages import WAIT_MS, ChatPage
from tests.web.test_web_screens import _contrast_ok

pytestmark = WEB_LOOP

HTML = b"<!doctype html><script>document.title='ran'</script><h1>not a page here</h1>\n"

THUMB_LOADED = """(id) => {
  const img = document.querySelector(`#messages .thumb[data-file-id="${id}"] img`);
  return img !== null && img.src.startsWith("blob:") && img.complete && img.naturalWidth > 0;
}"""

AVATAR_SHOWN = """() => {
  const img = document.querySelector("#messages li .meta img.avatar[data-user='ann']");
  return img !== null && !img.hidden && img.src.startsWith("blob:") && img.complete
    && img.naturalWidth > 0;
}"""


def _picture() -> bytes:
    """A 640x400 PNG of random blocks (big enough to have a thumbnail)."""
    rng = random.Random(27)
    img = Image.new("RGB", (640, 400), (240, 240, 250))
    for x in range(0, 640, 40):
        for y in range(0, 400, 40):
            color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            img.paste(color, (x, y, x + 40, y + 40))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


async def _person(browser: Any, origin: str, name: str) -> ChatPage:
    page = await ChatPage.open(await browser.new_context(viewport=DESKTOP), origin)
    await page.sign_up(name)
    return page


async def _attach(page: ChatPage, name: str, mime: str, data: bytes) -> None:
    await page.page.set_input_files(
        "#attach-input", files=[{"name": name, "mimeType": mime, "buffer": data}]
    )


async def _file_ids(page: ChatPage) -> list[str]:
    ids: list[str] = await page.page.eval_on_selector_all(
        "#messages li[data-state='sent'] [data-file-id]", "els => els.map(e => e.dataset.fileId)"
    )
    return ids


async def _thumb_shown(page: ChatPage, file_id: str) -> None:
    await page.page.wait_for_function(THUMB_LOADED, arg=file_id, timeout=WAIT_MS)


async def _downloaded(page: ChatPage, click: Any) -> tuple[str, bytes]:
    async with page.page.expect_download(timeout=WAIT_MS) as info:
        await click()
    download = await info.value
    path = await download.path()
    return download.suggested_filename, await asyncio.to_thread(Path(path).read_bytes)


async def _until_files(page: ChatPage, count: int) -> None:
    await page.page.wait_for_function(
        "(n) => document.querySelectorAll(\"#messages li[data-state='sent'] [data-file-id]\")"
        ".length >= n",
        arg=count,
        timeout=WAIT_MS,
    )


async def test_a_picture_and_a_file_sent_shown_downloaded_and_kept_through_failover(
    browser: Any, web_cluster: WebCluster, artifacts: Path
) -> None:
    web_cluster.start(3)
    origins = web_cluster.origins
    assert web_cluster.cluster.master() == "n1"
    ann = await _person(browser, origins["n2"], "ann")
    bob = await _person(browser, origins["n3"], "bob")
    picture = _picture()

    # ann attaches a picture with a caption, then an HTML file with no text
    await ann.open_conv("user", "bob")
    await ann.page.fill("#composer-input", "the view from here")
    await _attach(ann, "view.png", "image/png", picture)
    await ann.wait_text("the view from here")
    assert await ann.page.input_value("#composer-input") == ""
    await _attach(ann, "page.html", "text/html", HTML)
    await ann.page.locator("#messages li[data-state='sent'] .file-chip").wait_for(timeout=WAIT_MS)
    image_id, html_id = await _file_ids(ann)
    await _thumb_shown(ann, image_id)

    # bob sees the thumbnail and the chip
    await bob.open_conv("user", "ann")
    await bob.wait_text("the view from here")
    await _thumb_shown(bob, image_id)
    chip = bob.page.locator(f'.file-chip[data-file-id="{html_id}"]')
    await chip.wait_for(timeout=WAIT_MS)
    assert await chip.locator(".file-name").text_content() == "page.html"
    assert await chip.locator(".file-size").text_content() == f"{len(HTML)} B"
    assert await bob.page.title() == "chatd"  # (nothing of the HTML ran)
    await bob.page.screenshot(path=str(artifacts / "desktop-files.png"))
    await _contrast_ok(bob, "desktop, a picture and a file")

    # he opens the picture: the dialog shows it whole, Download saves its bytes
    thumb = bob.page.locator(f'.thumb[data-file-id="{image_id}"]')
    await thumb.focus()
    await bob.page.keyboard.press("Enter")
    dialog = bob.page.locator("#image-dialog")
    await dialog.wait_for(state="visible", timeout=WAIT_MS)
    assert await bob.page.text_content("#image-title") == "view.png"
    await bob.page.wait_for_function(
        """() => { const i = document.getElementById('image-full');
                   return i.src.startsWith('blob:') && i.complete && i.naturalWidth === 640; }""",
        timeout=WAIT_MS,
    )
    link = bob.page.locator("#image-download")
    assert (await link.get_attribute("href") or "").startswith("blob:")
    assert await link.get_attribute("download") == "view.png"
    name, data = await _downloaded(bob, link.click)
    assert (name, data) == ("view.png", picture)
    await bob.page.screenshot(path=str(artifacts / "desktop-image-open.png"))
    await _contrast_ok(bob, "desktop, the image open")
    await bob.page.set_viewport_size(PHONE)
    await bob.page.screenshot(path=str(artifacts / "phone-image-open.png"))
    await _contrast_ok(bob, "phone, the image open")
    await bob.page.set_viewport_size(DESKTOP)
    await bob.page.keyboard.press("Escape")
    await dialog.wait_for(state="hidden", timeout=WAIT_MS)
    # (the dialog's close event, which lets its blob go, comes as a task of
    # its own after the dialog is hidden: waited for, not raced)
    await eventually_async(
        lambda: bob.page.get_attribute("#image-full", "src"),
        until=lambda src: src is None,
        what="the open image's blob let go",
    )
    assert await bob.page.evaluate("document.activeElement.dataset.fileId") == image_id

    # the HTML file: saved as it was sent, and the node sends it as an attachment
    name, data = await _downloaded(bob, chip.get_by_role("button", name="Download page.html").click)
    assert (name, data) == ("page.html", HTML)
    headers = await bob.page.evaluate(
        """async (id) => {
            const s = JSON.parse(sessionStorage.getItem('chatd.session')).session;
            const r = await fetch('/files/' + id, {headers: {'X-Chatd-Session': s}});
            return [r.status, r.headers.get('content-type'), r.headers.get('content-disposition')];
        }""",
        html_id,
    )
    assert headers[0] == 200 and headers[1] == "application/octet-stream", headers
    assert headers[2].startswith("attachment;"), headers

    await bob.page.set_viewport_size(PHONE)
    await bob.page.screenshot(path=str(artifacts / "phone-files.png"))
    await _contrast_ok(bob, "phone, a picture and a file")
    await bob.page.set_viewport_size(DESKTOP)

    # the master dies: both pages still show the picture; bob's, reloaded,
    # reads it from history and fetches the thumbnail from a surviving node
    # (at once: while there is no master yet, the page asks again)
    await asyncio.to_thread(web_cluster.cluster.kill, "n1")
    await bob.page.reload()
    await bob.page.wait_for_selector('body[data-user="bob"]', timeout=WAIT_MS)
    await bob.open_conv("user", "ann")
    await bob.wait_text("the view from here", timeout_ms=30000)
    await _thumb_shown(bob, image_id)
    await chip.wait_for(timeout=WAIT_MS)
    await _thumb_shown(ann, image_id)
    await asyncio.to_thread(
        web_cluster.cluster.wait,
        lambda: web_cluster.cluster.master() in ("n2", "n3"),
        "a new master",
        30.0,
    )
    # and a picture sent after the failover goes through too
    await _attach(ann, "after.png", "image/png", picture)
    await _until_files(ann, 3)
    after = (await _file_ids(ann))[2]
    await _thumb_shown(bob, after)

    for p in (ann, bob):
        assert p.errors == [], p.errors


async def test_a_file_too_large_is_refused_and_display_names_show(
    browser: Any, web_cluster: WebCluster, artifacts: Path
) -> None:
    origin = web_cluster.add("n1", "--max-file-bytes", "2048")
    await asyncio.to_thread(web_cluster.cluster.wait_role, "n1", "master")
    await asyncio.to_thread(wait_page, origin)
    bob = await _person(browser, origin, "bob")
    ann = await _person(browser, origin, "ann")
    await ann.page.fill("#profile-name", "  Ann Example ")
    await ann.page.locator("#profile-name").press("Enter")
    await ann.page.wait_for_function(
        "() => document.getElementById('profile-note').textContent === 'Display name saved.'",
        timeout=WAIT_MS,
    )
    assert await ann.page.input_value("#profile-name") == "Ann Example"
    # an avatar: an image only, uploaded, the display name kept
    await ann.page.set_input_files(
        "#avatar-input", files=[{"name": "a.txt", "mimeType": "text/plain", "buffer": b"x"}]
    )
    await ann.page.wait_for_function(
        "() => document.getElementById('profile-error').textContent.includes('image')",
        timeout=WAIT_MS,
    )
    await ann.page.set_input_files(
        "#avatar-input", files=[{"name": "me.png", "mimeType": "image/png", "buffer": png(40, 30)}]
    )
    await ann.page.wait_for_function(
        "() => document.getElementById('profile-note').textContent === 'Avatar saved.'",
        timeout=WAIT_MS,
    )
    assert await ann.page.text_content("#profile-error") == ""
    await ann.open_conv("user", "bob")
    await ann.page.fill("#composer-input", "the big one")
    await _attach(ann, "big.bin", "application/octet-stream", bytes(4096))
    await ann.page.wait_for_function(
        "() => document.getElementById('conv-error').textContent !== ''", timeout=WAIT_MS
    )
    said = await ann.page.text_content("#conv-error")
    assert said == "Could not send big.bin: a file is at most 2048 bytes", said
    assert await ann.page.text_content("#upload-status") == ""
    assert await ann.page.input_value("#composer-input") == "the big one"  # (kept, to retry)
    assert await ann.messages() == []
    # one that fits goes
    await _attach(ann, "small.bin", "application/octet-stream", bytes(1000))
    await ann.wait_text("the big one")
    assert await ann.page.text_content("#conv-error") == ""
    # a file dropped on the conversation, and one pasted into the message box, go too
    for event, target in (("drop", "#conversation"), ("paste", "#composer-input")):
        await ann.page.evaluate(
            """([event, target]) => {
                const dt = new DataTransfer();
                dt.items.add(new File(["x".repeat(100)], event + ".txt", {type: "text/plain"}));
                const how = {bubbles: true, cancelable: true};
                const ev = event === "drop"
                    ? new DragEvent("drop", {dataTransfer: dt, ...how})
                    : new ClipboardEvent("paste", {clipboardData: dt, ...how});
                document.querySelector(target).dispatchEvent(ev);
            }""",
            [event, target],
        )
        name = ann.page.locator("#messages li[data-state='sent'] .file-name", has_text=event)
        await name.wait_for(timeout=WAIT_MS)
    # bob sees her display name beside her username; her page keeps it
    await bob.open_conv("user", "ann")
    await bob.wait_text("the big one")
    shown = bob.page.locator("#messages li .meta .display-name")
    await bob.page.wait_for_function(
        "() => document.querySelector('#messages li .display-name')?.textContent === 'Ann Example'",
        timeout=WAIT_MS,
    )
    await bob.wait_text("paste.txt")
    assert await shown.all_text_contents() == ["Ann Example"] * 3
    await bob.page.wait_for_function(AVATAR_SHOWN, timeout=WAIT_MS)
    assert await bob.page.locator("#messages li .meta img.avatar:not([hidden])").count() == 3
    await bob.page.screenshot(path=str(artifacts / "desktop-display-name.png"))
    await _contrast_ok(bob, "desktop, a display name")
    assert (await bob.messages())[0]["from"] == "ann"
    await ann.page.reload()
    await ann.page.wait_for_selector('body[data-user="ann"]', timeout=WAIT_MS)
    await ann.page.wait_for_function(
        "() => document.getElementById('profile-name').value === 'Ann Example'", timeout=WAIT_MS
    )
    assert bob.errors == [], bob.errors
    # (the one console line: Chromium's own note of the 413, the refusal itself)
    assert [e for e in ann.errors if "status of 413" not in e] == [], ann.errors
    assert len(ann.errors) == 1, ann.errors
