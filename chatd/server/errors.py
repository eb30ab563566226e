"""Every exception the server side raises on purpose, split by who is at fault.

    ServerError
    ├── CallerError          the caller's request or stream is refused; nothing changed
    │   ├── RequestRefused   a chat rule refuses it: an API error code (`error_code`)
    │   ├── OverLimit        over a limit (rate, streams per user): RESOURCE_EXHAUSTED
    │   ├── SubscriberTooSlow  a stream fell too far behind: RESOURCE_EXHAUSTED
    │   ├── SessionEnded     a stream's session or account ended: UNAUTHENTICATED
    │   ├── NoOpenFrame      a Connect stream sent no open frame in time: DEADLINE_EXCEEDED
    │   ├── Evicted          a newer unopened stream took its place: RESOURCE_EXHAUSTED
    │   ├── WireError        a cluster message fails the wire's checks: INVALID_ARGUMENT
    │   └── BackupError      an operator's backup file cannot be used (restore, export)
    └── NodeError            this node cannot serve (a client retries, maybe elsewhere)
        ├── WriterClosed     shutting down or lost its store: the write was not made
        ├── NotWritable      not (or no longer) the master: a write may or may not survive
        ├── TooFewCopies     fewer nodes in sync than --min-in-sync: the write was not made
        ├── NoMaster         a slave knows no master to relay to
        ├── ClusterUpgrading a write an older member could not apply
        ├── StreamDropped    the node ended a stream (stopping, or the master changed)
        ├── StoreError       the data dir cannot be used
        └── StartupError     the node cannot start as configured

The ClientAccount servicer answers a CallerError as its comment says and a
NodeError with UNAVAILABLE. The role core's ProtocolError (chatd.core) is
not here: the core raises it, and it means a bug or a lying peer.

`reap` waits for tasks a piece of the server ended and says what each
ended with, so that no error, a bug least of all, is swallowed unsaid.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from chatd.contract import Code

DEFAULT_MESSAGES: dict[Code, str] = {
    Code.OK: "",
    Code.INVALID_ARGUMENT: "invalid arguments",
    Code.INVALID_USERNAME: "invalid username",
    Code.INVALID_PASSWORD: "invalid password",
    Code.INVALID_MESSAGE: "invalid message",
    Code.USERNAME_TAKEN: "username already exists",
    Code.NO_SUCH_USER: "user does not exist",
    Code.WRONG_PASSWORD: "incorrect password",
    Code.NOT_LOGGED_IN: "not logged in",
    Code.NO_SUCH_RECIPIENT: "receiver does not exist",
    Code.NO_MESSAGES: "no messages",
    Code.NOT_MASTER: "not master",
    Code.NO_SUCH_ROOM: "room does not exist",
    Code.ROOM_NAME_TAKEN: "room name already exists",
    Code.NOT_A_MEMBER: "not a member of the room",
    Code.NOT_ALLOWED: "only the room's admins (or the message's author) may do that",
    Code.INVALID_ROOM: "invalid room name or topic",
    Code.ROOM_LIMIT: "over a room limit",
    Code.ACCOUNT_DISABLED: "account disabled by an operator",
    Code.NO_SUCH_MESSAGE: "no such message",
    Code.EDIT_WINDOW_PASSED: "the message is too old to edit",
    Code.INVALID_REACTION: "not an allowed reaction, or more than one user may put on a message",
    Code.NO_SUCH_FILE: "no such file",
    Code.FILE_TOO_LARGE: "the file is larger than a file, or the user's files, may be",
    Code.INVALID_FILE: "invalid upload",
    Code.INVALID_PROFILE: "invalid display name",
}


class ServerError(Exception):
    """The base of every exception the server raises on purpose."""


# -- the caller's fault --


class CallerError(ServerError):
    """The caller's request or stream is refused; nothing was changed."""


class RequestRefused(CallerError):
    """A request the chat rules refuse, answered with an API error code."""

    def __init__(self, code: Code, message: str | None = None) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGES[code]
        super().__init__(f"{int(code)}: {self.message}")


class OverLimit(CallerError):
    """A client went over a limit (answered RESOURCE_EXHAUSTED, with the
    seconds after which to retry when known)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SubscriberTooSlow(CallerError):
    """The subscriber's queue overflowed; it should resubscribe from its last id."""


class NoOpenFrame(CallerError):
    """A Connect stream sent no open frame within --first-frame-timeout."""


class Evicted(CallerError):
    """A stream that never sent its open frame gave its place to a newer
    one from the same address (--max-unopened-streams)."""


class SessionEnded(CallerError):
    """The stream's session or account ended (logout, expiry, deletion)."""


class WireError(CallerError, ValueError):
    """A message from the cluster wire fails a check (chatd.server.cluster.wire): a
    request is refused with INVALID_ARGUMENT, and an answer counts as its
    sender being unreachable (a ValueError, as any answer the core's types
    cannot hold)."""


class BadMessage(CallerError, ValueError):
    """A web page's message the protocol has no place for (chatd.server.web):
    not JSON, no id, not the protobuf message it should be, no such call or
    stream. Its text says why; `id` is the message's, when it named one."""

    def __init__(self, why: str, id_: int | None = None) -> None:
        super().__init__(why)
        self.id = id_


class BackupError(CallerError):
    """A backup file that cannot be used, with why (one line): not a chatd
    store, altered, or a data dir that holds a store already."""


# -- this node's own failures --


class NodeError(ServerError):
    """This node cannot serve the request now; another node, or this one
    later, may. `up`: the node is up and refuses for a reason of its own
    that its message gives (answered with chatd.contract.REFUSED_HEADER, so
    that a client does not take the node for lost)."""

    up = False


class WriterClosed(NodeError):
    """The node is shutting down or lost its store; the write was not made."""


class NotWritable(NodeError):
    """This node is not (or no longer) the master; a write under way may or
    may not survive: a client retries it, with its request id, at the new
    master. (Not the API's NOT_MASTER code, which no node sends today.)"""


class TooFewCopies(NodeError):
    """In-sync mode: fewer nodes hold the writes than --min-in-sync asks
    for; the write was not made (the message says how many and K)."""

    up = True


class NoMaster(NodeError):
    """No master is known right now (an election is under way)."""


class ClusterUpgrading(NodeError):
    """A write not every member can apply yet (chatd.server.protocol): the
    cluster is being upgraded, or a member has not been heard from since
    this node became master."""


class StreamDropped(NodeError):
    """The node ended the stream (it stops, or the master changed); the
    client resubscribes from its last id."""


class StoreError(NodeError):
    """The data directory cannot be used (not a chatd database, or corrupt)."""


class StartupError(NodeError):
    """The node cannot start as configured (a clear, one-line reason)."""


class DataDirBusy(NodeError):
    """The data dir stayed in use by another process for the whole wait."""


# -- what ended tasks ended with --


async def reap(
    tasks: Iterable[asyncio.Future[Any]],
    log: logging.Logger,
    what: str,
    expected: tuple[type[BaseException], ...] = (),
) -> None:
    """Waits, one after the other, for `tasks` that were cancelled (or are
    done) to finish, and logs what each ended with that no one else will
    hear of: at debug level an exception of the `expected` kinds (a call
    that ended, a refusal) or this task's own cancellation while it waits;
    anything else, a bug, at warning level with its traceback. Raises
    nothing: the caller's own ending is decided already."""
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():  # (this task was cancelled while it waited)
                log.debug("%s: cancelled while its tasks ended", what)
        except expected as exc:
            log.debug("%s: a task ended with %r", what, exc)
        except Exception:
            log.warning("%s: a task failed", what, exc_info=True)
