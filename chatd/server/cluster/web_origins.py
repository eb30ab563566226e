"""Each member's web origin: where browsers reach its web client (--web-listen,
or --web-advertise), as chatd.server.cluster.digests carries it.

A page served by one node names every member's origin, so that it can go
on at another node when its own dies; and a node checks a WebSocket's
Origin header against them. A slave tells its master its own origin in
its periodic report; the master keeps what its members told and answers
each report with its whole table, its own origin included, which the
slave keeps in place of what it knew. What arrives from the wire is held
to what --web-advertise accepts (chatd.config.web_origin): a value that is
not an origin is ignored (and said once), so it never reaches a page.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable

from chatd.config import NODE_ID_RE, web_origin
from chatd.server.cluster.checks import show

log = logging.getLogger(__name__)

MAX_TOLD = 1000  # entries a master's table may bring (a cluster has a handful)


class WebOrigins:
    def __init__(self, node_id: str, own: str) -> None:
        self.node_id = node_id
        self.own = own  # this node's origin ("" when it serves no page)
        self._known: dict[str, str] = {}  # another node's id -> its origin
        self._refused: dict[str, str] = {}  # node id -> the last junk value said

    # -- what arrives --

    def told(self, node_id: str, origin: str) -> None:
        """The master: a member's report ("": it serves no page, or an older
        node that does not say)."""
        if node_id == self.node_id:
            return
        if not origin:
            self._known.pop(node_id, None)
            return
        checked = self._checked(node_id, origin)
        if checked is not None:
            self._known[node_id] = checked

    def learned(self, table: Iterable[tuple[str, str]]) -> None:
        """A slave: the master's table, in place of what this node knew (its
        own origin stays its own)."""
        known: dict[str, str] = {}
        listed: set[str] = set()
        for i, (node_id, origin) in enumerate(table):
            if i >= MAX_TOLD:
                break
            listed.add(node_id)
            if node_id == self.node_id or not origin or not NODE_ID_RE.fullmatch(node_id):
                continue
            checked = self._checked(node_id, origin)
            if checked is not None:
                known[node_id] = checked
        self._known = known
        # (what was said of a node the master no longer lists is forgotten)
        self._refused = {n: v for n, v in self._refused.items() if n in listed}

    def _checked(self, node_id: str, origin: str) -> str | None:
        """The origin as browsers send it, or None (said once per node and value)."""
        try:
            checked = web_origin(origin)
        except argparse.ArgumentTypeError:
            if self._refused.get(node_id) != origin:
                self._refused[node_id] = origin
                log.warning(
                    "node %s: ignored the web origin %s given for node %s: not an origin "
                    "like http://host:8080",
                    self.node_id,
                    show(origin),
                    show(node_id),
                )
            return None
        self._refused.pop(node_id, None)
        return checked

    # -- what is known --

    def of(self, node_id: str) -> str:
        """The node's origin as known here ("": none, or unknown)."""
        return self.own if node_id == self.node_id else self._known.get(node_id, "")

    def origins(self, member_ids: Iterable[str]) -> list[str]:
        """The members' origins: this node's own first (if it has one), then
        the others' known ones, in the order of their ids, each once."""
        found = [self.own] if self.own else []
        for node_id in sorted(set(member_ids) - {self.node_id}):
            origin = self._known.get(node_id, "")
            if origin and origin not in found:
                found.append(origin)
        return found

    def table(self, member_ids: Iterable[str]) -> list[tuple[str, str]]:
        """The master's answer to a report: each member's known origin, its own included."""
        return [(n, o) for n in sorted(set(member_ids)) if (o := self.of(n))]
