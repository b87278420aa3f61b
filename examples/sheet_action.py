"""A sheet action handled by hand: a listener callback with ``job_lifecycle``.

What ``@jobs.handle`` does for you, spelled out: the filter selects the job, the
lifecycle acknowledges it, reports progress, and completes or fails it. The action
removes the records whose value in one field (``email`` unless the job's input names
another) repeats an earlier record's, and says how many it removed.
"""

from __future__ import annotations

from flatjobs import FlatfileEvent, JobError, Listener, job_lifecycle

listener = Listener()


@listener.on("job:ready", {"job": "sheet:dedupe"})
async def dedupe(event: FlatfileEvent) -> None:
    async with job_lifecycle(event) as tick:
        sheet_id = event.context.sheet_id
        key = (event.payload.get("input") or {}).get("key", "email")
        if sheet_id is None:
            raise JobError("This action runs on a sheet")
        sheet = await event.client.sheets.get(sheet_id)
        keys = [field.key for field in sheet.config.fields] if sheet.config else []
        if key not in keys:
            raise JobError(f"Cannot dedupe on {key!r}: the sheet has no such field")
        total = (await event.client.sheets.counts(sheet_id)).total
        seen: set[str] = set()
        duplicates: list[str] = []
        read = 0
        async for record in event.client.records.iterate(sheet_id, fields=[key]):
            value = str(record.get(key) or "").strip().lower()
            if value and value in seen:
                duplicates.append(record.id)
            seen.add(value)
            read += 1  # progress counts the records read, duplicates too
            await tick(read * 80 / max(total, 1), f"Looked at {read:,} of {total:,} rows")
        await tick(80, f"Removing {len(duplicates)} duplicates")
        await event.client.records.delete(sheet_id, duplicates)  # 100 ids a call
        tick.complete_with(f"Removed {len(duplicates)} duplicate rows")
