"""The listener the distributed-mode process tests run with ``flatjobs run --nats``.

Every body that starts appends its job id to the file ``FLATJOBS_TEST_RUNS`` names (a line
per start, as ``tests/apps/recovery.py`` does), and ``<job id> <pid>`` to the same name
with ``.pids`` added, so a test knows which worker ran what. A body sleeps its input's
``seconds`` (default 0.05) the first time; run again (an orphan whose handler opted in),
it finishes at once. ``workbook:idempotent`` opts in to re-running orphans.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from flatjobs import FlatfileEvent, Jobs, Tick

jobs = Jobs(heartbeat=0.3)
RUNS = os.environ.get("FLATJOBS_TEST_RUNS", os.devnull)


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def _started(job_id: str) -> bool:
    """Note a start; whether the job's body had started before (anywhere)."""
    if os.devnull == RUNS:
        return False
    runs = Path(RUNS)
    before = runs.exists() and job_id in runs.read_text().split()
    _append(RUNS, job_id)
    _append(f"{RUNS}.pids", f"{job_id} {os.getpid()}")
    return before


async def _body(event: FlatfileEvent, tick: Tick) -> str:
    again = _started(str(event.job_id))
    await tick(10, "working")
    if not again:
        await asyncio.sleep(float((event.payload.get("input") or {}).get("seconds", 0.05)))
    await tick(90, "almost")
    return "worked"


@jobs.handle("workbook:work")
async def work(event: FlatfileEvent, tick: Tick) -> str:
    return await _body(event, tick)


@jobs.handle("workbook:idempotent", on_orphan="rerun")
async def idempotent(event: FlatfileEvent, tick: Tick) -> str:
    return await _body(event, tick)
