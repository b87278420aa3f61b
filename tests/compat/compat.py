"""Compatibility check: Flatfile's Python SDK (``flatfile`` 1.0.0, ``AsyncFlatfile``) against
the flatjobs emulator. Every endpoint flatjobs' client covers is called through the SDK; each
answer must be 2xx and parse into the SDK's pydantic models.

Run by ``tests/compat/run.py`` (``nox -s compat``), which starts a seeded emulator and sets::

    FLATFILE_API_URL       the emulator's root (this script appends /v1: the SDK does not)
    FLATFILE_BEARER_TOKEN  its token
    FF_ENVIRONMENT_ID FF_ACCOUNT_ID FF_SPACE_ID FF_WORKBOOK_ID FF_SHEET_ID FF_FILE_ID
    FF_DOCUMENT_ID FF_JOB_ID (a ready job) FF_RECORD_IDS (comma-separated, 4 or more)

Run it by hand as ``python -X dev -W error tests/compat/compat.py`` with those set. Any
exception (pydantic ValidationError, ApiError, an httpx error), a failed expectation, or any
Python warning fails the check. It prints ``N passed, M failed`` and exits 1 on a failure.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import traceback
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from flatfile import AsyncFlatfile
from flatfile.records import CellValue, Record


def need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"compat.py: {name} is not set (tests/compat/run.py sets it)")
    return value


ROOT = need("FLATFILE_API_URL").rstrip("/")
BASE = ROOT if ROOT.endswith("/v1") else ROOT + "/v1"
TOKEN = need("FLATFILE_BEARER_TOKEN")
ENV = need("FF_ENVIRONMENT_ID")
ACCOUNT = need("FF_ACCOUNT_ID")
SPACE = need("FF_SPACE_ID")
WORKBOOK = need("FF_WORKBOOK_ID")
SHEET = need("FF_SHEET_ID")
FILE = need("FF_FILE_ID")
DOC = need("FF_DOCUMENT_ID")
JOB = need("FF_JOB_ID")
RECORDS = need("FF_RECORD_IDS").split(",")


def expect(cond: object, what: str) -> None:
    if not cond:
        raise AssertionError(what)


class Checks:
    """The calls, in an order the job state machine and the data allow. ``client`` is typed
    ``Any``: what is checked is what the SDK does at run time, not its annotations."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.made: dict[str, str] = {}  # ids created along the way

    # ---- records ---------------------------------------------------------------------
    async def records_get(self) -> None:
        r = await self.client.records.get(
            SHEET,
            page_size=5,
            page_number=1,
            include_counts=True,
            fields=["firstName", "email"],
            filter="valid",
            sort_field="firstName",
            sort_direction="asc",
        )
        expect(isinstance(r.data.records, list) and r.data.records, "records")
        for rec in r.data.records:
            expect(rec.id and isinstance(rec.values, dict), "record id/values")

    async def records_get_all(self) -> None:
        # Every record and every cell: messages, every field type, invalid values.
        r = await self.client.records.get(SHEET, include_messages=True, include_length=True)
        expect(len(r.data.records) >= len(RECORDS), "every record")
        expect(any(not rec.valid for rec in r.data.records), "an invalid record")
        expect(r.data.counts is not None and r.data.counts.total >= len(RECORDS), "counts")
        expect(r.data.commit_id and r.data.version_id, "the page's commitId and versionId")
        self.made["commit"] = r.data.commit_id

    async def records_get_ids(self) -> None:
        r = await self.client.records.get(SHEET, ids=RECORDS[:2])
        expect([rec.id for rec in r.data.records] == RECORDS[:2], "the records asked for")

    async def records_get_since(self) -> None:
        r = await self.client.records.get(SHEET, since_commit_id=self.made["commit"])
        expect(isinstance(r.data.records, list), "records")

    async def records_get_errors(self) -> None:
        r = await self.client.records.get(
            SHEET, filter="error", filter_field="firstName", include_messages=True
        )
        expect(r.data.records and not r.data.records[0].values["firstName"].valid, "invalid")

    async def records_insert(self) -> None:
        r = await self.client.records.insert(
            SHEET,
            request=[
                {"firstName": CellValue(value="Ann"), "email": CellValue(value="ann@example.com")},
                {"firstName": {"value": "Bob"}, "age": {"value": 7}, "tags": {"value": ["a"]}},
                {"email": {"value": "no-name@example.com"}},  # invalid: a required field
            ],
        )
        expect(r.data.success is True, "success")

    async def records_update(self) -> None:
        r = await self.client.records.update(
            SHEET,
            request=[
                Record(
                    id=RECORDS[0], values={"firstName": CellValue(value="Anne")}, metadata={"k": 1}
                ),
                {
                    "id": RECORDS[1],
                    "values": {
                        "email": {
                            "value": "bob@example.com",
                            "messages": [
                                {"type": "error", "message": "Taken", "source": "custom-logic"}
                            ],
                        }
                    },
                },
            ],
        )
        expect(r.data.version_id, "versionId")

    async def records_update_unchanged(self) -> None:
        # Nothing changes: the emulator answers 200 with ids (a bodiless 304 breaks the SDK).
        r = await self.client.records.update(
            SHEET, request=[Record(id=RECORDS[0], values={"firstName": CellValue(value="Anne")})]
        )
        expect(r.data.version_id, "versionId")

    async def records_delete(self) -> None:
        r = await self.client.records.delete(SHEET, ids=RECORDS[-2:])
        expect(r.data is None or r.data.success is True, "success")

    # ---- sheets ----------------------------------------------------------------------
    async def sheets_list(self) -> None:
        r = await self.client.sheets.list(workbook_id=WORKBOOK)
        expect(SHEET in [s.id for s in r.data], "the sheet listed")

    async def sheets_get(self) -> None:
        r = await self.client.sheets.get(SHEET)
        expect(r.data.id == SHEET and r.data.config.fields, "the sheet and its fields")

    async def sheets_counts(self) -> None:
        r = await self.client.sheets.get_record_counts(SHEET)
        expect(isinstance(r.data.counts.total, int) and r.data.counts.total > 0, "counts.total")

    async def sheets_download(self) -> None:
        chunks = [c async for c in self.client.sheets.get_records_as_csv(SHEET, filter="all")]
        expect(b"firstName" in b"".join(chunks), "csv with a header")

    # ---- workbooks -------------------------------------------------------------------
    async def workbooks_list(self) -> None:
        r = await self.client.workbooks.list(space_id=SPACE, include_sheets=True)
        expect(WORKBOOK in [w.id for w in r.data], "the workbook listed")

    async def workbooks_get(self) -> None:
        r = await self.client.workbooks.get(WORKBOOK)
        expect(r.data.id == WORKBOOK and r.data.sheets, "the workbook and its sheets")

    async def workbooks_create(self) -> None:
        r = await self.client.workbooks.create(
            name="Compat",
            space_id=SPACE,
            environment_id=ENV,
            labels=["compat"],
            sheets=[
                {
                    "name": "People",
                    "slug": "people",
                    "fields": [
                        {"key": "firstName", "type": "string"},
                        {"key": "age", "type": "number"},
                        {"key": "ok", "type": "boolean"},
                        {"key": "plan", "type": "enum", "config": {"options": [{"value": "a"}]}},
                    ],
                }
            ],
            actions=[{"label": "Submit", "operation": "submit", "mode": "foreground"}],
            settings={"trackChanges": False},
            metadata={"k": "v"},
        )
        expect(r.data.id, "id")
        self.made["workbook"] = r.data.id

    async def workbooks_update(self) -> None:
        r = await self.client.workbooks.update(WORKBOOK, name="Renamed", metadata={"k": "w"})
        expect(r.data.id == WORKBOOK and r.data.name == "Renamed", "renamed")

    async def workbooks_delete(self) -> None:
        r = await self.client.workbooks.delete(self.made["workbook"])
        expect(r.data is None or r.data.success is True, "success")

    # ---- files -----------------------------------------------------------------------
    async def files_upload(self) -> None:
        r = await self.client.files.upload(
            space_id=SPACE,
            environment_id=ENV,
            file=("compat.csv", b"a,b\n1,2\n", "text/csv"),
            mode="import",
        )
        expect(r.data.id and r.data.name == "compat.csv", "the file")
        self.made["file"] = r.data.id

    async def files_upload_export(self) -> None:
        r = await self.client.files.upload(
            space_id=SPACE, environment_id=ENV, file=b"x,y\n", mode="export"
        )
        expect(r.data.id, "id")

    async def files_list(self) -> None:
        r = await self.client.files.list(space_id=SPACE, page_size=10, page_number=1, mode="import")
        expect(FILE in [f.id for f in r.data], "the seeded file listed")

    async def files_get(self) -> None:
        r = await self.client.files.get(FILE)
        expect(r.data.id == FILE, "id")

    async def files_download(self) -> None:
        chunks = [c async for c in self.client.files.download(FILE)]
        expect(len(b"".join(chunks)) > 0, "bytes")

    async def files_delete(self) -> None:
        r = await self.client.files.delete(self.made["file"])
        expect(r.data is None or r.data.success is True, "success")

    # ---- spaces / documents ----------------------------------------------------------
    async def spaces_list(self) -> None:
        r = await self.client.spaces.list(environment_id=ENV, page_size=10, page_number=1)
        expect(SPACE in [s.id for s in r.data], "the space listed")

    async def spaces_get(self) -> None:
        r = await self.client.spaces.get(SPACE)
        expect(r.data.id == SPACE, "id")

    async def spaces_update(self) -> None:
        r = await self.client.spaces.update(SPACE, name="Renamed", metadata={"k": "v"})
        expect(r.data.id == SPACE, "id")

    async def documents_list(self) -> None:
        r = await self.client.documents.list(SPACE)
        expect(DOC in [d.id for d in r.data], "the document listed")

    async def documents_get(self) -> None:
        r = await self.client.documents.get(SPACE, DOC)
        expect(r.data.id == DOC, "id")

    async def documents_create(self) -> None:
        r = await self.client.documents.create(SPACE, title="Hello", body="<p>hi</p>")
        expect(r.data.id, "id")

    async def documents_update(self) -> None:
        r = await self.client.documents.update(SPACE, DOC, title="Welcome", body="<p>Again</p>")
        expect(r.data.id == DOC, "id")

    # ---- jobs ------------------------------------------------------------------------
    async def jobs_get(self) -> None:
        r = await self.client.jobs.get(JOB)
        expect(r.data.id == JOB and r.data.status == "ready", "the ready job")

    async def jobs_ack(self) -> None:
        r = await self.client.jobs.ack(JOB, request={"info": "starting", "progress": 10})
        expect(r.data.status == "executing", "executing")

    async def jobs_ack_bare(self) -> None:
        r = await self.client.jobs.ack(JOB)  # no body at all
        expect(r.data.status == "executing", "executing")

    async def jobs_update(self) -> None:
        r = await self.client.jobs.update(JOB, info="halfway", progress=50, metadata={"k": 1})
        expect(r.data.id == JOB, "id")

    async def jobs_complete(self) -> None:
        r = await self.client.jobs.complete(
            JOB, request={"outcome": {"message": "done", "acknowledge": True}}
        )
        expect(r.data.status == "complete", "complete")

    async def jobs_ack_outcome(self) -> None:
        r = await self.client.jobs.ack_outcome(JOB)
        expect(r.data.id == JOB, "id")

    async def jobs_list(self) -> None:
        r = await self.client.jobs.list(environment_id=ENV, page_size=50)
        expect(JOB in [j.id for j in r.data], "the job listed")

    async def jobs_create(self) -> None:
        r = await self.client.jobs.create(type="workbook", operation="compat", source=WORKBOOK)
        expect(r.data.status == "created", "created")
        self.made["job"] = r.data.id

    async def jobs_execute(self) -> None:
        r = await self.client.jobs.execute(self.made["job"])
        expect(r.data is None or r.data.success is True, "success")

    async def jobs_fail(self) -> None:
        await self.client.jobs.ack(self.made["job"])
        r = await self.client.jobs.fail(
            self.made["job"], request={"info": "bad", "outcome": {"message": "Broken"}}
        )
        expect(r.data.status == "failed", "failed")

    async def jobs_retry(self) -> None:
        r = await self.client.jobs.retry(self.made["job"])
        expect(r.data.status == "ready", "ready")

    async def jobs_cancel(self) -> None:
        r = await self.client.jobs.cancel(self.made["job"], request={"info": "stopped"})
        expect(r.data.status == "canceled", "canceled")

    async def jobs_delete(self) -> None:
        r = await self.client.jobs.delete(self.made["job"])
        expect(r.data is None or r.data.success is True, "success")

    async def jobs_split(self) -> None:
        made = await self.client.jobs.create(
            type="sheet", operation="compat-split", source=SHEET, trigger="immediate"
        )
        await self.client.jobs.ack(made.data.id)
        r = await self.client.jobs.split(made.data.id, parts=2, run_in_parallel=True)
        expect(r.data.id == made.data.id, "id")

    # ---- events / subscription / secrets ---------------------------------------------
    async def events_create(self) -> None:
        r = await self.client.events.create(
            topic="workbook:updated",
            domain="workbook",
            context={
                "accountId": ACCOUNT,
                "environmentId": ENV,
                "spaceId": SPACE,
                "workbookId": WORKBOOK,
            },
            payload={"compat": True},
        )
        expect(r.data.id, "id")
        self.made["event"] = r.data.id

    async def events_get(self) -> None:
        r = await self.client.events.get(self.made["event"])
        expect(r.data.id == self.made["event"], "id")

    async def events_ack(self) -> None:
        r = await self.client.events.ack(self.made["event"])
        expect(r.data is None or r.data.success is True, "success")

    async def events_list(self) -> None:
        # Last: every event the calls above made the emulator emit (job, record, sheet,
        # workbook, file, document, commit topics) must parse.
        r = await self.client.events.list(
            environment_id=ENV, include_acknowledged=True, page_size=1000
        )
        expect(len(r.data) > 10, "the events emitted")

    async def events_list_space(self) -> None:
        r = await self.client.events.list(environment_id=ENV, space_id=SPACE, domain="job")
        expect(isinstance(r.data, list), "list")

    async def subscription(self) -> None:
        r = await self.client.events.get_event_token(scope=ENV)
        expect(r.data is not None and r.data.token, "a token")

    async def subscription_space(self) -> None:
        r = await self.client.events.get_event_token(scope=SPACE, space_id=SPACE)
        expect(r.data is not None and r.data.subscribe_key, "a subscribe key")

    async def secrets_list(self) -> None:
        r = await self.client.secrets.list(environment_id=ENV, space_id=SPACE)
        expect(isinstance(r.data, list), "list")

    def plan(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        return [
            ("records.get", self.records_get),
            ("records.get(all, messages)", self.records_get_all),
            ("records.get(ids)", self.records_get_ids),
            ("records.get(sinceCommitId)", self.records_get_since),
            ("records.get(filter=error)", self.records_get_errors),
            ("records.insert", self.records_insert),
            ("records.update", self.records_update),
            ("records.update(unchanged)", self.records_update_unchanged),
            ("records.delete", self.records_delete),
            ("sheets.list", self.sheets_list),
            ("sheets.get", self.sheets_get),
            ("sheets.get_record_counts", self.sheets_counts),
            ("sheets.get_records_as_csv", self.sheets_download),
            ("workbooks.list", self.workbooks_list),
            ("workbooks.get", self.workbooks_get),
            ("workbooks.create", self.workbooks_create),
            ("workbooks.update", self.workbooks_update),
            ("workbooks.delete", self.workbooks_delete),
            ("files.upload", self.files_upload),
            ("files.upload(export)", self.files_upload_export),
            ("files.list", self.files_list),
            ("files.get", self.files_get),
            ("files.download", self.files_download),
            ("files.delete", self.files_delete),
            ("spaces.list", self.spaces_list),
            ("spaces.get", self.spaces_get),
            ("spaces.update", self.spaces_update),
            ("documents.list", self.documents_list),
            ("documents.get", self.documents_get),
            ("documents.create", self.documents_create),
            ("documents.update", self.documents_update),
            ("jobs.get", self.jobs_get),
            ("jobs.ack", self.jobs_ack),
            ("jobs.ack(no body)", self.jobs_ack_bare),
            ("jobs.update", self.jobs_update),
            ("jobs.complete", self.jobs_complete),
            ("jobs.ack_outcome", self.jobs_ack_outcome),
            ("jobs.list", self.jobs_list),
            ("jobs.create", self.jobs_create),
            ("jobs.execute", self.jobs_execute),
            ("jobs.fail", self.jobs_fail),
            ("jobs.retry", self.jobs_retry),
            ("jobs.cancel", self.jobs_cancel),
            ("jobs.delete", self.jobs_delete),
            ("jobs.split", self.jobs_split),
            ("events.create", self.events_create),
            ("events.get", self.events_get),
            ("events.ack", self.events_ack),
            ("events.list(space, domain)", self.events_list_space),
            ("events.get_event_token", self.subscription),
            ("events.get_event_token(space)", self.subscription_space),
            ("secrets.list", self.secrets_list),
            ("events.list(all emitted)", self.events_list),
        ]


async def main() -> tuple[int, int]:
    """Run every check: (passed, failed)."""
    # -X dev turns on asyncio's debug mode, which logs every step over 0.1 s: the SDK takes
    # longer than that to parse a page. Keep the mode's other checks, without that noise.
    asyncio.get_running_loop().slow_callback_duration = 60.0
    # AsyncFlatfile never closes the httpx client it creates (a ResourceWarning, an error
    # here): pass our own and close it. With one, the SDK's 60 s default timeout is not
    # applied, so pass timeout= as well.
    async with httpx.AsyncClient(timeout=30) as http:
        client = AsyncFlatfile(token=TOKEN, base_url=BASE, httpx_client=http, timeout=30)
        plan = Checks(client).plan()
        failed = 0
        for name, call in plan:
            try:
                await call()
            except Exception as exc:  # report everything, go on with the next call
                failed += 1
                print(f"FAIL {name}: {type(exc).__name__}: {str(exc)[:2000]}", flush=True)
                if os.environ.get("COMPAT_VERBOSE"):
                    traceback.print_exc()
            else:
                print(f"ok   {name}", flush=True)
    return len(plan) - failed, failed


UNRAISABLE: list[str] = []


def unraisable(info: Any) -> None:
    """A warning or error raised where it cannot propagate (an unclosed socket's
    ResourceWarning in a finalizer) is counted as a failure, not only printed."""
    UNRAISABLE.append(f"{info.exc_type.__name__}: {info.exc_value} ({info.object!r:.200})")


if __name__ == "__main__":
    if not sys.warnoptions:
        warnings.simplefilter("error")  # any warning from the SDK fails the check
    sys.unraisablehook = unraisable
    passed, failed = asyncio.run(main())
    gc.collect()
    for problem in UNRAISABLE:
        print(f"FAIL clean exit: {problem}", flush=True)
    if UNRAISABLE:
        failed += 1
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
