"""The terminal client's files: /send-file uploads and sends to the
conversation shown, the other side's terminal shows the file's line, and
/download saves its bytes (never overwriting, never where a node-given name
points); the node's refusals in its words. Two terminals (prompt_toolkit
reading a pipe, in this process) and a real node."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from prompt_toolkit.document import Document

from chatd.client import Message
from chatd.client.files_view import safe_name
from chatd.client.model import FileRef
from chatd.client.terminal import ChatCompleter
from chatd.server.build import build
from chatd.server.node import Node
from tests.server_fixtures import node_config
from tests.test_terminal_edits import accounts, terminals


def png(width: int = 40, height: int = 30) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 10)).save(out, "PNG")
    return out.getvalue()


def files_in(folder: Path) -> list[Path]:
    """The files under `folder`, but the node's."""
    found = [p.relative_to(folder) for p in folder.rglob("*") if p.is_file()]
    return sorted(p for p in found if p.parts[0] != "node")


@pytest.fixture
async def fnode(tmp_path: Path) -> AsyncIterator[Node]:
    n = await build(node_config(tmp_path / "node", upload_rate=0, max_file_bytes=50_000))
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


async def test_send_file_shows_on_the_other_terminal_and_downloads_byte_equal(
    fnode: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "Downloads").mkdir(parents=True)
    data = png()
    (tmp_path / "red dot.png").write_bytes(data)
    saved = tmp_path / "saved"
    saved.mkdir()
    await accounts(fnode.address, "ann", "bob")
    async with terminals(fnode.address, "ann", "bob") as (ann, bob):
        ann.type("/chat bob")
        bob.type("/chat ann")
        await bob.shows("talking to ann")
        ann.type(f'/send-file "{tmp_path / "red dot.png"}" a red dot')
        mid = (await ann.shows(r"^(\d+) \[\d\d:\d\d\] you: a red dot$"))[1]
        clip = rf"^ +📎 red dot\.png \({len(data)} B, image/png\) — /download {mid} \[PATH\]$"
        await ann.shows(clip)
        await bob.shows(rf"^{mid} \[\d\d:\d\d\] ann: a red dot$")
        await bob.shows(clip)
        # saved in the folder named, then beside it (never over it), then
        # in ~/Downloads
        bob.type(f"/download {mid} {saved}")
        await bob.shows(rf"saved red dot\.png \({len(data)} B\) as {saved}/red dot\.png$")
        assert (saved / "red dot.png").read_bytes() == data
        bob.type(f"/download {mid} {saved}")
        await bob.shows(rf"as {saved}/red dot \(1\)\.png$")
        assert (saved / "red dot (1).png").read_bytes() == data
        bob.type(f"/download {mid}")
        await bob.shows(r"as .*/home/Downloads/red dot\.png$")
        assert (tmp_path / "home" / "Downloads" / "red dot.png").read_bytes() == data
        # a file named: written there, once
        bob.type(f"/download {mid} {saved}/copy.png")
        await bob.shows(rf"as {saved}/copy\.png$")
        assert (saved / "copy.png").read_bytes() == data
        # the history shows the file too
        bob.type("/history 5")
        await bob.shows(rf"^{mid} \[\d\d:\d\d\] ann: a red dot$")
        await bob.shows(clip)


async def test_a_node_given_name_is_never_a_path(fnode: Node, tmp_path: Path) -> None:
    """A file whose name a node gives as "../../etc/passwd" (a hostile or
    broken node: its row rewritten in its store) saves as "passwd" in the
    folder chosen, and nothing is written elsewhere."""
    data = png(3, 2)
    (tmp_path / "p.png").write_bytes(data)
    where = tmp_path / "a" / "b" / "c"
    where.mkdir(parents=True)
    await accounts(fnode.address, "ann", "bob")
    async with terminals(fnode.address, "ann", "bob") as (ann, bob):
        ann.type("/chat bob")
        await ann.shows("talking to bob")
        ann.type(f"/send-file {tmp_path / 'p.png'}")
        mid = (await ann.shows(r"^(\d+) \[\d\d:\d\d\] you: $"))[1]
        db = fnode.store.db
        db.execute("UPDATE files SET name = '../../etc/passwd'")
        db.commit()
        bob.type("/chat ann")
        await bob.shows(rf"^ +📎 \.\./\.\./etc/passwd \(.*\) — /download {mid} \[PATH\]$")
        bob.type(f"/download {mid} {where}")
        await bob.shows(rf"saved \.\./\.\./etc/passwd \(.*\) as {where}/passwd$")
        assert (where / "passwd").read_bytes() == data
        assert files_in(tmp_path) == [Path("a/b/c/passwd"), Path("p.png")]


def test_safe_names() -> None:
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..\\..\\win.ini") == "win.ini"
    assert safe_name("..") == safe_name(".") == safe_name("") == safe_name("a/") == "file"
    assert safe_name("re\x1b[2Jport\x07.pdf") == "re[2Jport.pdf"
    assert safe_name("/abs/path\n.txt") == "path.txt"


async def test_refusals_in_the_nodes_words(fnode: Node, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 60_000)
    await accounts(fnode.address, "ann", "bob")
    async with terminals(fnode.address, "ann") as (ann,):
        ann.type(f"/send-file {big}")
        await ann.shows("choose someone to talk to first")
        ann.type("/chat bob")
        await ann.shows("talking to bob")
        ann.type(f"/send-file {big}")
        await ann.shows(rf"cannot send {big}: a file is 1 to 50000 bytes")
        ann.type(f"/send-file {tmp_path / 'nothing.png'}")
        await ann.shows(rf"cannot read {tmp_path}/nothing\.png: No such file or directory")
        ann.type("/send-file")
        await ann.shows(r"usage: /send-file PATH \[TEXT\]")
        ann.type("plain")
        mid = (await ann.shows(r"^(\d+) \[\d\d:\d\d\] you: plain$"))[1]
        ann.type(f"/download {mid}")
        await ann.shows(f"message {mid} carries no file")
        ann.type("/download 99999")
        await ann.shows("message 99999 is not on this screen")
        ann.type("/download x")
        await ann.shows(r"usage: /download ID \[PATH\]")


def test_the_completion_offers_paths_and_the_messages_with_a_file(tmp_path: Path) -> None:
    (tmp_path / "green.png").write_bytes(b"")
    (tmp_path / "grey.txt").write_bytes(b"")
    (tmp_path / "blue.png").write_bytes(b"")
    at = datetime.now(UTC)
    ref = FileRef("f1", "green.png", "image/png", 10, True, "")
    shown = [
        Message(12, "bob", "alice", "", at, file=ref),
        Message(11, "alice", "bob", "no file", at),
        Message(10, "bob", "alice", "", at, file=ref, deleted=True),
    ]
    completer = ChatCompleter(lambda: (), lambda: shown, lambda: "alice")

    def offered(text: str) -> list[str]:
        return sorted(c.text for c in completer.get_completions(Document(text), None))

    assert offered("/download ") == ["12"]
    assert offered(f"/send-file {tmp_path}/gr") == ["een.png", "ey.txt"]
    assert offered("/send-") == ["/send-file"]
