"""Egress: send a workbook's records to your own HTTP endpoint, with progress.

The ``workbook:submit`` action posts every sheet's records, a batch at a time, as JSON to
the URL in the ``WEBHOOK_URL`` secret (a space's or environment's secret, as Flatfile
stores them) or, when there is none, the ``WEBHOOK_URL`` environment variable. A batch the
endpoint refuses fails the job with a Retry button; what was sent before stays sent, so
the endpoint should accept a batch twice (each record carries its id).
"""

from __future__ import annotations

import os

import aiohttp

from flatjobs import FlatfileEvent, JobError, Jobs, Listener, Next, SecretNotFound, Tick

jobs = Jobs()
BATCH = 500


@jobs.handle("workbook:submit")
async def submit(event: FlatfileEvent, tick: Tick) -> str:
    workbook_id = event.context.workbook_id
    if workbook_id is None:
        raise JobError("This action runs on a workbook")
    try:
        url = await event.secrets("WEBHOOK_URL")
    except SecretNotFound:
        url = os.environ.get("WEBHOOK_URL", "")
    if not url:
        raise JobError("Set the WEBHOOK_URL secret to the endpoint to send records to")
    sheets = await event.client.sheets.list(workbook_id)
    total = sum([(await event.client.sheets.counts(sheet.id)).total for sheet in sheets])
    sent = 0
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for sheet in sheets:
            async for page in event.client.records.pages(sheet.id, page_size=BATCH):
                batch = {
                    "sheet": sheet.slug,
                    "records": [{"id": record.id, **record.values()} for record in page],
                }
                async with http.post(url, json=batch) as answer:
                    if answer.status >= 300:
                        raise JobError(
                            f"The endpoint refused a batch ({answer.status}) after "
                            f"{sent:,} of {total:,} records",
                            next=Next.retry("Send again"),
                        )
                sent += len(page)
                await tick(sent * 100 / max(total, 1), f"Sent {sent:,} of {total:,} records")
    return f"Sent {sent:,} records"


listener = Listener().use(jobs)
