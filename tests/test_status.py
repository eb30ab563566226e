"""The one exception -> gRPC status mapping (chatd.server.api.status) that
answers a unary call's refusal, ends a Subscribe or Connect stream, and
fills a Connect send's result."""

from __future__ import annotations

import grpc
import pytest

from chatd.contract import REFUSED_HEADER, RETRY_AFTER_HEADER, Code
from chatd.server.api.status import End, status_of
from chatd.server.errors import (
    NoMaster,
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
