"""flatjobs quickstart: two job handlers that do real work on a sheet's records.

``workbook:export`` reads every record of the workbook's sheets, writes them to CSV files,
uploads those as export files and completes with a button to them. ``sheet:validate``
writes a message on every cell holding a bad email address (clearing those its earlier
runs wrote, so that a Retry reflects the rows as they are now) and, when there is one,
fails with a Retry button the user sees.

Run them against the embedded emulator, seeded with 1,204 contacts, as a user clicking
the two action buttons would:

    python3 -m flatjobs dev examples/quickstart.py --seed examples/data/contacts.json \\
        --trigger workbook:export --trigger sheet:validate --exit-when-idle
"""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
import time
from pathlib import Path

from flatjobs import FlatfileEvent, JobError, JobOutcome, Jobs, Listener, Next, Tick

jobs = Jobs()


@jobs.handle("workbook:export")
async def export(event: FlatfileEvent, tick: Tick) -> JobOutcome:
    """Export each sheet of the workbook to a CSV file the user can download."""
    client = event.client
    workbook_id, space_id = event.context.workbook_id, event.context.space_id
    if workbook_id is None or space_id is None:
        raise JobError("This action runs on a workbook")
    sheets = await client.sheets.list(workbook_id)
    total = sum([(await client.sheets.counts(sheet.id)).total for sheet in sheets])
    done, started, file_ids = 0, time.monotonic(), []
    with tempfile.TemporaryDirectory() as folder:
        for sheet in sheets:
            keys = [field.key for field in sheet.config.fields] if sheet.config else []
            path = Path(folder) / f"{sheet.slug or sheet.id}.csv"
            with path.open("w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(keys)
                async for record in client.records.iterate(sheet.id):
                    writer.writerow([record.get(key, "") for key in keys])
                    done += 1
                    elapsed = time.monotonic() - started
                    # Once per record is fine: ticks are coalesced into a few calls.
                    await tick(
                        done * 95 / max(total, 1),
                        f"Exported {done:,} of {total:,} rows",
                        eta=dt.timedelta(seconds=elapsed * (total - done) / done),
                    )
            uploaded = await client.files.upload(path, space_id=space_id, mode="export")
            file_ids.append(uploaded.id)
    return JobOutcome(
        heading="Export ready",
        message=f"Exported {done:,} rows",
        next=Next.files(file_ids, label="Download the CSV files"),
    )


@jobs.handle("sheet:validate")
async def validate(event: FlatfileEvent, tick: Tick) -> str:
    """Mark every bad email address on its cell; fail with a Retry button if any."""
    sheet_id = event.context.sheet_id
    if sheet_id is None:
        raise JobError("This action runs on a sheet")
    total = (await event.client.sheets.counts(sheet_id)).total
    checked = invalid = 0
    async for page in event.client.records.pages(sheet_id, include_messages=True):
        for record in page:
            record.clear_messages("email")  # a Retry after the user fixed a row: no stale error
            email = str(record.get("email") or "")
            local, at, domain = email.partition("@")
            if email and not (local and at and "." in domain):
                record.error("email", f"{email!r} is not an email address")
                invalid += 1
            checked += 1
        await page.save()  # one call per page: only the cells that changed
        await tick(checked * 100 / max(total, 1), f"Checked {checked:,} of {total:,} rows")
    if invalid:
        raise JobError(
            f"{invalid} rows have an invalid email address",
            heading="Validation failed",
            next=Next.retry("Fix and retry"),
        )
    return f"All {checked:,} rows are valid"


listener = Listener().use(jobs)
