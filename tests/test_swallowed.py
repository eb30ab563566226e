"""No error is swallowed unsaid: chatd holds no `suppress(Exception)` and no
`except Exception` that neither raises nor logs, and `reap` (how the server
ends the tasks it cancelled) says what each ended with."""

from __future__ import annotations

import ast
import asyncio
import logging
from pathlib import Path

import grpc
import pytest

import chatd
from chatd.server.errors import reap

PACKAGE = Path(chatd.__file__).resolve().parent
BROAD = {"Exception", "BaseException"}
LOG_CALLS = {"debug", "info", "warning", "error", "exception", "critical", "log", "print_exc"}


def names(node: ast.expr | None) -> set[str]:
    """The class names an `except` or `suppress(...)` names."""
    if node is None:
        return {"BaseException"}  # a bare except
    if isinstance(node, ast.Tuple):
        return set().union(*(names(e) for e in node.elts))
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):
        return {node.attr}
    return set()


def says_or_raises(handler: ast.ExceptHandler) -> bool:
    """Whether a handler raises again, logs (any logger method, or reap), or
    hands the exception it caught to a call (which then answers for it)."""
    for stmt in handler.body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Raise):
                return True
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Attribute) and f.attr in LOG_CALLS:
                    return True
                if isinstance(f, ast.Name) and f.id == "reap":
                    return True
                arguments = [*node.args, *(k.value for k in node.keywords)]
                if handler.name and any(
                    isinstance(a, ast.Name) and a.id == handler.name for a in arguments
                ):
                    return True
    return False


def swallowed(source: str, filename: str) -> list[str]:
    """Where `source` swallows any exception without a word."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name == "suppress" and any(names(a) & BROAD for a in node.args):
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.ExceptHandler)
            and names(node.type) & BROAD
            and not says_or_raises(node)
        ):
            found.append(f"{filename}:{node.lineno}: except without a log line or raise")
    return found


def test_the_check_sees_what_it_looks_for() -> None:
    bad = """
import contextlib, asyncio
with contextlib.suppress(asyncio.CancelledError, Exception):
    pass
with suppress(BaseException):
    pass
try:
    pass
except Exception:
    pass
try:
    pass
except (OSError, BaseException):
    x = 1
try:
    pass
except:
    pass
"""
    good = """
import contextlib, asyncio
with contextlib.suppress(asyncio.CancelledError, OSError):
    pass
try:
    pass
except Exception:
    log.exception("it failed")
try:
    pass
except BaseException:
    cleanup()
    raise
try:
    pass
except Exception as exc:
    await fail("it failed", exc)
try:
    pass
except ValueError:
    pass
"""
    assert len(swallowed(bad, "bad.py")) == 5
    assert swallowed(good, "good.py") == []


def test_chatd_swallows_no_exception_unsaid() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "proto" in path.relative_to(PACKAGE).parts:
            continue  # generated
        found += swallowed(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert found == [], "\n".join(found)


async def test_reap_says_what_each_task_ended_with(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("chatd.test.reap")

    async def fails(exc: BaseException) -> None:
        raise exc

    async def waits() -> None:
        await asyncio.sleep(60)

    expected = asyncio.create_task(fails(grpc.aio.UsageError("the call ended")))
    bug = asyncio.create_task(fails(KeyError("a bug")))
    cancelled = asyncio.create_task(waits())
    await asyncio.sleep(0)
    cancelled.cancel()
    with caplog.at_level(logging.DEBUG, logger="chatd.test.reap"):
        await reap((cancelled, expected, bug), log, "the stream", (grpc.aio.UsageError,))
    said = [(r.levelno, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert said == [
        (logging.DEBUG, "the stream: a task ended with UsageError('the call ended')", False),
        (logging.WARNING, "the stream: a task failed", True),
    ]
    assert caplog.records[1].exc_info is not None
    assert isinstance(caplog.records[1].exc_info[1], KeyError)
