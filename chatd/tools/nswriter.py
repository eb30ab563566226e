"""A writer for the partition runs (chatd/tools/partitions.py), run inside a node's network
namespace (`ip netns exec NS python -m chatd.tools.nswriter ...`): it sends to its
own node only, each Send with its own request id, retrying one until it is
acknowledged, until told to stop (SIGTERM), then writes what was
acknowledged, with when (monotonic seconds: one clock for every process on
the machine), as JSON to OUT.

    python -m chatd.tools.nswriter ADDRESS SESSION PREFIX OUT
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import traceback
from pathlib import Path

from chatd.tools.localcluster import Load


async def main(address: str, session: str, prefix: str, out: str) -> None:
    # a short call timeout: a stalled Send is tried again soon, so the gaps
    # between acknowledgements show the cluster, not the client's patience
    load = Load([address], call_timeout=0.25)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, load.stop.set)
    task = asyncio.create_task(load.writer(session, "r", prefix))
    await load.stop.wait()
    try:
        await asyncio.wait_for(task, 3)  # the Send in flight, if it can end
    except TimeoutError:
        task.cancel()
    except Exception:  # the writer failed: say how, and write what was acknowledged
        traceback.print_exc()
        task.cancel()
    pairs = zip(load.acked.items(), load.ack_log, strict=True)  # both in the order acknowledged
    acked = {body: [mid, end] for (body, mid), (_, end) in pairs}
    await asyncio.to_thread(Path(out).write_text, json.dumps(acked))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
