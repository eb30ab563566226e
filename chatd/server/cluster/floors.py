"""Each member's --min-in-sync, as it tells the master (chatd.server.cluster.digests
carries it in the slave's periodic report).

The floor on copies is a node's own flag, not the cluster's: a master
applies its own, so a failover to a node started with another value
changes the floor without a word. The master therefore warns once per
member whose value differs from its own (again if it changes), and
`chatd status` shows every member's value.
"""

from __future__ import annotations

import logging

from chatd.words import counted

log = logging.getLogger(__name__)


class Floors:
    def __init__(self, node_id: str, own: int) -> None:
        self.node_id = node_id
        self.own = own
        self._told: dict[str, int] = {}  # node id -> its --min-in-sync
        self._warned: dict[str, int] = {}  # node id -> the value warned of

    def told(self, node_id: str, value: int) -> None:
        """A member's report (0: an older node, which does not say)."""
        if not value or node_id == self.node_id:
            return
        self._told[node_id] = value
        if value == self.own:
            self._warned.pop(node_id, None)
            return
        if self._warned.get(node_id) == value:
            return
        self._warned[node_id] = value
        log.warning(
            "node %s runs with --min-in-sync %d and this master (%s) with %d: the floor is "
            "each node's own, so after a failover to %s writes need %s; start every "
            "node with the same --min-in-sync",
            node_id,
            value,
            self.node_id,
            self.own,
            node_id,
            counted(value, "copy", "copies"),
        )

    def of(self, node_id: str) -> int:
        """The member's value as known here (0: unknown)."""
        return self.own if node_id == self.node_id else self._told.get(node_id, 0)
