"""flatjobs quickstart: two job handlers, one that succeeds and one that fails for the user.

Run them against the embedded emulator, as a user clicking the two action buttons would:

    python3 -m flatjobs dev examples/quickstart.py --trigger workbook:export \\
        --trigger sheet:validate --exit-when-idle
"""

from __future__ import annotations

import asyncio
import datetime as dt

from flatjobs import FlatfileEvent, JobError, JobOutcome, Jobs, Listener, Next, Tick

jobs = Jobs()


@jobs.handle("workbook:export")
async def export(event: FlatfileEvent, tick: Tick) -> JobOutcome:
    """Export a workbook, reporting progress, and offer the file for download."""
    rows = 1204
    for done in range(0, rows, 301):
        left = (rows - done) / 301 * 0.2
        await tick(
            done * 100 / rows, f"Exported {done:,} of {rows:,} rows", eta=dt.timedelta(seconds=left)
        )
        await asyncio.sleep(0.2)  # the real work would go here
    return JobOutcome(
        heading="Export ready",
        message=f"Exported {rows:,} rows",
        next=Next.download(
            "https://example.com/exports/contacts.csv", label="Download contacts.csv"
        ),
    )


@jobs.handle("sheet:validate")
async def validate(event: FlatfileEvent, tick: Tick) -> None:
    """Validate a sheet; fail with a message and a Retry button the user sees."""
    await tick(40, "Checking email addresses")
    await asyncio.sleep(0.2)
    raise JobError(
        "3 rows have no email address",
        heading="Validation failed",
        next=Next.retry("Fix and retry"),
    )


listener = Listener().use(jobs)
