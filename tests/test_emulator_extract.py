"""The emulator does what the platform does for space configuration and file extraction:
``autoConfigure`` creates the ``space:configure`` job; ``GET /v1/entitlements`` and ``POST
/v1/files/detect-header`` answer as Flatfile's types say; an extractor's job is executed with
the context it reads; records come in as extractors write them. All through real HTTP."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from flatjobs.emulator import Emulator, EmulatorError
from flatjobs.emulator._data._extraction import letters


@pytest.fixture
async def http(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {emu.token}", "X-Disable-Hooks": "true"}
    async with aiohttp.ClientSession(base_url=emu.url, headers=headers) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,
    *,
    params: dict[str, str] | None = None,
    status: int = 200,
) -> Any:
    """The ``data`` of an answer with ``status`` (or the whole error body)."""
    async with http.request(method, f"/v1{path}", json=body, params=params) as response:
        answer = await response.json()
        assert response.status == status, answer
        return answer["data"] if status == 200 else answer


def topics_since(emu: Emulator, start: int) -> list[str]:
    return [e["topic"] for e in emu.events[start:]]


# ------------------------------------------------------------ space:configure


async def test_a_space_created_with_auto_configure_gets_its_configure_job(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    start = len(emu.events)
    space = await call(http, "POST", "/spaces", {"name": "Onboarding", "autoConfigure": True})
    assert topics_since(emu, start) == ["space:created", "job:created", "job:ready"]
    [job] = [j for j in emu.jobs() if j.source == space["id"]]
    assert (str(job.type), job.operation, job.job_name, str(job.status)) == (
        "space",
        "configure",
        "space:configure",
        "ready",
    )
    ready = emu.events[-1]
    assert ready["payload"]["job"] == "space:configure"  # what configureSpace's filter reads
    assert ready["payload"]["operation"] == "configure"
    assert ready["context"]["spaceId"] == space["id"]
    assert ready["context"]["jobId"] == job.id
    assert ready["context"]["environmentId"] == emu.environment_id
    # Without it, or false, no job; a seeded space is as it already was.
    before = len(emu.jobs())
    await call(http, "POST", "/spaces", {"name": "Plain"})
    await call(http, "POST", "/spaces", {"name": "Off", "autoConfigure": False})
    emu.seed({"spaces": [{"name": "Seeded", "autoConfigure": True}]})
    assert len(emu.jobs()) == before
    error = await call(http, "POST", "/spaces", {"autoConfigure": "yes"}, status=400)
    assert error["errors"][0]["key"] == "autoConfigure"


# ------------------------------------------------------------ entitlements


async def test_entitlements_answer_what_a_resource_was_given(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    space_id = emu.seed({"spaces": [{"name": "S"}]}).spaces["S"]
    assert await call(http, "GET", "/entitlements", params={"resourceId": space_id}) == []
    emu.set_entitlements(
        "S",
        [{"key": "headerSelection"}, {"key": "customRecordsPageSize", "metadata": {"pageSize": 2}}],
    )
    assert await call(http, "GET", "/entitlements", params={"resourceId": space_id}) == [
        {"key": "headerSelection"},
        {"key": "customRecordsPageSize", "metadata": {"pageSize": 2}},
    ]
    error = await call(http, "GET", "/entitlements", status=400)
    assert error["errors"][0]["key"] == "resourceId"
    for unknown in ("us_sp_nope", "a/../b", "x" * 5000):
        error = await call(http, "GET", "/entitlements", params={"resourceId": unknown}, status=404)
        assert error["errors"][0]["key"] == "resourceId"
    with pytest.raises(LookupError):
        emu.set_entitlements("nope", [])
    with pytest.raises(EmulatorError, match="key is required"):
        emu.set_entitlements("S", [{"metadata": {}}])


# ------------------------------------------------------------ detect-header


async def detect(http: aiohttp.ClientSession, options: dict[str, Any], data: Any) -> Any:
    return await call(http, "POST", "/files/detect-header", {"options": options, "data": data})


async def test_the_default_detection_takes_the_fullest_of_the_first_rows(
    http: aiohttp.ClientSession,
) -> None:
    # What Flatfile's xlsx extractor sends: a title row, the header, data, a blank row as [].
    rows = [
        ["Quarterly contacts", "", "", ""],
        ["Name", "Joined", "Score", "Name"],
        ["Ada", "1/15/24", "1,234.50", "A."],
        [],
        ["Alan", "", "42", "T."],
    ]
    assert await detect(http, {"algorithm": "default"}, rows) == {
        "header": ["Name", "Joined", "Score", "Name"],
        "headerRow": 2,  # rows to skip: the data is data[headerRow:]
        "letters": ["A", "B", "C", "D"],
    }
    # A tie goes to the earliest row; aiDetection (Flatfile's own, not public) answers alike.
    tie = [["a", "b"], ["c", "d"]]
    for algorithm in ("default", "aiDetection"):
        assert (await detect(http, {"algorithm": algorithm}, tie))["headerRow"] == 1
    # rowsToSearch rows, and the one after (as Flatfile's code reads them).
    widening = [["x"] * n for n in range(1, 30)]
    assert (await detect(http, {"algorithm": "default"}, widening))["headerRow"] == 11
    found = await detect(http, {"algorithm": "default", "rowsToSearch": 2}, widening)
    assert found["headerRow"] == 3


async def test_detection_takes_ragged_empty_and_typed_rows(http: aiohttp.ClientSession) -> None:
    assert await detect(http, {"algorithm": "default"}, []) == {
        "header": [],
        "headerRow": 0,
        "letters": [],
    }
    assert (await detect(http, {"algorithm": "default"}, [[], [""], ["  "]]))["headerRow"] == 0
    ragged = [["a"], ["1", "2", "3"], ["4", "5"]]
    assert (await detect(http, {"algorithm": "default"}, ragged))["header"] == ["1", "2", "3"]
    typed = [[None, 1, 2.5, True], ["a", "b", "c", "d"]]
    found = await detect(http, {"algorithm": "default"}, typed)
    assert found["header"] == ["a", "b", "c", "d"]
    first = await detect(http, {"algorithm": "explicitHeaders", "headers": ["h"]}, typed)
    assert first["headerRow"] == 0
    wide = await detect(http, {"algorithm": "default"}, [[f"c{i}" for i in range(800)]])
    assert wide["letters"][:2] == ["A", "B"]
    assert wide["letters"][25:28] == ["Z", "AA", "AB"]
    assert wide["letters"][-1] == letters(800)[-1] == "ADT"


async def test_explicit_and_specific_rows_headers(http: aiohttp.ClientSession) -> None:
    assert await detect(
        http, {"algorithm": "explicitHeaders", "headers": ["A1", "B1"], "skip": 1}, [["x", "y"]]
    ) == {"header": ["A1", "B1"], "headerRow": 1, "letters": ["A", "B"]}
    rows = [["top", ""], ["group", "sub"], ["1", "2"]]
    assert await detect(http, {"algorithm": "specificRows", "rowNumbers": [0, 1]}, rows) == {
        "header": ["top group", "sub"],
        "headerRow": 2,
        "letters": ["A", "B"],
    }
    found = await detect(
        http, {"algorithm": "specificRows", "rowNumbers": [1], "skip": 0}, [["a"], ["b"]]
    )
    assert (found["header"], found["headerRow"]) == (["b"], 0)
    # A later row shorter than the header adds nothing to the cells it lacks.
    short = await detect(
        http, {"algorithm": "specificRows", "rowNumbers": [0, 1]}, [["a", "b"], ["c"]]
    )
    assert short["header"] == ["a c", "b "]


async def test_data_row_and_sub_header_detection(http: aiohttp.ClientSession) -> None:
    options = {"algorithm": "dataRowAndSubHeaderDetection"}
    # The row before the first data-like row (empty, numeric, true/false cells) is the header.
    found = await detect(http, options, [["Title"], ["Name", "Age"], ["", ""], ["Bob", "3"]])
    assert (found["header"], found["headerRow"]) == (["Name", "Age"], 2)
    # A later row as full as the header whose words are in its cells is a sub-header.
    sub = [["Customer Name", "Customer Email"], ["name", "email"], ["Ann", "a@x.io"]]
    found = await detect(http, options, sub)
    assert (found["header"], found["headerRow"]) == (["name", "email"], 2)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ([], ""),
        ({"data": []}, "options"),
        ({"options": {}, "data": []}, "options.algorithm"),
        ({"options": {"algorithm": "newfangled"}, "data": []}, "options.algorithm"),
        ({"options": {"algorithm": "default"}}, "data"),
        ({"options": {"algorithm": "default"}, "data": "a,b"}, "data"),
        ({"options": {"algorithm": "default"}, "data": ["a,b"]}, "data[0]"),
        ({"options": {"algorithm": "default"}, "data": [["a", {"b": 1}]]}, "data[0][1]"),
        ({"options": {"algorithm": "default"}, "data": [["a", ["b"]]]}, "data[0][1]"),
        ({"options": {"algorithm": "default", "rowsToSearch": -1}, "data": []}, "options.rowsToSearch"),
        ({"options": {"algorithm": "default", "rowsToSearch": 2.5}, "data": []}, "options.rowsToSearch"),
        ({"options": {"algorithm": "default", "rowsToSearch": True}, "data": []}, "options.rowsToSearch"),
        ({"options": {"algorithm": "explicitHeaders"}, "data": []}, "options.headers"),
        ({"options": {"algorithm": "explicitHeaders", "headers": []}, "data": []}, "options.headers"),
        ({"options": {"algorithm": "explicitHeaders", "headers": [1]}, "data": []}, "options.headers"),
        ({"options": {"algorithm": "specificRows", "rowNumbers": []}, "data": []}, "options.rowNumbers"),
        ({"options": {"algorithm": "specificRows", "rowNumbers": [-1]}, "data": []}, "options.rowNumbers"),
        ({"options": {"algorithm": "specificRows", "rowNumbers": ["0"]}, "data": []}, "options.rowNumbers"),
    ],
)  # fmt: skip
async def test_detection_refuses_what_its_types_do_not_allow(
    http: aiohttp.ClientSession, body: Any, key: str
) -> None:
    error = await call(http, "POST", "/files/detect-header", body, status=400)
    assert error["errors"][0].get("key", "") == key


async def test_detection_of_huge_data_is_bounded(http: aiohttp.ClientSession) -> None:
    # Whole rows of data past the search are not read; a body past the limit is refused.
    rows = [["x"] * 3 for _ in range(20_000)]
    found = await detect(http, {"algorithm": "default"}, rows)
    assert found["headerRow"] == 1
    huge = json.dumps({"options": {"algorithm": "default"}, "data": [["y" * 1024**2]]})
    async with http.post(
        "/v1/files/detect-header",
        data=io.BytesIO(huge.encode()),
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 413
    # A huge rowsToSearch searches the rows there are.
    found = await detect(
        http, {"algorithm": "default", "rowsToSearch": 10**12}, [["a"], ["b", "c"]]
    )
    assert found["headerRow"] == 2


# ------------------------------------------------------------ an extractor's calls


async def test_an_extractors_job_runs_with_the_context_it_reads(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """The calls Flatfile's util-extractor makes, in its order, answered as it needs."""
    space_id = emu.seed({"spaces": [{"name": "S"}]}).spaces["S"]
    form = aiohttp.FormData()
    form.add_field("spaceId", space_id)
    form.add_field("environmentId", emu.environment_id)
    form.add_field("file", b"a,b\n1,2\n", filename="data.csv", content_type="text/csv")
    start = len(emu.events)
    async with http.post("/v1/files", data=form) as response:
        file = (await response.json())["data"]
    [created] = emu.events[start:]
    assert created["topic"] == "file:created"
    assert created["context"]["fileId"] == file["id"]
    assert created["context"]["spaceId"] == space_id
    assert created["context"]["environmentId"] == emu.environment_id
    job = await call(
        http,
        "POST",
        "/jobs",
        {
            "type": "file",
            "operation": "extract-plugin-delimiter",
            "status": "ready",
            "source": file["id"],
        },
    )
    start = len(emu.events)
    assert await call(http, "POST", f"/jobs/{job['id']}/execute") == {"success": True}
    [ready] = emu.events[start:]
    assert ready["topic"] == "job:ready"
    assert ready["payload"]["operation"] == "extract-plugin-delimiter"
    assert ready["payload"]["job"] == "file:extract-plugin-delimiter"
    assert {k: ready["context"][k] for k in ("fileId", "jobId", "spaceId", "environmentId")} == {
        "fileId": file["id"],
        "jobId": job["id"],
        "spaceId": space_id,
        "environmentId": emu.environment_id,
    }
    workbook = await call(
        http,
        "POST",
        "/workbooks",
        {
            "name": "[file] data.csv",
            "labels": ["file"],
            "spaceId": space_id,
            "environmentId": emu.environment_id,
            "sheets": [
                {
                    "name": "Sheet1",
                    "slug": "Sheet1",
                    "fields": [{"type": "string", "key": "a", "label": "a", "description": ""}],
                    "allowAdditionalFields": False,
                }
            ],
            "treatments": ["EXTRACTED_FROM_SOURCE"],
        },
    )
    assert [s["name"] for s in workbook["sheets"]] == ["Sheet1"]
    renamed = await call(
        http, "PATCH", f"/files/{file['id']}", {"workbookId": workbook["id"], "name": "renamed"}
    )
    assert (renamed["name"], renamed["ext"], renamed["workbookId"]) == (
        "renamed",
        "csv",
        workbook["id"],
    )
    sheet_id = workbook["sheets"][0]["id"]
    # The extractors' insert: plain fetch, x-force-hooks, blank rows as {}, keys that are no field.
    async with http.post(
        f"/v1/sheets/{sheet_id}/records",
        json=[{"a": {"value": "1"}, "undefined": {"value": "9"}}, {}, {"a": {"value": None}}],
        headers={"x-force-hooks": "true", "X-Disable-Hooks": "false"},
    ) as response:
        assert response.status == 200
        inserted = (await response.json())["data"]
    assert inserted["commitId"].startswith("us_vr_")
    assert [r["values"]["a"]["value"] for r in emu.records(sheet_id)] == ["1", None, None]
    assert "undefined" not in emu.records(sheet_id)[0]["values"]
    done = await call(http, "PATCH", f"/files/{file['id']}", {"status": "complete"})
    assert done["status"] == "complete"
