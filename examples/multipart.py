"""A multi-part job: split a big export into parts, handle each, end the parent."""

from __future__ import annotations

from flatjobs import FlatfileEvent, Jobs, Listener, Tick
from flatjobs.models import JobPartsCounts

jobs = Jobs()
PARTS = [{"rows": "1-1000"}, {"rows": "1001-2000"}, {"rows": "2001-2500"}]


@jobs.handle("workbook:bigExport")
async def plan(event: FlatfileEvent, tick: Tick) -> None:
    await tick(5, "Splitting into parts")
    await tick.split(PARTS, run_in_parallel=True)  # the parent now waits for its parts


@jobs.handle_part("workbook:bigExport")
async def export_part(event: FlatfileEvent, tick: Tick) -> str:
    part = (await tick.job()).part_data  # one dict of PARTS
    await tick(50, f"Exporting rows {part['rows']}")
    return f"Rows {part['rows']} exported"


@jobs.on_parts_completed("workbook:bigExport")
async def merge(event: FlatfileEvent, tick: Tick, parts: JobPartsCounts) -> str:
    if parts.failed:
        return f"Exported {parts.completed} of {parts.total} parts; see the failed ones"
    return f"Exported all {parts.total} parts"


listener = Listener().use(jobs)
