"""One exception per error code of the client API, so front ends never see
error numbers."""

from __future__ import annotations


class ChatError(Exception):
    """A request the server refused (or could not be reached for)."""

    code = 0

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code or type(self).code
        self.message = message


class InvalidArguments(ChatError):
    code = 2


class InvalidUsername(ChatError):
    code = 3


class InvalidPassword(ChatError):
    code = 4


class InvalidMessage(ChatError):
    code = 5


class UsernameTaken(ChatError):
    code = 8


class NoSuchUser(ChatError):
    code = 9


class WrongPassword(ChatError):
    code = 10


class NotLoggedIn(ChatError):
    code = 14


class NoSuchRecipient(ChatError):
    code = 15


class NoMessages(ChatError):
    code = 17


class NotMaster(ChatError):
    code = 18


class Unavailable(ChatError):
    """No node answered within the client's retry time."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


_BY_CODE: dict[int, type[ChatError]] = {
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
    )
}


def error_for(code: int, message: str) -> ChatError:
    return _BY_CODE.get(code, ChatError)(code, message)
