"""More ways to test your own handlers: after the user fixed the rows, a Retry, data a test
seeds itself, an endpoint of your own, a split job, and a handler called directly with a
stand-in tick.

The ``flatfile_emulator`` fixture comes from flatjobs' pytest plugin, registered when
flatjobs is installed (it needs pytest-asyncio); ``contacts``, from ``conftest.py``, is an
emulator seeded with the 1,204 contacts of ``data/contacts.json``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator

import multipart
import pytest
import quickstart
import sheet_action
import webhook
from aiohttp import web
from aiohttp.test_utils import TestServer

from flatjobs import FlatfileEvent, JobError, Listener, job_lifecycle
from flatjobs.emulator import Emulator
from flatjobs.models import RetryNext
from flatjobs.testing import RecordingTick, client_for, emulated, make_event, run_job


async def test_validation_passes_once_the_user_fixed_the_rows(contacts: Emulator) -> None:
    sheet_id = contacts.sheet("contacts").id
    async with client_for(contacts) as client:
        async for page in client.records.pages(sheet_id, filter="all"):
            for record in page:
                if "@example.com" not in str(record.get("email")):
                    record["email"] = f"fixed.{record.id}@example.com"
            await page.save()
    job = await run_job(quickstart.listener, contacts, "sheet:validate")
    assert job.status == "complete"
    assert job.outcome is not None
    assert job.outcome.message == "All 1,204 rows are valid"


async def test_retry_after_the_user_fixed_the_rows_clears_their_errors(contacts: Emulator) -> None:
    # Run as `flatjobs run` runs it; the user clicks Retry on the failed job once the rows
    # are fixed: the errors its first run wrote must not outlive the bad values.
    async with emulated(quickstart.listener, emulator=contacts) as env:
        job = await env.trigger("sheet:validate")
        assert job.status == "failed"
        assert contacts.counts("contacts").error == 3
        sheet_id = contacts.sheet("contacts").id
        async for page in env.client.records.pages(sheet_id, filter="error"):
            for record in page:
                record["email"] = f"fixed.{record.id}@example.com"
            await page.save()
        assert contacts.counts("contacts").error == 3  # fixed values, the old errors still on
        contacts.retry(job.id)
        again = await contacts.wait_for(job.id)
    assert again.status == "complete"
    assert again.outcome is not None
    assert again.outcome.message == "All 1,204 rows are valid"
    counts = contacts.counts("contacts")
    assert (counts.valid, counts.error) == (1204, 0)  # the sheet agrees with the outcome
    assert not any(r["values"]["email"].get("messages") for r in contacts.records("contacts"))


async def test_dedupe_removes_the_duplicates_and_says_how_many(contacts: Emulator) -> None:
    job = await run_job(sheet_action.listener, contacts, "sheet:dedupe")
    assert job.status == "complete"
    assert job.outcome is not None
    assert job.outcome.message == "Removed 4 duplicate rows"
    emails = [r["values"]["email"]["value"] for r in contacts.records("contacts")]
    assert len(emails) == 1200
    assert len(set(emails)) == 1200
    again = await run_job(sheet_action.listener, contacts, "sheet:dedupe")
    assert again.outcome is not None
    assert again.outcome.message == "Removed 0 duplicate rows"


async def test_dedupe_progress_counts_the_rows_read_not_the_distinct_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 12 rows, 3 distinct emails: progress must reach 80% at the end of the scan.
    rows = [{"email": f"{n % 3}@example.com"} for n in range(12)]
    seed = {
        "workbooks": [
            {"name": "W", "sheets": [{"name": "C", "fields": [{"key": "email"}], "records": rows}]}
        ]
    }
    # Every tick sent (no coalescing), so that each one can be checked.
    lifecycle = functools.partial(job_lifecycle, progress_interval=0)
    monkeypatch.setattr(sheet_action, "job_lifecycle", lifecycle)
    async with Emulator(seed=seed) as emu:
        job = await run_job(sheet_action.listener, emu, "sheet:dedupe")
        sent = [body for method, path, body in emu.calls(job.id) if path.endswith("/ack")]
    assert job.outcome is not None
    assert job.outcome.message == "Removed 9 duplicate rows"
    scan = sent[1:-1]  # after "Accepted", before removing
    assert [b["progress"] for b in scan] == [n * 80 // 12 for n in range(1, 13)]
    assert [b["info"] for b in scan] == [f"Looked at {n} of 12 rows" for n in range(1, 13)]
    assert sent[-1] == {"progress": 80, "info": "Removing 9 duplicates"}


async def test_dedupe_on_a_field_the_sheet_lacks_fails_for_the_user(contacts: Emulator) -> None:
    job = await run_job(sheet_action.listener, contacts, "sheet:dedupe", input={"key": "phone"})
    assert job.status == "failed"
    assert job.outcome is not None
    assert job.outcome.message == "Cannot dedupe on 'phone': the sheet has no such field"
    assert len(contacts.records("contacts")) == 1204  # nothing deleted


class Endpoint:
    """A local HTTP endpoint receiving the webhook's batches."""

    def __init__(self, refuse: bool = False) -> None:
        self.batches: list[dict[str, object]] = []
        self.refuse = refuse

    async def handle(self, request: web.Request) -> web.Response:
        if self.refuse:
            return web.Response(status=503)
        self.batches.append(json.loads(await request.read()))
        return web.json_response({"ok": True})


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, str]]:
    receiver = Endpoint()
    app = web.Application()
    app.router.add_post("/hooks/contacts", receiver.handle)
    async with TestServer(app) as server:
        yield receiver, str(server.make_url("/hooks/contacts"))


async def test_the_webhook_sends_every_record_in_batches_with_progress(
    contacts: Emulator, endpoint: tuple[Endpoint, str]
) -> None:
    receiver, url = endpoint
    contacts.add_secret("WEBHOOK_URL", url)
    job = await run_job(webhook.listener, contacts, "workbook:submit")
    assert job.status == "complete"
    assert job.outcome is not None
    assert job.outcome.message == "Sent 1,204 records"
    assert [len(b["records"]) for b in receiver.batches] == [500, 500, 204]  # type: ignore[arg-type]
    sent = [r for b in receiver.batches for r in b["records"]]  # type: ignore[attr-defined]
    assert len({r["id"] for r in sent}) == 1204
    assert sent[0].keys() == {"id", "email", "name", "status", "age"}
    assert job.info == "Sent 1,204 of 1,204 records"  # the last progress the user saw


async def test_the_webhook_fails_with_retry_when_the_endpoint_refuses(
    contacts: Emulator, endpoint: tuple[Endpoint, str]
) -> None:
    receiver, url = endpoint
    receiver.refuse = True
    contacts.add_secret("WEBHOOK_URL", url)
    job = await run_job(webhook.listener, contacts, "workbook:submit")
    assert job.status == "failed"
    assert job.outcome is not None
    assert job.outcome.message == "The endpoint refused a batch (503) after 0 of 1,204 records"
    assert isinstance(job.outcome.next, RetryNext)


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


async def test_a_handler_can_be_called_directly_too(contacts: Emulator) -> None:
    # @jobs.handle returns the function unchanged: call it with an event and a stand-in
    # tick; the event reaches the emulator through a listener holding a client for it.
    sheet_id = contacts.sheet("contacts").id
    async with client_for(contacts) as client:
        event = FlatfileEvent(
            make_event(job="sheet:validate", context={"sheetId": sheet_id}), Listener(client)
        )
        tick = RecordingTick()
        with pytest.raises(JobError, match="3 rows have an invalid email address"):
            await quickstart.validate(event, tick)
    assert tick.updates[-1].progress == 100
    assert tick.updates[-1].info == "Checked 1,204 of 1,204 rows"
