"""The client library's errors: one base, one meaning per name.

    ChatError                a call failed (`code`: its API error code, 0 for none)
    ├── Refused              a node refused it with an error code; nothing changed
    │   └── InvalidArguments … NotMaster, one per code of API.md
    ├── Unavailable          no node answered within the client's retry time
    │   └── RefusedForNow    a node that is up refused it until then (its reason)
    └── CallFailed           a node ended it with a gRPC status not worth a retry

Front ends never see error numbers: they catch the class, and `describe`
gives them the one line to show.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from chatd.contract import Code


class ChatError(Exception):
    """A call failed; `message` is a short sentence for a person."""

    code: int = 0

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code or type(self).code
        self.message = message


class Refused(ChatError):
    """A node refused the request with an error code (API.md); nothing was
    changed. A code this library does not know comes as a plain Refused."""


class InvalidArguments(Refused):
    code = Code.INVALID_ARGUMENT


class InvalidUsername(Refused):
    code = Code.INVALID_USERNAME


class InvalidPassword(Refused):
    code = Code.INVALID_PASSWORD


class InvalidMessage(Refused):
    code = Code.INVALID_MESSAGE


class UsernameTaken(Refused):
    code = Code.USERNAME_TAKEN


class NoSuchUser(Refused):
    code = Code.NO_SUCH_USER


class WrongPassword(Refused):
    code = Code.WRONG_PASSWORD


class NotLoggedIn(Refused):
    code = Code.NOT_LOGGED_IN


class NoSuchRecipient(Refused):
    code = Code.NO_SUCH_RECIPIENT


class NoMessages(Refused):
    code = Code.NO_MESSAGES


class NotMaster(Refused):
    """The node asked could not forward the request to the master."""

    code = Code.NOT_MASTER


class NoSuchRoom(Refused):
    code = Code.NO_SUCH_ROOM


class RoomNameTaken(Refused):
    code = Code.ROOM_NAME_TAKEN


class NotAMember(Refused):
    code = Code.NOT_A_MEMBER


class NotAllowed(Refused):
    code = Code.NOT_ALLOWED


class InvalidRoom(Refused):
    code = Code.INVALID_ROOM


class RoomLimit(Refused):
    code = Code.ROOM_LIMIT


class AccountDisabled(Refused):
    code = Code.ACCOUNT_DISABLED


class NoSuchMessage(Refused):
    """No message of that id the caller may read (or it was deleted)."""

    code = Code.NO_SUCH_MESSAGE


class EditWindowPassed(Refused):
    code = Code.EDIT_WINDOW_PASSED


class InvalidReaction(Refused):
    code = Code.INVALID_REACTION


class NoSuchFile(Refused):
    """No file of that id the caller may read (or send, or show)."""

    code = Code.NO_SUCH_FILE


class FileTooLarge(Refused):
    code = Code.FILE_TOO_LARGE


class InvalidFile(Refused):
    code = Code.INVALID_FILE


class InvalidProfile(Refused):
    code = Code.INVALID_PROFILE


class Unavailable(ChatError):
    """No node answered within the client's retry time."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


class RefusedForNow(Unavailable):
    """A node that is up refused the call, every time it was tried within
    the client's retry time, for a reason of its own (`message`: fewer
    copies in sync than --min-in-sync, say); nothing was changed."""


class CallFailed(ChatError):
    """A node ended the call with a gRPC status that a retry would not
    change (RESOURCE_EXHAUSTED: over a limit, for one)."""

    def __init__(self, status: grpc.StatusCode, details: str | None) -> None:
        super().__init__(0, f"{status.name}: {details}")
        self.status = status


_BY_CODE: dict[int, type[Refused]] = {
    cls.code: cls
    for cls in (
        InvalidArguments,
        InvalidUsername,
        InvalidPassword,
        InvalidMessage,
        UsernameTaken,
        NoSuchUser,
        WrongPassword,
        NotLoggedIn,
        NoSuchRecipient,
        NoMessages,
        NotMaster,
        NoSuchRoom,
        RoomNameTaken,
        NotAMember,
        NotAllowed,
        InvalidRoom,
        RoomLimit,
        AccountDisabled,
        NoSuchMessage,
        EditWindowPassed,
        InvalidReaction,
        NoSuchFile,
        FileTooLarge,
        InvalidFile,
        InvalidProfile,
    )
}


def error_for(code: int, message: str) -> Refused:
    return _BY_CODE.get(code, Refused)(code, message)


COMMON_TEXT: dict[type[ChatError], str] = {
    WrongPassword: "incorrect password",
    Unavailable: "no chatd node answers; try again in a moment",
}


def describe(
    exc: BaseException, name: str = "", texts: Mapping[type[ChatError], str] | None = None
) -> str:
    """One clear line for a failed call; `name` is the user it was about,
    `texts` a front end's own words for some errors (they come first)."""
    own = texts or {}
    if isinstance(exc, ChatError) and type(exc) in own:
        return own[type(exc)]
    if isinstance(exc, NoSuchUser | NoSuchRecipient) and name:
        return f"{name} does not exist"
    if isinstance(exc, UsernameTaken) and name:
        return f"{name} is already taken"
    if not isinstance(exc, ChatError):
        return f"unexpected error: {exc!r}"
    return COMMON_TEXT.get(type(exc)) or exc.message or type(exc).__name__
