"""The error hierarchies: one base per side, split by who is at fault."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import grpc
import pytest

import chatd.server
from chatd import client
from chatd.client import gui, terminal
from chatd.client.errors import error_for
from chatd.contract import Code
from chatd.server import errors
from chatd.server.errors import (
    CallerError,
    NodeError,
    RequestRefused,
    ServerError,
    StartupError,
    StoreError,
)


def server_exceptions() -> list[type[BaseException]]:
    """Every exception class a module of chatd.server defines."""
    found = []
    for info in pkgutil.walk_packages(chatd.server.__path__, "chatd.server."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == info.name:
                found.append(cls)
    return found


def test_every_server_exception_is_in_one_branch() -> None:
    classes = server_exceptions()
    assert {c.__module__ for c in classes} == {"chatd.server.errors"}
    for cls in classes:
        if cls not in (ServerError, CallerError, NodeError):
            assert issubclass(cls, CallerError) != issubclass(cls, NodeError), cls


def test_a_refusal_carries_its_code_and_a_message() -> None:
    exc = RequestRefused(Code.NOT_LOGGED_IN)
    assert isinstance(exc, CallerError)
    assert exc.code == Code.NOT_LOGGED_IN and exc.message == "not logged in"
    assert str(exc) == "14: not logged in"
    assert RequestRefused(Code.INVALID_ARGUMENT, "ids are positive").message == "ids are positive"
    assert set(errors.DEFAULT_MESSAGES) == set(Code)


def test_old_import_places_still_work() -> None:
    from chatd.server.node import StartupError as from_node
    from chatd.server.storage.store import StoreError as from_store

    assert from_node is StartupError and from_store is StoreError
    with pytest.raises(NodeError):
        raise StartupError("cannot listen")


# -- the client library --


def test_every_client_exception_derives_from_chat_error() -> None:
    exported = [getattr(client, name) for name in client.__all__]
    exceptions = [c for c in exported if isinstance(c, type) and issubclass(c, BaseException)]
    assert len(exceptions) == 30
    assert all(issubclass(c, client.ChatError) for c in exceptions)
    refusals = [c for c in exceptions if issubclass(c, client.Refused) and c is not client.Refused]
    assert sorted(c.code for c in refusals) == sorted(set(Code) - {Code.OK})


def test_a_code_becomes_its_class() -> None:
    exc = error_for(Code.NO_SUCH_RECIPIENT, "receiver does not exist")
    assert type(exc) is client.NoSuchRecipient and exc.code == 15
    unknown = error_for(99, "from a newer server")
    assert type(unknown) is client.Refused and unknown.code == 99
    failed = client.CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many")
    assert failed.code == 0 and failed.message == "RESOURCE_EXHAUSTED: too many"
    assert client.Unavailable("no node answered").code == 0


def test_each_front_end_says_it_in_its_words() -> None:
    taken = client.UsernameTaken(8, "username already exists")
    ended = client.NotLoggedIn(14, "")
    assert terminal.describe(taken, "bob") == "bob is already taken"
    assert gui.describe(taken, "bob") == "username already exists"
    assert terminal.describe(ended).startswith("you are not logged in")
    assert gui.describe(ended) == "your session ended: log in again"
    for describe in (terminal.describe, gui.describe):
        assert describe(client.NoSuchUser(9, "user does not exist"), "zed") == "zed does not exist"
        assert describe(client.Unavailable("x")) == "no chatd node answers; try again in a moment"
        assert describe(client.InvalidMessage(5, "too long")) == "too long"
    assert gui.describe(KeyError("k")) == "unexpected error: KeyError('k')"


def test_the_client_loads_no_server_code() -> None:
    code = (
        "import sys, chatd.client, chatd.client.terminal, chatd.client.gui;"
        "print(sorted(m for m in sys.modules if m.startswith('chatd.server')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
