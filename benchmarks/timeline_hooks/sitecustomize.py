"""Loaded at start-up by every Python process whose path holds this directory
(benchmarks/timeline.py puts it on the nodes' PYTHONPATH): when
CHATD_TIMELINE names a directory, chatd's write path is wrapped to record
when each step of a write happens, on the system-wide monotonic clock, so
that the steps of one write in three processes line up. Nothing is
recorded otherwise; chatd itself holds no such code.

Each record: step, a log index or request id, a count or peer, the time in
ns; written to DIR/<node id or "client">-<pid>.tsv by a thread every 0.2 s.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

OUT = os.environ.get("CHATD_TIMELINE", "")
_records: list[tuple[str, object, object, int]] = []
_now = time.perf_counter_ns  # CLOCK_MONOTONIC: one clock for every process


def rec(step: str, key: object, extra: object = "") -> None:
    _records.append((step, key, extra, _now()))


def _flush(path: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        while True:
            time.sleep(0.2)
            taken = _records[:]
            del _records[: len(taken)]
            f.write("".join(f"{s}\t{k}\t{e}\t{t}\n" for s, k, e, t in taken))
            f.flush()


def _wrap(owner: Any, name: str, before: Any = None, after: Any = None) -> None:
    fn = getattr(owner, name, None)
    if fn is None:
        print(f"timeline: no {owner.__name__}.{name} to record", file=sys.stderr)
        return

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            before(*args, **kwargs)
        out = fn(*args, **kwargs)
        if after is not None:
            after(out, *args, **kwargs)
        return out

    setattr(owner, name, wrapped)


def _node_hooks() -> None:
    from chatd.server.api import session_stream
    from chatd.server.cluster import wire
    from chatd.server.storage import store, writer

    S = store.Store
    _wrap(S, "begin", before=lambda self: rec("begin", self.last_index + 1))
    _wrap(S, "commit", before=lambda self: rec("commit0", self.last_index),
          after=lambda _o, self: rec("commit1", self.last_index))  # fmt: skip

    def appended(out: Any, self: Any, entry: Any, *_a: Any) -> None:
        if entry.WhichOneof("op") == "send_message":
            rec("entry", self.last_index, entry.send_message.request_id)

    _wrap(S, "append", after=appended)
    _wrap(writer.GroupCommitWriter, "committed", before=lambda self, i: rec("committed", i))
    _wrap(session_stream.SessionStream, "_send",
          before=lambda self, sid, f: rec("frame", f.request_id))  # fmt: skip
    _wrap(session_stream.SessionStream, "_answer", before=lambda self, rid, *a: rec("answer", rid))

    def tx(out: Any, m: Any, *_a: Any) -> None:
        if m.count:
            rec("tx", m.prev.index + 1, f"{m.dst}:{m.count}")

    def rx(m: Any, *_a: Any) -> None:
        if m.count:
            rec("rx", m.prev.index + 1, m.count)

    from chatd.server.cluster import replication

    _wrap(replication.Replicator, "appended", before=lambda self, e, i: rec("appended", i))
    _wrap(wire, "batch_to", after=tx)
    from chatd.server.cluster import peers

    _wrap(
        peers.Link,
        "put",
        before=lambda self, m: (
            rec("linkput", m.prev.index + 1, self.dst) if getattr(m, "count", 0) else None
        ),
    )
    _wrap(wire, "batch_from", after=rx)
    _wrap(wire, "append_reply_to", before=lambda m: rec("ack", m.durable.index))
    _wrap(wire, "append_reply_from", after=lambda m, *_a: rec("ackin", m.durable.index, m.src))


def _client_hooks() -> None:
    from chatd.tools import bench

    def send(fn: Any) -> Any:
        async def timed(self: Any, request: Any) -> Any:
            rec("send", request.request_id)
            out = await fn(self, request)
            rec("result", request.request_id)
            return out

        return timed

    bench.Connection.send = send(bench.Connection.send)  # type: ignore[method-assign]
    _wrap(bench.Bench, "delivered", before=lambda self, body: rec("deliv", body))


NODE_MODULES = (
    "chatd.server.api.session_stream",
    "chatd.server.cluster.wire",
    "chatd.server.storage.store",
    "chatd.server.storage.writer",
    "chatd.server.cluster.replication",
)


def _when_imported() -> None:
    """A node imports grpc only after its logging is set up (chatd.logs):
    its modules are wrapped once it has imported them, before it serves."""
    for _ in range(3000):
        if all(m in sys.modules for m in NODE_MODULES):
            _node_hooks()
            return
        time.sleep(0.01)
    print("timeline: the node's modules were not imported in 30 s", file=sys.stderr)


def install(who: str) -> None:
    if who == "client":
        _client_hooks()
    else:
        threading.Thread(target=_when_imported, daemon=True, name="timeline-hooks").start()
    path = os.path.join(OUT, f"{who}-{os.getpid()}.tsv")
    threading.Thread(target=_flush, args=(path,), daemon=True, name="timeline").start()


if OUT and "serve" in sys.argv and "--node-id" in sys.argv:
    install(sys.argv[sys.argv.index("--node-id") + 1])
