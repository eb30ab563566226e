"""The loop-kept counter and histogram (chatd.server.api.loop_metrics)
expose exactly what prometheus_client's own would for the same samples:
bucket bounds inclusive, cumulative buckets, count and sum, `_total`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from chatd.server.api.loop_metrics import LoopCounter, LoopHistogram
from chatd.server.api.metrics import LATENCY_BUCKETS

SAMPLES = [0.0, 0.001, 0.0011, 0.0025, 0.003, 0.05, 0.7, 2.5, 2.6, 60.0]


def exposition(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if "_created" not in line)


def test_the_same_samples_expose_as_prometheus_clients_own() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    h = Histogram("t_seconds", "doc", ["rpc"], buckets=LATENCY_BUCKETS, registry=theirs)
    c = Counter("t_calls", "doc", ["rpc", "code"], registry=theirs)
    lh = LoopHistogram("t_seconds", "doc", ["rpc"], LATENCY_BUCKETS)
    lc = LoopCounter("t_calls", "doc", ["rpc", "code"])
    ours.register(lh)
    ours.register(lc)
    for i, v in enumerate(SAMPLES):
        rpc = "Send" if i % 3 else "Login"
        h.labels(rpc).observe(v)
        lh.observe((rpc,), v)
        c.labels(rpc, "OK").inc()
        lc.inc(rpc, "OK")
    assert exposition(ours) == exposition(theirs)
    assert 't_seconds_bucket{le="0.001",rpc="Send"} 1.0' in exposition(ours)  # (inclusive)
