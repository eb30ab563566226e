"""What the API layer asks of the cluster, as Protocols: the replication
driver (`chatd.server.cluster.replication.Replicator`) and the cluster
transport (`chatd.server.cluster.peers.Peers`) satisfy them, and build.py
hands them in. The API reads the node's role and the master's address, and
relays a call to the master over the transport's channels; it makes no
replication decision.
"""

from __future__ import annotations

from typing import Protocol

import grpc

from chatd.core.types import Role, Status


class Cluster(Protocol):
    """This node's place in the cluster."""

    def status(self) -> Status: ...

    def route(self) -> tuple[Role, str]: ...


class Links(Protocol):
    """The channels to other nodes, and the metadata their calls carry."""

    metadata: tuple[tuple[str, str], ...]

    def channel(self, address: str) -> grpc.aio.Channel: ...
