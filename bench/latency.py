"""Latency from an event appearing in the emulator to its job's ack, pushed and polled.

The emulator runs here; the listener runs as production does, ``flatjobs run`` in its own
process with default settings, its events pushed (the default) or polled
(``--source poll``), in the same run. Jobs are triggered at a steady offered load; latency
is the emulator's time of the first ack minus the ``job:ready`` event's time.

    python bench/latency.py [--quick]
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import sys
from pathlib import Path

from _common import machine, table

from flatjobs.emulator import Emulator
from flatjobs.models import from_wire

HERE = Path(__file__).parent


def _when(event: dict[str, object]) -> dt.datetime:
    return from_wire(event["createdAt"], dt.datetime)


async def measure(rate: float, seconds: float, source: str) -> list[float]:
    async with Emulator(record=False) as emu:
        # The listener's process imports the flatjobs this benchmark measures.
        path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, **emu.env(), "PYTHONPATH": path}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flatjobs",
            "run",
            str(HERE / "_latency_app.py"),
            "--source",
            source,
            "--log-level",
            "error",
            env=env,
        )
        try:
            await asyncio.sleep(2.0)  # the listener starts and settles into polling
            loop = asyncio.get_running_loop()
            start = loop.time()
            ids = []
            total = int(rate * seconds)
            for n in range(total):
                await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
                ids.append(emu.trigger("workbook:export").id)
            for job_id in ids:
                await emu.wait_for(job_id, timeout=60)
        finally:
            proc.terminate()
            await proc.wait()
        ready: dict[str, dt.datetime] = {}
        acked: dict[str, dt.datetime] = {}
        for e in emu.events:
            job_id = e["context"]["jobId"]
            if e["topic"] == "job:ready":
                ready[job_id] = _when(e)
            elif e["topic"] == "job:updated" and job_id not in acked:
                acked[job_id] = _when(e)
    return sorted((acked[i] - ready[i]).total_seconds() * 1000 for i in ids)


def _pct(samples: list[float], q: float) -> float:
    return samples[min(len(samples) - 1, int(len(samples) * q))]


def main(quick: bool = False) -> None:
    print(f"latency benchmark: {machine()}")
    loads = [(1.0, 5.0 if quick else 60.0), (100.0, 2.0 if quick else 10.0)]
    rows = []
    for rate, seconds in loads:
        for source in ("push", "poll"):
            samples = asyncio.run(measure(rate, seconds, source))
            rows.append(
                [
                    f"{rate:g} jobs/s",
                    source,
                    f"{len(samples):,}",
                    f"{statistics.median(samples):,.0f} ms",
                    f"{_pct(samples, 0.95):,.0f} ms",
                    f"{_pct(samples, 0.99):,.0f} ms",
                ]
            )
    table(
        "event -> job acknowledged (flatjobs run, default settings; push, or 0.5 s polling)",
        ["offered load", "source", "jobs", "p50", "p95", "p99"],
        rows,
    )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
