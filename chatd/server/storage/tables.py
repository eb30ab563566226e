"""What the apply functions of the families that reach past their own
tables use of the store (messages, delivery, room_rules, accounts): the
writer connection, the directory of users and sessions, the rooms, the
cluster's version and the newest message id. The store is one (by its
shape: nothing here imports it)."""

from __future__ import annotations

from typing import Protocol

from chatd.server.storage import users
from chatd.server.storage.rooms import Rooms


class Tables(users.Tables, Protocol):
    @property
    def rooms(self) -> Rooms: ...

    cluster_version: int
    last_message_id: int
