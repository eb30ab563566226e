"""Send throughput over unary calls and over Connect streams, beside the
no-op server in each transport, interleaved, ROUNDS times:

    python benchmarks/transport.py [--rounds 3] [--duration 8] [--sessions 32]

Each round: the no-op server (`chatd bench --noop-server`) with unary Sends
and with SESSIONS Connect streams, then a fresh 3-node cluster (default
flags, the Send and sign-up limits off) benched with `chatd bench --users
SESSIONS --concurrency 32` against its master, unary (`--no-streams`) and
stream, and stream with the sessions spread over the three nodes (`--server`
naming all three: a third of the streams at each). Prints each figure, its
delivery p99, and the medians' ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.tools.localcluster import Cluster, free_port

PY = sys.executable


def bench(server: str, duration: float, sessions: int, *extra: str) -> dict[str, object]:
    args = [PY, "-m", "chatd", "bench", "--server", server, "--json", "--concurrency", "32"]
    args += ["--users", str(sessions), "--duration", str(duration), *extra]
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 120, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--sessions", type=int, default=32)
    args = ap.parse_args()
    rates: dict[str, list[float]] = {}
    p99: dict[str, list[float]] = {}
    for r in range(args.rounds):
        port = free_port()
        noop = subprocess.Popen([PY, "-m", "chatd", "bench", "--noop-server", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            assert noop.stdout is not None
            noop.stdout.readline()
            server = f"127.0.0.1:{port}"
            got = {
                "noop unary": bench(server, args.duration, args.sessions),
                "noop stream": bench(server, args.duration, args.sessions, "--transport", "stream"),
            }
        finally:
            noop.kill()
            noop.wait()
        with tempfile.TemporaryDirectory(prefix="chatd-transport-") as tmp:
            c = Cluster.start(Path(tmp), 3)
            try:
                m = c.master()
                assert m is not None
                at = c.addresses[m]
                got["3 nodes unary"] = bench(at, args.duration, args.sessions, "--no-streams")
                got["3 nodes stream"] = bench(at, args.duration, args.sessions, "--transport",
                                              "stream")  # fmt: skip
                # the sessions' streams spread over the three nodes (the
                # slaves deliver from their replicas, carry sends to the master)
                spread = ",".join([at, *(a for n, a in c.addresses.items() if n != m)])
                got["3 nodes stream spread"] = bench(spread, args.duration, args.sessions,
                                                     "--transport", "stream")  # fmt: skip
            finally:
                c.stop_all()
        for k, v in got.items():
            rates.setdefault(k, []).append(float(v["sends_per_s"]))  # type: ignore[arg-type]
            p99.setdefault(k, []).append(float(v["delivery_ms_p99"]))  # type: ignore[arg-type]
        print(f"round {r + 1}: " + ", ".join(
            f"{k} {v['sends_per_s']}/s (delivery p99 {v['delivery_ms_p99']} ms)"
            for k, v in got.items()), flush=True)  # fmt: skip
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("medians: " + ", ".join(f"{k} {v:.0f}/s" for k, v in med.items()))
    print("delivery p99 medians (at full load): " + ", ".join(
        f"{k} {statistics.median(v):.1f} ms" for k, v in p99.items() if "noop" not in k))  # fmt: skip
    print(f"3 nodes stream / noop unary: {med['3 nodes stream'] / med['noop unary']:.2f}")
    print(f"3 nodes stream / noop stream: {med['3 nodes stream'] / med['noop stream']:.2f}")
    print(f"3 nodes unary / noop unary: {med['3 nodes unary'] / med['noop unary']:.2f}")
    print(f"3 nodes stream spread / noop unary: "
          f"{med['3 nodes stream spread'] / med['noop unary']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
