"""The standard gRPC health service, kept in step with the node's role.

SERVING on the master and on in-sync slaves; NOT_SERVING while a node is
catching up, looking for a master, or retired. The overall status ("") and
the `ClientAccount` service carry the same value.
"""

from __future__ import annotations

import asyncio

from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2

from chatd.core.types import Role
from chatd.proto import chat_pb2
from chatd.server.api.ports import Cluster

# the node ("") and every service of the client API
SERVICES = ("", *(s.full_name for s in chat_pb2.DESCRIPTOR.services_by_name.values()))
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def serving(repl: Cluster) -> bool:
    c = repl.status()
    if c.role is Role.MASTER:
        return True
    return c.role is Role.SLAVE and c.eligible and c.id in c.membership.in_sync


class Health:
    def __init__(self, repl: Cluster) -> None:
        self.repl = repl
        self.servicer = health_aio.HealthServicer()
        self._last: bool | None = None

    async def update(self) -> None:
        now = serving(self.repl)
        if now != self._last:
            self._last = now
            for name in SERVICES:
                await self.servicer.set(name, SERVING if now else NOT_SERVING)

    async def run(self, every: float) -> None:
        """Follows the role (checked every heartbeat; cheap when unchanged)."""
        while True:
            await self.update()
            await asyncio.sleep(every)

    async def stop(self) -> None:
        await self.servicer.enter_graceful_shutdown()
