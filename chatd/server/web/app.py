"""The web listener (--web-listen): the page, its files and the WebSocket,
served by aiohttp on the node's own event loop.

aiohttp because it is the asyncio HTTP server with WebSockets built in,
long kept (aio-libs, since 2013), that runs inside an existing loop (uvloop
here) beside grpc.aio with no thread or process of its own: the page's
calls reach the servicer in the same loop as gRPC's.

Every response carries a strict Content-Security-Policy (no inline script,
no eval, no framing), nosniff and no referrer; only the files the package
ships are served, by name; files (uploads and downloads) are
chatd.server.web.file_routes's. A WebSocket is taken only from a page of this
cluster: its Origin must be one of the members' web origins (or, for a
node reached by IP address or localhost, the address the browser used);
a client with no Origin header is no browser and is taken. Sockets are
counted per client address (MAX_SOCKETS_PER_ADDRESS); the address is the
TCP peer's, or behind a trusted proxy the last X-Forwarded-For hop."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, web

from chatd.server.web.context import peer_string
from chatd.server.web.file_routes import FileRoutes
from chatd.server.web.gateway import Gateway
from chatd.server.web.session import Session

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_SOCKETS_PER_ADDRESS = 256
HEARTBEAT_S = 20.0  # pings to the page; one unanswered closes the socket
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self' ws: wss:; manifest-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _files(folder: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, content type) of every file shipped with the page."""
    out = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        if path.is_file() and path.suffix in TYPES:
            out[path.name] = (path.read_bytes(), TYPES[path.suffix])
    return out


def _is_literal_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class WebServer:
    """`origins()`: the members' web origins, this node's first; `hello()`:
    what a page is told first on each socket (both set by the node)."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        first_message_timeout: float,
        max_message_bytes: int,
        trusted_proxies: Iterable[str] = (),
        ssl_context: ssl.SSLContext | None = None,
        static: Path = STATIC,
        max_file_bytes: int = 10 * 1024 * 1024,
    ) -> None:
        self.gateway = gateway
        # the node tells these once it listens
        self.origins: Callable[[], Iterable[str]] = lambda: ()
        self.hello: Callable[[], dict[str, Any]] = dict
        self.first_message_timeout = first_message_timeout
        self.max_message_bytes = max_message_bytes
        self.trusted = frozenset(trusted_proxies)
        self.ssl_context = ssl_context
        self.files = _files(static)
        self.sockets: set[web.WebSocketResponse] = set()
        self.per_address: Counter[str] = Counter()
        self.app = web.Application(client_max_size=64 * 1024)
        self.app.router.add_get("/", self._index)
        self.app.router.add_get("/static/{name}", self._static)
        self.app.router.add_get("/ws", self._socket)
        FileRoutes(gateway, max_file_bytes, self.origin_allowed, self._peer).add_to(self.app)
        self.app.on_response_prepare.append(self._headers)
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listens; the port bound."""
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, ssl_context=self.ssl_context)
        await site.start()
        self.port = int(self.runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Closes every page's socket (1001: the page fails over at once),
        then the listener."""
        for ws in list(self.sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the node is shutting down")
        if self.runner is not None:
            await self.runner.cleanup()

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(HEADERS)

    async def _index(self, request: web.Request) -> web.Response:
        return self._file("index.html", cache="no-cache")

    async def _static(self, request: web.Request) -> web.Response:
        return self._file(request.match_info["name"], cache="no-cache")

    def _file(self, name: str, cache: str) -> web.Response:
        found = self.files.get(name)
        if found is None:
            raise web.HTTPNotFound(text="not found")
        body, content_type = found
        response = web.Response(body=body, headers={"Cache-Control": cache})
        response.headers["Content-Type"] = content_type
        return response

    def _peer(self, request: web.Request) -> str:
        """The caller as gRPC names it: its address (client_host) and port."""
        peername = request.transport.get_extra_info("peername") if request.transport else None
        return peer_string(self.client_host(request), peername[1] if peername else 0)

    def client_host(self, request: web.Request) -> str:
        """The client's address: the TCP peer's, or behind a trusted proxy
        the last hop its X-Forwarded-For names."""
        host = request.remote or ""
        if host in self.trusted:
            hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
            if hops and hops[-1]:
                with contextlib.suppress(ValueError):
                    host = str(ipaddress.ip_address(hops[-1]))
        return host

    def origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # no browser: nothing to check against
        origin = origin.rstrip("/").lower()
        if origin in {o.lower() for o in self.origins()}:
            return True
        host = request.host.lower()
        hostname = host.rpartition(":")[0] if host.count(":") == 1 or "]:" in host else host
        scheme = "https" if self.ssl_context is not None else "http"
        return _is_literal_host(hostname) and origin in (
            f"{scheme}://{host}",
            f"{scheme}://{hostname}",
        )

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if not self.origin_allowed(request):
            log.info(
                "web socket from %s refused: origin %r is not this cluster's",
                request.remote,
                request.headers.get("Origin", "")[:100],
            )
            raise web.HTTPForbidden(text="this origin is not one of the cluster's web origins")
        host = self.client_host(request)
        if self.per_address[host] >= MAX_SOCKETS_PER_ADDRESS:
            raise web.HTTPTooManyRequests(text=f"at most {MAX_SOCKETS_PER_ADDRESS} sockets")
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT_S, max_msg_size=self.max_message_bytes, compress=False
        )
        await ws.prepare(request)
        peername = request.transport.get_extra_info("peername") if request.transport else None
        port = peername[1] if peername else 0
        self.sockets.add(ws)
        self.per_address[host] += 1
        try:
            session = Session(
                ws, self.gateway, peer_string(host, port), self.hello, self.first_message_timeout
            )
            await session.run()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.sockets.discard(ws)
            self.per_address[host] -= 1
            if self.per_address[host] <= 0:
                del self.per_address[host]
            if not ws.closed:
                await ws.close()
        return ws
