"""The error hierarchies: one base per side, split by who is at fault."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import chatd.server
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
    for info in pkgutil.iter_modules(chatd.server.__path__, "chatd.server."):
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
    from chatd.server.store import StoreError as from_store

    assert from_node is StartupError and from_store is StoreError
    with pytest.raises(NodeError):
        raise StartupError("cannot listen")
