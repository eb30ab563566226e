"""Files and profiles (protocol 4): uploads in chunks through the log, the
apply's checks (order, immutability, size, SHA-256, quota, abandoned
uploads collected), thumbnails made with Pillow, the content type sniffed
and never the client's, who may read a file, profiles, and every refusal
an attacker could try. Real stores, real nodes on loopback (one in-process
node, or a 3-node cluster of processes for a slave's upload, another
slave's download and a master killed -9)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import sqlite3
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from PIL import Image

from chatd.client import (
    ChatClient,
    FileTooLarge,
    InvalidFile,
    InvalidProfile,
    NoSuchFile,
    NotLoggedIn,
)
from chatd.contract import Code
from chatd.core.types import Append, Pos, Timing
from chatd.proto import chat_pb2, chat_pb2_grpc, log_pb2
from chatd.server.build import build
from chatd.server.chat.file_ops import UPLOAD_IDLE_S
from chatd.server.cluster.peers import CLUSTER_MESSAGE_LIMIT
from chatd.server.cluster.wire import batch_to
from chatd.server.node import Node
from chatd.server.storage import recent
from chatd.server.storage.files import CHUNK_BYTES
from chatd.server.storage.store import Store
from tests.cluster import Cluster
from tests.server_fixtures import node_config
from tests.test_client import logged_in
from tests.test_store_apply import apply, file_chunk, file_commit, open_store, send, set_profile
from tests.test_upgrade import copy_of
from tests.waiting import eventually_async

# -- images --


def png(width: int = 1000, height: int = 600) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 10)).save(out, "PNG")
    return out.getvalue()


def jpeg(width: int = 1200, height: int = 900) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 90, 200)).save(out, "JPEG")
    return out.getvalue()


def bomb_png(side: int = 30_000) -> bytes:
    """A PNG of side x side 1-bit pixels, all 0: a few KiB that would decode
    to 900 megapixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    row = b"\x00" * (1 + (side + 7) // 8)
    raw = zlib.compress(row * side, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


# -- the store: what the apply decides on the rows alone --


def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store.path) as db:
        return db.execute(sql).fetchall()


def users(store: Store, *names: str) -> None:
    entries = [
        log_pb2.Entry(
            time_us=1,
            create_account=log_pb2.CreateAccount(username=n, password_hash="scrypt$8$s$h"),
        )
        for n in names
    ]
    apply(store, entries)


def test_chunks_in_order_then_a_commit_checked_against_size_and_hash(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite3") as store:
        users(store, "ann", "bob")
        data = os.urandom(3 * CHUNK_BYTES + 5)
        parts = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
        out = apply(store, [file_chunk("ann", "f1", i, p, t=2) for i, p in enumerate(parts)])
        assert [o.code for o in out] == [Code.OK] * 4
        # out of order, another owner's, past the upload's bound: refused
        late = apply(
            store,
            [
                file_chunk("ann", "f1", 7, b"x", t=2),
                file_chunk("bob", "f1", 4, b"x", t=2),
                file_chunk("ann", "f2", 1, b"x", t=2),
                file_chunk("ann", "f3", 0, b"x" * 10, t=2, max_bytes=9),
                file_chunk("ann", "f4", 0, b"x" * (CHUNK_BYTES + 1), t=2),
            ],
        )
        assert [o.code for o in late] == [Code.INVALID_FILE] * 3 + [
            Code.FILE_TOO_LARGE,
            Code.INVALID_FILE,
        ]
        # a commit whose hash is not the chunks': refused, the upload gone
        wrong = file_commit("ann", "f1", data[:-1] + b"?", t=3)
        assert apply(store, [wrong])[0].code == Code.INVALID_FILE
        assert rows(store, "SELECT count(*) FROM file_chunks") == [(0,)]
        assert rows(store, "SELECT count(*) FROM uploads") == [(0,)]
        # again, whole: committed, immutable
        apply(store, [file_chunk("ann", "f1", i, p, t=4) for i, p in enumerate(parts)])
        assert apply(store, [file_commit("ann", "f1", data, t=5)])[0].code == Code.OK
        assert rows(store, "SELECT file_id, size, sha256 FROM files") == [
            ("f1", len(data), hashlib.sha256(data).digest())
        ]
        after = apply(
            store,
            [file_chunk("ann", "f1", 4, b"more", t=6), file_chunk("ann", "f1", 0, b"new", t=6)],
        )
        assert [o.code for o in after] == [Code.INVALID_FILE] * 2
        assert apply(store, [file_commit("ann", "f1", data, t=6)])[0].code == Code.NO_SUCH_FILE
        got = b"".join(r[0] for r in rows(store, "SELECT data FROM file_chunks ORDER BY seq"))
        assert got == data


def test_the_quota_and_a_send_of_a_file_are_checked_in_the_apply(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite3") as store:
        users(store, "ann", "bob")
        apply(
            store,
            [
                file_chunk("ann", "f1", 0, b"a" * 600, t=2),
                file_commit("ann", "f1", b"a" * 600, t=2),
            ],
        )
        over = apply(
            store,
            [
                file_chunk("ann", "f2", 0, b"b" * 500, t=3),
                file_commit("ann", "f2", b"b" * 500, t=3, max_user_bytes=1000),
            ],
        )
        assert over[1].code == Code.FILE_TOO_LARGE
        assert rows(store, "SELECT file_id FROM files") == [("f1",)]
        # a file is sent by its owner only, committed only
        with_file = send("bob", "ann", "hi", t=4)
        with_file.send_message.file_id = "f1"
        assert apply(store, [with_file])[0].code == Code.NO_SUCH_FILE
        own = send("ann", "bob", "", t=4)
        own.send_message.file_id = "f1"
        (sent,) = apply(store, [own])
        assert sent.code == Code.OK and sent.new_message is not None
        assert sent.new_message.file is not None and sent.new_message.file.size == 600
        assert rows(store, "SELECT message_id, file_id FROM message_files") == [
            (sent.message_id, "f1")
        ]
        # an avatar is one of the user's own images
        assert apply(store, [set_profile("bob", "B", "f1", t=5)])[0].code == Code.NO_SUCH_FILE
        assert apply(store, [set_profile("ann", "A", "f1", t=5)])[0].code == Code.NO_SUCH_FILE


def test_an_abandoned_upload_is_collected_by_a_later_entrys_time(tmp_path: Path) -> None:
    idle = UPLOAD_IDLE_S * 1_000_000
    with open_store(tmp_path / "s.sqlite3") as store:
        users(store, "ann", "bob")
        apply(store, [file_chunk("ann", "old", 0, b"x" * 100, t=10, idle_us=idle)])
        apply(store, [file_chunk("ann", "old", 1, b"y", t=10 + idle - 1, idle_us=idle)])
        # another user's upload, just under the idle time after "old"'s last chunk: kept
        apply(store, [file_chunk("bob", "new", 0, b"z", t=10 + 2 * idle - 2, idle_us=idle)])
        assert rows(store, "SELECT file_id FROM uploads ORDER BY 1") == [("new",), ("old",)]
        apply(store, [file_chunk("bob", "new", 1, b"z", t=10 + 2 * idle, idle_us=idle)])
        assert rows(store, "SELECT file_id FROM uploads") == [("new",)]
        assert rows(store, "SELECT DISTINCT file_id FROM file_chunks") == [("new",)]
        # and an abandon entry drops one at once
        apply(store, [file_commit("bob", "new", b"", t=10 + 2 * idle, abandon=True)])
        assert rows(store, "SELECT count(*) FROM file_chunks") == [(0,)]


def test_chunks_keep_the_replication_cache_and_a_catch_up_batch_bounded(tmp_path: Path) -> None:
    # 4096 chunk entries (the core's most in one Append) fit one cluster message
    entry = file_chunk("a" * 32, "f" * 32, 2**31 - 1, b"\xff" * CHUNK_BYTES, t=2**62)
    entry.file_chunk.max_bytes = entry.file_chunk.idle_us = 2**62
    data = entry.SerializeToString()
    count = Timing().max_batch
    big = 2**62
    m = Append(
        src="n" * 64,
        dst="m" * 64,
        epoch=big,
        prev=Pos(big, big),
        count=count,
        entry_epoch=big,
        commit=big,
        in_sync=True,
        echo=big,
    )
    assert batch_to(m, [data] * count).ByteSize() < CLUSTER_MESSAGE_LIMIT
    with open_store(tmp_path / "s.sqlite3") as store:
        users(store, "ann")
        parts = [file_chunk("ann", "f1", i, os.urandom(CHUNK_BYTES), t=2) for i in range(3000)]
        for start in range(0, len(parts), 500):
            apply(store, parts[start : start + 500])
        assert store.recent.size == sum(len(v) for v in store.recent.values())
        assert store.recent.size <= recent.RECENT_BYTES
        assert store.last_index in store.recent and len(store.recent) < 3000


# -- through the API: one node --


@pytest.fixture
async def fnode(tmp_path: Path) -> AsyncIterator[Node]:
    n = await build(node_config(tmp_path / "node", upload_rate=0))
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


async def clients(node: Node, *names: str) -> list[ChatClient]:
    return [await logged_in(node.address, name) for name in names]


async def closing(*cs: ChatClient) -> None:
    for c in cs:
        await c.close()


async def raw_upload(
    stub: Any, chunks: list[chat_pb2.UploadChunk], metadata: Any = None
) -> chat_pb2.UploadResult:
    async def gen() -> AsyncIterator[chat_pb2.UploadChunk]:
        for c in chunks:
            yield c

    return await stub.UploadFile(gen(), metadata=metadata)  # type: ignore[no-any-return]


async def test_images_get_thumbnails_and_other_bytes_are_octet_stream(fnode: Node) -> None:
    ann, bob = await clients(fnode, "ann", "bob")
    try:
        for data, kind, size in (
            (png(), "image/png", (256, 154)),
            (jpeg(), "image/jpeg", (256, 192)),
        ):
            ref = await ann.upload_file(data, "pic", content_type="text/html")
            assert (ref.content_type, ref.has_thumbnail, ref.size) == (kind, True, len(data))
            assert await ann.download_file(ref.file_id) == data
            thumb = Image.open(io.BytesIO(await ann.download_file(ref.file_id, thumbnail=True)))
            assert (thumb.format, thumb.size) == ("PNG", size)
        # what claims to be an image and is not: octet-stream, no thumbnail
        html = b"<html><script>alert(1)</script></html>"
        svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
        fake_png = b"\x89PNG\r\n\x1a\n<html>not a png</html>"
        for data in (html, svg, fake_png):
            ref = await ann.upload_file(data, "x.png", content_type="image/png")
            assert (ref.content_type, ref.has_thumbnail) == ("application/octet-stream", False)
            with pytest.raises(NoSuchFile):
                await ann.download_file(ref.file_id, thumbnail=True)
    finally:
        await closing(ann, bob)


async def test_a_decompression_bomb_is_refused_and_the_node_serves_on(fnode: Node) -> None:
    (ann,) = await clients(fnode, "ann")
    try:
        bomb = bomb_png()
        assert len(bomb) < 200_000
        with pytest.raises(InvalidFile, match="pixels"):
            await ann.upload_file(bomb, "bomb.png")
        ref = await ann.upload_file(png(40, 30), "ok.png")
        assert ref.has_thumbnail
        store = fnode.store

        def left() -> int:
            return int(store.db.execute("SELECT count(*) FROM uploads").fetchone()[0])

        await eventually_async(left, "the bomb's chunks gone", until=lambda n: n == 0)
        assert store.db.execute("SELECT count(*) FROM files").fetchone()[0] == 1
    finally:
        await closing(ann)


async def test_size_and_quota(tmp_path: Path) -> None:
    cfg = node_config(
        tmp_path / "n", upload_rate=0, max_file_bytes=100_000, max_user_file_bytes=150_000
    )
    node = await build(cfg)
    await node.start()
    (ann,) = await clients(node, "ann")
    try:
        with pytest.raises(FileTooLarge):
            await ann.upload_file(b"x" * 100_001)
        await ann.upload_file(b"x" * 100_000)
        with pytest.raises(FileTooLarge):
            await ann.upload_file(b"y" * 60_000)
        await ann.upload_file(b"y" * 50_000)
    finally:
        await closing(ann)
        await node.stop()


async def test_the_upload_rate(tmp_path: Path) -> None:
    node = await build(node_config(tmp_path / "n", upload_rate=6))  # a burst of 1
    await node.start()
    (ann,) = await clients(node, "ann")
    try:
        await ann.upload_file(b"one")
        with pytest.raises(Exception, match="upload"):
            await ann.upload_file(b"two")
    finally:
        await closing(ann)
        await node.stop()


async def test_who_may_read_a_file(fnode: Node) -> None:
    ann, bob, cat = await clients(fnode, "ann", "bob", "cat")
    try:
        data = os.urandom(40_000)
        ref = await ann.upload_file(data, "secret.bin")
        # only the uploader, before it is sent
        for c in (bob, cat):
            with pytest.raises(NoSuchFile):
                await c.download_file(ref.file_id)
        mid = await ann.send("bob", "here", file_id=ref.file_id)
        assert await bob.download_file(ref.file_id) == data
        [m] = await bob.get_chat("ann")
        assert m.file is not None and m.file.file_id == ref.file_id
        # as every read hands it out: the inbox, a stream's backlog
        [taken] = await bob.get_messages()
        assert taken.file == m.file
        stream = bob.subscribe()
        delivered = await asyncio.wait_for(anext(stream), 10)
        assert (delivered.id, delivered.file) == (mid, m.file)
        # and live, as it is sent
        live = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.3)
        second = await ann.send("bob", "again", file_id=ref.file_id)
        got = await asyncio.wait_for(live, 10)
        await stream.aclose()
        assert (got.id, got.file) == (second, m.file)
        # not another pair, and not forwarded: it is not bob's to send
        with pytest.raises(NoSuchFile):
            await cat.download_file(ref.file_id)
        with pytest.raises(NoSuchFile):
            await bob.send("cat", "fwd", file_id=ref.file_id)
        # a guessed id, a malformed one: as an unknown one
        for guess in (os.urandom(16).hex(), "../../etc/passwd", ref.file_id.upper(), ""):
            with pytest.raises(NoSuchFile):
                await bob.download_file(guess)
        # a room: its joined members, not after they are removed
        await ann.create_room("team")
        await ann.invite("team", "cat")
        await cat.join_room("team")
        rref = await ann.upload_file(b"room file")
        await ann.send("", "for the room", room="team", file_id=rref.file_id)
        assert await cat.download_file(rref.file_id) == b"room file"
        with pytest.raises(NoSuchFile):
            await bob.download_file(rref.file_id)
        await ann.remove_from_room("team", "cat")
        with pytest.raises(NoSuchFile):
            await cat.download_file(rref.file_id)
        # a deleted message: its file no more (while another message carries
        # it, still), but to its uploader
        await ann.delete_message(mid)
        assert await bob.download_file(ref.file_id) == data
        await ann.delete_message(second)
        with pytest.raises(NoSuchFile):
            await bob.download_file(ref.file_id)
        [gone, _] = await bob.get_chat("ann")
        assert (gone.deleted, gone.file) == (True, None)
        assert await ann.download_file(ref.file_id) == data
        # offsets
        async with grpc.aio.insecure_channel(fnode.address) as channel:
            stub = chat_pb2_grpc.ClientAccountStub(channel)

            async def get(sid: str, fid: str, offset: int = 0) -> list[chat_pb2.FileData]:
                request = chat_pb2.FileRequest(session_id=sid, file_id=fid, offset=offset)
                return [f async for f in stub.GetFile(request)]

            frames = await get(ann.session_id or "", ref.file_id, 39_000)
            assert b"".join(f.data for f in frames) == data[39_000:]
            [bad] = await get(ann.session_id or "", ref.file_id, -1)
            assert bad.error_code == Code.INVALID_ARGUMENT
            [forged] = await get("0" * 43, ref.file_id)
            assert forged.error_code == Code.NOT_LOGGED_IN
    finally:
        await closing(ann, bob, cat)


async def test_an_upload_that_cheats_is_refused_and_changes_nothing(fnode: Node) -> None:
    ann, _ = await clients(fnode, "ann", "bob")
    sid = ann.session_id or ""
    try:
        async with grpc.aio.insecure_channel(fnode.address) as channel:
            stub = chat_pb2_grpc.ClientAccountStub(channel)

            def first(size: int, data: bytes = b"", session: str = sid) -> chat_pb2.UploadChunk:
                return chat_pb2.UploadChunk(
                    session_id=session, name="f", total_size=size, data=data
                )

            cases = [
                ([first(10, b"x" * 11)], Code.INVALID_FILE),  # more than it said
                ([first(10, b"x" * 5)], Code.INVALID_FILE),  # less
                ([first(0)], Code.FILE_TOO_LARGE),
                ([first(-5, b"x")], Code.FILE_TOO_LARGE),
                ([first(10, b"x" * 10, session="forged")], Code.NOT_LOGGED_IN),
                (
                    [chat_pb2.UploadChunk(session_id=sid, name="a\x00b", total_size=1, data=b"x")],
                    Code.INVALID_FILE,
                ),
                ([first(70_000), chat_pb2.UploadChunk(data=b"x" * 70_000)], Code.INVALID_FILE),
                ([], Code.INVALID_FILE),
            ]
            for chunks, code in cases:
                r = await raw_upload(stub, chunks)
                assert r.error_code == code, (chunks[:1], r)
            # 10,000 tiny chunks: cut into a few entries of their own
            before = fnode.store.last_index
            tiny = [first(10_000, b"a")] + [chat_pb2.UploadChunk(data=b"a")] * 9_999
            r = await raw_upload(stub, tiny)
            assert r.error_code == 0 and r.file.size == 10_000
            assert fnode.store.last_index - before <= 3  # (a chunk, the commit)
            assert await ann.download_file(r.file.file_id) == b"a" * 10_000

        def left() -> tuple[int, int]:
            db = fnode.store.db
            return (
                db.execute("SELECT count(*) FROM uploads").fetchone()[0],
                db.execute("SELECT count(*) FROM files").fetchone()[0],
            )

        await eventually_async(left, "nothing but the one file", until=lambda n: n == (0, 1))
    finally:
        await closing(ann)


async def test_profiles(fnode: Node) -> None:
    ann, bob = await clients(fnode, "ann", "bob")
    try:
        pic = await ann.upload_file(png(64, 64), "me.png")
        doc = await ann.upload_file(b"not an image", "doc.txt")
        bobs = await bob.upload_file(png(32, 32), "bob.png")
        for bad in ("x" * 65, "a\nb", "tab\there", " padded", "rtl\u202eoverride"):
            with pytest.raises(InvalidProfile):
                await ann.set_profile(bad)
        for avatar in (doc.file_id, bobs.file_id, "f" * 32, "nope"):
            with pytest.raises(NoSuchFile):
                await ann.set_profile("Ann", avatar)
        await ann.set_profile("Ann \N{SNOWMAN}", pic.file_id)
        got = await bob.get_profiles(["ann", "ANN", "bob", "nobody", "bad name"])
        assert list(got) == ["ann"]
        assert (got["ann"].display_name, got["ann"].avatar_file_id) == (
            "Ann \N{SNOWMAN}",
            pic.file_id,
        )
        # an avatar: any logged-in user reads it
        assert await bob.download_file(pic.file_id) == png(64, 64)
        await ann.set_profile()
        assert await bob.get_profiles(["ann"]) == {}
        with pytest.raises(NoSuchFile):
            await bob.download_file(pic.file_id)
        await bob.logout()
        with pytest.raises(NotLoggedIn):
            await bob.get_profiles(["ann"])
    finally:
        await closing(ann, bob)


# -- a cluster of processes: any node serves a file, after a failover too --


async def test_upload_at_a_slave_download_at_another_and_after_the_master_is_killed(
    tmp_path: Path,
) -> None:
    cluster = await asyncio.to_thread(Cluster.start, tmp_path)
    cs: list[ChatClient] = []
    try:
        master = str(await asyncio.to_thread(cluster.master))
        one, other = [n for n in cluster.addresses if n != master]
        addresses = list(cluster.addresses.values())
        ann = await logged_in(addresses, "ann")
        bob = await logged_in(addresses, "bob")
        cs += [ann, bob]
        data = os.urandom(2 * 1024 * 1024 + 123)
        async with (
            grpc.aio.insecure_channel(cluster.addresses[one]) as at_one,
            grpc.aio.insecure_channel(cluster.addresses[other]) as at_other,
        ):
            chunks = [
                chat_pb2.UploadChunk(
                    session_id=ann.session_id or "", name="big.bin", total_size=len(data)
                )
            ] + [chat_pb2.UploadChunk(data=data[i : i + 65536]) for i in range(0, len(data), 65536)]
            r = await raw_upload(chat_pb2_grpc.ClientAccountStub(at_one), chunks)
            assert r.error_code == 0, r
            assert r.file.sha256 == hashlib.sha256(data).hexdigest()
            await ann.send("bob", "big", file_id=r.file.file_id)
            request = chat_pb2.FileRequest(session_id=bob.session_id or "", file_id=r.file.file_id)
            got = [f async for f in chat_pb2_grpc.ClientAccountStub(at_other).GetFile(request)]
            assert got[0].file.size == len(data)
            assert (
                hashlib.sha256(b"".join(f.data for f in got)).digest()
                == hashlib.sha256(data).digest()
            )
        cluster.kill(master)
        after = await bob.download_file(r.file.file_id)
        assert after == data
        # every node that is left holds the same state
        await asyncio.to_thread(cluster.converged, [one, other])
    finally:
        for c in cs:
            with contextlib.suppress(Exception):
                await c.close()
        cluster.stop_all()


def test_an_old_store_migrates_with_the_file_tables_empty(tmp_path: Path) -> None:
    """The oldest fixture's store opens at the newest schema; its state digest is
    its old tables' alone (the new ones are empty); then an upload applies."""
    from chatd.server.storage import schema, statedigest

    path, _ = copy_of("4e557bd", tmp_path / "d")
    with open_store(path) as store:
        assert schema.version_of(store.db) == len(schema.migrations(""))
        digest = store.state_digest
        owner = next(iter(store.users))
    old = sqlite3.connect(tmp_path / "old.sqlite3")
    copy = sqlite3.connect(path)
    copy.backup(old)
    copy.close()
    for table in ("uploads", "file_chunks", "files", "message_files", "profiles"):
        old.execute(f"DROP TABLE {table}")
    assert statedigest.to_bytes(statedigest.scan(old)) == digest
    old.close()
    with open_store(path) as store:
        t = store.last_time_us + 1
        out = apply(
            store, [file_chunk(owner, "f1", 0, b"x", t=t), file_commit(owner, "f1", b"x", t=t)]
        )
        assert [o.code for o in out] == [Code.OK, Code.OK]


def test_a_cluster_with_a_member_of_protocol_3_writes_no_file_entry() -> None:
    from chatd.server import protocol

    made = [
        file_chunk("ann", "f1", 0, b"x"),
        file_commit("ann", "f1", b"x"),
        set_profile("ann", "Ann"),
    ]
    with_file = send("ann", "bob", "hi")
    with_file.send_message.file_id = "f1"
    for entry in [*made, with_file]:
        assert protocol.writable(entry, 4) and not protocol.writable(entry, 3), entry
    assert protocol.writable(send("ann", "bob", "hi"), 3)


def test_the_image_types_are_sniffed_from_their_bytes() -> None:
    from chatd.server.chat import images

    for fmt, kind in (("GIF", "image/gif"), ("WEBP", "image/webp"), ("PNG", "image/png")):
        out = io.BytesIO()
        Image.new("RGB", (600, 300), (1, 2, 3)).save(out, fmt)
        data = out.getvalue()
        assert images.sniff(data[:16]) == kind
        found, thumb = images.thumbnail(data, kind)
        assert found == kind and Image.open(io.BytesIO(thumb)).size == (256, 128)
        # the bytes of one type under another's magic: not an image
        assert images.thumbnail(data, "image/jpeg") == (images.OCTET_STREAM, b"")
    assert images.sniff(b"<svg xmlns=") == images.OCTET_STREAM


async def test_an_upload_whose_client_goes_away_leaves_nothing(fnode: Node) -> None:
    (ann,) = await clients(fnode, "ann")
    try:
        sent = asyncio.Event()

        async def half() -> AsyncIterator[chat_pb2.UploadChunk]:
            yield chat_pb2.UploadChunk(
                session_id=ann.session_id or "", name="f", total_size=1 << 20, data=b"x" * 65536
            )
            for _ in range(3):
                yield chat_pb2.UploadChunk(data=b"x" * 65536)
            sent.set()
            await asyncio.sleep(3600)

        async with grpc.aio.insecure_channel(fnode.address) as channel:
            call = chat_pb2_grpc.ClientAccountStub(channel).UploadFile(half())
            await sent.wait()
            store = fnode.store

            def chunks() -> int:
                return int(store.db.execute("SELECT count(*) FROM file_chunks").fetchone()[0])

            await eventually_async(chunks, "the chunks written", until=lambda n: n >= 16)
            call.cancel()
        await eventually_async(chunks, "the chunks dropped", until=lambda n: n == 0)
        assert store.db.execute("SELECT count(*) FROM uploads").fetchone()[0] == 0
    finally:
        await closing(ann)
