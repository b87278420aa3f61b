"""Progress ticks: what a handler that ticks in a loop costs.

* awaited ticks: ``for row in rows: await tick(...)``, as the docs teach, 200 rows against
  the emulator with the default ``progress_interval`` (0.5 s): wall time and HTTP calls;
* un-awaited ticks: 40,000 and 100,000 ``tick(...)`` calls in a tight loop: how long the
  loop holds the event loop, in total and per tick.

    python bench/ticks.py [--quick]
"""

from __future__ import annotations

import asyncio
import time

from _common import machine, table

from flatjobs import job_lifecycle
from flatjobs.emulator import Emulator
from flatjobs.testing import client_for


async def awaited(rows: int, work: float = 0.0) -> tuple[float, float, int]:
    """``rows`` awaited ticks inside one job, each row doing ``work`` seconds of awaited work
    first: the loop's wall time, the time spent awaiting ticks, and the progress calls sent."""
    async with Emulator(record=True) as emu, client_for(emu) as client:
        emu.trigger("workbook:export")
        event = next(e for e in emu.events if e["topic"] == "job:ready")
        async with job_lifecycle(event, client=client) as tick:
            start = time.perf_counter()
            in_ticks = 0.0
            for row in range(rows):
                if work:
                    await asyncio.sleep(work)
                before = time.perf_counter()
                await tick(row * 100 / rows, f"row {row + 1} of {rows}")
                in_ticks += time.perf_counter() - before
            elapsed = time.perf_counter() - start
        calls = sum(r.route == "jobs.ack" for r in emu.requests) - 1
    return elapsed, in_ticks, calls


async def tight_loop(ticks: int) -> float:
    """Seconds a loop of ``ticks`` un-awaited ticks holds the event loop."""
    async with Emulator(record=False) as emu, client_for(emu) as client:
        emu.trigger("workbook:export")
        event = next(e for e in emu.events if e["topic"] == "job:ready")
        async with job_lifecycle(event, client=client) as tick:
            start = time.perf_counter()
            for i in range(ticks):
                tick(i * 100 / ticks, "working")
            elapsed = time.perf_counter() - start
    return elapsed


def main(quick: bool = False) -> None:
    print(f"ticks benchmark: {machine()}")
    rows = []
    for count, work in ((200, 0.0), (2_000, 0.0), (200, 0.005)):
        if quick and count > 200:
            continue
        elapsed, in_ticks, calls = asyncio.run(awaited(count, work))
        label = f"{count:,} awaited ticks" + (f", {work * 1000:g} ms of work each" if work else "")
        rows.append(
            [
                label,
                f"{elapsed * 1000:,.0f} ms",
                f"{in_ticks * 1000:,.1f} ms",
                f"{in_ticks / count * 1e6:,.1f} µs",
                str(calls),
            ]
        )
    for count in (40_000, 100_000):
        elapsed = min(asyncio.run(tight_loop(count)) for _ in range(1 if quick else 3))
        rows.append(
            [
                f"{count:,} un-awaited ticks",
                f"{elapsed * 1000:,.0f} ms",
                f"{elapsed * 1000:,.1f} ms",
                f"{elapsed / count * 1e6:,.2f} µs",
                "n/a",
            ]
        )
    table(
        "progress ticks in one job (default progress_interval 0.5 s), against the emulator",
        ["loop", "wall time", "in tick calls", "per tick", "progress calls"],
        rows,
    )


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
