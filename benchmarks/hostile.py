"""What an outsider's load does to a cluster, as the hostile-input issue
measured it:

    python benchmarks/hostile.py oversized [--count 12]
    python benchmarks/hostile.py logins [--from one|many] [--known]
    python benchmarks/hostile.py acks
    python benchmarks/hostile.py silent [--count 1000] [--hold 15]

- oversized: COUNT concurrent 60 MiB junk requests to the master's client
  listener (Login) and then to its peer listener (RegisterSlave, without the
  secret) of a 3-node cluster: the answers, the slowest, the master's peak
  RSS, and whether the master changed.
- logins: alice's login time, three times, while 200 concurrent
  wrong-password logins for her name run, on one node at the default hash
  cost. The guesses come relayed over the peer listener with the address a
  slave would name: one address, or 200 (--from many); --known has alice
  log in once first, so that her address is a known device.
- acks: Send p50 on a 3-node cluster, quiet for 10 s and then during 20 s of
  8 concurrent loops of AcknowledgeReceivedMessages with 10,000 made-up ids,
  with the log's and the master's file's growth.
- silent: COUNT (1,000) Connect streams to the master of a 3-node cluster
  that never send a first frame, from one address: how each ended and when
  (OPEN: still open after --hold seconds, when the script ends it), and the
  master's RSS before, at its peak and after.

Real `chatd serve` processes on loopback, in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.tools.localcluster import Cluster, NodeProcess, free_port, rss_mib, wait_serving

MIB = 1024 * 1024
SECRET = "hostile-run"
PASSWORD = "correct horse"


async def _flood(address: str, method: str, count: int) -> list[tuple[str, float]]:
    junk = b"\xa5" * (60 * MIB)
    options = [("grpc.max_send_message_length", -1)]
    async with grpc.aio.insecure_channel(address, options=options) as ch:
        call = ch.unary_unary(method)  # type: ignore[call-arg]

        async def one() -> tuple[str, float]:
            t = time.monotonic()
            try:
                await call(junk, timeout=60)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
            return code, time.monotonic() - t

        return list(await asyncio.gather(*(one() for _ in range(count))))


async def _watched(
    address: str, method: str, count: int, pid: int
) -> tuple[list[tuple[str, float]], int]:
    """_flood's answers, and node `pid`'s peak RSS meanwhile."""
    return await _peak_while(pid, _flood(address, method, count))


async def _peak_while(
    pid: int, work: Coroutine[Any, Any, list[tuple[str, float]]]
) -> tuple[list[tuple[str, float]], int]:
    """What `work` returns, and node `pid`'s peak RSS while it ran."""
    peak = rss_mib(pid)

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mib(pid))
            await asyncio.sleep(0.02)

    w = asyncio.create_task(watch())
    try:
        return await work, peak
    finally:
        w.cancel()


async def _silent_streams(address: str, count: int, hold_s: float) -> list[tuple[str, float]]:
    """COUNT Connect streams that never send a frame, over COUNT // 100
    connections: each one's ending and when (still open after HOLD_S:
    "OPEN")."""
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, count // 100))]
    start = time.monotonic()

    async def one(i: int) -> tuple[str, float]:
        call = chat_pb2_grpc.ClientAccountStub(channels[i % len(channels)]).Connect()
        try:
            async with asyncio.timeout(hold_s):
                await call.read()
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        except TimeoutError:
            code = "OPEN"
        finally:
            call.cancel()
        return code, time.monotonic() - start

    try:
        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for ch in channels:
            await ch.close()


def silent(count: int, hold_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix="chatd-hostile-") as tmp:
        c = Cluster.start(Path(tmp), 3, "--cluster-secret", SECRET)
        try:
            master = c.master()
            assert master is not None
            pid = c.nodes[master].pid
            before = rss_mib(pid)
            got, peak = asyncio.run(
                _peak_while(pid, _silent_streams(c.addresses[master], count, hold_s))
            )
            time.sleep(1)
            for code in sorted({code for code, _ in got}):
                times = [t for k, t in got if k == code]
                print(f"{len(times)} {code}, ended at {min(times):.2f} to {max(times):.2f} s")
            print(f"master RSS {before} MiB before, peak {peak}, {rss_mib(pid)} 1 s after")
        finally:
            c.stop_all()


def oversized(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="chatd-hostile-") as tmp:
        c = Cluster.start(Path(tmp), 3, "--cluster-secret", SECRET)
        try:
            master = c.master()
            assert master is not None
            pid = c.nodes[master].pid
            print(f"master {master}, RSS {rss_mib(pid)} MiB")
            targets = [
                ("client listener, /ClientAccount/Login", c.addresses[master], "/ClientAccount/Login"),
                ("peer listener, /MasterService/RegisterSlave without the secret", c.peers[master],
                 "/MasterService/RegisterSlave"),
            ]  # fmt: skip
            for label, address, method in targets:
                got, peak = asyncio.run(_watched(address, method, count, pid))
                codes = sorted({code for code, _ in got})
                slowest = max(t for _, t in got)
                print(
                    f"{label}: {count} x 60 MiB -> {codes}, slowest answer {slowest:.2f} s, "
                    f"peak RSS {peak} MiB, after {rss_mib(pid)} MiB, master now {c.master()}"
                )
        finally:
            c.stop_all()


async def _logins(spread: str, known: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="chatd-hostile-") as tmp:
        port, peer = free_port(), free_port()
        args = ["serve", "--listen", f"127.0.0.1:{port}", "--peer-listen", f"127.0.0.1:{peer}"]
        args += ["--data-dir", f"{tmp}/n1", "--cluster-secret", SECRET]
        node = NodeProcess(args, Path(tmp) / "n1.log").start()
        try:
            wait_serving(f"127.0.0.1:{port}")
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch,
                grpc.aio.insecure_channel(f"127.0.0.1:{peer}") as pch,
            ):
                stub = chat_pb2_grpc.ClientAccountStub(ch)
                relay = chat_pb2_grpc.ClientAccountStub(pch)
                alice = chat_pb2.CreateAccountRequest(username="alice", password=PASSWORD)
                await stub.CreateAccount(alice)
                mine = chat_pb2.LoginRequest(username="alice", password=PASSWORD)
                if known:
                    assert (await stub.Login(mine)).error_code == 0
                codes: dict[str, int] = {}

                async def guess(i: int) -> None:
                    addr = "198.51.100.7" if spread == "one" else f"10.1.{i // 250}.{i % 250}"
                    meta = (("x-chatd-secret", SECRET), ("chatd-client", addr))
                    wrong = chat_pb2.LoginRequest(username="alice", password=f"wrong{i}")
                    try:
                        r = await relay.Login(wrong, metadata=meta, timeout=60)
                        key = f"error_code {r.error_code}"
                    except grpc.aio.AioRpcError as exc:
                        key = exc.code().name
                    codes[key] = codes.get(key, 0) + 1

                times = []
                for rnd in range(3):
                    flood = asyncio.gather(*(guess(rnd * 1000 + i) for i in range(200)))
                    await asyncio.sleep(0.05)
                    t = time.monotonic()
                    try:
                        r = await stub.Login(mine, timeout=60)
                        outcome = "ok" if r.error_code == 0 else f"error_code {r.error_code}"
                    except grpc.aio.AioRpcError as exc:
                        outcome = exc.code().name
                    times.append(f"{time.monotonic() - t:.3f} s {outcome}")
                    await flood
                    await asyncio.sleep(13)  # the per-address budgets refill partly
                print(f"guesses from {spread} address(es), alice's device known: {known}")
                print(f"  alice's logins: {', '.join(times)}; the guesses: {codes}")
        finally:
            node.kill()


def _db_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.glob("chatd.sqlite3*"))


async def _acks() -> None:
    with tempfile.TemporaryDirectory(prefix="chatd-hostile-") as tmp:
        c = Cluster.start(Path(tmp), 3)
        try:
            m = c.master()
            assert m is not None
            async with grpc.aio.insecure_channel(c.addresses[m]) as ch:
                stub = chat_pb2_grpc.ClientAccountStub(ch)

                async def session(name: str) -> str:
                    await stub.CreateAccount(
                        chat_pb2.CreateAccountRequest(username=name, password=PASSWORD)
                    )
                    r = await stub.Login(chat_pb2.LoginRequest(username=name, password=PASSWORD))
                    return str(r.session_id)

                async def sends(sid: str, seconds: float) -> list[float]:
                    lat: list[float] = []
                    end = time.monotonic() + seconds
                    while time.monotonic() < end:
                        t = time.perf_counter()
                        req = chat_pb2.SendRequest(session_id=sid, to="bob", message=f"m{len(lat)}")
                        assert (await stub.Send(req)).error_code == 0
                        lat.append((time.perf_counter() - t) * 1000)
                    return lat

                a, _, eve = await session("alice"), await session("bob"), await session("eve")
                quiet = await sends(a, 10)
                status = c.status(m)
                assert status is not None
                index0, size0 = int(status["applied_index"]), _db_bytes(Path(tmp) / m)  # type: ignore[call-overload]
                stop = time.monotonic() + 20
                calls = [0]

                async def flood() -> None:
                    ids = list(range(10_000_000, 10_010_000))
                    req = chat_pb2.AcknowledgeReceivedMessagesRequest(
                        session_id=eve, message_ids=ids
                    )
                    while time.monotonic() < stop:
                        assert (await stub.AcknowledgeReceivedMessages(req)).error_code == 0
                        calls[0] += 1

                floods = [asyncio.create_task(flood()) for _ in range(8)]
                loud = await sends(a, 20)
                await asyncio.gather(*floods)
                status = c.status(m)
                assert status is not None
                index1 = int(status["applied_index"])  # type: ignore[call-overload]
                print(
                    f"Send p50 quiet {statistics.median(quiet):.1f} ms ({len(quiet)} sends); "
                    f"during the flood {statistics.median(loud):.1f} ms ({len(loud)} sends); "
                    f"{calls[0]} acknowledge calls; the log grew {index1 - index0} entries for "
                    f"{len(loud)} sends; the master's file {size0 / 1e6:.1f} -> "
                    f"{_db_bytes(Path(tmp) / m) / 1e6:.1f} MB"
                )
        finally:
            c.stop_all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("oversized").add_argument("--count", type=int, default=12)
    lg = sub.add_parser("logins")
    lg.add_argument("--from", dest="spread", choices=("one", "many"), default="one")
    lg.add_argument("--known", action="store_true")
    sub.add_parser("acks")
    sl = sub.add_parser("silent")
    sl.add_argument("--count", type=int, default=1000)
    sl.add_argument("--hold", type=float, default=15.0)
    args = ap.parse_args()
    if args.what == "oversized":
        oversized(args.count)
    elif args.what == "silent":
        silent(args.count, args.hold)
    elif args.what == "logins":
        asyncio.run(_logins(args.spread, args.known))
    else:
        asyncio.run(_acks())


if __name__ == "__main__":
    main()
