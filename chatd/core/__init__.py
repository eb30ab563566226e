"""The role core: a pure state machine (no I/O, no clock) and its types."""

from chatd.core.machine import Core, ProtocolError
from chatd.core.types import Durable, Membership, Pos, Role, Timing

__all__ = ["Core", "Durable", "Membership", "Pos", "ProtocolError", "Role", "Timing"]
