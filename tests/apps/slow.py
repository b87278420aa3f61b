"""Listeners for the CLI tests: run in a subprocess by ``flatjobs run`` / ``flatjobs dev``."""

from __future__ import annotations

import asyncio
import os

from flatjobs import FlatfileEvent, Jobs, Tick

jobs = Jobs()
SECONDS = float(os.environ.get("SLOW_JOB_SECONDS", "1.0"))


@jobs.handle("workbook:slow")
async def slow(event: FlatfileEvent, tick: Tick) -> str:
    await tick(10, "working")
    await asyncio.sleep(SECONDS)
    return "slow job done"


@jobs.handle("workbook:crash")
async def crash(event: FlatfileEvent, tick: Tick) -> None:
    raise RuntimeError("the handler has a bug")


not_a_listener = 42


@jobs.handle("workbook:stubborn")
async def stubborn(event: FlatfileEvent, tick: Tick) -> None:
    """A body that swallows every cancellation: the runner must abandon it."""
    await tick(10, "ignoring you")
    while True:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            continue
