"""The page's file transfers over HTTP, run by the client servicer as the
WebSocket's calls are (chatd.server.web.gateway): `POST /files` is an
UploadFile, `GET /files/{id}` a GetFile. The session travels in the
X-Chatd-Session header, never in the URL (no log, history or Referer
holds it); a request from another origin is refused, and a browser would
not send one of its own with that header anyway (no CORS preflight is
answered).

An upload's body is the file's bytes: Content-Length is required and at
most the node's --max-file-bytes (refused before a byte is read), read in
chunks of an UploadChunk's size, never whole. X-File-Name is its name,
percent-encoded UTF-8; Content-Type the type the page claims (the node
sniffs the bytes). The answer is the JSON of the call's answer, as on
the WebSocket.

A download is sent with the type the node found: one of four image types,
or application/octet-stream, never anything a browser would run (the
page's CSP and nosniff hold too), as an attachment unless it is an image
asked for display (`?display=1`) or a thumbnail (`?thumbnail=1`, a PNG).
`?avatar=1` asks for the thumbnail, or the image itself for display when
it has none (one small enough needs none): a profile names its avatar by
file id alone, so the page cannot know which to ask for, and a 404 first
would be an error in the browser's console for every small avatar.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from aiohttp import web

from chatd.contract import Code
from chatd.proto import chat_pb2
from chatd.server.chat.file_ops import MAX_UPLOAD_CHUNK
from chatd.server.chat.images import THUMBNAIL_TYPE
from chatd.server.storage.files import IMAGE_TYPES, OCTET_STREAM
from chatd.server.web.codec import to_json
from chatd.server.web.context import WebContext, metadata_json
from chatd.server.web.gateway import Gateway

log = logging.getLogger(__name__)

SESSION_HEADER = "X-Chatd-Session"
NAME_HEADER = "X-File-Name"
MAX_HEADER_CHARS = 1024
_STATUS = {  # a call's end, as HTTP says it
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_REFUSED: dict[int, int] = {Code.NO_SUCH_FILE: 404, Code.NOT_LOGGED_IN: 401}  # else 400


def _json_error(status: int, code: str, details: str) -> web.Response:
    return web.json_response({"error": {"code": code, "details": details}}, status=status)


def disposition(kind: str, name: str) -> str:
    """RFC 6266: the name percent-encoded (no quote or line break reaches the header)."""
    return f"{kind}; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


class FileRoutes:
    """`allowed(request)`: whether the request's origin is the cluster's
    (chatd.server.web.app's check, as for the WebSocket); `peer(request)`:
    the caller as gRPC names it."""

    def __init__(
        self,
        gateway: Gateway,
        max_file_bytes: int,
        allowed: Callable[[web.Request], bool],
        peer: Callable[[web.Request], str],
    ) -> None:
        self.servicer: Any = gateway.servicer
        self.max_file_bytes = max_file_bytes
        self.allowed = allowed
        self.peer = peer

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/files", self.upload)
        app.router.add_get("/files/{file_id}", self.download)

    def _session(self, request: web.Request) -> str:
        if not self.allowed(request):
            raise web.HTTPForbidden(text="this origin is not one of the cluster's web origins")
        return request.headers.get(SESSION_HEADER, "")[:MAX_HEADER_CHARS]

    async def upload(self, request: web.Request) -> web.Response:
        session = self._session(request)
        length = request.content_length
        if length is None:
            raise web.HTTPLengthRequired(text="Content-Length is required")
        if length > self.max_file_bytes:
            return _json_error(
                413, "FILE_TOO_LARGE", f"a file is at most {self.max_file_bytes} bytes"
            )
        name = urllib.parse.unquote(request.headers.get(NAME_HEADER, "")[:MAX_HEADER_CHARS])
        claimed = request.headers.get("Content-Type", "")[:200]

        async def chunks() -> AsyncIterator[chat_pb2.UploadChunk]:
            yield chat_pb2.UploadChunk(
                session_id=session, name=name, content_type=claimed, total_size=length
            )
            async for data in request.content.iter_chunked(MAX_UPLOAD_CHUNK):
                yield chat_pb2.UploadChunk(data=data)

        context = WebContext(self.peer(request), timeout=None)
        try:
            result = await self.servicer.UploadFile(chunks(), context)
        except grpc.aio.AbortError:
            ended = context.ended()
            return web.json_response(
                {"error": ended}, status=_STATUS.get(context.status or grpc.StatusCode.OK, 500)
            )
        return web.json_response(
            {"response": to_json(result), "metadata": metadata_json(context.trailing)}
        )

    async def _open(
        self, request: web.Request, session: str, thumbnail: bool
    ) -> web.Response | tuple[WebContext, chat_pb2.FileRef, AsyncIterator[chat_pb2.FileData]]:
        """A GetFile begun: (its context, the file, the frames after the
        first), or the answer that says why not."""
        file_request = chat_pb2.FileRequest(
            session_id=session, file_id=request.match_info["file_id"][:64], thumbnail=thumbnail
        )
        context = WebContext(self.peer(request), timeout=None)
        frames = self.servicer.GetFile(file_request, context)
        try:
            first: chat_pb2.FileData | None = await anext(frames, None)
        except grpc.aio.AbortError:
            status = context.status or grpc.StatusCode.UNKNOWN
            return _json_error(_STATUS.get(status, 500), status.name, context.details)
        if first is None:
            return _json_error(500, "INTERNAL", "no answer")
        if first.error_code or not first.HasField("file"):
            refused = _REFUSED.get(first.error_code, 400) if first.error_code else 500
            return web.json_response(
                {"error_code": first.error_code, "error_message": first.error_message},
                status=refused,
            )
        return context, first.file, frames

    async def download(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        avatar = request.query.get("avatar") == "1"
        thumbnail = avatar or request.query.get("thumbnail") == "1"
        display = avatar or request.query.get("display") == "1"
        opened = await self._open(request, session, thumbnail)
        if avatar and isinstance(opened, web.Response) and opened.status == 404:
            thumbnail = False  # (none: the image itself)
            opened = await self._open(request, session, thumbnail)
        if isinstance(opened, web.Response):
            return opened
        context, ref, frames = opened
        image = ref.content_type in IMAGE_TYPES
        kind = THUMBNAIL_TYPE if thumbnail else (ref.content_type if image else OCTET_STREAM)
        inline = thumbnail or (display and image)
        response = web.StreamResponse(
            headers={
                "Content-Type": kind,
                "Content-Disposition": disposition("inline" if inline else "attachment", ref.name),
                "Cache-Control": "private, no-store",
            }
        )
        if not thumbnail:
            response.content_length = ref.size
        await response.prepare(request)
        try:
            async for frame in frames:
                await response.write(frame.data)
        except grpc.aio.AbortError:  # (the node lost its master mid-way: the page asks again)
            log.info("a download of %s ended: %s", ref.file_id, context.details)
            return response
        await response.write_eof()
        return response
