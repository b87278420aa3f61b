"""The listener the latency benchmark runs with ``flatjobs run`` in its own process."""

from __future__ import annotations

from flatjobs import FlatfileEvent, Jobs, Tick

jobs = Jobs()


@jobs.handle("workbook:export")
async def export(event: FlatfileEvent, tick: Tick) -> None:
    return None
