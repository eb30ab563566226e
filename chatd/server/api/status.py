"""The one mapping of an exception to the gRPC status that answers it (a
unary call's abort, a stream's end, a Connect send's result, a relayed
call's end passed on): the code, the details, and the trailing metadata a
client acts on (chatd.contract: RETRY_AFTER_HEADER when the wait is known,
REFUSED_HEADER when the node is up and refuses for a reason of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from chatd.contract import REFUSED_HEADER, RETRY_AFTER_HEADER, Code
from chatd.proto import chat_pb2
from chatd.server.errors import (
    CallerError,
    NodeError,
    NoOpenFrame,
    OverLimit,
    RequestRefused,
    SessionEnded,
)

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class End:
    """A call or stream ends: OK (status None) or with this status."""

    status: grpc.StatusCode | None = None
    detail: str = ""
    trailers: tuple[tuple[str, str], ...] = ()  # its trailing metadata


def retry_after_ms(exc: OverLimit) -> int | None:
    """The milliseconds after which to retry, when known."""
    return None if exc.retry_after_s is None else int(exc.retry_after_s * 1000)


def status_of(exc: BaseException) -> End:
    """The status that answers `exc`: a refusal by the chat rules
    (UNAUTHENTICATED when not logged in, else INVALID_ARGUMENT), an ended
    session (UNAUTHENTICATED), a stream that never opened (DEADLINE_EXCEEDED),
    any other fault of the caller, over a limit or too slow
    (RESOURCE_EXHAUSTED), a node that cannot serve (UNAVAILABLE).
    Any other exception is raised again: it is no answer but a bug."""
    if isinstance(exc, RequestRefused):
        if exc.code == Code.NOT_LOGGED_IN:
            return End(grpc.StatusCode.UNAUTHENTICATED, exc.message)
        return End(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
    if isinstance(exc, SessionEnded):
        return End(grpc.StatusCode.UNAUTHENTICATED, str(exc))
    if isinstance(exc, NoOpenFrame):
        return End(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
    if isinstance(exc, OverLimit):
        retry = retry_after_ms(exc)
        hint = () if retry is None else ((RETRY_AFTER_HEADER, str(retry)),)
        return End(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), hint)
    if isinstance(exc, CallerError):  # too slow, evicted unopened
        return End(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, NodeError):
        refused = ((REFUSED_HEADER, "1"),) if exc.up else ()
        return End(grpc.StatusCode.UNAVAILABLE, str(exc), refused)
    raise exc


def relayed(exc: grpc.aio.AioRpcError, trailers: tuple[Any, ...] | None = None) -> End:
    """The end of a call relayed to the master, which ended it with `exc`:
    passed on as it is, with `trailers`, or (None) with the hints among the
    master's own (RETRY_AFTER_HEADER, REFUSED_HEADER)."""
    if trailers is None:
        told: Any = exc.trailing_metadata() or ()
        trailers = tuple((k, v) for k, v in told if k in (RETRY_AFTER_HEADER, REFUSED_HEADER))
    return End(exc.code(), exc.details() or "", trailers)


def send_result(result: chat_pb2.SendResult, exc: Exception) -> End | None:
    """Fills a Connect send's `result` with what answers `exc`: a refusal by
    the chat rules with its error code; another fault of the caller or of
    the node with the status that answers it (status_of), the wait of one
    over a limit in `retry_after_ms`, and returns that End; any other
    exception, a bug, with INTERNAL."""
    if isinstance(exc, RequestRefused):
        result.error_code, result.error_message = int(exc.code), exc.message
        return None
    if isinstance(exc, (CallerError, NodeError)):
        end = status_of(exc)
        assert end.status is not None
        result.status, result.error_message = end.status.value[0], end.detail
        if isinstance(exc, OverLimit) and (retry := retry_after_ms(exc)) is not None:
            result.retry_after_ms = retry
        return end
    result.status = grpc.StatusCode.INTERNAL.value[0]
    result.error_message = f"the send failed: {type(exc).__name__}"
    return None


async def end_call(context: Ctx, end: End) -> NoReturn:
    """Ends the call with `end`'s status (not OK)."""
    assert end.status is not None
    await context.abort(end.status, end.detail, end.trailers)
    raise AssertionError("context.abort returned")  # (it always raises)


async def abort(context: Ctx, exc: BaseException) -> NoReturn:
    """Ends the call with the status that answers `exc` (status_of)."""
    await end_call(context, status_of(exc))
