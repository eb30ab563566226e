"""The conversation a front end shows: typed and shown as "#room" or a
user's name, held as Peer or InRoom."""

from __future__ import annotations

import ast
import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chatd.client.conversation import ROOM_MARK, InRoom, Peer, of_message, parse, room_named
from chatd.client.model import Message


@pytest.mark.parametrize(
    ("typed", "held"),
    [("bob", Peer("bob")), ("#team", InRoom("team")), ("", None), ("#", None)],
)
def test_what_the_user_types_is_what_the_user_sees(typed: str, held: object) -> None:
    assert parse(typed) == held
    if held is not None:
        assert str(held) == typed


def test_a_user_named_like_a_room_is_not_the_room() -> None:
    assert parse("team") != parse("#team")
    assert len({Peer("team"), InRoom("team")}) == 2


@pytest.mark.parametrize(
    ("sender", "recipient", "room", "held"),
    [
        ("bob", "alice", "", Peer("bob")),  # to me
        ("alice", "bob", "", Peer("bob")),  # from me
        ("bob", "team", "team", InRoom("team")),
        ("alice", "team", "team", InRoom("team")),
    ],
)
def test_the_conversation_of_a_message(
    sender: str, recipient: str, room: str, held: object
) -> None:
    m = Message(1, sender, recipient, "hi", datetime.now(UTC), room)
    assert of_message(m, "alice") == held


@pytest.mark.parametrize(
    ("typed", "held"), [("team", InRoom("team")), ("#team", InRoom("team")), ("#", None)]
)
def test_where_only_a_room_is_meant_the_mark_may_be_left_out(typed: str, held: object) -> None:
    assert room_named(typed) == held


CLIENT = Path(__file__).resolve().parent.parent / "chatd" / "client"


def test_only_the_conversation_module_adds_or_strips_the_room_mark() -> None:
    """A front end holds a room as InRoom: no other module of the client
    strips a "#" off what the user typed or writes one before a name."""
    found = []
    for path in sorted(CLIENT.glob("*.py")):
        if path.name == "conversation.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                args = [a.value for a in node.args if isinstance(a, ast.Constant)]
                if ROOM_MARK in args:  # .removeprefix("#"), .startswith("#"), ...
                    found.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.JoinedStr):
                for before, after in itertools.pairwise(node.values):
                    text = before.value if isinstance(before, ast.Constant) else ""
                    marked = isinstance(text, str) and text.endswith(ROOM_MARK)
                    if marked and isinstance(after, ast.FormattedValue):  # f"#{name}"
                        found.append(f"{path.name}:{node.lineno}")
    assert not found, f"a room as a string with its mark, not InRoom: {found}"
