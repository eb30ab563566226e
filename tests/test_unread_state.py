"""Unread messages (GetMessages, what a client's inbox takes when it
starts) come with their state, as history has it: the message each
answers, edited, deleted, reactions. Real node, in this process."""

from __future__ import annotations

from chatd.contract import REACTIONS
from chatd.server.node import Node
from tests.test_client import logged_in


async def test_unread_messages_come_with_their_state(node: Node) -> None:
    ann, bob = [await logged_in(node.address, n) for n in ("ann", "bob")]
    try:
        first = await ann.send("bob", "helo")
        reply = await ann.send("bob", "and this answers it", reply_to=first)
        gone = await ann.send("bob", "oops")
        await ann.edit_message(first, "hello")
        await ann.react(first, REACTIONS[0])
        await ann.delete_message(gone)
        got = await bob.get_messages()
        assert [(m.id, m.body, m.edited, m.deleted, m.reply_to) for m in got] == [
            (first, "hello", True, False, 0),
            (reply, "and this answers it", False, False, first),
            (gone, "", False, True, 0),
        ]
        assert got[0].reactions == ((REACTIONS[0], ("ann",)),)
    finally:
        for c in (ann, bob):
            await c.close()
