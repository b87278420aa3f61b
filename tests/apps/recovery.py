"""A listener for the crash and fault tests: run by ``flatjobs run`` in a subprocess.

Every body that starts appends its job id to the file named by ``FLATJOBS_TEST_RUNS`` (one
line per start, appended atomically), so a test can count how often each body ran.
Heartbeats are short, so the reconciliation sweep finds orphans within a second or two.
"""

from __future__ import annotations

import asyncio
import os

from flatjobs import FlatfileEvent, Jobs, Tick

jobs = Jobs(heartbeat=float(os.environ.get("FLATJOBS_TEST_HEARTBEAT", "0.3")))
SECONDS = float(os.environ.get("FLATJOBS_TEST_SECONDS", "0.05"))
RUNS = os.environ.get("FLATJOBS_TEST_RUNS", os.devnull)


def _ran(job_id: str | None) -> None:
    fd = os.open(RUNS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{job_id}\n".encode())
    finally:
        os.close(fd)


@jobs.handle("workbook:work")
async def work(event: FlatfileEvent, tick: Tick) -> str:
    _ran(event.job_id)
    await tick(10, "working")
    await asyncio.sleep(SECONDS)
    await tick(90, "almost")
    given = event.payload.get("input") or {}
    if given.get("fail"):
        raise RuntimeError("asked to fail")
    if given.get("raise") in ("KeyboardInterrupt", "SystemExit"):
        raise KeyboardInterrupt if given["raise"] == "KeyboardInterrupt" else SystemExit(3)
    await asyncio.sleep(float(given.get("seconds", 0)))
    return "worked"
