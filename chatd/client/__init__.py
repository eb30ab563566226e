"""chatd's client side: the async library (`ChatClient`) and two front ends
on it, the terminal client (`chatd chat`) and the GUI (`chatd gui`)."""

from chatd.client.api import ChatClient, ConnectionEvent, Message, User
from chatd.client.errors import (
    CallFailed,
    ChatError,
    InvalidArguments,
    InvalidMessage,
    InvalidPassword,
    InvalidUsername,
    NoMessages,
    NoSuchRecipient,
    NoSuchUser,
    NotLoggedIn,
    NotMaster,
    Refused,
    Unavailable,
    UsernameTaken,
    WrongPassword,
)

__all__ = [
    "CallFailed",
    "ChatClient",
    "ChatError",
    "ConnectionEvent",
    "InvalidArguments",
    "InvalidMessage",
    "InvalidPassword",
    "InvalidUsername",
    "Message",
    "NoMessages",
    "NoSuchRecipient",
    "NoSuchUser",
    "NotLoggedIn",
    "NotMaster",
    "Refused",
    "Unavailable",
    "User",
    "UsernameTaken",
    "WrongPassword",
]
