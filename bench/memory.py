"""Memory per in-flight job: 10,000 jobs acknowledged, their handlers awaiting an event.

Resident memory (VmRSS) before, with all jobs in flight, and after they end; and the
count of Python heap blocks, which shows whether what the jobs held was released (RSS
alone cannot: CPython's allocator keeps freed arenas for reuse).

    python bench/memory.py [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

from _common import machine, table
from lifecycle import event, server

from flatjobs import FlatfileClient, FlatfileEvent, Jobs, Listener, Tick

TOKEN = "sk_bench"


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not available (Linux only)")


async def measure(url: str, count: int, rounds: int = 2) -> list[dict[str, float]]:
    """One dict of figures per round; later rounds show whether leftovers grow."""
    async with FlatfileClient(url, TOKEN, environment_id="e") as client:
        warm = Jobs()

        @warm.handle("workbook:export")
        async def quick(event: FlatfileEvent, tick: Tick) -> None:
            return None

        # Warm up: import paths, caches and the connection pool are not per-job memory.
        warm_listener = Listener(client=client).use(warm)
        await asyncio.gather(*(warm_listener.dispatch(event(i)) for i in range(300)))
        gc.collect()
        first_blocks = sys.getallocatedblocks()
        out = []
        for n in range(rounds):
            figures = await _round(client, count, offset=10_000 * (n + 1))
            figures["growth_blocks"] = (sys.getallocatedblocks() - first_blocks) / count
            out.append(figures)
        return out


async def _round(client: FlatfileClient, count: int, offset: int) -> dict[str, float]:
    release = asyncio.Event()
    entered = 0
    all_in = asyncio.Event()
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        nonlocal entered
        entered += 1
        if entered >= count:
            all_in.set()
        await release.wait()

    listener = Listener(client=client).use(jobs)
    events = [event(offset + i) for i in range(count)]
    gc.collect()
    base_rss, base_blocks = rss_bytes(), sys.getallocatedblocks()
    tasks = [asyncio.create_task(listener.dispatch(e)) for e in events]
    await all_in.wait()
    gc.collect()
    peak_rss, peak_blocks = rss_bytes(), sys.getallocatedblocks()
    release.set()
    await asyncio.gather(*tasks)
    del tasks
    gc.collect()
    after_rss, after_blocks = rss_bytes(), sys.getallocatedblocks()
    return {
        "per_job_rss": (peak_rss - base_rss) / count,
        "per_job_blocks": (peak_blocks - base_blocks) / count,
        "blocks_left": (after_blocks - base_blocks) / max(1, peak_blocks - base_blocks),
        "rss_left": (after_rss - base_rss) / max(1, peak_rss - base_rss),
        "base_mb": base_rss / 2**20,
        "peak_mb": peak_rss / 2**20,
        "after_mb": after_rss / 2**20,
    }


def main(quick: bool = False) -> None:
    print(f"memory benchmark: {machine()}")
    count = 1000 if quick else 10_000
    with server() as url:
        rounds = asyncio.run(measure(url, count))
    table(
        f"memory with {count:,} jobs in flight (handlers awaiting an event), two rounds",
        [
            "round",
            "RSS per job",
            "heap blocks per job",
            "RSS before/peak/after",
            "blocks left after",
            "blocks kept since warm-up, per job",
        ],
        [
            [
                str(n + 1),
                f"{m['per_job_rss'] / 1024:.1f} KB",
                f"{m['per_job_blocks']:.0f}",
                f"{m['base_mb']:.0f} / {m['peak_mb']:.0f} / {m['after_mb']:.0f} MB",
                f"{m['blocks_left']:.1%}",
                f"{m['growth_blocks']:.2f}",
            ]
            for n, m in enumerate(rounds)
        ],
    )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
