"""Where a client's call is served: here, or relayed to the master over the
peer listener (Router, which also keeps the client address each master
told), how long a relayed call may take, and where the caller is
(peer_host)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from chatd.config import is_node_address
from chatd.contract import MASTER_HEADER
from chatd.core.types import Role
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.api.ports import Cluster, Links
from chatd.server.errors import NoMaster

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]


class Router:
    """Where client calls go: here (None) or the master's stub (over the
    peer listener, with the cluster secret), and which address clients are
    told the master has (its client listener's, learned from its answers)."""

    def __init__(self, repl: Cluster, peers: Links) -> None:
        self.repl = repl
        self.peers = peers
        self.client_address = ""  # this node's, once it listens
        self._client_addresses: dict[str, str] = {}  # peer address -> client address
        # peer address -> (its channel, a stub on it, its raw Connect)
        self._stubs: dict[str, tuple[Any, chat_pb2_grpc.ClientAccountStub, Any]] = {}

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self.peers.metadata

    def master_stub(self, role: Role, address: str) -> chat_pb2_grpc.ClientAccountStub | None:
        if role is Role.MASTER:
            return None
        if role is not Role.SLAVE or not address:
            raise NoMaster("no master is reachable right now; try again shortly")
        return self._kept(address)[1]

    def connect_call(self, address: str) -> Any:
        """The master's Connect (at its peer `address`), its frames not
        decoded: a slave passes them to its client as they came."""
        return self._kept(address)[2]

    def _kept(self, address: str) -> tuple[Any, chat_pb2_grpc.ClientAccountStub, Any]:
        channel = self.peers.channel(address)
        kept = self._stubs.get(address)
        if kept is None or kept[0] is not channel:  # (a stub is 48 us to make: kept)
            stub = chat_pb2_grpc.ClientAccountStub(channel)
            connect = channel.stream_stream(
                "/ClientAccount/Connect",
                request_serializer=chat_pb2.ClientFrame.SerializeToString,
                response_deserializer=None,  # bytes
            )
            kept = self._stubs[address] = (channel, stub, connect)
        return kept

    def route(self) -> tuple[Role, str]:
        """(this node's role, the master's peer address or "")."""
        return self.repl.route()

    def for_clients(self, route: tuple[Role, str]) -> str:
        """The master's client address, "" while it is not known yet."""
        role, address = route
        if role is Role.MASTER:
            return self.client_address
        return self._client_addresses.get(address, "") if address else ""

    def learn(self, address: str, metadata: Any) -> None:
        """The master at peer `address` named itself in an answer (every
        answer of a master names its own client address)."""
        for key, value in metadata or ():
            if key == MASTER_HEADER:
                told = value if isinstance(value, str) else value.decode(errors="replace")
                self.heard(address, told)

    def heard(self, address: str, client_address: str) -> None:
        """The master at peer `address` said where its clients reach it (in
        an answer's metadata, or in its status: a slave no client call went
        through yet has heard no answer of the first kind)."""
        if is_node_address(client_address):
            self._client_addresses[address] = client_address


def relay_timeout(context: Ctx) -> float:
    left = context.time_remaining()
    return 30.0 if left is None else max(0.0, left)


def peer_host(context: Ctx) -> str:
    """The caller's IP address, its port dropped ("ipv4:10.0.0.7:5123" ->
    "10.0.0.7", "ipv6:[::1]:5123" -> "::1")."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return peer
    host = rest.rpartition(":")[0]
    return host.strip("[]")
