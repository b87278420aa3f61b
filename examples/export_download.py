"""An export that reports progress with an ETA and completes with a download button."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io

from flatjobs import FlatfileEvent, JobOutcome, Jobs, Listener, Next, Tick

jobs = Jobs()
ROWS = [{"email": f"user{n}@example.com", "name": f"User {n}"} for n in range(500)]


async def upload(data: bytes, file_name: str) -> str:
    """Stands in for your storage (S3, GCS...): returns the file's download URL."""
    await asyncio.sleep(0)
    return f"https://files.example.com/{file_name}?size={len(data)}"


@jobs.handle("workbook:export")
async def export(event: FlatfileEvent, tick: Tick) -> JobOutcome:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["email", "name"])
    writer.writeheader()
    started = dt.datetime.now(dt.UTC)
    for n, row in enumerate(ROWS, 1):
        writer.writerow(row)
        elapsed = dt.datetime.now(dt.UTC) - started
        # Once per row is fine: ticks are coalesced, and awaiting one never waits for the
        # progress interval.
        await tick(
            n * 90 / len(ROWS), f"{n} of {len(ROWS)} rows", eta=elapsed * (len(ROWS) - n) / n
        )
        if n % 100 == 0:
            await asyncio.sleep(0.01)  # a real export awaits the Flatfile records API here
    url = await upload(out.getvalue().encode(), "contacts.csv")
    return JobOutcome(
        heading="Export ready",
        message=f"Exported {len(ROWS)} rows",
        next=Next.download(url, label="Download CSV", file_name="contacts.csv"),
    )


listener = Listener().use(jobs)
