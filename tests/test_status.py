"""The one exception -> gRPC status mapping (chatd.server.api.status) that
answers a unary call's refusal, ends a Subscribe or Connect stream, and
fills a Connect send's result."""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest

from chatd.contract import REFUSED_HEADER, RETRY_AFTER_HEADER, Code
from chatd.proto import chat_pb2
from chatd.server.api.status import End, send_result, status_of
from chatd.server.errors import (
    Evicted,
    NoMaster,
    NoOpenFrame,
    OverLimit,
    RequestRefused,
    SessionEnded,
    SubscriberTooSlow,
    TooFewCopies,
)


@pytest.mark.parametrize(
    ("exc", "end"),
    [
        (
            RequestRefused(Code.NOT_LOGGED_IN),
            End(grpc.StatusCode.UNAUTHENTICATED, "not logged in"),
        ),
        (
            RequestRefused(Code.INVALID_ARGUMENT, "bad"),
            End(grpc.StatusCode.INVALID_ARGUMENT, "bad"),
        ),
        (SessionEnded("logged out"), End(grpc.StatusCode.UNAUTHENTICATED, "logged out")),
        (
            OverLimit("too fast", 1.5),
            End(grpc.StatusCode.RESOURCE_EXHAUSTED, "too fast", ((RETRY_AFTER_HEADER, "1500"),)),
        ),
        (OverLimit("streams"), End(grpc.StatusCode.RESOURCE_EXHAUSTED, "streams")),
        (SubscriberTooSlow("slow"), End(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow")),
        (NoOpenFrame("no open"), End(grpc.StatusCode.DEADLINE_EXCEEDED, "no open")),
        (Evicted("oldest"), End(grpc.StatusCode.RESOURCE_EXHAUSTED, "oldest")),
        (NoMaster("none"), End(grpc.StatusCode.UNAVAILABLE, "none")),
        (
            TooFewCopies("1 of 2"),
            End(grpc.StatusCode.UNAVAILABLE, "1 of 2", ((REFUSED_HEADER, "1"),)),
        ),
    ],
)
def test_one_status_answers_each_exception(exc: BaseException, end: End) -> None:
    assert status_of(exc) == end


def test_any_other_exception_is_no_answer() -> None:
    with pytest.raises(KeyError):
        status_of(KeyError("a bug"))


def test_a_send_result_carries_the_same_answer() -> None:
    """A Connect send's result: a refusal's error code, else the status
    status_of gives (and the wait of one over a limit), a bug INTERNAL."""
    refused = chat_pb2.SendResult()
    assert send_result(refused, RequestRefused(Code.NO_SUCH_RECIPIENT)) is None
    assert (refused.status, refused.error_code) == (0, Code.NO_SUCH_RECIPIENT)
    limited = chat_pb2.SendResult()
    end = send_result(limited, OverLimit("too fast", 0.25))
    assert end == status_of(OverLimit("too fast", 0.25))
    assert limited.status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert (limited.error_message, limited.retry_after_ms) == ("too fast", 250)
    down = chat_pb2.SendResult()
    assert send_result(down, NoMaster("none")) == status_of(NoMaster("none"))
    assert down.status == grpc.StatusCode.UNAVAILABLE.value[0]
    bug = chat_pb2.SendResult()
    assert send_result(bug, KeyError("x")) is None
    assert bug.status == grpc.StatusCode.INTERNAL.value[0]
    assert bug.error_message == "the send failed: KeyError"


API = Path(__file__).resolve().parent.parent / "chatd" / "server" / "api"


def test_no_other_module_maps_an_exception_to_a_status() -> None:
    """In chatd/server/api, an `except` clause answers through status.py
    (status_of, abort, end_call, relayed, send_result): none of them calls
    context.abort or names a grpc.StatusCode itself."""
    found = []
    for path in sorted(API.glob("*.py")):
        if path.name == "status.py":
            continue
        for handler in ast.walk(ast.parse(path.read_text())):
            if not isinstance(handler, ast.ExceptHandler):
                continue
            for node in (n for stmt in handler.body for n in ast.walk(stmt)):
                if isinstance(node, ast.Attribute) and node.attr in ("abort", "StatusCode"):
                    found.append(f"{path.name}:{node.lineno}")
    assert not found, f"exceptions mapped to a status outside status.py: {found}"
