"""What typing notices cost: a room's sends with and without a typing flood.

    python benchmarks/typing.py [--members 50] [--senders 4] [--flooders 4]
                                [--duration 6] [--rounds 3]
    python benchmarks/typing.py --micro

`--micro` times the node's own steps instead, in this process: a stream's
gate on a frame it drops, and the hub handing one notice to the event
queues of a room of 10, 100 and 1,000 members (one stream each).

Each round starts a fresh 3-node cluster (default flags, the Send and
sign-up limits off) and a room of MEMBERS members (the library's
`ChatClient`, spread over the nodes, each reading `inbox()` and `events()`).
Phase "quiet": SENDERS members post to the room as fast as their sends are
answered for DURATION seconds, while one member tells 8 others in turn that
it is typing, every 0.25 s (the typing latency: its frame written, the
notice at the peer). Phase "flood": the same posts, while FLOODERS members
write typing frames into the room as fast as their Connect streams (raw
gRPC, one per flooder, at a node in turn, each from a process of its own,
so that the flood does not slow this process's senders) take them. Prints,
for each phase, the messages posted a second, the delivery latency
p50/p99 and the CPU the three nodes used (seconds a second, from
/proc/PID/stat), and for the flood the typing frames written (those gRPC
buffered included) and the notices the members got a second; with the
medians of the rounds. Phase "burn", the control: FLOODERS processes that
only spin for DURATION seconds, writing nothing; on a machine with fewer
cores than processes the flooders' own CPU slows everything, and the
flood costs the cluster what it costs beyond that.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.rooms import crowd, pct
from chatd.client import ChatClient, Typing
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.tools.localcluster import Cluster


def cpu_s(pids: list[int]) -> float:
    """The CPU seconds (user and system) the processes used so far."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def flood_alone(address: str, session: str, seconds: float) -> None:
    """One flooder (its own process): typing frames into the room, as fast
    as the stream takes them; prints how many were written."""
    stop = time.perf_counter() + seconds
    written = 0
    async with grpc.aio.insecure_channel(address) as channel:
        call: Any = chat_pb2_grpc.ClientAccountStub(channel).Connect()
        opening = chat_pb2.OpenFrame(session_id=session, sends_only=True)
        await call.write(chat_pb2.ClientFrame(open=opening))
        frame = chat_pb2.ClientFrame(typing=chat_pb2.TypingFrame(room="crowd"))
        while time.perf_counter() < stop:
            await call.write(frame)
            written += 1
        call.cancel()
    print(written)


def micro() -> None:
    from chatd.server.chat.events import TypingNotice
    from chatd.server.chat.hub import Hub
    from chatd.server.chat.presence import TypingGate

    gate, n = TypingGate(), 200_000
    start = time.perf_counter()
    for _ in range(n):
        gate.allow("", "crowd", 5.0)
    print(f"a stream's gate, a frame dropped: {(time.perf_counter() - start) / n * 1e6:.2f} us")

    async def fan_out() -> None:
        for members in (10, 100, 1000):
            hub = Hub()
            names = [f"m{i}" for i in range(members)]
            queues = [hub.open_events(name, typing=True, receipts=True) for name in names]
            took = 0.0
            for i in range(200):
                notice = TypingNotice(f"u{i}", "", "crowd", 6000)
                start = time.perf_counter()
                hub.typing(notice, names, float(i))
                took += time.perf_counter() - start
                for q in queues:
                    q.items.clear()
            each = took / 200
            print(
                f"the hub, one notice to a room of {members}: {each * 1e6:.1f} us "
                f"({each / members * 1e6:.2f} us a stream)"
            )

    asyncio.run(fan_out())


async def one_round(
    addresses: list[str],
    pids: list[int],
    members: int,
    senders: int,
    flooders: int,
    duration: float,
) -> dict[str, float]:
    clients = await crowd(addresses, members)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    typed_at: dict[str, float] = {}  # peer -> when the probe last wrote to it
    typing_latencies: list[float] = []
    notices = [0]

    async def receive(c: ChatClient) -> None:
        async for m in c.inbox():
            t0 = sent_at.get(m.body)
            if t0 is not None:
                latencies.append((time.perf_counter() - t0) * 1000)

    async def events(i: int, c: ChatClient) -> None:
        async for e in c.events():
            if isinstance(e, Typing):
                notices[0] += 1
                t0 = typed_at.pop(f"m{i}", None)
                if e.sender == "m1" and e.peer and t0 is not None:
                    typing_latencies.append((time.perf_counter() - t0) * 1000)

    tasks = [asyncio.create_task(receive(c)) for c in clients]
    tasks += [asyncio.create_task(events(i, c)) for i, c in enumerate(clients)]
    await asyncio.sleep(1.5)  # every stream open, with events

    async def post(k: int, stop: float, posted: list[int]) -> None:
        n = 0
        while time.perf_counter() < stop:
            body = f"{k}-{n}-{stop}"
            sent_at[body] = time.perf_counter()
            await clients[k].send("", body, room="crowd")
            posted[0] += 1
            n += 1

    async def probe(stop: float) -> None:
        peers = [f"m{i}" for i in range(2, 10)]
        n = 0
        while time.perf_counter() < stop:
            peer = peers[n % len(peers)]
            typed_at[peer] = time.perf_counter()
            await clients[1].typing(peer=peer)
            clients[1]._typed.clear()  # (the library's own throttle: not measured here)
            n += 1
            await asyncio.sleep(0.25)

    async def flood(k: int, seconds: float, written: list[int]) -> None:
        args = ("--flood", addresses[k % len(addresses)], str(clients[-1 - k].session_id))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, *args, str(seconds), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        written[0] += int(out.decode().split()[-1])

    async def burn(seconds: float) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--burn", str(seconds)
        )
        await proc.wait()

    out: dict[str, float] = {}
    for phase in ("quiet", "burn", "flood"):
        latencies.clear()
        posted, written = [0], [0]
        notices[0] = 0
        stop = time.perf_counter() + duration
        start, cpu = time.perf_counter(), cpu_s(pids)
        work = [post(k, stop, posted) for k in range(senders)]
        if phase == "quiet":
            work.append(probe(stop))
        elif phase == "burn":
            work += [burn(duration) for _ in range(flooders)]
        else:
            work += [flood(k, duration, written) for k in range(flooders)]
        await asyncio.gather(*work)
        seconds = time.perf_counter() - start
        out[f"{phase}_node_cpu"] = (cpu_s(pids) - cpu) / seconds
        await asyncio.sleep(1.0)  # the last deliveries
        out[f"{phase}_posted_per_s"] = posted[0] / seconds
        out[f"{phase}_p50"] = pct(latencies, 0.5)
        out[f"{phase}_p99"] = pct(latencies, 0.99)
        if phase == "flood":
            out["typing_written_per_s"] = written[0] / seconds
            out["notices_per_s"] = notices[0] / seconds
    out["typing_p50"] = pct(typing_latencies, 0.5)
    out["typing_p99"] = pct(typing_latencies, 0.99)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in clients:
        await c.close()
    return out


def show(v: dict[str, float]) -> str:
    return (
        f"quiet: {v['quiet_posted_per_s']:.0f} messages/s, delivery p50 {v['quiet_p50']:.1f} ms "
        f"p99 {v['quiet_p99']:.1f} ms, nodes' CPU {v['quiet_node_cpu']:.2f} s/s, typing p50 "
        f"{v['typing_p50']:.1f} ms p99 {v['typing_p99']:.1f} ms; flood: "
        f"{v['typing_written_per_s']:.0f} typing frames/s written, {v['notices_per_s']:.0f} "
        f"notices/s told, {v['flood_posted_per_s']:.0f} messages/s, delivery p50 "
        f"{v['flood_p50']:.1f} ms p99 {v['flood_p99']:.1f} ms, nodes' CPU "
        f"{v['flood_node_cpu']:.2f} s/s; burn (control): {v['burn_posted_per_s']:.0f} "
        f"messages/s, delivery p50 {v['burn_p50']:.1f} ms p99 {v['burn_p99']:.1f} ms, nodes' "
        f"CPU {v['burn_node_cpu']:.2f} s/s"
    )


def main() -> None:
    if sys.argv[1:2] == ["--micro"]:
        micro()
        return
    if sys.argv[1:2] == ["--burn"]:
        import grpc as _  # noqa: F401  (started as a flooder is)

        stop = time.perf_counter() + float(sys.argv[2])
        while time.perf_counter() < stop:
            pass
        return
    if sys.argv[1:2] == ["--flood"]:
        asyncio.run(flood_alone(sys.argv[2], sys.argv[3], float(sys.argv[4])))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--flooders", type=int, default=4)
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    got: list[dict[str, float]] = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="chatd-typing-") as tmp:
            c = Cluster.start(Path(tmp), 3, "--send-rate", "0", "--account-rate", "0")
            try:
                v = asyncio.run(
                    one_round(
                        list(c.addresses.values()),
                        [node.pid for node in c.nodes.values()],
                        args.members,
                        args.senders,
                        args.flooders,
                        args.duration,
                    )
                )
            finally:
                c.stop_all()
        got.append(v)
        print(f"round {r + 1}: {show(v)}", flush=True)
    med = {k: statistics.median(v[k] for v in got) for k in got[0]}
    print(f"median ({args.members} members, {args.senders} senders): {show(med)}")


if __name__ == "__main__":
    main()
