"""The worker process of the distributed-mode benchmark: a no-op job handler that appends,
per job, the wall-clock time its body started and how long after the event's
``payload.t0`` that was, to the file ``BENCH_OUT`` names.

Run as ``python bench/nats_app.py`` (the API and NATS from ``FLATFILE_*`` and
``FLATJOBS_NATS_URL``): what ``flatjobs run --nats ... --role worker`` runs, without its
first call to the events feed (the benchmark's API stand-in answers jobs calls only).
"""

from __future__ import annotations

import asyncio
import os
import time

from flatjobs import FlatfileClient, FlatfileEvent, Jobs, Listener, Tick
from flatjobs.nats import connect, run_distributed

jobs = Jobs()
OUT = os.environ.get("BENCH_OUT", os.devnull)


@jobs.handle("workbook:export")
async def export(event: FlatfileEvent, tick: Tick) -> None:
    now = time.time()
    t0 = float(event.payload.get("t0", now))
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{now:.6f} {now - t0:.6f}\n".encode())
    finally:
        os.close(fd)


async def main() -> None:
    async with FlatfileClient() as client, await connect(os.environ["FLATJOBS_NATS_URL"]) as broker:
        await run_distributed(Listener(client=client).use(jobs), broker, role="worker")


if __name__ == "__main__":
    asyncio.run(main())
