"""How to test your own handlers: directly, and end to end against the emulator.

The ``flatfile_emulator`` fixture comes from flatjobs' pytest plugin, registered when
flatjobs is installed (it needs pytest-asyncio).
"""

from __future__ import annotations

import export_download
import multipart
import quickstart
import sheet_action

from flatjobs import FlatfileEvent
from flatjobs.emulator import Emulator
from flatjobs.models import DownloadNext, RetryNext
from flatjobs.testing import RecordingTick, make_event, run_job


async def test_export_offers_a_download(flatfile_emulator: Emulator) -> None:
    job = await run_job(export_download.listener, flatfile_emulator, "workbook:export")
    assert job.status == "complete"
    assert job.outcome is not None
    assert job.outcome.message == "Exported 500 rows"
    assert isinstance(job.outcome.next, DownloadNext)
    assert job.outcome.next.file_name == "contacts.csv"


async def test_quickstart_export_completes_and_validation_fails_with_retry(
    flatfile_emulator: Emulator,
) -> None:
    exported = await run_job(quickstart.listener, flatfile_emulator, "workbook:export")
    assert exported.status == "complete"
    validated = await run_job(quickstart.listener, flatfile_emulator, "sheet:validate")
    assert validated.status == "failed"
    assert validated.outcome is not None
    assert validated.outcome.message == "3 rows have no email address"
    assert isinstance(validated.outcome.next, RetryNext)


async def test_sheet_action_by_hand(flatfile_emulator: Emulator) -> None:
    ok = await run_job(
        sheet_action.listener, flatfile_emulator, "sheet:dedupe", input={"key": "email"}
    )
    assert ok.status == "complete"
    assert ok.outcome is not None
    assert ok.outcome.message == "Removed 2 duplicate rows"
    refused = await run_job(
        sheet_action.listener, flatfile_emulator, "sheet:dedupe", input={"key": "phone"}
    )
    assert refused.status == "failed"
    assert refused.info == "Cannot dedupe on 'phone': only 'email' is supported"


async def test_multipart_export_ends_the_parent_from_its_parts(flatfile_emulator: Emulator) -> None:
    job = await run_job(multipart.listener, flatfile_emulator, "workbook:bigExport")
    assert job.status == "complete"
    assert job.outcome is not None
    assert job.outcome.message == "Exported all 3 parts"
    parts = [j for j in flatfile_emulator.jobs() if j.parent_id == job.id]
    assert sorted(p.outcome.message for p in parts if p.outcome and p.outcome.message) == [
        "Rows 1-1000 exported",
        "Rows 1001-2000 exported",
        "Rows 2001-2500 exported",
    ]


async def test_a_handler_can_be_called_directly_too() -> None:
    # @jobs.handle returns the function unchanged: call it with an event and a stand-in tick.
    tick = RecordingTick()
    event = FlatfileEvent(make_event(job="workbook:export"))
    outcome = await export_download.export(event, tick)
    assert outcome.message == "Exported 500 rows"
    assert len(tick.updates) == 500  # one tick per row: the real tick coalesces them
    assert tick.updates[-1].progress == 90
    assert tick.updates[99].info == "100 of 500 rows"
