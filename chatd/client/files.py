"""The client library's files and profiles: a mixin of ChatClient
(chatd.client.api). An upload is sent in chunks of CHUNK bytes and, on a
node lost (UNAVAILABLE, a timeout), sent again whole elsewhere (the node
drops the unfinished one); a download goes on from the byte it reached."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatd.client.errors import InvalidFile, error_for
from chatd.client.failover import Failover
from chatd.client.model import FileRef, file_of
from chatd.contract import Code
from chatd.proto import chat_pb2

CHUNK = 64 * 1024  # data in one UploadChunk: the most a node takes


@dataclass(frozen=True, slots=True)
class Profile:
    username: str
    display_name: str  # "": none
    avatar_file_id: str  # "": none


class FileCalls:
    if TYPE_CHECKING:  # (ChatClient's)
        failover: Failover
        _ok: Callable[..., Awaitable[Any]]
        _session: Callable[[], str]
        _retried: Callable[..., Awaitable[Any]]

    async def upload_file(
        self, source: bytes | str | Path, name: str = "", content_type: str = ""
    ) -> FileRef:
        """Uploads a file (its bytes, or a path: then its name is the file's
        unless `name` says one); answers its FileRef (its id to send with a
        message). The node decides its type from the bytes."""
        if isinstance(source, bytes):
            data = source
        else:
            path = Path(source)
            data, name = await asyncio.to_thread(path.read_bytes), name or path.name
        session = self._session()

        async def chunks() -> AsyncIterator[chat_pb2.UploadChunk]:
            yield chat_pb2.UploadChunk(
                session_id=session,
                name=name,
                content_type=content_type,
                total_size=len(data),
                data=data[:CHUNK],
            )
            for start in range(CHUNK, len(data), CHUNK):
                yield chat_pb2.UploadChunk(data=data[start : start + CHUNK])

        # (at 1 MB/s at worst)
        r = await self._ok("UploadFile", chunks, len(data) / 1_000_000)
        return file_of(r.file)

    async def download_file(self, file_id: str, thumbnail: bool = False) -> bytes:
        """A file's bytes (or its image's thumbnail, a PNG), if I may read it:
        mine, one a message I may read carries, or an avatar (NoSuchFile
        otherwise). A whole file is checked against its SHA-256."""
        got = bytearray()
        ref: chat_pb2.FileRef | None = None
        timeout = self.failover.timeout + 600

        async def once(stub: Any) -> tuple[None, Any]:
            nonlocal ref
            request = chat_pb2.FileRequest(
                session_id=self._session(), file_id=file_id, thumbnail=thumbnail, offset=len(got)
            )
            stream: Any = stub.GetFile(request, timeout=timeout)
            async for frame in stream:  # (a retry goes on from the bytes got)
                if frame.error_code:
                    raise error_for(frame.error_code, frame.error_message)
                if frame.HasField("file"):
                    ref = frame.file
                got.extend(frame.data)
            return None, stream

        await self._retried(once)
        if ref is not None and not thumbnail and hashlib.sha256(got).hexdigest() != ref.sha256:
            raise InvalidFile(Code.INVALID_FILE, "the file's bytes do not match its SHA-256")
        return bytes(got)

    async def set_profile(self, display_name: str = "", avatar_file_id: str = "") -> None:
        """My display name ("": none) and avatar (one of my image files' ids; "": none)."""
        request = chat_pb2.ProfileRequest(
            session_id=self._session(), display_name=display_name, avatar_file_id=avatar_file_id
        )
        await self._ok("SetProfile", request)

    async def get_profiles(self, usernames: list[str]) -> dict[str, Profile]:
        """The profiles of those of `usernames` who set one, by name."""
        request = chat_pb2.ProfilesRequest(session_id=self._session(), usernames=usernames)
        r = await self._ok("GetProfiles", request)
        return {
            p.username: Profile(p.username, p.display_name, p.avatar_file_id) for p in r.profile
        }
