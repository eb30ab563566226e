"""`chatd bench --transport web`: the Connect stream of each user over a
node's web listener, as a page holds it (chatd web protocol): one WebSocket
per user, its session stream opened on it, send frames answered by result
frames, deliveries timed as they arrive, like bench.Connection over gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import aiohttp

from chatd.proto import chat_pb2
from chatd.tools.bench import StreamEnded, written

if TYPE_CHECKING:
    from chatd.tools.bench import Bench

STREAM_ID = 1  # the one stream of each socket


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class WebConnection:
    """One user's WebSocket to web origin `origin` and its session stream:
    send() writes a send frame and returns its result (sends of several
    callers each written without waiting for another's result); once the stream or
    the socket ends, every send raises StreamEnded saying how."""

    def __init__(self, http: aiohttp.ClientSession, origin: str, session: str, bench: Bench):
        self.http = http
        self.origin = origin.rstrip("/")
        self.session = session
        self.bench = bench
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.lock = asyncio.Lock()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting: dict[str, asyncio.Future[chat_pb2.SendResult]] = {}
        self.written: set[str] = set()  # request ids written, their results not yet read
        self.reader: asyncio.Task[None] | None = None
        self.ended: str | None = None  # how the stream ended, once it did

    async def start(self) -> None:
        try:
            self.ws = await self.http.ws_connect(
                self.origin + "/ws", headers={"Origin": self.origin}, max_msg_size=0
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise StreamEnded(f"a web socket to {self.origin} did not open: {exc}") from None
        self.reader = asyncio.create_task(self._read(self.ws))
        opening = {"session_id": self.session, "live_only": True}
        await self._write({"id": STREAM_ID, "connect": opening})
        await asyncio.wait_for(self.opened, 30)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        how = "the web socket closed"
        try:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                m = json.loads(msg.data)
                frame = m.get("frame")
                if frame is not None:
                    result = frame.get("result")
                    if result is None:
                        self.bench.delivered(frame["message"]["message"])
                        continue
                    self.written.discard(result["request_id"])
                    fut = self.waiting.pop(result["request_id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(
                            chat_pb2.SendResult(
                                error_code=result["error_code"],
                                error_message=result["error_message"],
                            )
                        )
                elif "opened" in m:
                    if not self.opened.done():
                        self.opened.set_result(None)
                elif "end" in m or "error" in m:
                    said = m.get("end") or m["error"]
                    how = f"{said.get('code')}: {said.get('details')}"
                    break
                # (else the hello: nothing to do)
        except asyncio.CancelledError:
            how = "closed"
        except (aiohttp.ClientError, ValueError, KeyError, TypeError) as exc:
            how = f"unreadable ({type(exc).__name__}: {exc})"
        self.ended = how
        ended = StreamEnded(f"a web session stream ended: {how}")
        waiting: list[asyncio.Future[Any]] = [self.opened, *self.waiting.values()]
        for pending in waiting:
            if not pending.done():
                pending.set_exception(ended)
        self.waiting.clear()

    async def _write(self, message: dict[str, Any]) -> None:
        """Writes `message`; StreamEnded if the stream has ended."""
        assert self.ws is not None
        try:
            if self.ended is None:
                async with self.lock:
                    await self.ws.send_str(_dumps(message))
                return
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            assert self.reader is not None
            await asyncio.wait({self.reader}, timeout=10)
        raise StreamEnded(f"a web session stream ended: {self.ended or 'a write failed'}")

    async def send(self, request: chat_pb2.SendRequest) -> chat_pb2.SendResult:
        fut: asyncio.Future[chat_pb2.SendResult] = asyncio.get_running_loop().create_future()
        self.waiting[request.request_id] = fut
        frame = {"request_id": request.request_id, "to": request.to, "message": request.message}
        try:
            await self._write({"id": STREAM_ID, "frame": {"send": frame}})
        except StreamEnded:
            self.waiting.pop(request.request_id, None)
            if fut.done():
                fut.exception()  # (the reader's end, which this raises already)
            raise
        return await written(self.written, self.bench.result, request.request_id, fut)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
