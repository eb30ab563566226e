"""The conversation a front end shows: typed and shown as "#room" or a
user's name, held as Peer or InRoom."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatd.client.conversation import InRoom, Peer, of_message, parse
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
