"""Where the Send path's CPU goes: a cluster of real nodes under `chatd bench`,
with the CPU time of every process and thread over a window of the run, per
second and per Send, and optionally a py-spy profile of the master's event
loop thread.

    python benchmarks/profile_send.py [--nodes 3] [--users 64] [--concurrency 32]
                                      [--window 1] [--rate R] [--seconds 6]
                                      [--noop] [--no-streams] [--py-spy [--py-spy-all]]
                                      [--transport unary|stream|web]
                                      [--native] [--raw FILE] [--node-code DIR]

--users, --concurrency, --window (sends each worker keeps in flight: with
stream or web and W > 1, worker i keeps W in flight on user i's stream, so
`--users 32 --window 16` is 32 streams with 16 sends in flight each) and
--rate are chatd bench's; --seconds is the window measured. --noop
measures `chatd bench --noop-server` instead of a cluster. With
--transport web every node also serves the web client (--web-listen) and
the bench's streams are WebSockets to the master's web origin. --py-spy
(pip install py-spy) samples the master for the same window and prints the
functions that hold its main thread, by inclusive and by own time (with
--py-spy-all: every node's and the bench's); --native adds native frames
(py-spy then stops the process at each sample, which slows it several
times over), --raw keeps the samples. --node-code DIR runs the nodes from
another checkout (an earlier commit) under this checkout's bench: before
and after, from the same load.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import noop_server  # noqa: E402
from benchmarks.web import start_cluster  # noqa: E402
from chatd.tools.localcluster import Cluster  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def threads(pid: int) -> dict[str, float]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue
        out[f"{tid} {stat[stat.index('(') + 1 : stat.rindex(')')]}"] = cpu_seconds(stat)
    return out


def main_thread_profile(raw: Path, name: str = "master") -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "MainThread" not in frames[0]:
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames[1:]):
            inclusive[frame] += n
    print(f"{name} main thread: {total} samples")
    print("  inclusive:")
    for frame, n in inclusive.most_common(25):
        print(f"    {100 * n / total:5.1f}%  {frame[:110]}")
    print("  own time:")
    for frame, n in own.most_common(12):
        print(f"    {100 * n / total:5.1f}%  {frame[:110]}")


def run(args: argparse.Namespace, base: Path) -> None:
    web: dict[str, str] = {}
    if args.node_code:  # the nodes run that checkout's code, the bench this one's
        os.environ["PYTHONPATH"] = str(Path(args.node_code).resolve())
        os.chdir(base)  # (`python -m chatd` would take the chatd of the directory it runs in)
    if args.noop:
        cluster = None
    elif args.transport == "web":
        cluster, web = start_cluster(base, args.nodes)
    else:
        cluster = Cluster.start(base, args.nodes)
    noop = None
    try:
        if cluster is None:
            noop, address = noop_server()
            pids = {"noop": noop.pid}
        else:
            master = cluster.master() or "n1"
            address = cluster.addresses[master]
            args.web = web.get(master, "")
            pids = {
                f"{n}{' (master)' if n == master else ''}": p.pid for n, p in cluster.nodes.items()
            }
        measure(args, base, address, pids)
    finally:
        if noop is not None:
            noop.kill()
            noop.wait()
        if cluster is not None:
            cluster.stop_all()


def measure(args: argparse.Namespace, base: Path, address: str, pids: dict[str, int]) -> None:
    """Load `address` with `chatd bench`; the CPU of `pids` (and the bench's) over the window."""
    bench = start_bench(args, address)
    pids["bench"] = bench.pid
    time.sleep(4)  # users made, streams open, sending
    spies = {
        n: start_py_spy(args, p, base / f"{n.split()[0]}.txt")
        for n, p in pids.items()
        if args.py_spy and (args.py_spy_all or n == "noop" or "master" in n)
    }
    t0, before = time.monotonic(), {n: threads(p) for n, p in pids.items()}
    time.sleep(args.seconds)
    t1, after = time.monotonic(), {n: threads(p) for n, p in pids.items()}
    result = json.loads(bench.communicate(timeout=120)[0])
    report(result, before, after, t1 - t0)
    for name, spy in spies.items():
        spy.wait(timeout=60)
        raw = base / f"{name.split()[0]}.txt"
        main_thread_profile(raw, name)
        if args.raw:
            shutil.copy(raw, f"{args.raw}.{name.split()[0]}" if len(spies) > 1 else args.raw)


def start_bench(args: argparse.Namespace, address: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "chatd", "bench", "--json", "--server", address,
            "--users", str(args.users), "--concurrency", str(args.concurrency),
            "--window", str(args.window),
            "--rate", str(args.rate), "--duration", str(args.seconds + 6),
            *(["--no-streams"] if args.no_streams else []),
            "--transport", args.transport,
            *(["--web", args.web] if args.transport == "web" else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def start_py_spy(args: argparse.Namespace, pid: int, raw: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "py-spy", "record", "--pid", str(pid),
            "--duration", str(round(args.seconds)), "--rate", "200", "--format", "raw",
            "--threads", "--output", str(raw),
            *(["--native"] if args.native else ["--nonblocking"]),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def report(
    result: dict[str, float],
    before: dict[str, dict[str, float]],
    after: dict[str, dict[str, float]],
    seconds: float,
) -> None:
    """The bench's figures, then each process's CPU share and its busy threads."""
    rate = result["sends_per_s"]
    print(
        f"{rate:.0f} sends/s, send p50 {result['send_ms_p50']} ms p99 {result['send_ms_p99']} ms, "
        f"delivery p50 {result['delivery_ms_p50']} ms p99 {result['delivery_ms_p99']} ms, "
        f"window {result.get('window', 1)} (at most {result.get('max_in_flight')} in flight "
        "on a stream)"
    )
    print(f"CPU over {seconds:.1f} s of the run (100% = one core):")
    total = 0.0
    for name in after:
        used = {t: after[name][t] - before[name].get(t, 0.0) for t in after[name]}
        share = sum(used.values()) / seconds
        total += share
        print(f"  {name}: {100 * share:.0f}%, {1e6 * share / rate:.0f} us a Send")
        for t, s in sorted(used.items(), key=lambda kv: -kv[1]):
            if s / seconds >= 0.02:
                print(f"      thread {t}: {100 * s / seconds:.0f}%")
    print(f"  all: {100 * total:.0f}% of {os.cpu_count()} cores")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--users", type=int, default=64, help="passed to chatd bench")
    p.add_argument("--concurrency", type=int, default=32, help="passed to chatd bench")
    p.add_argument("--window", type=int, default=1, help="passed to chatd bench: sends in "
                   "flight per worker")  # fmt: skip
    p.add_argument("--rate", type=float, default=0.0, help="passed to chatd bench")
    p.add_argument("--seconds", type=float, default=6.0, help="seconds measured")
    p.add_argument("--noop", action="store_true")
    p.add_argument("--no-streams", action="store_true", help="passed to chatd bench")
    p.add_argument("--transport", choices=("unary", "stream", "web"), default="unary",
                   help="passed to chatd bench")  # fmt: skip
    p.add_argument("--node-code", metavar="DIR",
                   help="run the nodes from the checkout at DIR (the bench from this one): "
                   "the same load against an earlier commit")  # fmt: skip
    p.add_argument("--py-spy", action="store_true")
    p.add_argument(
        "--py-spy-all",
        action="store_true",
        help="with --py-spy: every node and the bench, not the master alone",
    )
    p.add_argument("--raw", help="keep py-spy's raw samples in this file (FILE.NAME for each "
                   "process with --py-spy-all)")  # fmt: skip
    p.add_argument("--native", action="store_true", help="py-spy also samples native frames")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatd-profile-") as base:
        run(args, Path(base))


if __name__ == "__main__":
    main()
