"""Room fan-out: messages into a room whose members are all connected.

    python benchmarks/rooms.py [--members 100] [--senders 4] [--duration 8] [--rounds 3]

Each round starts a fresh 3-node cluster (default flags, the Send and
sign-up limits off), creates a room with MEMBERS members (the library's
`ChatClient`, one Connect stream each, spread over the three nodes as the
library places them), and has SENDERS of them post to the room, each as
fast as its sends are answered, for DURATION seconds. Prints the messages
posted a second, the deliveries a second (every member gets every
message), and the delivery latency (post to arrival at a member) p50/p99,
with the medians of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.client import ChatClient
from chatd.tools.localcluster import Cluster

PASSWORD = "bench-password"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


async def crowd(addresses: list[str], members: int) -> list[ChatClient]:
    """Clients of the users m0 .. m{members-1}, logged in, each a member of
    the room "crowd" (m0 made it)."""
    clients = [ChatClient(addresses) for _ in range(members)]
    hashing = asyncio.Semaphore(4)  # a node hashes at most 4 at once for one address

    async def sign_up(i: int, c: ChatClient) -> None:
        async with hashing:
            await c.create_account(f"m{i}", PASSWORD)
            await c.login(f"m{i}", PASSWORD)

    await asyncio.gather(*(sign_up(i, c) for i, c in enumerate(clients)))
    owner = clients[0]
    await owner.create_room("crowd")
    for i, c in enumerate(clients[1:], start=1):
        await owner.invite("crowd", f"m{i}")
        await c.join_room("crowd")
    return clients


async def one_round(
    addresses: list[str], members: int, senders: int, duration: float
) -> dict[str, float]:
    clients = await crowd(addresses, members)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    delivered = [0]

    async def receive(c: ChatClient) -> None:
        async for m in c.subscribe():
            t0 = sent_at.get(m.body)
            if t0 is not None:
                latencies.append((time.perf_counter() - t0) * 1000)
                delivered[0] += 1

    readers = [asyncio.create_task(receive(c)) for c in clients]
    await asyncio.sleep(1.0)  # every stream open
    posted = [0]
    stop = time.perf_counter() + duration

    async def post(k: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            body = f"{k}-{n}"
            sent_at[body] = time.perf_counter()
            await clients[k].send("", body, room="crowd")
            posted[0] += 1
            n += 1

    start = time.perf_counter()
    await asyncio.gather(*(post(k) for k in range(senders)))
    seconds = time.perf_counter() - start
    for _ in range(100):  # the last deliveries (bounded)
        if delivered[0] >= posted[0] * members:
            break
        await asyncio.sleep(0.05)
    for t in readers:
        t.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for c in clients:
        await c.close()
    return {
        "posted_per_s": posted[0] / seconds,
        "deliveries_per_s": delivered[0] / seconds,
        "delivered_share": delivered[0] / max(1, posted[0] * members),
        "p50": pct(latencies, 0.5),
        "p99": pct(latencies, 0.99),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=100)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    got: list[dict[str, float]] = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="chatd-rooms-") as tmp:
            c = Cluster.start(Path(tmp), 3, "--send-rate", "0", "--account-rate", "0")
            try:
                v = asyncio.run(
                    one_round(list(c.addresses.values()), args.members, args.senders, args.duration)
                )
            finally:
                c.stop_all()
        got.append(v)
        print(f"round {r + 1}: {v['posted_per_s']:.0f} messages/s posted, "
              f"{v['deliveries_per_s']:.0f} deliveries/s, {v['delivered_share']:.4f} delivered, "
              f"delivery p50 {v['p50']:.1f} ms, p99 {v['p99']:.1f} ms", flush=True)  # fmt: skip
    med = {k: statistics.median(v[k] for v in got) for k in got[0]}
    print(f"median: {med['posted_per_s']:.0f} messages/s into a {args.members}-member room, "
          f"{med['deliveries_per_s']:.0f} deliveries/s, delivery p50 {med['p50']:.1f} ms, "
          f"p99 {med['p99']:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
