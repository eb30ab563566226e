"""Gray failures: what a slave that is not dead but not well costs the writers.

    python benchmarks/gray.py [--disk-runs 3] [--cpu-runs 3] [--levels 2,5,10]
                              [--writers 16] [--serve-args "..."] [--json]

1. A full disk: the slave n3's data dir is a 4 MB tmpfs, filled by 2 KB
   messages. Measured: from the slave's CRITICAL line (the failed write, its
   log's timestamp) to writes flowing again (the end of the longest gap
   between two acknowledgements that ends after it), and that gap (the stall
   as the writers see it); and when the node exited.
2. A slow slave: n3 put in a cgroup with a CPU quota of L % of one core
   (period 100 ms). Measured: the Send rate from 3 s to 18 s after the quota
   as a fraction of the rate over the 5 s just before it, same run. Levels
   are interleaved within a run (2, 5, 10, then again), a fresh cluster each.

Every run: 3 real `chatd serve` processes on loopback with the cluster
helper's flags (chatd.tools.localcluster: Send rate limit off, cheap password
hash) and default timing (heartbeat 100 ms, failover timeout 500 ms) plus
--serve-args; the writers (chatd.tools.localcluster.Load: each Send with its
own request id, retried until acknowledged) in this process. Each run ends
with the fault removed, every node converged and no acknowledged write lost
or doubled. Needs root (tmpfs, cgroups: chatd.tools.faults).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.tools import faults
from chatd.tools.localcluster import Cluster, Load, check_no_loss

BODY_CHARS = 2048
DISK = "4m"
BEFORE_S = 5.0  # the rate before the slowdown, measured over this long
FROM_S, TO_S = 3.0, 18.0  # the rate after it, over this window


def note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def in_sync(c: Cluster) -> list[str]:
    m = c.master()
    s = c.status(m) if m else None
    return list(s["in_sync"]) if s else []  # type: ignore[call-overload]


def critical_time(log: str) -> float | None:
    """The wall-clock time of the node's first CRITICAL line (text log format)."""
    for line in log.splitlines():
        if " CRITICAL " in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()  # local time, as the node wrote it
    return None


async def start(
    base: Path, writers: int, serve_args: list[str], body_chars: int = 0
) -> tuple[Cluster, Load, str, list[asyncio.Task[None]]]:
    c = await asyncio.to_thread(Cluster.start, base, 3, *serve_args)
    load = Load(list(c.addresses.values()), body_chars=body_chars)
    alice = await load.session("alice")
    await load.session("bob")
    tasks = [asyncio.create_task(load.writer(alice, "bob", f"w{i}")) for i in range(writers)]
    return c, load, alice, tasks


async def finish(c: Cluster, load: Load, alice: str, tasks: list[asyncio.Task[None]]) -> int:
    """Stops the writers; waits for convergence; returns how many
    acknowledged writes were lost or doubled (0, or -1 when the check failed)."""
    load.stop.set()
    async with asyncio.timeout(60):
        await asyncio.gather(*tasks)
    await asyncio.to_thread(c.converged, None, 60.0)
    master = await asyncio.to_thread(c.master)
    try:
        await check_no_loss(c.addresses[master], alice, "bob", load)  # type: ignore[index]
    except AssertionError as exc:
        note(f"  LOST OR DOUBLED: {exc}")
        return -1
    return 0


async def disk_run(writers: int, serve_args: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="chatd-gray-") as tmp:
        base = Path(tmp)
        with faults.tmpfs(base / "n3", DISK) as disk:
            c, load, alice, tasks = await start(base, writers, serve_args, BODY_CHARS)
            try:
                wall = time.time() - time.monotonic()  # monotonic -> wall clock
                t0 = time.monotonic()
                n3 = c.nodes["n3"]
                async with asyncio.timeout(120):
                    while n3.running:
                        await asyncio.sleep(0.05)
                exited = time.monotonic()
                code = n3.proc.returncode if n3.proc else None
                async with asyncio.timeout(30):  # 50 more acknowledgements
                    while sum(1 for _, e in load.ack_log if e > exited) < 50:
                        await asyncio.sleep(0.05)
                failed = critical_time(n3.log())
                if failed is None:
                    raise RuntimeError(f"n3 exited without a CRITICAL line: {n3.log()[-2000:]}")
                failed -= wall
                # the stall: the longest gap between acknowledgements that ends
                # after the failure (a batch n3 had made durable may still be
                # acknowledged just after its failed one)
                ends = sorted(e for _, e in load.ack_log if e >= t0)
                last, resumed = max(
                    ((a, b) for a, b in itertools.pairwise(ends) if b > failed),
                    key=lambda ab: ab[1] - ab[0],
                )
                faults.resize(disk, "256m")
                c.restart("n3")
                await asyncio.to_thread(c.wait, lambda: len(in_sync(c)) == 3, "n3 in sync", 60)
                lost = await finish(c, load, alice, tasks)
                return {
                    "filled_after_s": round(failed - t0, 2),
                    "failed_to_writes_ms": round((resumed - failed) * 1000),
                    "stall_ms": round((resumed - last) * 1000),
                    "exited_after_failure_s": round(exited - failed, 2),
                    "exit_code": float(-999 if code is None else code),
                    "acknowledged": len(load.acked),
                    "lost": lost,
                }
            finally:
                c.stop_all()


async def cpu_run(
    level: float, writers: int, serve_args: list[str], group: faults.CpuGroup
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="chatd-gray-") as tmp:
        c, load, alice, tasks = await start(Path(tmp), writers, serve_args)
        try:
            await asyncio.sleep(2)  # warm up
            t_before = time.monotonic()
            await asyncio.sleep(BEFORE_S)
            t0 = time.monotonic()
            group.limit(level)
            group.add(c.nodes["n3"].pid)
            left = False
            while time.monotonic() < t0 + TO_S:  # bounded: TO_S seconds
                await asyncio.sleep(1.0)
                left = left or "n3" not in await asyncio.to_thread(in_sync, c)
            before = sum(1 for _, e in load.ack_log if t_before < e <= t0) / (t0 - t_before)
            after = sum(1 for _, e in load.ack_log if t0 + FROM_S < e <= t0 + TO_S) / (
                TO_S - FROM_S
            )
            group.release()
            t1 = time.monotonic()
            await asyncio.to_thread(c.wait, lambda: len(in_sync(c)) == 3, "n3 in sync", 60)
            back = time.monotonic() - t1
            lost = await finish(c, load, alice, tasks)
            return {
                "level_percent": level,
                "before_per_s": round(before),
                "after_per_s": round(after),
                "fraction": round(after / before, 3),
                "n3_left_in_sync": float(left),
                "in_sync_after_release_s": round(back, 2),
                "acknowledged": len(load.acked),
                "lost": lost,
            }
        finally:
            group.release()
            c.stop_all()


async def run(args: argparse.Namespace) -> dict[str, object]:
    serve_args = shlex.split(args.serve_args)
    levels = [float(x) for x in args.levels.split(",") if x]
    out: dict[str, object] = {"loadavg_start": os.getloadavg()}
    disk: list[dict[str, float]] = []
    for k in range(args.disk_runs):
        r = await disk_run(args.writers, serve_args)
        note(
            f"disk {k + 1}: full {r['filled_after_s']} s into the load; writes flowing again "
            f"{r['failed_to_writes_ms']} ms after n3's CRITICAL line (stall: "
            f"{r['stall_ms']} ms between acknowledgements); n3 exited "
            f"{r['exited_after_failure_s']} s after the failure; lost {r['lost']}"
        )
        disk.append(r)
    cpu: list[dict[str, float]] = []
    if levels and args.cpu_runs:
        with faults.cpu_group(f"chatd-gray-{os.getpid()}") as group:
            for k in range(args.cpu_runs):
                for level in levels:
                    r = await cpu_run(level, args.writers, serve_args, group)
                    note(
                        f"cpu run {k + 1}, n3 at {level:g} %: {r['after_per_s']}/s vs "
                        f"{r['before_per_s']}/s before = {r['fraction']:.3f}; n3 "
                        f"{'left' if r['n3_left_in_sync'] else 'stayed in'} the in-sync set; "
                        f"lost {r['lost']}"
                    )
                    cpu.append(r)
    out["loadavg_end"] = os.getloadavg()
    if disk:
        out["disk_failed_to_writes_ms"] = [r["failed_to_writes_ms"] for r in disk]
        out["disk_failed_to_writes_ms_median"] = statistics.median(out["disk_failed_to_writes_ms"])  # type: ignore[arg-type]
        out["disk_runs"] = disk
    for level in levels:
        fractions = [r["fraction"] for r in cpu if r["level_percent"] == level]
        if fractions:
            out[f"cpu_{level:g}pct_fraction_median"] = statistics.median(fractions)
            out[f"cpu_{level:g}pct_fractions"] = fractions
    out["cpu_runs"] = cpu
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--disk-runs", type=int, default=3)
    p.add_argument("--cpu-runs", type=int, default=3)
    p.add_argument("--levels", default="2,5,10", help="CPU quota levels, percent of one core")
    p.add_argument("--writers", type=int, default=16)
    p.add_argument("--serve-args", default="", help="extra `chatd serve` flags for every node")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    try:
        result = asyncio.run(run(args))
    except faults.Unavailable as exc:
        sys.exit(f"gray.py: {exc}")
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            if not k.endswith("_runs"):
                print(f"{k}: {v}")


if __name__ == "__main__":
    main()
