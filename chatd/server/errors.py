"""The client API's error codes (API.md): values are part of the wire contract."""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    OK = 0
    INVALID_ARGUMENT = 2
    INVALID_USERNAME = 3
    INVALID_PASSWORD = 4
    INVALID_MESSAGE = 5
    USERNAME_TAKEN = 8
    NO_SUCH_USER = 9
    WRONG_PASSWORD = 10
    NOT_LOGGED_IN = 14
    NO_SUCH_RECIPIENT = 15
    NO_MESSAGES = 17
    NOT_MASTER = 18


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
}


class ChatError(Exception):
    """A request the chat rules refuse; nothing was changed."""

    def __init__(self, code: Code, message: str | None = None) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGES[code]
        super().__init__(f"{int(code)}: {self.message}")
