"""The role core: a pure state machine (no I/O, no clock) and its types.

Start at `machine.Core`; its pieces are `log`, `progress`, `membership`,
`election`, `roles` and `leader`, each pure and tested on its own."""

from chatd.core.errors import CoreError, LocalProtocolError, RemoteProtocolError
from chatd.core.machine import Core
from chatd.core.types import Durable, Membership, Pos, Role, Status, Timing

__all__ = [
    "Core",
    "CoreError",
    "Durable",
    "LocalProtocolError",
    "Membership",
    "Pos",
    "RemoteProtocolError",
    "Role",
    "Status",
    "Timing",
]
