"""The timeline of one replicated write through the three processes: when
each step of a Send happens, from the client's frame to its result and its
delivery, at one client and under load.

    python benchmarks/timeline.py [--concurrency 1] [--users 2] [--seconds 8]
                                  [--window 1] [--keep DIR] [--node-code DIR]

Three real nodes run with benchmarks/timeline_hooks on their path, which
records each step of the write path on the system-wide monotonic clock
(chatd holds no such code); the load is `chatd bench --transport stream`'s
own, run in this process with the same recording. Each acknowledged send
is followed through the records by its request id and its log index, and
the report gives the median and the 90th percentile of each step (ms), the
steps of a slave for the slave that acknowledged last. The recording costs
time of its own (a list append per step): the sum is a little above the
bench's own figure.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOOKS = ROOT / "benchmarks" / "timeline_hooks"
sys.path.insert(0, str(ROOT))

from chatd.tools.localcluster import Cluster  # noqa: E402

Records = dict[str, list[tuple[str, str, int]]]  # step -> [(key, extra, ns)]

STEPS = [
    ("client writes the frame -> master reads it", "send", "frame"),
    ("master: frame read -> its batch begins", "frame", "begin"),
    ("master: batch begins -> this entry applied", "begin", "entry"),
    ("master: entry applied -> batch handed to replication", "entry", "appended"),
    ("master: handed to replication -> encoded for the slave", "appended", "tx"),
    ("wire: master encoded -> slave decoded", "tx", "rx"),
    ("slave: decoded -> its batch begins", "rx", "s_begin"),
    ("slave: apply of the batch (begin -> commit starts)", "s_begin", "s_commit0"),
    ("slave: commit (fsync)", "s_commit0", "s_commit1"),
    ("slave: durable -> acknowledgement made", "s_commit1", "s_ack"),
    ("wire: acknowledgement made -> master decoded it", "s_ack", "ackin"),
    ("master: acknowledgement -> committed", "ackin", "committed"),
    ("master: committed -> result frame queued", "committed", "answer"),
    ("master -> client: result frame queued -> client has it", "answer", "result"),
]
ASIDE = [
    ("master: handed to replication -> own commit begins (db thread)", "appended", "m_commit0"),
    ("master's own commit (fsync), alongside the slaves'", "m_commit0", "m_commit1"),
    ("master: entry applied -> own commit done", "entry", "m_commit1"),
    ("client: result -> delivery of the same message", "result", "deliv"),
    ("whole send, client's clock", "send", "result"),
]


def load(directory: Path) -> tuple[Records, dict[str, Records]]:
    """The client's records, and each node's by node id."""
    client: Records = collections.defaultdict(list)
    nodes: dict[str, Records] = {}
    for path in directory.glob("*.tsv"):
        who = path.name.rsplit("-", 1)[0]
        into = client if who == "client" else nodes.setdefault(who, collections.defaultdict(list))
        for line in path.read_text().splitlines():
            step, key, extra, ns = line.split("\t")
            into[step].append((key, extra, int(ns)))
    return client, nodes


def first_at_or_after(points: list[tuple[int, int]], index: int) -> int | None:
    """The time of the first record whose index is >= `index`, of
    (index, ns) pairs in time order (an acknowledgement, a commit)."""
    for i, t in points:  # (in time order; indexes only grow within one run)
        if i >= index:
            return t
    return None


def batch_of(starts: list[tuple[int, int]], index: int) -> int | None:
    """Position in `starts` ((first index, ns), sorted) of the batch holding `index`."""
    k = bisect.bisect_right(starts, (index, 1 << 62)) - 1
    return k if k >= 0 else None


def follow(client: Records, nodes: dict[str, Records], master: str) -> list[dict[str, int]]:
    m = nodes[master]
    slaves = [n for n in nodes if n != master]
    sent = {k: t for k, _, t in client["send"]}
    result = {k: t for k, _, t in client["result"]}
    deliv = {k: t for k, _, t in client["deliv"]}
    frame = {k: t for k, _, t in m["frame"]}
    answer = {k: t for k, _, t in m["answer"]}
    entry = {e: (int(k), t) for k, e, t in m["entry"]}  # request id -> (index, ns)
    begins = sorted((int(k), t) for k, _, t in m["begin"])
    appended = sorted(((int(k), t) for k, _, t in m["appended"]), key=lambda p: p[1])
    committed = sorted(((int(k), t) for k, _, t in m["committed"]), key=lambda p: p[1])
    m_commit1 = sorted(((int(k), t) for k, _, t in m["commit1"]), key=lambda p: p[1])
    m_commit0 = sorted(((int(k), t) for k, _, t in m["commit0"]), key=lambda p: p[1])
    tx: dict[str, list[tuple[int, int, int]]] = collections.defaultdict(list)
    for k, extra, t in m["tx"]:
        dst, count = extra.split(":")
        tx[dst].append((int(k), int(count), t))
    ackin: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for k, src, t in m["ackin"]:
        ackin[src].append((int(k), t))
    per_slave = {}
    for s in slaves:
        r = nodes[s]
        per_slave[s] = {
            "rx": sorted((int(k), int(c), t) for k, c, t in r["rx"]),
            "begin": sorted((int(k), t) for k, _, t in r["begin"]),
            "commit0": sorted(((int(k), t) for k, _, t in r["commit0"]), key=lambda p: p[1]),
            "commit1": sorted(((int(k), t) for k, _, t in r["commit1"]), key=lambda p: p[1]),
            "ack": sorted(((int(k), t) for k, _, t in r["ack"]), key=lambda p: p[1]),
        }
    out = []
    for rid, t_send in sent.items():
        if rid not in result or rid not in entry or rid not in frame:
            continue
        index, t_entry = entry[rid]
        k = batch_of(begins, index)
        row = {"send": t_send, "frame": frame[rid], "entry": t_entry, "result": result[rid]}
        if k is not None:
            row["begin"] = begins[k][1]
        if (c := first_at_or_after(appended, index)) is not None:
            row["appended"] = c
        if rid in answer:
            row["answer"] = answer[rid]
        if rid in deliv:
            row["deliv"] = deliv[rid]
        if (c := first_at_or_after(committed, index)) is not None:
            row["committed"] = c
        if (c := first_at_or_after(m_commit1, index)) is not None:
            row["m_commit1"] = c
        if (c := first_at_or_after(m_commit0, index)) is not None:
            row["m_commit0"] = c
        # the slave whose acknowledgement came last: the one the commit waited for
        last_slave, last_ack = None, -1
        for s in slaves:
            got = first_at_or_after(sorted(ackin[s], key=lambda p: p[1]), index)
            if got is not None and got > last_ack:
                last_slave, last_ack = s, got
        if last_slave is None:
            out.append(row)
            continue
        row["ackin"] = last_ack
        sent_to = [t for first, count, t in tx[last_slave] if first <= index < first + count]
        if sent_to:
            row["tx"] = sent_to[0]
        sl = per_slave[last_slave]
        got_rx = [t for first, count, t in sl["rx"] if first <= index < first + count]
        if got_rx:
            row["rx"] = got_rx[0]
        if (kb := batch_of(sl["begin"], index)) is not None:
            row["s_begin"] = sl["begin"][kb][1]
        for name in ("commit0", "commit1", "ack"):
            if (c := first_at_or_after(sl[name], index)) is not None:
                row[f"s_{name}"] = c
        out.append(row)
    return out


def report(rows: list[dict[str, int]], label: str) -> None:
    print(f"{label}: {len(rows)} sends followed; ms, median and 90th percentile")
    for title, a, b in [*STEPS, *ASIDE]:
        d = [(r[b] - r[a]) / 1e6 for r in rows if a in r and b in r]
        if not d:
            print(f"  {title}: no records")
            continue
        d.sort()
        p90 = d[min(len(d) - 1, int(0.9 * len(d)))]
        print(f"  {statistics.median(d):7.3f} {p90:7.3f}  {title}")


async def load_run(address: str, args: argparse.Namespace) -> dict[str, object]:
    # benchmarks/timeline_hooks, by its path (this process has a sitecustomize of its own)
    spec = importlib.util.spec_from_file_location("timeline_hooks", HOOKS / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    hooks.install("client")
    from chatd.tools.bench import Bench

    bench_args = argparse.Namespace(
        server=address, users=args.users, concurrency=args.concurrency, duration=args.seconds,
        rate=0.0, transport="stream", web="", no_streams=False, json=True, window=args.window,
    )  # fmt: skip
    return await Bench(bench_args).run()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--users", type=int, default=2)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--window", type=int, default=1, help="sends in flight a stream")
    p.add_argument("--keep", help="copy the raw records to this directory")
    p.add_argument("--node-code", metavar="DIR",
                   help="run the nodes from the checkout at DIR (an earlier commit)")  # fmt: skip
    args = p.parse_args()
    if args.keep:
        args.keep = str(Path(args.keep).resolve())  # (the run changes directory)
    with tempfile.TemporaryDirectory(prefix="chatd-timeline-") as tmp:
        base = Path(tmp)
        records = base / "records"
        records.mkdir()
        os.environ["CHATD_TIMELINE"] = str(records)
        code = str(Path(args.node_code).resolve()) if args.node_code else str(ROOT)
        os.environ["PYTHONPATH"] = os.pathsep.join([str(HOOKS), code])
        os.chdir(base)  # (`python -m chatd` would take the chatd of the directory it runs in)
        cluster = Cluster.start(base, 3)
        try:
            master = cluster.master() or "n1"
            result = asyncio.run(load_run(cluster.addresses[master], args))
            time.sleep(1.0)  # the last records flushed
        finally:
            cluster.stop_all()
        time.sleep(0.3)
        print(
            f"{result['sends_per_s']} sends/s at concurrency {args.concurrency}, "
            f"{args.users} users; send p50 {result['send_ms_p50']} ms, "
            f"delivery p50 {result['delivery_ms_p50']} ms (bench's own figures)"
        )
        client, nodes = load(records)
        report(follow(client, nodes, master), f"master {master}")
        if args.keep:
            shutil.copytree(records, args.keep, dirs_exist_ok=True)


if __name__ == "__main__":
    main()
