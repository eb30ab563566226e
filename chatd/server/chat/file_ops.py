"""Files and profiles, over Chat (chatd.server.chat.rules): an upload cut
into FileChunk entries and ended by a FileCommit, a download read back
from the store, a profile's SetProfile and the reads of profiles. What
the log holds, and who may read a file, is chatd.server.storage.files's.

An upload (on the master): the first chunk's header is checked (the
session, the name, the total size against --max-file-bytes and the user's
committed bytes against --max-user-file-bytes, --upload-rate, at most
MAX_UPLOADS_PER_USER at once), then its data, in chunks of at most
MAX_UPLOAD_CHUNK, is cut into entries of files.CHUNK_BYTES, written in
order with up to WINDOW of them in flight (the group commit writes them in
batches). The id is random (128 bits, the master's). Its type is sniffed
from the bytes (chatd.server.chat.images); an image's thumbnail is made in
a thread and written as chunks of the same file. The commit entry carries
the size and SHA-256 computed here, which the apply checks against the
chunks. An upload that fails, or whose client goes away, is abandoned
with an entry at once; one the node could not abandon (it stopped being
master) is dropped by the apply UPLOAD_IDLE_S after its last chunk.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import time
import unicodedata
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from chatd.contract import Code, valid_username
from chatd.proto import log_pb2
from chatd.server.chat import images
from chatd.server.chat.limits import check_file_id
from chatd.server.chat.ratelimit import RateLimiter
from chatd.server.chat.rules import Chat
from chatd.server.chat.throttle import retry_hint
from chatd.server.errors import OverLimit, RequestRefused
from chatd.server.storage.files import CHUNK_BYTES, Profile
from chatd.server.storage.rows import Applied, FileRef
from chatd.words import counted

MAX_UPLOAD_CHUNK = 64 * 1024  # data in one UploadChunk
MAX_NAME_CHARS = 255
MAX_DISPLAY_NAME_CHARS = 64
MAX_PROFILES = 1000  # names in one GetProfiles
MAX_UPLOADS_PER_USER = 2  # at once, all the user's sessions together
WINDOW = 64  # chunk entries of one upload in flight (960 KiB)
UPLOAD_IDLE_S = 600  # an upload nothing reached for this long is dropped
READ_CHUNKS = 32  # file chunks per read of a download (480 KiB)


@dataclass(frozen=True, slots=True)
class Header:
    session_id: str
    name: str
    content_type: str  # the client's claim: unused but for its log
    total_size: int


def _printable(text: str) -> bool:
    return not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in text)


def check_name(name: str) -> str:
    """A file's name: "file" for none; refused when long or not printable."""
    if len(name) > MAX_NAME_CHARS or not _printable(name) or "/" in name or "\\" in name:
        raise RequestRefused(
            Code.INVALID_FILE,
            f"a file's name is at most {MAX_NAME_CHARS} printable characters, without / or \\",
        )
    return name.strip() or "file"


def check_display_name(name: str) -> None:
    if len(name) > MAX_DISPLAY_NAME_CHARS or not _printable(name) or name != name.strip():
        raise RequestRefused(
            Code.INVALID_PROFILE,
            f"a display name is at most {MAX_DISPLAY_NAME_CHARS} printable characters, "
            "without spaces at its ends",
        )


class FileOps:
    def __init__(self, chat: Chat, thumbnails: ThreadPoolExecutor) -> None:
        self.chat = chat
        self._thumbnails = thumbnails  # one thread: one image decoded at a time
        rate = chat.limits.upload_rate
        self._rate = RateLimiter(rate / 3600, max(1, math.ceil(rate / 6)))
        self._uploading: dict[int, int] = {}  # uid -> uploads in progress

    # -- upload --

    async def upload(self, header: Header, data: AsyncIterator[bytes]) -> FileRef:
        chat, limits = self.chat, self.chat.limits
        s = chat.session(header.session_id)
        name = check_name(header.name)
        if not 0 < header.total_size <= limits.max_file_bytes:
            raise RequestRefused(
                Code.FILE_TOO_LARGE,
                f"a file is 1 to {limits.max_file_bytes} bytes (total_size says its size)",
            )
        used = await chat._read(chat.store.file_bytes_of, s.uid)
        if used + header.total_size > limits.max_user_file_bytes:
            raise RequestRefused(
                Code.FILE_TOO_LARGE,
                f"a user's files are at most {limits.max_user_file_bytes} bytes together; "
                f"{used} are taken",
            )
        if self._uploading.get(s.uid, 0) >= MAX_UPLOADS_PER_USER:
            raise OverLimit(f"at most {MAX_UPLOADS_PER_USER} uploads at once from one user", 1.0)
        wait = self._rate.wait(s.uid, time.monotonic())
        if wait > 0:
            raise OverLimit(
                f"at most {counted(limits.upload_rate, 'upload')} an hour from one user; "
                + retry_hint(wait),
                wait,
            )
        self._rate.spend(s.uid, time.monotonic())
        self._uploading[s.uid] = self._uploading.get(s.uid, 0) + 1
        upload = _Upload(self, s.username, secrets.token_hex(16), header.total_size)
        try:
            return await upload.run(name, data)
        finally:
            self._uploading[s.uid] -= 1
            if not self._uploading[s.uid]:
                del self._uploading[s.uid]

    # -- download --

    async def open_file(
        self, session_id: str, file_id: str, thumbnail: bool, offset: int
    ) -> tuple[FileRef, AsyncIterator[bytes]]:
        """The file (its ref, its data from `offset` on) if the caller may
        read it; NO_SUCH_FILE for one that is not, or not theirs to see."""
        chat = self.chat
        s = chat.session(session_id)
        if offset < 0:
            raise RequestRefused(Code.INVALID_ARGUMENT, "offset is >= 0")
        check_file_id(file_id)
        ref = await chat._read(chat.store.readable_file, s.uid, file_id)
        if ref is None or (thumbnail and not ref.has_thumbnail):
            raise RequestRefused(Code.NO_SUCH_FILE)
        return ref, self._data(file_id, thumbnail, offset)

    async def _data(self, file_id: str, thumbnail: bool, offset: int) -> AsyncIterator[bytes]:
        chat = self.chat
        while True:
            got = await chat._read(chat.store.file_chunks, file_id, thumbnail, offset, READ_CHUNKS)
            if not got:
                return
            first_start = got[0][0]
            blob = b"".join(d for _, d in got)[offset - first_start :]
            offset += len(blob)
            yield blob
            if len(got) < READ_CHUNKS:
                return

    # -- profiles --

    async def set_profile(self, session_id: str, display_name: str, avatar_file_id: str) -> None:
        chat = self.chat
        s = chat.session(session_id)
        check_display_name(display_name)
        if avatar_file_id:
            check_file_id(avatar_file_id)
        chat.take_send(s.uid)
        op = log_pb2.SetProfile(
            username=s.username, display_name=display_name, avatar_file_id=avatar_file_id
        )
        await chat._submit(log_pb2.Entry(set_profile=op))

    async def profiles(self, session_id: str, usernames: list[str]) -> list[Profile]:
        chat = self.chat
        chat.session(session_id)
        if len(usernames) > MAX_PROFILES:
            raise RequestRefused(Code.INVALID_ARGUMENT, f"at most {MAX_PROFILES} names at once")
        uids: dict[int, str] = {}
        for name in usernames:
            found = chat.find_user(name) if valid_username(name) else None
            if found is not None:
                uids[chat.store.users[found].uid] = found
        return await chat._read(chat.store.profiles, uids) if uids else []


class _Upload:
    """One upload's entries, written in order from the data as it comes."""

    def __init__(self, ops: FileOps, owner: str, file_id: str, total: int) -> None:
        self.ops, self.owner, self.file_id, self.total = ops, owner, file_id, total
        self.inflight: deque[asyncio.Future[Applied]] = deque()
        self.seq = {False: 0, True: 0}
        self.started = False

    async def _chunk(self, data: bytes, thumbnail: bool = False) -> None:
        limits = self.ops.chat.limits
        op = log_pb2.FileChunk(
            file_id=self.file_id,
            owner=self.owner,
            seq=self.seq[thumbnail],
            data=data,
            thumbnail=thumbnail,
            max_bytes=limits.max_file_bytes,
            idle_us=UPLOAD_IDLE_S * 1_000_000,
        )
        self.seq[thumbnail] += 1
        self.started = True
        submit = self.ops.chat._submit(log_pb2.Entry(file_chunk=op))
        self.inflight.append(asyncio.ensure_future(submit))
        while len(self.inflight) >= WINDOW:
            await self.inflight.popleft()

    async def _drain(self) -> None:
        while self.inflight:
            await self.inflight.popleft()

    async def run(self, name: str, data: AsyncIterator[bytes]) -> FileRef:
        try:
            return await self._run(name, data)
        except BaseException:
            for fut in self.inflight:
                fut.cancel() if not fut.done() else fut.exception()
            if self.started:
                self._abandon()
            raise

    def _abandon(self) -> None:
        """Drops the upload's chunks (in the background; if it cannot be
        written, the apply drops them UPLOAD_IDLE_S later)."""
        op = log_pb2.FileCommit(file_id=self.file_id, owner=self.owner, abandon=True)
        task = asyncio.ensure_future(self.ops.chat._submit(log_pb2.Entry(file_commit=op)))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _run(self, name: str, data: AsyncIterator[bytes]) -> FileRef:
        digest, buffer, received = hashlib.sha256(), bytearray(), 0
        whole: bytearray | None = None  # an image's bytes, for its thumbnail
        sniffed = ""
        async for part in data:
            if len(part) > MAX_UPLOAD_CHUNK:
                raise RequestRefused(
                    Code.INVALID_FILE, f"an upload's chunk carries at most {MAX_UPLOAD_CHUNK} bytes"
                )
            received += len(part)
            if received > self.total:
                raise RequestRefused(Code.INVALID_FILE, "more data than total_size said")
            digest.update(part)
            buffer += part
            if (not sniffed and len(buffer) >= 16) or received == self.total:
                sniffed = sniffed or images.sniff(bytes(buffer[:16]))
                if whole is None and sniffed != images.OCTET_STREAM:
                    whole = bytearray()
            while len(buffer) >= CHUNK_BYTES:
                piece = bytes(buffer[:CHUNK_BYTES])
                del buffer[:CHUNK_BYTES]
                if whole is not None:
                    whole += piece
                await self._chunk(piece)
        if received != self.total:
            raise RequestRefused(
                Code.INVALID_FILE, f"the upload ended after {received} of {self.total} bytes"
            )
        if buffer:
            if whole is not None:
                whole += buffer
            await self._chunk(bytes(buffer))
        content_type, thumb = images.OCTET_STREAM, b""
        if whole is not None:
            loop, made = asyncio.get_running_loop(), images.thumbnail
            job = loop.run_in_executor(self.ops._thumbnails, made, bytes(whole), sniffed)
            content_type, thumb = await job
            del whole
        for start in range(0, len(thumb), CHUNK_BYTES):
            await self._chunk(thumb[start : start + CHUNK_BYTES], thumbnail=True)
        await self._drain()
        self.started = False  # a refused commit drops the chunks itself
        sha = digest.digest()
        op = log_pb2.FileCommit(
            file_id=self.file_id,
            owner=self.owner,
            name=name,
            content_type=content_type,
            size=self.total,
            sha256=sha,
            thumb_size=len(thumb),
            thumb_sha256=hashlib.sha256(thumb).digest() if thumb else b"",
            max_user_bytes=self.ops.chat.limits.max_user_file_bytes,
        )
        await self.ops.chat._submit(log_pb2.Entry(file_commit=op))
        return FileRef(self.file_id, name, content_type, self.total, sha.hex(), bool(thumb))
