"""The GUI's files, through a real node (a child process): Attach… (the file
dialog patched to answer a path) sends a file to the other party (a
`ChatClient`), who gets its bytes; the other party's image shows as a
"📎 name (size)" line and its thumbnail; Save as… (from the message's menu,
or a double-click) writes the file where the user says."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from chatd.client import ChatClient, Message
from chatd.client.conversation import Peer
from chatd.client.gui import ChatApp, LoopThread
from chatd.client.gui_messages import tag_of
from chatd.client.model import FileRef
from tests.conftest import PASSWORD, NodeProcess, wait_serving
from tests.test_gui import WAIT, conversation, loop_thread, pump, submit_form
from tests.test_gui_edits import choose, line_of, menu_for

__all__ = ["loop_thread"]  # (the fixture, imported for this module's tests)


def png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def images_of(app: ChatApp, message_id: int) -> list[tuple[int, int]]:
    """The sizes of the images drawn in message `message_id`."""
    text = app.conversation
    ranges = text.tag_ranges(tag_of(message_id))
    if not ranges:
        return []
    sizes = []
    for name in text.image_names():
        at = text.index(name)
        if text.compare(at, ">=", ranges[0]) and text.compare(at, "<", ranges[-1]):
            image = text.image_cget(name, "image")
            call = app.root.tk.call
            sizes.append((int(call("image", "width", image)), int(call("image", "height", image))))
    return sizes


def test_attach_thumbnail_and_save_as(
    xvfb: str,
    spawn_node: Callable[..., NodeProcess],
    loop_thread: LoopThread,
    tmp_path: Path,
) -> None:
    node = spawn_node("n1", "--max-file-bytes", "5000")
    address: str = node.address  # type: ignore[attr-defined]
    wait_serving(address)

    async def setup() -> ChatClient:
        bob = ChatClient([address])
        for name in ("alice", "bob"):
            await bob.create_account(name, PASSWORD)
        await bob.login("bob", PASSWORD)
        return bob

    bob = loop_thread.submit(setup()).result(WAIT)
    bob_got: list[Message] = []

    async def bob_receives() -> None:
        async for m in bob.inbox():
            bob_got.append(m)

    inbox = loop_thread.submit(bob_receives())
    sent = png(30, 20, (10, 200, 30))
    (tmp_path / "green.png").write_bytes(sent)
    app = ChatApp(address, refresh_ms=300)
    asked: list[FileRef] = []
    app.ask_file = lambda: str(tmp_path / "green.png")  # type: ignore[method-assign]
    saves = iter([str(tmp_path / "menu.png"), str(tmp_path / "double.png")])

    def ask_save_path(ref: FileRef) -> str:
        asked.append(ref)
        return next(saves)

    app.ask_save_path = ask_save_path  # type: ignore[method-assign]
    try:
        submit_form(app, "alice", PASSWORD)
        pump(app, lambda: app.me == "alice", "alice logged in")
        pump(app, lambda: app.contacts.exists("bob"), "bob in the contacts")
        app.open_conversation(Peer("bob"))
        pump(app, lambda: "no messages yet" in conversation(app), "the conversation")
        # Attach…: the file and the input box's text, to bob
        app.input.insert(0, "a green one")
        app.attach_button.invoke()
        pump(app, lambda: any(m.file for m in bob_got), "bob gets the file")
        [got] = bob_got
        assert got.body == "a green one" and got.file is not None
        assert (got.file.name, got.file.content_type) == ("green.png", "image/png")
        data = loop_thread.submit(bob.download_file(got.file.file_id)).result(WAIT)
        assert data == sent
        pump(app, lambda: app.input.get() == "", "the input box emptied")
        pump(app, lambda: f"📎 green.png ({len(sent)} B)" in line_of(app, got.id), "her file")
        pump(app, lambda: images_of(app, got.id) == [(30, 20)], "her thumbnail")
        # bob's image: the line, then its thumbnail (the node's, at most 256 px)
        big = png(600, 300, (200, 20, 20))

        async def bob_sends() -> int:
            ref = await bob.upload_file(big, "red.png")
            return await bob.send("alice", "", file_id=ref.file_id)

        mid = loop_thread.submit(bob_sends()).result(WAIT)
        pump(app, lambda: f"📎 red.png ({len(big) / 1000:.1f} KB)" in line_of(app, mid), "line")
        pump(app, lambda: images_of(app, mid) == [(256, 128)], "bob's thumbnail")
        # Save as…, from the menu, then by a double-click
        entries = menu_for(app, mid)
        assert entries["Save as…"] == "normal"
        choose(app, "Save as…")
        pump(app, lambda: (tmp_path / "menu.png").exists(), "saved from the menu")
        assert (tmp_path / "menu.png").read_bytes() == big
        text = app.conversation
        box = text.bbox(text.tag_ranges(tag_of(mid))[0])
        assert box is not None
        x, y = box[0] + 30, box[1] + box[3] // 2
        for event in ("<ButtonPress-1>", "<ButtonRelease-1>") * 2:  # (Tk makes it a double-click)
            text.event_generate(event, x=x, y=y)
        pump(app, lambda: (tmp_path / "double.png").exists(), "saved by a double-click")
        assert (tmp_path / "double.png").read_bytes() == big
        assert [ref.name for ref in asked] == ["red.png", "red.png"]
        assert app.notice_var.get() == f"saved red.png as {tmp_path / 'double.png'}"
        # a message without a file has no Save as…
        plain = loop_thread.submit(bob.send("alice", "no file here")).result(WAIT)
        pump(app, lambda: "no file here" in line_of(app, plain), "a plain message")
        assert "Save as…" not in menu_for(app, plain)
        app.message_menu.unpost()
        # refusals, in the node's words; a file that is not there
        (tmp_path / "big.bin").write_bytes(bytes(6000))
        app.ask_file = lambda: str(tmp_path / "big.bin")  # type: ignore[method-assign]
        app.attach_button.invoke()
        pump(app, lambda: "a file is 1 to 5000 bytes" in app.notice_var.get(), "too large")
        app.ask_file = lambda: str(tmp_path / "gone.png")  # type: ignore[method-assign]
        app.attach_button.invoke()
        gone = f"cannot read {tmp_path / 'gone.png'}: No such file or directory"
        pump(app, lambda: app.notice_var.get() == gone, "no such file")
        assert len(bob_got) == 1  # (neither was sent)
    finally:
        app.close()
        inbox.cancel()
        loop_thread.submit(bob.close()).result(WAIT)
