"""Matching the core's replies to the calls from other nodes that wait for them.

A peer service answers CheckMaster, RegisterSlave, UpdateMaster and
UpdateSlaves with the core's reply: its handler opens the request here,
which gives it an id (`Asked`), and the driver steps the request into the
core under that id. The core answers each of these requests at once, in
the step that takes it (chatd/core/machine.py, chatd/core/leader.py): a
reply of the awaited type to the request's sender that this step produces
is the request's reply. It is claimed under the request's id, carried
through the driver's pump in order (it may not be answered before what the
core persisted ahead of it), and completes that id's future, and no other.

Anything else is dropped, counted in `unmatched` and logged at debug: a
second reply within one request's step, a reply produced outside any
request's step, and one that reaches the pump after its caller gave up
(timed out, or its call ended). A request the core does not answer (a
refused event, or a retired node's Register) leaves its caller to time
out, and its id holds no other request's reply.

The id stays in this node. Each request travels as its own unary gRPC call,
which pairs the answer with the call on the asking side, so the cluster
protocol (chatd.server.protocol) is unchanged by it: nodes of every version
interoperate as before.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from chatd.core.types import CheckMasterReply, Message, RegisterReply, UpdateAck

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Message)

# the core's replies to requests from other nodes (the others go over the wire)
REPLY_TYPES = (CheckMasterReply, RegisterReply, UpdateAck)


@dataclass(slots=True, eq=False)
class Asked:
    """One request waiting for the core's reply."""

    id: int
    src: str  # the request's sender: the reply's destination
    reply_type: type
    future: asyncio.Future[Message] = field(repr=False)
    claimed: bool = False  # a reply of its step was claimed for it


@dataclass(frozen=True, slots=True)
class Reply:
    """Hands a core reply to the request (by its id) that waits for it; in
    the driver's pump, after what the core asked to persist before it."""

    message: Message
    request_id: int


class Replies:
    """The requests waiting for a reply, by id. `step` steps a message into
    the core (the driver's), producing the reply to claim at once."""

    def __init__(self, node_id: str, step: Callable[[Message], None]) -> None:
        self.node_id = node_id
        self._step = step
        self._ids = itertools.count(1)
        self._waiting: dict[int, Asked] = {}
        self._stepping: Asked | None = None  # the request the core is taking now
        self.unmatched = 0  # replies dropped: no request of theirs waited for them

    async def ask(self, request: Message, reply_type: type[R]) -> R:
        """Steps a request from another node into the core and waits for the
        reply it produced; the caller bounds the wait."""
        asked = self.open(request, reply_type)
        try:
            with self.stepping(asked):
                self._step(request)
            reply = await asked.future
        finally:
            self.close(asked)
        assert isinstance(reply, reply_type)
        return reply

    def open(self, request: Message, reply_type: type) -> Asked:
        asked = Asked(
            next(self._ids),
            request.src,
            reply_type,
            asyncio.get_running_loop().create_future(),
        )
        self._waiting[asked.id] = asked
        return asked

    def close(self, asked: Asked) -> None:
        """The caller no longer waits (answered, timed out, or gone)."""
        self._waiting.pop(asked.id, None)

    @contextmanager
    def stepping(self, asked: Asked) -> Iterator[None]:
        """While the core takes `asked`'s request: its reply is claimed for it."""
        assert self._stepping is None, "one request is stepped at a time"
        self._stepping = asked
        try:
            yield
        finally:
            self._stepping = None

    def claim(self, reply: Message) -> int | None:
        """The id of the request a reply the core just produced answers, or
        None (dropped: counted and logged)."""
        asked = self._stepping
        if asked is None:
            self._drop(reply, "produced outside a request's step")
            return None
        if type(reply) is not asked.reply_type or reply.dst != asked.src:
            self._drop(reply, f"not the reply request {asked.id} awaits")
            return None
        if asked.claimed:
            self._drop(reply, f"a second reply to request {asked.id}")
            return None
        asked.claimed = True
        return asked.id

    def complete(self, request_id: int, reply: Message) -> None:
        """Hands a claimed reply to its request (in the pump, in order)."""
        asked = self._waiting.get(request_id)
        if asked is None or asked.future.done():
            self._drop(reply, f"request {request_id} no longer waits")
            return
        asked.future.set_result(reply)

    def _drop(self, reply: Message, why: str) -> None:
        self.unmatched += 1
        log.debug(
            "node %s dropped %s to %r: %s (%d dropped so far)",
            self.node_id,
            type(reply).__name__,
            reply.dst,
            why,
            self.unmatched,
        )
