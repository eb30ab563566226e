"""The web client's WebSocket beside the gRPC Connect stream, on one
cluster, interleaved, ROUNDS times:

    python benchmarks/web.py [--rounds 3] [--duration 10] [--sessions 32]

One 3-node cluster (default flags, the Send and sign-up limits off, each
node also serving the web client on --web-listen). Each round runs `chatd
bench --users SESSIONS --concurrency 32` with the sessions spread over the
three nodes (`--server` naming all three, master first; `--web` naming
their web origins in the same order): as fast as it goes with `--transport
stream`, then `--transport web` (the order swapped every other round); then
both again open loop at half the stream rate just measured (`--rate`), for
their delivery latency. Prints each run, the load average, and the medians
with the ratio web/stream (the target: sends/s web/stream >= 0.8, delivery
p99 web/stream <= 1/0.8 = 1.25).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.tools.localcluster import Cluster, free_port

PY = sys.executable


def bench(server: str, web: str, duration: float, sessions: int, *extra: str) -> dict[str, float]:
    args = [PY, "-m", "chatd", "bench", "--server", server, "--web", web, "--json",
            "--concurrency", "32", "--users", str(sessions), "--duration", str(duration),
            *extra]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 120, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def start_cluster(base: Path, size: int = 3) -> tuple[Cluster, dict[str, str]]:
    """A cluster whose every node serves the web client too; its web origins."""
    c = Cluster(base)
    web: dict[str, str] = {}
    try:
        for i in range(1, size + 1):
            name, listen = f"n{i}", f"127.0.0.1:{free_port()}"
            c.add(name, "--web-listen", listen, join=c.peers["n1"] if i > 1 else None)
            web[name] = f"http://{listen}"
            if i == 1:
                c.wait_role("n1", "master")
        c.wait(lambda: c.in_sync_count() == size, what=f"{size} nodes in sync")
    except BaseException:
        c.stop_all()
        raise
    return c, web


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--sessions", type=int, default=32)
    args = ap.parse_args()
    rate: dict[str, list[float]] = {"stream": [], "web": []}
    p99: dict[str, list[float]] = {"stream": [], "web": []}
    p50: dict[str, list[float]] = {"stream": [], "web": []}
    print(f"start: {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="chatd-web-") as tmp:
        c, web = start_cluster(Path(tmp))
        try:
            m = c.master()
            assert m is not None
            order = [m, *(n for n in c.addresses if n != m)]
            server = ",".join(c.addresses[n] for n in order)
            origins = ",".join(web[n] for n in order)
            for r in range(args.rounds):
                kinds = ["stream", "web"] if r % 2 == 0 else ["web", "stream"]
                full: dict[str, dict[str, float]] = {}
                for k in kinds:
                    full[k] = bench(server, origins, args.duration, args.sessions,
                                    "--transport", k)  # fmt: skip
                    rate[k].append(full[k]["sends_per_s"])
                half = round(full["stream"]["sends_per_s"] / 2)
                for k in kinds:
                    v = bench(server, origins, args.duration, args.sessions,
                              "--transport", k, "--rate", str(half))  # fmt: skip
                    p50[k].append(v["delivery_ms_p50"])
                    p99[k].append(v["delivery_ms_p99"])
                    print(f"round {r + 1} {k}: {full[k]['sends_per_s']}/s "
                          f"(errors {full[k]['errors']}); at {half}/s: {v['sends_per_s']}/s, "
                          f"{v['sends']} sent, {v['delivered']} delivered, errors {v['errors']}, "
                          f"delivery p50 {v['delivery_ms_p50']} ms, "
                          f"p99 {v['delivery_ms_p99']} ms", flush=True)  # fmt: skip
                print(f"after round {r + 1}: {load()}", flush=True)
        finally:
            c.stop_all()
    med = {k: statistics.median(v) for k, v in rate.items()}
    mp99 = {k: statistics.median(v) for k, v in p99.items()}
    mp50 = {k: statistics.median(v) for k, v in p50.items()}
    print(f"\nmedians of {args.rounds} rounds, {args.sessions} sessions over 3 nodes:\n")
    print("| | Connect stream (gRPC) | WebSocket | web/stream | target |")
    print("|---|---|---|---|---|")
    print(f"| sends/s, as fast as it goes | {med['stream']:.0f} | {med['web']:.0f} | "
          f"{med['web'] / med['stream']:.2f} | >= 0.8 |")  # fmt: skip
    print(f"| delivery p50 at half load, ms | {mp50['stream']:.1f} | {mp50['web']:.1f} | "
          f"{mp50['web'] / mp50['stream']:.2f} | |")  # fmt: skip
    print(f"| delivery p99 at half load, ms | {mp99['stream']:.1f} | {mp99['web']:.1f} | "
          f"{mp99['web'] / mp99['stream']:.2f} | <= 1.25 |")  # fmt: skip
    print(f"\nend: {load()}")


if __name__ == "__main__":
    main()
