"""The data endpoints of the client against real local servers: exact wire form, records a
handler edits, paging, uploads and downloads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flatjobs import FlatfileAPIError, FlatfileClient, Record
from flatjobs.client import RetryPolicy
from flatjobs.models import (
    DocumentConfig,
    Field,
    MessageType,
    SheetConfig,
    SpaceConfig,
    WorkbookConfig,
    WorkbookUpdate,
    to_wire,
)

from .conftest import TOKEN, RecordingServer

SHEET = "us_sh_1"


def record(n: int, **values: Any) -> dict[str, Any]:
    return {"id": f"us_rc_{n}", "values": {k: {"value": v} for k, v in values.items()}}


def records_answer(records: list[dict[str, Any]], total: int | None = None) -> tuple[int, Any]:
    data: dict[str, Any] = {"success": True, "records": records}
    if total is not None:
        data["counts"] = {"total": total, "valid": total, "error": 0}
    return (200, {"data": data})


# ------------------------------------------------------------------ records: reading


async def test_get_sends_the_documented_query_with_repeated_ids_and_fields(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script.append(records_answer([record(1, email="a@b.c")]))
    page = await rclient.records.get(
        SHEET,
        page_size=50,
        page_number=2,
        filter="error",
        filter_field="email",
        ids=["us_rc_1", "us_rc_2"],
        fields=["email", "name"],
        include_messages=True,
        since_commit_id="us_vr_1",
        for_event="us_evt_1",
        sort_direction="desc",
    )
    request = recorder.requests[0]
    assert (request.method, request.path) == ("GET", f"/v1/sheets/{SHEET}/records")
    assert request.raw_query == (
        "pageSize=50&pageNumber=2&filter=error&filterField=email&ids=us_rc_1&ids=us_rc_2"
        "&sortDirection=desc&fields=email&fields=name&includeMessages=true"
        "&sinceCommitId=us_vr_1&for=us_evt_1"
    )
    assert [r["email"] for r in page] == ["a@b.c"]


async def test_more_than_a_hundred_ids_is_refused_before_sending(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    with pytest.raises(ValueError, match="at most 100 ids"):
        await rclient.records.get(SHEET, ids=[f"us_rc_{n}" for n in range(101)])
    assert recorder.requests == []


async def test_pages_end_at_the_length_the_first_page_reports(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script += [
        records_answer([record(n) for n in range(3)], total=7),
        records_answer([record(n) for n in range(3, 6)]),
        records_answer([record(6)]),
    ]
    pages = [page async for page in rclient.records.pages(SHEET, page_size=3)]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [r.query.get("pageNumber") for r in recorder.requests] == ["1", "2", "3"]
    assert recorder.requests[0].query["includeLength"] == "true"


async def test_pages_end_at_an_empty_page_when_no_length_is_reported(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script += [records_answer([record(1), record(2)]), records_answer([])]
    ids = [r.id async for r in rclient.records.iterate(SHEET, page_size=2)]
    assert ids == ["us_rc_1", "us_rc_2"]
    assert len(recorder.requests) == 2


# ------------------------------------------------------------------ the Record


def test_a_record_reads_and_sets_values_and_tracks_only_what_changed() -> None:
    rec = Record(record(1, email=" A@B.C ", name="Ann", age=30))
    assert rec["email"] == " A@B.C "
    assert rec.get("missing", "-") == "-"
    with pytest.raises(KeyError):
        rec["missing"]
    assert not rec.changed
    rec["name"] = "Ann"  # the same value: not a change
    assert rec.changes() is None
    rec["email"] = "a@b.c"
    rec.error("age", "Too old")
    rec.warn("name", "Check the spelling")
    rec.metadata = {"checked": True}
    assert rec.changes() == {
        "id": "us_rc_1",
        "values": {
            "email": {"value": "a@b.c"},
            "age": {
                "messages": [{"type": "error", "message": "Too old", "source": "custom-logic"}]
            },
            "name": {
                "messages": [
                    {"type": "warn", "message": "Check the spelling", "source": "custom-logic"}
                ]
            },
        },
        "metadata": {"checked": True},
    }
    assert not rec.is_valid("age")
    assert rec.is_valid("email")
    assert sorted(str(m.type) for m in rec.messages()) == [MessageType.ERROR, MessageType.WARN]
    assert rec.messages("age")[0].field == "age"


def test_a_handlers_new_messages_replace_its_earlier_ones_and_keep_the_platforms() -> None:
    raw = record(1, email="")
    raw["values"]["email"]["messages"] = [
        {"type": "error", "message": "Email is required", "source": "required-constraint"},
        {"type": "error", "message": "old custom", "source": "custom-logic"},
    ]
    rec = Record(raw)
    rec.warn("email", "new custom")
    assert [m.message for m in rec.messages("email")] == ["Email is required", "new custom"]
    change = rec.changes()
    assert change is not None
    assert change["values"]["email"]["messages"] == [
        {"type": "warn", "message": "new custom", "source": "custom-logic"}
    ]


def _messaged(**cells: list[dict[str, Any]]) -> dict[str, Any]:
    """A record read with its messages: each cell ``{value, messages}``."""
    values = {key: {"value": key, "messages": found} for key, found in cells.items()}
    return {"id": "us_rc_1", "values": values}


REQUIRED = {"type": "error", "message": "Email is required", "source": "required-constraint"}
STALE = {"type": "error", "message": "not an email", "source": "custom-logic"}


def test_clearing_messages_sends_only_the_cells_that_held_a_handlers_message() -> None:
    other = {"type": "warn", "message": "unverified", "source": "lookup"}
    rec = Record(_messaged(email=[REQUIRED, STALE], name=[], age=[other], tags=[REQUIRED]))
    rec.clear_messages()
    assert [m.message for m in rec.messages()] == ["Email is required", "Email is required"]
    assert rec.changes() == {
        "id": "us_rc_1",
        "values": {"email": {"messages": []}, "age": {"messages": []}},
    }
    rec = Record(_messaged(email=[REQUIRED, STALE], name=[STALE]))
    rec.clear_messages("name")  # one cell
    assert rec.changes() == {"id": "us_rc_1", "values": {"name": {"messages": []}}}
    assert [m.message for m in rec.messages("email")] == ["Email is required", "not an email"]


def test_clearing_a_cell_with_no_messages_or_writing_back_the_same_is_no_change() -> None:
    rec = Record(_messaged(email=[REQUIRED], name=[]))
    rec.clear_messages()
    assert not rec.changed
    assert rec.changes() is None
    rec = Record(_messaged(email=[STALE]))
    rec.clear_messages("email")
    assert rec.changes() == {"id": "us_rc_1", "values": {"email": {"messages": []}}}
    rec.error("email", "not an email")  # what the cell held: nothing to send
    assert not rec.changed
    assert rec.changes() is None
    rec.warn("email", "and a warning")
    warning = {"type": "warn", "message": "and a warning", "source": "custom-logic"}
    assert rec.changes() == {"id": "us_rc_1", "values": {"email": {"messages": [STALE, warning]}}}


def test_a_new_message_keeps_the_cells_messages_of_other_sources() -> None:
    other = {"type": "warn", "message": "unverified", "source": "lookup"}
    rec = Record(_messaged(email=[REQUIRED, STALE, other]))
    rec.error("email", "bounced")
    bounced = {"type": "error", "message": "bounced", "source": "custom-logic"}
    # The messages sent replace what the cell holds: the other source's go along.
    assert rec.changes() == {"id": "us_rc_1", "values": {"email": {"messages": [other, bounced]}}}


def test_clearing_a_cell_read_without_its_messages_sends_it() -> None:
    rec = Record(record(1, email="x", name="y"))  # read without include_messages
    rec.clear_messages("email")
    assert rec.changes() == {"id": "us_rc_1", "values": {"email": {"messages": []}}}


@pytest.mark.parametrize("bad", [None, 5, [], {"values": {}}, {"id": 7}])
def test_a_record_that_is_not_a_record_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="a record is an object with a string id"):
        Record(bad)


def test_unknown_cell_shapes_and_fields_are_kept() -> None:
    raw = {
        "id": "us_rc_1",
        "values": {"geo": {"value": {"lat": 1}, "layer": "x"}, "odd": 5},
        "config": {"readonly": True},
        "mystery": [1],
    }
    rec = Record(raw)
    assert rec["geo"] == {"lat": 1}
    assert rec["odd"] is None
    assert rec.raw["mystery"] == [1]
    assert rec.cell("geo").extra == {}
    assert rec.cell("geo").layer == "x"


async def test_a_page_saves_only_the_changed_records_in_one_call(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script += [
        records_answer([record(1, email="a"), record(2, email="b"), record(3, email="c")]),
        (200, {"data": {"versionId": "us_vr_9", "commitId": "us_vr_9"}}),
    ]
    page = await rclient.records.get(SHEET)
    page[1]["email"] = "B"
    result = await page.save()
    assert result.updated == 1
    assert result.version_id == "us_vr_9"
    assert recorder.requests[-1].method == "PUT"
    assert recorder.requests[-1].json == [{"id": "us_rc_2", "values": {"email": {"value": "B"}}}]
    assert not page[1].changed  # saved
    assert (await page.save()).updated == 0  # nothing left to send: no call
    assert len(recorder.requests) == 2


async def test_a_304_not_modified_is_a_result_not_an_error(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script.append((304, None))
    result = await rclient.records.update(SHEET, [{"id": "us_rc_1", "values": {}}])
    assert result.not_modified


async def test_the_version_and_commit_a_record_was_read_at_go_back_with_its_update(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.responder = lambda r: (200, {"data": {"versionId": "us_vr_9", "commitId": "us_vr_9"}})
    read = Record({**record(1, email="a"), "versionId": "us_vr_1", "commitId": "us_vr_2"})
    bare = Record(record(2, email="b"))
    read["email"], bare["email"] = "A", "B"
    given = {"id": "us_rc_3", "values": {}, "versionId": "us_vr_3", "commitId": "us_vr_4"}
    await rclient.records.update(SHEET, [read, bare, given])
    sent = {"id": "us_rc_1", "values": {"email": {"value": "A"}}}
    assert recorder.requests[-1].json == [
        {**sent, "versionId": "us_vr_1", "commitId": "us_vr_2"},
        {"id": "us_rc_2", "values": {"email": {"value": "B"}}},  # read without: none sent
        given,
    ]


async def test_insert_sends_values_as_cells(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script.append(records_answer([record(1, email="a")]))
    page = await rclient.records.insert(
        SHEET, [{"email": "a", "age": 3}, {"email": {"value": "b", "messages": []}}]
    )
    assert recorder.requests[0].json == [
        {"email": {"value": "a"}, "age": {"value": 3}},
        {"email": {"value": "b", "messages": []}},
    ]
    assert page[0].id == "us_rc_1"


async def test_delete_goes_by_a_hundred_ids_a_call(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.responder = lambda r: (200, {"data": {"success": True}})
    deleted = await rclient.records.delete(SHEET, [f"us_rc_{n}" for n in range(250)])
    assert deleted == 250
    sizes = [r.raw_query.count("ids=") for r in recorder.requests]
    assert sizes == [100, 100, 50]
    assert {r.method for r in recorder.requests} == {"DELETE"}


# ------------------------------------------------------------------ sheets, workbooks, spaces


async def test_sheets_workbooks_spaces_and_documents_send_the_documented_calls(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    sheet = {
        "id": SHEET,
        "workbookId": "us_wb_1",
        "name": "C",
        "slug": "c",
        "config": {"name": "C", "fields": [{"key": "x", "type": "geo-point"}]},
    }
    workbook = {"id": "us_wb_1", "spaceId": "us_sp_1", "environmentId": "us_env_1"}
    space = {"id": "us_sp_1", "name": "S"}
    document = {"id": "us_dc_1", "title": "T", "body": "B"}
    recorder.script += [
        (200, {"data": [sheet]}),
        (200, {"data": sheet}),
        (200, {"data": {"counts": {"total": 3, "valid": 2, "error": 1}, "success": True}}),
        (200, {"data": [workbook]}),
        (200, {"data": workbook}),
        (200, {"data": workbook}),
        (200, {"data": workbook}),
        (200, {"data": [space], "pagination": {"currentPage": 1}}),
        (200, {"data": space}),
        (200, {"data": [document]}),
        (200, {"data": document}),
    ]
    assert (await rclient.sheets.list("us_wb_1"))[0].config is not None
    got = await rclient.sheets.get(SHEET)
    assert got.config is not None
    assert got.config.fields[0].type == "geo-point"  # an unknown field type is kept
    counts = await rclient.sheets.counts(SHEET, filter="error")
    assert (counts.total, counts.error) == (3, 1)
    await rclient.workbooks.list(space_id="us_sp_1")
    config = WorkbookConfig(name="W", sheets=[SheetConfig(name="C", fields=[Field(key="x")])])
    await rclient.workbooks.create(config)
    await rclient.workbooks.get("us_wb_1")
    await rclient.workbooks.update("us_wb_1", WorkbookUpdate(name="W2"))
    assert [s.id for s in await rclient.spaces.list()] == ["us_sp_1"]
    await rclient.spaces.update("us_sp_1", SpaceConfig(metadata={"k": 1}))
    await rclient.documents.list("us_sp_1")
    await rclient.documents.get("us_sp_1", "us_dc_1")
    assert [(r.method, r.path, r.raw_query) for r in recorder.requests] == [
        ("GET", "/v1/sheets", "workbookId=us_wb_1"),
        ("GET", f"/v1/sheets/{SHEET}", ""),
        ("GET", f"/v1/sheets/{SHEET}/counts", "filter=error"),
        ("GET", "/v1/workbooks", "spaceId=us_sp_1"),
        ("POST", "/v1/workbooks", ""),
        ("GET", "/v1/workbooks/us_wb_1", ""),
        ("PATCH", "/v1/workbooks/us_wb_1", ""),
        ("GET", "/v1/spaces", "environmentId=us_env_1"),
        ("PATCH", "/v1/spaces/us_sp_1", ""),
        ("GET", "/v1/spaces/us_sp_1/documents", ""),
        ("GET", "/v1/spaces/us_sp_1/documents/us_dc_1", ""),
    ]
    assert recorder.requests[4].json == to_wire(config)


# What the platform may send that flatjobs does not know: a field type, enum values, keys.
ACTION = {
    "label": "Go",
    "operation": "go",
    "mode": "sidebar",
    "guardrail": {"level": 2},
    "constraints": [{"type": "hasNoErrors"}],
    "mount": {"type": "panel"},
}
UNKNOWN_FIELD = {
    "key": "where",
    "type": "geo-point",
    "config": {"precision": 7, "options": [{"value": "x", "swatch": "teal"}]},
    "constraints": [{"type": "stored", "validator": "geo", "version": 3, "futureFlag": True}],
    "appearance": {"size": "xxl"},
    "xFutureFieldKey": [1, 2],
}
SHEET_CONFIG = {
    "name": "Places",
    "slug": "places",
    "fields": [UNKNOWN_FIELD],
    "actions": [ACTION],
    "mappingConfidenceThreshold": 0.7,
    "treatments": ["SOMETHING_NEW"],
}
SHEET_READ = {
    "id": SHEET,
    "workbookId": "us_wb_1",
    "name": "Places",
    "slug": "places",
    "config": SHEET_CONFIG,
    "collection": "geo",
    "createdFrom": "us_sh_0",
}
WORKBOOK_READ = {
    "id": "us_wb_1",
    "spaceId": "us_sp_1",
    "environmentId": "us_env_1",
    "name": "W",
    "sheets": [SHEET_READ],
    "actions": [ACTION],
    "settings": {"trackChanges": True, "autoRunAnalysis": False, "newSetting": "on"},
    "treatments": ["SMALL_DATA", "BRAND_NEW"],
    "folder": "f1",
}
FILE_READ = {
    "id": "us_fl_1",
    "name": "a.csv",
    "ext": "csv",
    "status": "quarantined",
    "mode": "archive",
    "origin": "dropbox",
    "actions": [ACTION],
    "treatments": ["IS_NEW_SHAPE"],
    "scanResult": {"clean": True},
}
SPACE_READ = {
    "id": "us_sp_1",
    "name": "S",
    "guestAuthentication": ["sso_link"],
    "actions": [ACTION],
    "settings": {"sidebarConfig": {"showDataChecklist": True}},
    "access": ["*", "review"],
    "languageOverride": "fr",
}


async def _sheet_back(client: FlatfileClient) -> None:
    sheet = await client.sheets.get(SHEET)  # a sheet's config goes back through its workbook
    assert sheet.config is not None
    assert sheet.workbook_id is not None
    await client.workbooks.update(sheet.workbook_id, WorkbookUpdate(sheets=[sheet.config]))


async def _workbook_back(client: FlatfileClient) -> None:
    workbook = await client.workbooks.get("us_wb_1")
    update = WorkbookUpdate(
        name=workbook.name,
        actions=workbook.actions,
        settings=workbook.settings,
        sheets=[s.config for s in workbook.sheets or [] if s.config is not None],
        extra={"treatments": workbook.extra["treatments"], "folder": workbook.extra["folder"]},
    )
    await client.workbooks.update(workbook.id, update)


async def _file_back(client: FlatfileClient) -> None:
    file = await client.files.get("us_fl_1")
    await client.files.update(file.id, mode=file.mode, status=file.status, actions=file.actions)


async def _space_back(client: FlatfileClient) -> None:
    space = await client.spaces.get("us_sp_1")
    config = SpaceConfig(
        name=space.name,
        actions=space.actions,
        settings=space.settings,
        extra={"guestAuthentication": space.guest_authentication, "access": space.extra["access"]},
    )
    await client.spaces.update(space.id, config)


@pytest.mark.parametrize(
    ("read", "write_back", "path", "received"),
    [
        (SHEET_READ, _sheet_back, "/v1/workbooks/us_wb_1", {"sheets": [SHEET_CONFIG]}),
        (WORKBOOK_READ, _workbook_back, "/v1/workbooks/us_wb_1",
         {k: WORKBOOK_READ[k] for k in ("name", "actions", "settings", "treatments", "folder")}
         | {"sheets": [SHEET_CONFIG]}),
        (FILE_READ, _file_back, "/v1/files/us_fl_1",
         {"mode": "archive", "status": "quarantined", "actions": [ACTION]}),
        (SPACE_READ, _space_back, "/v1/spaces/us_sp_1",
         {k: SPACE_READ[k] for k in ("name", "actions", "settings", "guestAuthentication",
                                     "access")}),
    ],
    ids=["sheet", "workbook", "file", "space"],
)  # fmt: skip
async def test_what_a_model_does_not_know_is_written_back_unchanged(
    recorder: RecordingServer,
    rclient: FlatfileClient,
    read: dict[str, Any],
    write_back: Any,
    path: str,
    received: dict[str, Any],
) -> None:
    recorder.script += [(200, {"data": read}), (200, {"data": read})]
    await write_back(rclient)
    get, update = recorder.requests
    assert get.method == "GET"
    assert (update.method, update.path) == ("PATCH", path)
    assert update.json == received  # the unknown parts exactly as the server sent them


# ------------------------------------------------------------------ files: multipart and streams


class FileServer:
    """Takes uploads (multipart, as the platform parses them) and serves downloads."""

    def __init__(self) -> None:
        self.uploads: list[dict[str, Any]] = []
        self.fail_next = 0
        self.url = ""

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"errors": [{"message": "busy"}]}, status=503)
        part = form["file"]
        assert isinstance(part, web.FileField)
        self.uploads.append(
            {
                "fields": {k: v for k, v in form.items() if isinstance(v, str) and k != "actions"},
                "actions": [json.loads(str(a)) for a in form.getall("actions", [])],
                "name": part.filename,
                "type": part.content_type,
                "content": part.file.read(),
            }
        )
        return web.json_response({"data": {"id": "us_fl_1", "name": part.filename}})

    async def download(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/csv"})
        await response.prepare(request)
        for n in range(100):
            await response.write(f"row {n},{'x' * 1000}\n".encode())
        await response.write_eof()
        return response


@pytest.fixture
async def files() -> AsyncIterator[FileServer]:
    server_files = FileServer()
    app = web.Application()
    app.router.add_post("/v1/files", server_files.upload)
    app.router.add_get("/v1/files/{file_id}/download", server_files.download)
    app.router.add_get("/v1/sheets/{sheet_id}/download", server_files.download)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    server_files.url = str(server.make_url("")).rstrip("/")
    yield server_files
    await server.close()


async def test_an_upload_from_bytes_a_path_or_a_stream_is_multipart(
    files: FileServer, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"email\na@b.c\n")

    async def stream() -> AsyncIterator[bytes]:
        yield b"email\n"
        yield b"x@y.z\n"

    async with FlatfileClient(files.url, TOKEN, environment_id="us_env_1") as client:
        await client.files.upload(
            b"a,b\n",
            space_id="us_sp_1",
            name="e.csv",
            mode="export",
            actions=[{"label": "Go", "operation": "go"}],
        )
        await client.files.upload(path, space_id="us_sp_1")
        await client.files.upload(stream(), space_id="us_sp_1", name="s.csv")
    first, second, third = files.uploads
    assert first["fields"] == {"spaceId": "us_sp_1", "environmentId": "us_env_1", "mode": "export"}
    assert first["actions"] == [{"label": "Go", "operation": "go"}]
    assert (first["name"], first["type"], first["content"]) == ("e.csv", "text/csv", b"a,b\n")
    assert (second["name"], second["content"]) == ("contacts.csv", b"email\na@b.c\n")
    assert third["content"] == b"email\nx@y.z\n"


async def test_an_upload_is_retried_only_when_it_can_be_sent_again(files: FileServer) -> None:
    async def stream() -> AsyncIterator[bytes]:
        yield b"once"

    policy = RetryPolicy(attempts=3)
    async with FlatfileClient(files.url, TOKEN, environment_id="e", retry=policy) as client:
        files.fail_next = 1
        await client.files.upload(b"again", space_id="s", name="a.txt")  # retried: it lands
        files.fail_next = 1
        with pytest.raises(FlatfileAPIError, match="503"):
            await client.files.upload(stream(), space_id="s", name="b.txt")
    assert [u["content"] for u in files.uploads] == [b"again"]


async def test_downloads_stream_in_chunks(files: FileServer) -> None:
    async with FlatfileClient(files.url, TOKEN, environment_id="e") as client:
        async with client.files.download("us_fl_1") as chunks:
            body = b"".join([chunk async for chunk in chunks])
        async with client.sheets.download(SHEET) as chunks:
            sheet_body = b"".join([chunk async for chunk in chunks])
    assert body.count(b"\n") == 100
    assert sheet_body == body


async def test_a_bytes_upload_needs_a_name(files: FileServer) -> None:
    async with FlatfileClient(files.url, TOKEN, environment_id="e") as client:
        with pytest.raises(ValueError, match="name the file"):
            await client.files.upload(b"x", space_id="s")
    assert files.uploads == []


SEED = {"workbooks": [{"name": "W", "sheets": [{"name": "S", "slug": "s", "fields": [{"key": "n"}],
                                               "records": [{"n": str(i)} for i in range(50)]}]}]}  # fmt: skip


async def test_a_loop_left_early_does_not_reopen_a_closed_client() -> None:
    from flatjobs.emulator import Emulator
    from flatjobs.testing import client_for

    async with Emulator(seed=SEED) as emu:
        sheet_id = emu.sheet("s").id
        async with client_for(emu) as client:
            async for _ in client.records.iterate(sheet_id, page_size=10):
                break  # the generator stays suspended, its read-ahead scheduled
        await asyncio.sleep(0.1)  # the read-ahead runs, after the close
        assert client._session is None  # it did not open a pool nobody closes
        with pytest.raises(RuntimeError, match="this FlatfileClient is closed"):
            await client.sheets.get(sheet_id)
        async with client:  # entering it again opens it again
            assert (await client.sheets.get(sheet_id)).id == sheet_id


async def test_files_a_space_documents_and_a_workbook_deletion_reach_the_emulator() -> None:
    from flatjobs.emulator import Emulator
    from flatjobs.testing import client_for

    async with Emulator(seed=SEED) as emu, client_for(emu) as client:
        workbook = emu.workbook("W")
        space_id = workbook.space_id
        assert space_id is not None
        content = b"n\n1\n"
        made = await client.files.upload(content, space_id=space_id, name="e.csv", mode="export")
        got = await client.files.get(made.id)
        assert (got.id, got.name, got.mode, got.size) == (made.id, "e.csv", "export", len(content))
        listed = await client.files.list(space_id=space_id, mode="export")
        assert [f.id for f in listed] == [made.id]
        assert listed.pagination is not None
        assert listed.pagination.total_count == 1
        renamed = await client.files.update(made.id, name="out.csv", status="complete")
        assert (renamed.name, renamed.status) == ("out.csv", "complete")
        assert emu.file(made.id).name == "out.csv"
        await client.files.delete(made.id)
        assert made.id not in emu.data.files
        assert len(await client.files.list(space_id=space_id, mode="export")) == 0

        space = await client.spaces.get(space_id)
        assert space == emu.space(space_id)

        document = await client.documents.create(
            space_id, DocumentConfig(title="Hello", body="<p>hi</p>")
        )
        assert [(d.id, d.title) for d in emu.documents(space_id)] == [(document.id, "Hello")]
        updated = await client.documents.update(
            space_id, document.id, DocumentConfig(title="Bye", body="<p>bye</p>")
        )
        assert (updated.title, updated.body) == ("Bye", "<p>bye</p>")
        [stored] = emu.documents(space_id)
        assert (stored.id, stored.title, stored.body) == (document.id, "Bye", "<p>bye</p>")

        sheet_id = emu.sheet("s").id
        await client.workbooks.delete(workbook.id)
        assert workbook.id not in emu.data.workbooks
        assert sheet_id not in emu.data.sheets  # its sheets went with it
        with pytest.raises(FlatfileAPIError) as gone:
            await client.workbooks.get(workbook.id)
        assert gone.value.status == 404


async def test_a_cleared_message_leaves_the_sheet_once_saved() -> None:
    from flatjobs.emulator import Emulator
    from flatjobs.testing import client_for

    async with Emulator(seed=SEED) as emu, client_for(emu) as client:
        sheet_id = emu.sheet("s").id
        page = await client.records.get(sheet_id, page_size=3, include_messages=True)
        page[0].error("n", "Too small")
        page[1].warn("n", "Check it")
        await page.save()
        assert (emu.counts("s").error, emu.counts("s").valid) == (1, 49)
        page = await client.records.get(sheet_id, page_size=3, include_messages=True)
        for record in page:
            record.clear_messages()
        assert [r.changed for r in page] == [True, True, False]  # the third held none
        result = await page.save()
        assert result.updated == 2
        assert (emu.counts("s").error, emu.counts("s").valid) == (0, 50)
        assert not any(r["values"]["n"].get("messages") for r in emu.records("s"))
