"""A sheet action handled by hand: a listener callback with ``job_lifecycle``.

What ``@jobs.handle`` does for you, spelled out: the filter selects the job, the
lifecycle acknowledges it, reports progress, and completes or fails it.
"""

from __future__ import annotations

from flatjobs import FlatfileEvent, JobError, Listener, job_lifecycle

listener = Listener()
SEEN_EMAILS = {"ada@example.com", "alan@example.com"}


@listener.on("job:ready", {"job": "sheet:dedupe"})
async def dedupe(event: FlatfileEvent) -> None:
    async with job_lifecycle(event, progress_interval=0.1) as tick:
        key = (event.payload.get("input") or {}).get("key")
        if key != "email":
            raise JobError(f"Cannot dedupe on {key!r}: only 'email' is supported")
        await tick(50, "Looking for duplicates")
        removed = len(SEEN_EMAILS)  # your records API calls go here
        tick.complete_with(f"Removed {removed} duplicate rows")
