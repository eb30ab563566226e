"""`chatd bench`: a load generator for a chatd cluster, and the baseline.

    chatd bench --server HOST:PORT[,...] --users N --concurrency C --duration S
                [--window W] [--transport unary|stream|web] [--web URL[,...]] [--json]
    chatd bench --noop-server PORT

The first creates N users, logs them in, opens one Subscribe stream per user,
and sends for S seconds from C concurrent workers (each message to another
user, with a request id), each keeping W sends in flight (--window, default
1): with W = 1 a worker's send goes as user after user in turn; with W > 1
worker i sends as user i (modulo N) only, each send written without waiting
for the previous one's result, so that with a stream each user's stream has
W sends in flight (N workers: N streams, W sends in flight each). It reports
Send throughput and latency (each send from its issue to its result), the
delivery latency from Send issued to the message arriving on the
recipient's stream, and max_in_flight: the most sends of one stream written
and not yet answered at once (unary: of one user, under way at once).

With --transport stream each user opens one Connect stream instead, which
carries its sends (a send frame, answered by a result frame; several in
flight, each matched to its result by request id) and its deliveries; a
stream the node ends stops the run, which exits 1 with the stream's status.
--transport web does the same over the nodes' web listeners (--web
URL[,URL...], their origins): each user's Connect stream on a WebSocket of
its own, as a page holds it (chatd/tools/bench_web.py); the accounts are
still made over gRPC. The second serves the floor chatd is measured
against: a bare grpc.aio server on uvloop that answers ClientAccount.Send,
and every send frame of a Connect stream (as it reads them: pipelined
frames too), with success and does nothing else (against it, the load
generator only sends; N streams in stream mode, spread over as users are).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc

from chatd.proto import chat_pb2, chat_pb2_grpc

PASSWORD = "bench-password"


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@dataclass
class Result:
    sends: int = 0
    errors: int = 0
    send_ms: list[float] = field(default_factory=list)
    delivery_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    max_in_flight: int = 0  # the most sends of one stream (unary: one user) unanswered at once

    def in_flight(self, n: int) -> None:
        self.max_in_flight = max(self.max_in_flight, n)

    def summary(self, args: argparse.Namespace, noop: bool) -> dict[str, Any]:
        return {
            "server": args.server,
            "target": "noop" if noop else "chatd",
            "transport": args.transport,
            **({"web": args.web} if args.transport == "web" else {}),
            "users": 0 if noop else args.users,
            "concurrency": args.concurrency,
            "window": args.window,
            "max_in_flight": self.max_in_flight,
            "target_rate": args.rate,
            "duration_s": round(self.seconds, 2),
            "sends": self.sends,
            "errors": self.errors,
            "sends_per_s": round(self.sends / self.seconds, 1) if self.seconds else 0.0,
            "send_ms_p50": round(pct(self.send_ms, 0.50), 2),
            "send_ms_p95": round(pct(self.send_ms, 0.95), 2),
            "send_ms_p99": round(pct(self.send_ms, 0.99), 2),
            "delivered": len(self.delivery_ms),
            "delivery_ms_p50": round(pct(self.delivery_ms, 0.50), 2),
            "delivery_ms_p99": round(pct(self.delivery_ms, 0.99), 2),
        }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.addresses = [a.strip() for a in args.server.split(",") if a.strip()]
        self.channels = [
            grpc.aio.insecure_channel(a, options=[("grpc.use_local_subchannel_pool", 1)])
            for a in self.addresses
        ]
        self.stubs = [chat_pb2_grpc.ClientAccountStub(ch) for ch in self.channels]
        self.result = Result()
        self.sessions: list[str] = []
        self.names: list[str] = []
        self.noop = False
        self._sent_at: dict[str, float] = {}
        self.streams: list[Any] = []  # Connection, or bench_web.WebConnection
        self.lost: StreamEnded | None = None  # a stream the node ended: the run stops
        self.http: Any = None  # --transport web: the aiohttp client session
        self.calls: dict[int, int] = {}  # unary: the Send calls of each user under way

    def stub(self, i: int) -> Any:
        return self.stubs[i % len(self.stubs)]

    async def setup(self) -> None:
        prefix = uuid.uuid4().hex[:6]
        self.names = [f"b{prefix}-{i}" for i in range(self.args.users)]
        try:
            await self.stub(0).CreateAccount(
                chat_pb2.CreateAccountRequest(username=self.names[0], password=PASSWORD)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            self.noop = True
            self.names, self.sessions = ["noop"], ["noop"]
            return

        # a node hashes at most 4 passwords at once for one client address
        # (chatd.server.chat.throttle): the set-up stays within that
        hashing = asyncio.Semaphore(4)

        async def one(i: int, name: str) -> str:
            async with hashing:
                if i:
                    await self.stub(i).CreateAccount(
                        chat_pb2.CreateAccountRequest(username=name, password=PASSWORD)
                    )
                r = await self.stub(i).Login(
                    chat_pb2.LoginRequest(username=name, password=PASSWORD)
                )
            if r.error_code:
                raise RuntimeError(f"login failed: {r.error_message}")
            return str(r.session_id)

        self.sessions = list(await asyncio.gather(*(one(i, n) for i, n in enumerate(self.names))))

    async def open_web(self) -> None:
        """One WebSocket and session stream per user, the users spread
        round-robin over the --web origins."""
        import aiohttp

        from chatd.tools.bench_web import WebConnection

        if self.noop:
            raise StreamEnded("--transport web needs a chatd node (the no-op server has no web)")
        origins = [o.strip() for o in self.args.web.split(",") if o.strip()]
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.streams = [
            WebConnection(self.http, origins[i % len(origins)], session, self)
            for i, session in enumerate(self.sessions)
        ]
        opened = await asyncio.gather(*(s.start() for s in self.streams), return_exceptions=True)
        failed = [e for e in opened if isinstance(e, BaseException)]
        if failed:
            for s in self.streams:
                await s.close()
            await self.http.close()
            raise failed[0]

    async def receive(self, i: int, ready: asyncio.Event, opened: list[int]) -> None:
        call: Any = self.stub(i).Subscribe(
            chat_pb2.SubscribeRequest(session_id=self.sessions[i], live_only=True)
        )
        await call.initial_metadata()
        opened.append(i)
        if len(opened) == len(self.sessions):
            ready.set()
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for m in call:
                sent = self._sent_at.pop(m.message, None)
                if sent is not None:
                    self.result.delivery_ms.append((time.perf_counter() - sent) * 1000)

    def delivered(self, body: str) -> None:
        sent = self._sent_at.pop(body, None)
        if sent is not None:
            self.result.delivery_ms.append((time.perf_counter() - sent) * 1000)

    async def _send(self, w: int, user: int, request: chat_pb2.SendRequest) -> bool:
        """One send, over a unary call or the user's stream; True if done."""
        if self.streams:
            r = await self.streams[user].send(request)
        else:
            self.calls[user] = under_way = self.calls.get(user, 0) + 1
            self.result.in_flight(under_way)
            try:
                r = await self.stub(w).Send(request, timeout=10)
            finally:
                self.calls[user] -= 1
        return not r.error_code or self.noop

    async def one(self, w: int, user: int, body: str, progress: Any) -> None:
        """One send of worker `w` as user `user` (the index of its stream),
        timed from its issue to its result."""
        n = len(self.sessions)
        request = chat_pb2.SendRequest(
            to=self.names[(user + 1) % len(self.names)],
            message=body,
            session_id=self.sessions[user % n],
            request_id=body,
        )
        t0 = time.perf_counter()
        self._sent_at[body] = t0
        try:
            ok = await self._send(w, user, request)
        except StreamEnded as exc:
            self.lost = self.lost or exc
            self._sent_at.pop(body, None)
            return
        except (grpc.aio.AioRpcError, TimeoutError):
            self.result.errors += 1
            self._sent_at.pop(body, None)
            return
        if not ok:
            self.result.errors += 1
            return
        self.result.sends += 1
        self.result.send_ms.append((time.perf_counter() - t0) * 1000)
        if progress is not None and self.result.sends % 100 == 0:
            progress(time.perf_counter())

    async def worker(self, w: int, stop: float, progress: Any) -> None:
        """Sends until `stop` with --window sends in flight: one at a time
        as user after user in turn, or W at once as user w (its stream)."""
        users = len(self.streams) or len(self.sessions)
        window = self.args.window
        gap = self.args.concurrency / self.args.rate if self.args.rate > 0 else 0.0
        due = time.perf_counter() + gap * w / max(1, self.args.concurrency)
        room = asyncio.Semaphore(window)
        under_way: set[asyncio.Task[None]] = set()
        for k in itertools.count():
            if gap:  # open loop at the target rate: each worker keeps its own schedule
                due += gap
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if window > 1:
                await room.acquire()  # (a send of the window answered)
            if time.perf_counter() >= stop or self.lost is not None:
                break
            if window == 1:
                await self.one(w, (w + k) % users, f"{w}-{k}", progress)
                continue
            task = asyncio.create_task(self.one(w, w % users, f"{w}-{k}", progress))
            under_way.add(task)
            task.add_done_callback(under_way.discard)
            task.add_done_callback(lambda _: room.release())
        await asyncio.gather(*under_way)

    async def run(self, progress: Any = None) -> dict[str, Any]:
        await self.setup()
        receivers: list[asyncio.Task[None]] = []
        if self.args.transport == "stream":
            count = len(self.sessions) if not self.noop else max(1, self.args.users)
            self.streams = [
                Connection(self.stub(i), self.sessions[i % len(self.sessions)], self)
                for i in range(count)
            ]
            await asyncio.gather(*(s.start() for s in self.streams))
        elif self.args.transport == "web":
            await self.open_web()
        elif not self.noop and not self.args.no_streams:
            ready, opened = asyncio.Event(), list[int]()
            receivers = [
                asyncio.create_task(self.receive(i, ready, opened))
                for i in range(len(self.sessions))
            ]
            await asyncio.wait_for(ready.wait(), 30)
        start = time.perf_counter()
        stop = start + self.args.duration
        await asyncio.gather(
            *(self.worker(w, stop, progress) for w in range(self.args.concurrency))
        )
        self.result.seconds = time.perf_counter() - start
        await asyncio.sleep(0.5)  # the last deliveries
        for t in receivers:
            t.cancel()
        await asyncio.gather(*receivers, return_exceptions=True)
        for s in self.streams:
            await s.close()
        if self.http is not None:
            await self.http.close()
        for ch in self.channels:
            await ch.close(None)
        if self.lost is not None:
            raise self.lost
        return self.result.summary(self.args, self.noop)


class StreamEnded(Exception):
    """A Connect stream of the run ended before the run did (how: its status)."""


class Connection:
    """One Connect stream of the load generator: send() writes a send frame
    and returns its result; deliveries are timed as they arrive. Sends of
    several callers are written one after the other, none waiting for
    another's result (each is matched to its result by request id). Once the
    node ends the stream, every send raises StreamEnded with its status."""

    def __init__(self, stub: Any, session: str, bench: Bench) -> None:
        self.call: Any = stub.Connect()
        self.session = session
        self.bench = bench
        self.lock = asyncio.Lock()
        self.waiting: dict[str, asyncio.Future[chat_pb2.SendResult]] = {}
        self.written: set[str] = set()  # request ids written, their results not yet read
        self.reader: asyncio.Task[None] | None = None
        self.ended: str | None = None  # how the stream ended, once it did

    async def start(self) -> None:
        opening = chat_pb2.OpenFrame(session_id=self.session, live_only=True)
        self.reader = asyncio.create_task(self._read())
        await self._write(chat_pb2.ClientFrame(open=opening))
        await self.call.initial_metadata()

    async def _read(self) -> None:
        how = "the node ended it (OK)"
        try:
            async for frame in self.call:
                if frame.HasField("result"):
                    self.written.discard(frame.result.request_id)
                    fut = self.waiting.pop(frame.result.request_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame.result)
                else:
                    self.bench.delivered(frame.message.message)
        except grpc.aio.AioRpcError as exc:
            how = f"{exc.code().name}: {exc.details()}"
        except asyncio.CancelledError:
            how = "closed"
        self.ended = how
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(StreamEnded(f"a Connect stream ended: {how}"))
        self.waiting.clear()

    async def _write(self, frame: chat_pb2.ClientFrame) -> None:
        """Writes `frame`; StreamEnded, with the stream's status, if the
        stream has ended."""
        try:
            if self.ended is None:
                async with self.lock:  # one write at a time on a call
                    await self.call.write(frame)
                return
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            assert self.reader is not None
            # the reader hears how the node ended the stream
            await asyncio.wait({self.reader}, timeout=10)
        raise StreamEnded(f"a Connect stream ended: {self.ended or 'a write failed'}")

    async def send(self, request: chat_pb2.SendRequest) -> chat_pb2.SendResult:
        fut: asyncio.Future[chat_pb2.SendResult] = asyncio.get_running_loop().create_future()
        self.waiting[request.request_id] = fut
        frame = chat_pb2.SendFrame(
            request_id=request.request_id, to=request.to, message=request.message
        )
        try:
            await self._write(chat_pb2.ClientFrame(send=frame))
        except StreamEnded:
            self.waiting.pop(request.request_id, None)
            if fut.done():
                fut.exception()  # (the reader's end, which this raises already)
            raise
        return await written(self.written, self.bench.result, request.request_id, fut)

    async def close(self) -> None:
        self.call.cancel()
        if self.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


async def written(
    unanswered: set[str], result: Result, rid: str, fut: asyncio.Future[chat_pb2.SendResult]
) -> chat_pb2.SendResult:
    """The result of send `rid` of a stream, just written: while it is not
    read, `rid` is in the stream's `unanswered` (the reader takes it out),
    whose size is counted in `result.max_in_flight`."""
    if not fut.done():
        unanswered.add(rid)
        result.in_flight(len(unanswered))
    try:
        return await asyncio.wait_for(fut, 10)
    finally:
        unanswered.discard(rid)


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(args)
    if args.json:
        return await bench.run()
    from prompt_toolkit.shortcuts import ProgressBar

    title = f"chatd bench: {args.server}, concurrency {args.concurrency}, window {args.window}"
    with ProgressBar(title=title) as pb:
        steps = max(1, int(args.duration * 10))
        counter = pb(range(steps), label="sending")
        it = iter(counter)
        start = [0.0]

        def progress(now: float) -> None:
            if not start[0]:
                start[0] = now
            while counter.items_completed < min(steps, int((now - start[0]) * 10)):
                next(it, None)

        result = await bench.run(progress)
        for _ in it:
            pass
    return result


async def _noop(port: int) -> None:
    class Noop(chat_pb2_grpc.ClientAccountServicer):
        def __init__(self) -> None:
            self.next_id = 0

        async def Send(
            self, request: chat_pb2.SendRequest, context: Any
        ) -> chat_pb2.ServerResponse:
            self.next_id += 1
            return chat_pb2.ServerResponse(message_id=self.next_id)

        async def Connect(self, frames: Any, context: Any) -> Any:
            await context.send_initial_metadata(())
            async for frame in frames:
                if frame.HasField("send"):
                    self.next_id += 1
                    result = chat_pb2.SendResult(
                        request_id=frame.send.request_id, message_id=self.next_id
                    )
                    yield chat_pb2.ServerFrame(result=result)

    server = grpc.aio.server()
    # only Send and Connect are implemented: every other RPC answers UNIMPLEMENTED
    chat_pb2_grpc.add_ClientAccountServicer_to_server(Noop(), server)  # type: ignore[abstract]
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"no-op ClientAccount.Send and Connect server on 127.0.0.1:{bound}", flush=True)
    await server.wait_for_termination()


def main(args: argparse.Namespace) -> int:
    import uvloop

    if args.noop_server is not None:
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(_noop(args.noop_server))
        return 0
    if args.transport == "web" and not args.web:
        print("chatd bench: error: --transport web needs --web URL[,URL...]", file=sys.stderr)
        return 2
    try:
        result = uvloop.run(_bench(args))
    except StreamEnded as exc:  # the run lost one of its streams: it measured nothing
        print(f"chatd bench: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            print(f"{k:<{width}}  {v}")
    return 0 if result["sends"] else 1
