"""Prometheus metrics of one node (`--metrics-port`), by Prometheus's
conventions: counts are counters (`_total`), durations histograms in
seconds, the standard `process_*`, `python_gc_*` and `python_info` series
are there, and `chatd_build_info` carries the version as labels.

Counters and the latency histograms are updated as calls finish; the
gauges (role, epoch, replication lag per slave, in-sync set size,
subscribers, a state digest mismatch per follower) and the group-commit
counters are brought up to date from the node's state every heartbeat, on
the event loop, so the exporter thread never reads state the loop is
changing.
"""

from __future__ import annotations

import functools
import platform
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    start_http_server,
)

from chatd import __version__
from chatd.contract import status_named
from chatd.core.types import Role
from chatd.server.api.loop_metrics import LoopCounter, LoopHistogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        for standard in (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR):
            r.register(standard)  # process_*, python_gc_*, python_info
        Gauge(
            "chatd_build_info",
            "1, labelled with this node's chatd, Python and gRPC versions",
            ["version", "python", "grpc"],
            registry=r,
        ).labels(__version__, platform.python_version(), grpc.__version__).set(1)
        # (by every call and Send: kept by the loop, read at each scrape)
        self.durations = LoopHistogram(
            "chatd_request_duration_seconds",
            "Client API calls by RPC, from request to answer (a Connect stream's sends as Send)",
            ["rpc"],
            LATENCY_BUCKETS,
        )
        self.requests = LoopCounter(
            "chatd_requests",
            "Client API calls by RPC, gRPC status and chatd error code (a stream when it ends)",
            ["rpc", "code", "error_code"],
        )
        self.send_latency = LoopHistogram(
            "chatd_send_latency_seconds",
            "Send latency, from request to acknowledgement",
            (),
            LATENCY_BUCKETS,
        )
        for loop_kept in (self.durations, self.requests, self.send_latency):
            r.register(loop_kept)
        self.elections = Counter(
            "chatd_elections_won", "Times this node became master by election", registry=r
        )
        self.in_sync_drops = Counter(
            "chatd_in_sync_drops",
            "Slaves this node as master dropped from the in-sync set, by cause",
            ["cause"],  # silent, lagging, removed
            registry=r,
        )
        self.role = Gauge("chatd_role", "1 for this node's current role", ["role"], registry=r)
        self.epoch = Gauge("chatd_epoch", "Current epoch", registry=r)
        self.applied = Gauge("chatd_applied_index", "Last applied log index", registry=r)
        self.committed = Gauge("chatd_commit_index", "Last committed log index", registry=r)
        self.in_sync = Gauge("chatd_in_sync_size", "Nodes in the in-sync set", registry=r)
        self.lag = Gauge(
            "chatd_replication_lag_entries",
            "Entries a slave lags behind (master only)",
            ["slave"],
            registry=r,
        )
        self.subscribers = Gauge("chatd_subscribers", "Open Subscribe streams", registry=r)
        self.web_sockets = Gauge(
            "chatd_web_sockets", "Open WebSockets of the web client's pages", registry=r
        )
        self.batches = Counter(
            "chatd_group_commits", "Write batches committed by this node as master", registry=r
        )
        self.batch_entries = Counter(
            "chatd_group_commit_entries", "Log entries in those batches", registry=r
        )
        self._counted = (0, 0)  # the writer's (batches, entries) at the last refresh
        self.state_digest_mismatch = Gauge(
            "chatd_state_digest_mismatch",
            "1 for a follower whose state digest differs from the master's (master only)",
            ["node"],
            registry=r,
        )
        self.state_digest_mismatches = Counter(
            "chatd_state_digest_mismatches",
            "Followers found with a state digest differing from the master's",
            registry=r,
        )
        self.rolled_back = Counter(
            "chatd_rolled_back_entries",
            "Log entries this node dropped when another master's log replaced its own, "
            "each kept in a rollback file of its data dir",
            registry=r,
        )
        self._rolled_back = 0  # the replicator's count at the last refresh
        self.min_in_sync = Gauge(
            "chatd_min_in_sync",
            "--min-in-sync: nodes in sync (the master counted) a write needs, in-sync mode",
            registry=r,
        )
        self.writes_refused = Gauge(
            "chatd_writes_refused",
            "1 while this master refuses writes: fewer nodes in sync than --min-in-sync",
            registry=r,
        )
        self._server: Any = None

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def refresh(self, node: Any) -> None:
        c = node.repl.status()
        for role in Role:
            self.role.labels(role.value).set(1 if c.role is role else 0)
        self.epoch.set(c.epoch)
        self.applied.set(node.store.last_index)
        self.committed.set(c.commit)
        self.in_sync.set(len(c.membership.in_sync))
        self.subscribers.set(node.hub.stream_count())
        self.web_sockets.set(len(node.web.sockets) if node.web is not None else 0)
        batches, entries = node.writer.batches, node.writer.entries
        self.batches.inc(max(0, batches - self._counted[0]))
        self.batch_entries.inc(max(0, entries - self._counted[1]))
        self._counted = (batches, entries)
        self.min_in_sync.set(node.config.min_in_sync)
        self.writes_refused.set(1 if node.repl.refusal() else 0)
        dropped = node.repl.rolled_back.entries
        self.rolled_back.inc(max(0, dropped - self._rolled_back))
        self._rolled_back = dropped
        self.lag.clear()
        for nid, p in c.followers.items():
            self.lag.labels(nid).set(max(0, c.last.index - p.match))
        self.state_digest_mismatch.clear()
        for nid in c.followers:
            self.state_digest_mismatch.labels(nid).set(1 if nid in node.digests.diverged else 0)

    def stream_send(self, result: Any, seconds: float) -> None:
        """A send frame's result (a Connect stream's), counted as a Send."""
        code = status_named(result.status).name if result.status else "OK"
        error = str(result.error_code)
        self.requests.inc("Send", code, error)
        self.durations.observe(("Send",), seconds)
        if code == "OK" and error == "0":
            self.send_latency.observe((), seconds)

    def instrument(self, servicer: Any, service: Any) -> None:
        """Measures every RPC of `service` (a service descriptor of the
        protos) that `servicer` serves: each unary call counted and timed,
        each stream counted when it ends, a Connect stream's sends as Send."""
        servicer.on_stream_send = self.stream_send
        for m in service.methods:
            method = getattr(servicer, m.name)
            if m.server_streaming:
                setattr(servicer, m.name, self.measured_stream(m.name, method))
            else:
                setattr(servicer, m.name, self.measured(m.name, method))

    def measured_stream(
        self, rpc: str, method: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        """A servicer's streaming method, counted when the stream ends, by
        how it ended (not timed: a stream lasts as long as its client)."""

        @functools.wraps(method)
        async def call(request: Any, context: Any) -> AsyncIterator[Any]:
            code = "OK"
            try:
                async for item in method(request, context):
                    yield item
            except BaseException:
                code = _ended(context)
                raise
            finally:
                self.requests.inc(rpc, code, "0")

        return call

    def measured(self, rpc: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        """A servicer's unary method, counted (and timed, for Send)."""

        @functools.wraps(method)
        async def call(request: Any, context: Any) -> Any:
            start = time.perf_counter()
            code, error = "OK", "0"
            try:
                response = await method(request, context)
                error = str(getattr(response, "error_code", 0))
                return response
            except BaseException:
                code = _ended(context)
                raise
            finally:
                seconds = time.perf_counter() - start
                self.requests.inc(rpc, code, error)
                self.durations.observe((rpc,), seconds)
                if rpc == "Send" and code == "OK" and error == "0":
                    self.send_latency.observe((), seconds)

        return call


def _ended(context: Any) -> str:
    """The status a call that raised ends with (CANCELLED when none was set:
    its client went away)."""
    status = context.code()
    return status.name if isinstance(status, grpc.StatusCode) else "CANCELLED"
