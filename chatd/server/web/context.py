"""The servicer context a WebSocket's call runs with: what the servicers ask
of grpc.aio's (the caller's address, metadata both ways, the time left,
abort), so that a call from a page takes the gRPC call's very path."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

CALL_TIMEOUT_S = 30.0  # a unary call's deadline, as a gRPC client would set one


def metadata_json(metadata: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in metadata or ():
        out[key] = value if isinstance(value, str) else value.decode(errors="replace")
    return out


def peer_string(host: str, port: int) -> str:
    """The caller as gRPC names it ("ipv4:10.0.0.7:5123", "ipv6:[::1]:5123")."""
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


class WebContext:
    """One call's context. `on_initial(metadata)`: told of a stream's
    initial metadata (it opened)."""

    def __init__(
        self,
        peer: str,
        timeout: float | None = CALL_TIMEOUT_S,
        on_initial: Callable[[tuple[tuple[str, Any], ...]], Awaitable[None]] | None = None,
    ) -> None:
        self._peer = peer
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._on_initial = on_initial
        self.trailing: tuple[tuple[str, Any], ...] = ()
        self.status: grpc.StatusCode | None = None
        self.details = ""

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()  # a page sends none: no header of the node-to-node kind is taken

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, Any]]) -> None:
        self.trailing = tuple(metadata)

    async def send_initial_metadata(self, metadata: Sequence[tuple[str, Any]]) -> None:
        if self._on_initial is not None:
            await self._on_initial(tuple(metadata))

    def code(self) -> grpc.StatusCode | None:
        return self.status

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> None:
        """Ends the call as grpc.aio's abort does: the status is kept here,
        and AbortError unwinds the servicer."""
        self.status, self.details = code, details
        if trailing_metadata:
            self.trailing = tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    def ended(self) -> dict[str, Any]:
        """The status the call ended with, as the page reads it."""
        assert self.status is not None
        metadata = metadata_json(self.trailing)
        return {"code": self.status.name, "details": self.details, "metadata": metadata}
