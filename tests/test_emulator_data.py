"""The emulator's data: spaces, workbooks, sheets, records, files, documents, their events,
actions and seeds, all through real HTTP, as Flatfile's SDKs and flatjobs' client call them."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl

from flatjobs import FlatfileAPIError, FlatfileClient, FlatfileEvent, Jobs, Listener, RetryPolicy
from flatjobs.emulator import ROUTES, Emulator, SeedError
from flatjobs.models import Sheet, from_wire
from flatjobs.testing import client_for, emulated

ROOT = Path(__file__).parent.parent
SEED = ROOT / "tests" / "data" / "seed" / "contacts.json"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# The topics Flatfile's Python SDK (1.0.0) knows, for the domains the emulator speaks of:
# it cannot read an event whose topic is not in its list.
PY_SDK_TOPICS = {
    *(
        f"space:{t}"
        for t in ("created", "updated", "deleted", "archived", "expired", "guestAdded", "guestRemoved")
    ),
    *(f"document:{t}" for t in ("created", "updated", "deleted")),
    *(f"workbook:{t}" for t in ("created", "updated", "deleted", "expired")),
    *(f"sheet:{t}" for t in ("created", "updated", "deleted", "counts-updated")),
    *(f"records:{t}" for t in ("created", "updated", "deleted")),
    *(f"file:{t}" for t in ("created", "updated", "deleted", "expired")),
    *(f"commit:{t}" for t in ("created", "updated", "completed")),
    *(
        f"job:{t}"
        for t in (
            "created", "updated", "deleted", "failed", "completed", "ready", "scheduled",
            "outcome-acknowledged", "parts-completed",
        )
    ),
}  # fmt: skip

FIELDS: list[dict[str, Any]] = [
    {"key": "email", "type": "string", "label": "Email", "constraints": [{"type": "required"}]},
    {"key": "name", "type": "string"},
    {
        "key": "status",
        "type": "enum",
        "label": "Status",
        "config": {"options": [{"value": "active"}, {"value": "inactive"}]},
    },
    {"key": "age", "type": "number"},
    {"key": "tags", "type": "string-list"},
]


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[FlatfileClient]:
    async with client_for(emu, retry=RetryPolicy(attempts=1)) as c:
        yield c


@pytest.fixture
async def seeded() -> AsyncIterator[Emulator]:
    async with Emulator(seed=SEED) as emu:
        yield emu


@pytest.fixture
async def sclient(seeded: Emulator) -> AsyncIterator[FlatfileClient]:
    async with client_for(seeded, retry=RetryPolicy(attempts=1)) as c:
        yield c


@pytest.fixture
async def http(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A bare session, for raw paths, multipart bodies and downloads."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {emu.token}"}) as s:
        yield s


async def call(
    client: FlatfileClient,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
) -> Any:
    """The ``data`` of an answer (which must be ``{"data": ...}``)."""
    answer = await client.request(method, path, params=params, body=body)
    assert isinstance(answer, dict)
    assert set(answer) <= {"data", "pagination"}, answer
    return answer["data"]


async def refused(
    client: FlatfileClient,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
    status: int = 400,
) -> dict[str, Any]:
    """The one error of a refused call, checked to be ``{"errors": [{"key"?, "message"}]}``."""
    with pytest.raises(FlatfileAPIError) as info:
        await client.request(method, path, params=params, body=body)
    assert info.value.status == status, info.value
    assert isinstance(info.value.body, dict)
    errors = info.value.body["errors"]
    assert len(errors) == 1
    assert isinstance(errors[0]["message"], str)
    assert set(errors[0]) <= {"key", "message"}
    error: dict[str, Any] = errors[0]
    return error


async def contacts(client: FlatfileClient, **workbook: Any) -> tuple[str, str]:
    """A new workbook with one ``contacts`` sheet: (workbook id, sheet id)."""
    body = {
        "name": "Contacts",
        "sheets": [{"name": "Contacts", "slug": "contacts", "fields": FIELDS}],
    }
    made = await call(client, "POST", "/workbooks", body={**body, **workbook})
    return made["id"], made["sheets"][0]["id"]


def cells(**values: Any) -> dict[str, Any]:
    return {key: {"value": value} for key, value in values.items()}


async def insert(client: FlatfileClient, sheet_id: str, *rows: dict[str, Any]) -> Any:
    return await call(
        client, "POST", f"/sheets/{sheet_id}/records", body=[cells(**r) for r in rows]
    )


async def user_insert(
    http: aiohttp.ClientSession, emu: Emulator, sheet_id: str, *rows: dict[str, Any]
) -> Any:
    """Insert as a user or an import does, without ``X-Disable-Hooks`` (which flatjobs'
    client sends, as Flatfile's SDKs do): the write starts the record hooks."""
    url = f"{emu.url}/v1/sheets/{sheet_id}/records"
    async with http.post(url, json=[cells(**r) for r in rows]) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["data"]


def topics_since(emu: Emulator, start: int) -> list[str]:
    return [e["topic"] for e in emu.events[start:]]


# ------------------------------------------------------------ spaces


async def test_the_default_space_exists_and_spaces_are_paged_by_ten(
    emu: Emulator, client: FlatfileClient
) -> None:
    answer = await client.request("GET", "/spaces")
    assert [s["id"] for s in answer["data"]] == ["us_sp_emulator"]
    assert answer["pagination"] == {"currentPage": 1, "pageCount": 1, "totalCount": 1}
    space = answer["data"][0]
    assert space["guestAuthentication"] == ["magic_link"]
    assert space["environmentId"] == emu.environment_id
    assert TS.match(space["createdAt"])
    assert TS.match(space["updatedAt"])
    for n in range(10):
        await call(client, "POST", "/spaces", body={"name": f"space {n}"})
    first = await client.request("GET", "/spaces")
    assert len(first["data"]) == 10
    assert first["pagination"] == {"currentPage": 1, "pageCount": 2, "totalCount": 11}
    second = await client.request("GET", "/spaces", params={"pageNumber": 2})
    assert [s["name"] for s in second["data"]] == ["space 9"]
    other = await call(client, "GET", "/spaces", params={"environmentId": "us_env_other"})
    assert other == []


async def test_a_space_is_created_read_updated_and_deleted_with_its_events(
    emu: Emulator, client: FlatfileClient
) -> None:
    start = len(emu.events)
    space = await call(
        client, "POST", "/spaces", body={"name": "Acme", "metadata": {"k": 1}, "labels": ["x"]}
    )
    assert space["id"].startswith("us_sp_")
    assert space["metadata"] == {"k": 1}
    assert space["workbooksCount"] == 0
    assert space["filesCount"] == 0
    space_id = space["id"]
    assert (await call(client, "GET", f"/spaces/{space_id}"))["name"] == "Acme"
    renamed = await call(client, "PATCH", f"/spaces/{space_id}", body={"name": "Acme Inc"})
    assert renamed["name"] == "Acme Inc"
    assert renamed["metadata"] == {"k": 1}
    await contacts(client, spaceId=space_id)
    assert (await call(client, "GET", f"/spaces/{space_id}"))["workbooksCount"] == 1
    assert await call(client, "DELETE", f"/spaces/{space_id}") == {"success": True}
    await refused(client, "GET", f"/spaces/{space_id}", status=404)
    assert await call(client, "GET", "/workbooks", params={"spaceId": space_id}) == []
    events = emu.events[start:]
    assert [e["topic"] for e in events if e["topic"].startswith("space:")] == [
        "space:created",
        "space:updated",
        "space:deleted",
    ]
    created = events[0]
    assert created["domain"] == "space"
    assert created["context"]["spaceId"] == space_id
    assert created["context"]["accountId"] == "us_acc_emulator"
    assert created["context"]["environmentId"] == emu.environment_id


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"name": 42}, "name"),
        ({"metadata": "x"}, "metadata"),
        ({"labels": ["a", 1]}, "labels[1]"),
        ({"guestAuthentication": "magic_link"}, "guestAuthentication"),
        ({"actions": [{"operation": "go"}]}, "actions[0].label"),
        ({"actions": [{"label": "Go", "primary": "yes"}]}, "actions[0].primary"),
        ({"displayOrder": 1.5}, "displayOrder"),
        ({"environmentId": "us_env_other"}, "environmentId"),
        ([], ""),
    ],
)
async def test_a_space_body_of_the_wrong_type_is_refused_naming_the_field(
    client: FlatfileClient, body: Any, key: str
) -> None:
    for method, path in (("POST", "/spaces"), ("PATCH", "/spaces/us_sp_emulator")):
        error = await refused(client, method, path, body=body)
        assert error.get("key", "") == key


# ------------------------------------------------------------ workbooks and sheets


async def test_creating_a_workbook_creates_its_sheets(
    emu: Emulator, client: FlatfileClient
) -> None:
    start = len(emu.events)
    workbook = await call(
        client,
        "POST",
        "/workbooks",
        body={
            "name": "Contacts",
            "labels": ["primary"],
            "settings": {"trackChanges": False},
            "metadata": {"k": "v"},
            "actions": [{"label": "Submit", "operation": "submit", "mode": "foreground"}],
            "sheets": [
                {"name": "Contacts", "slug": "contacts", "fields": FIELDS},
                {"name": "Company Accounts", "fields": [{"key": "n", "type": "string"}]},
            ],
            "someFutureKey": 1,
        },
    )
    assert workbook["id"].startswith("us_wb_")
    assert workbook["spaceId"] == "us_sp_emulator"
    assert workbook["environmentId"] == emu.environment_id
    assert workbook["labels"] == ["primary"]
    assert workbook["actions"] == [{"label": "Submit", "operation": "submit", "mode": "foreground"}]
    assert "someFutureKey" not in workbook  # not a field of the API: dropped
    assert TS.match(workbook["createdAt"])
    sheet, second = workbook["sheets"]
    assert sheet["id"].startswith("us_sh_")
    assert sheet["workbookId"] == workbook["id"]
    assert (sheet["name"], sheet["slug"]) == ("Contacts", "contacts")
    assert sheet["config"]["fields"] == FIELDS
    assert sheet["recordCounts"] == {"total": 0, "valid": 0, "error": 0}
    assert second["slug"] == "company-accounts"  # made from the name when not given
    assert TS.match(sheet["createdAt"])
    assert topics_since(emu, start) == ["workbook:created", "sheet:created", "sheet:created"]
    made = emu.events[start + 1]
    assert made["context"]["sheetSlug"] == "contacts"
    assert made["context"]["workbookId"] == workbook["id"]
    # The same workbook through every read.
    assert await call(client, "GET", f"/workbooks/{workbook['id']}") == workbook
    listed = await call(client, "GET", "/sheets", params={"workbookId": workbook["id"]})
    assert listed == workbook["sheets"]
    assert await call(client, "GET", f"/sheets/{sheet['id']}") == sheet
    # The models read it (the other SDKs' required fields are there).
    assert from_wire(sheet, Sheet).config is not None


async def test_workbooks_are_listed_by_space_name_and_label(client: FlatfileClient) -> None:
    space = await call(client, "POST", "/spaces", body={"name": "Other"})
    a, _ = await contacts(client, labels=["blue"])
    b, _ = await contacts(client, name="Leads", spaceId=space["id"])
    listed = await call(client, "GET", "/workbooks")
    assert [w["id"] for w in listed] == [a, b]
    assert [
        w["id"] for w in await call(client, "GET", "/workbooks", params={"spaceId": space["id"]})
    ] == [b]
    assert [
        w["id"] for w in await call(client, "GET", "/workbooks", params={"name": "-Leads"})
    ] == [a]
    assert [w["id"] for w in await call(client, "GET", "/workbooks", params={"label": "blue"})] == [
        a
    ]
    bare = await call(client, "GET", "/workbooks", params={"includeSheets": False})
    assert all("sheets" not in w for w in bare)
    assert await call(client, "GET", "/sheets", params={"workbookId": "us_wb_nope"}) == []
    assert (await refused(client, "GET", "/sheets"))["key"] == "workbookId"


async def test_a_workbook_update_changes_its_sheets_and_validates_records_again(
    emu: Emulator, client: FlatfileClient
) -> None:
    workbook_id, sheet_id = await contacts(client)
    await insert(client, sheet_id, {"email": "a@b.c"}, {"email": "d@e.f", "name": "Dee"})
    start = len(emu.events)
    fields = [*FIELDS[:1], {**FIELDS[1], "constraints": [{"type": "required"}]}, *FIELDS[2:]]
    updated = await call(
        client,
        "PATCH",
        f"/workbooks/{workbook_id}",
        body={
            "name": "Renamed",
            "sheets": [
                {"name": "Contacts", "slug": "contacts", "fields": fields},
                {"name": "New", "slug": "new", "fields": []},
            ],
        },
    )
    assert updated["name"] == "Renamed"
    assert [s["slug"] for s in updated["sheets"]] == ["contacts", "new"]
    assert updated["sheets"][0]["recordCounts"] == {"total": 2, "valid": 1, "error": 1}
    assert topics_since(emu, start) == [
        "workbook:updated",
        "sheet:updated",
        "sheet:counts-updated",
        "sheet:created",
    ]
    deleted = await call(client, "DELETE", f"/workbooks/{workbook_id}")
    assert deleted == {"success": True}
    for path in (f"/workbooks/{workbook_id}", f"/sheets/{sheet_id}", f"/sheets/{sheet_id}/records"):
        await refused(client, "GET", path, status=404)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({}, "name"),
        ({"name": 1}, "name"),
        ({"name": "W", "sheets": {}}, "sheets"),
        ({"name": "W", "sheets": [{"name": "S"}]}, "sheets[0].fields"),
        ({"name": "W", "sheets": [{"name": "S", "fields": [{"key": "a"}]}]}, "sheets[0].fields[0].type"),
        ({"name": "W", "sheets": [{"name": "S", "fields": [{"type": "string"}]}]}, "sheets[0].fields[0].key"),
        ({"name": "W", "sheets": [{"name": "S", "fields": [{"key": "", "type": "string"}]}]}, "sheets[0].fields[0].key"),
        (
            {"name": "W", "sheets": [{"name": "S", "fields": [{"key": "a", "type": "string"}, {"key": "a", "type": "number"}]}]},
            "sheets[0].fields[1].key",
        ),
        ({"name": "W", "sheets": [{"name": "S", "fields": [{"key": "e", "type": "enum"}]}]}, "sheets[0].fields[0].config.options"),
        ({"name": "W", "sheets": [{"name": "S", "fields": [{"key": "r", "type": "reference", "config": {}}]}]}, "sheets[0].fields[0].config.ref"),
        (
            {"name": "W", "sheets": [{"name": "S", "fields": [{"key": "a", "type": "string", "constraints": [{"config": {}}]}]}]},
            "sheets[0].fields[0].constraints[0].type",
        ),
        ({"name": "W", "sheets": [{"name": "S", "slug": "s", "fields": []}, {"name": "T", "slug": "s", "fields": []}]}, "sheets[1].slug"),
        ({"name": "W", "sheets": [{"name": "S", "fields": [], "allowAdditionalFields": "yes"}]}, "sheets[0].allowAdditionalFields"),
        ({"name": "W", "settings": []}, "settings"),
        ({"name": "W", "spaceId": "us_sp_nope"}, "spaceId"),
        ({"name": "W", "environmentId": "us_env_other"}, "environmentId"),
    ],
)  # fmt: skip
async def test_a_workbook_body_of_the_wrong_type_is_refused_naming_the_field(
    emu: Emulator, client: FlatfileClient, body: dict[str, Any], key: str
) -> None:
    error = await refused(
        client, "POST", "/workbooks", body=body, status=404 if key == "spaceId" else 400
    )
    assert error["key"] == key
    assert emu.data.workbooks == {}


async def test_field_types_get_the_config_they_need_and_unknown_types_are_kept(
    client: FlatfileClient,
) -> None:
    fields = [
        {"key": "s", "type": "string", "config": {}},
        {"key": "b", "type": "boolean", "config": {}},
        {"key": "r", "type": "reference", "config": {"ref": "companies"}},
        {"key": "d", "type": "date"},
        {"key": "x", "type": "future-type", "config": {"any": 1}},
    ]
    made = await call(
        client,
        "POST",
        "/workbooks",
        body={"name": "W", "sheets": [{"name": "S", "fields": fields}]},
    )
    got = {f["key"]: f for f in made["sheets"][0]["config"]["fields"]}
    assert got["s"]["config"] == {"size": "normal"}
    assert got["b"]["config"] == {"allowIndeterminate": True}
    assert got["r"]["config"] == {"key": "id", "ref": "companies"}
    assert got["x"] == {"key": "x", "type": "future-type", "config": {"any": 1}}


async def test_a_sheet_is_renamed_and_deleted(emu: Emulator, client: FlatfileClient) -> None:
    workbook_id, sheet_id = await contacts(
        client,
        sheets=[
            {"name": "Contacts", "slug": "contacts", "fields": FIELDS},
            {"name": "Other", "slug": "other", "fields": []},
        ],
    )
    start = len(emu.events)
    sheet = await call(
        client, "PATCH", f"/sheets/{sheet_id}", body={"name": "People", "metadata": {"n": 1}}
    )
    assert (sheet["name"], sheet["config"]["name"], sheet["metadata"]) == (
        "People",
        "People",
        {"n": 1},
    )
    assert (await refused(client, "PATCH", f"/sheets/{sheet_id}", body={"slug": "other"}))[
        "key"
    ] == "slug"
    assert (await refused(client, "PATCH", f"/sheets/{sheet_id}", body={"name": 3}))[
        "key"
    ] == "name"
    assert await call(client, "DELETE", f"/sheets/{sheet_id}") == {"success": True}
    workbook = await call(client, "GET", f"/workbooks/{workbook_id}")
    assert [s["slug"] for s in workbook["sheets"]] == ["other"]
    assert topics_since(emu, start) == ["sheet:updated", "sheet:deleted"]


# ------------------------------------------------------------ records: writing


async def test_insert_answers_the_records_counts_and_commit(
    emu: Emulator, client: FlatfileClient, http: aiohttp.ClientSession
) -> None:
    _, sheet_id = await contacts(client)
    start = len(emu.events)
    # A user's write (flatjobs' client sends X-Disable-Hooks: true, which starts no hook:
    # its events are checked in tests/test_emulator_hooks.py).
    answer = await user_insert(
        http,
        emu,
        sheet_id,
        {"email": "ann@example.com", "name": "Ann", "status": "active", "age": 41, "tags": ["a"]},
        {"name": "No email", "status": "paused", "age": 2.5},
    )
    assert answer["success"] is True
    assert answer["counts"] == {"total": 2, "valid": 1, "error": 1}
    assert answer["commitId"].startswith("us_vr_")
    assert answer["versionId"].startswith("us_vr_")
    assert answer["commitId"] != answer["versionId"]
    ann, bad = answer["records"]
    assert ann["id"].startswith("us_rc_")
    assert ann["valid"] is True
    assert ann["metadata"] == {}
    assert ann["values"]["email"] == {
        "value": "ann@example.com",
        "valid": True,
        "updatedAt": ann["values"]["email"]["updatedAt"],
        "messages": [],
    }
    assert TS.match(ann["values"]["email"]["updatedAt"])
    assert ann["values"]["tags"]["value"] == ["a"]
    assert bad["valid"] is False
    assert bad["values"]["email"] == {
        "value": None,
        "valid": False,
        "updatedAt": bad["values"]["email"]["updatedAt"],
        "messages": [
            {"type": "error", "source": "required-constraint", "message": "Email is required"}
        ],
    }
    assert bad["values"]["status"]["valid"] is False
    assert bad["values"]["status"]["messages"] == [
        {
            "type": "error",
            "source": "invalid-option",
            "message": "'paused' is not a valid option for Status",
        }
    ]
    assert bad["values"]["age"] == {
        "value": 2.5,
        "valid": True,
        "updatedAt": bad["values"]["age"]["updatedAt"],
        "messages": [],
    }
    events = emu.events[start:]
    assert [e["topic"] for e in events] == [
        "records:created",
        "commit:created",
        "sheet:counts-updated",
    ]
    for event in events:
        context = event["context"]
        assert context["sheetId"] == sheet_id
        assert context["sheetSlug"] == "contacts"
        assert context["spaceId"] == "us_sp_emulator"
        assert context["workbookId"] == emu.data.sheets[sheet_id].workbook.id
    assert events[0]["payload"] == {"count": 2}
    assert events[0]["context"]["commitId"] == answer["commitId"]
    assert events[1]["payload"] == {"trackChanges": False, "sheetId": sheet_id}
    assert events[1]["dataUrl"] == (
        f"v1/sheets/{sheet_id}/records?for={events[1]['id']}&includeMessages=true"
    )
    assert events[2]["payload"] == {"counts": {"total": 2, "valid": 1, "error": 1}}


async def test_an_empty_insert_changes_nothing(emu: Emulator, client: FlatfileClient) -> None:
    _, sheet_id = await contacts(client)
    start = len(emu.events)
    answer = await call(client, "POST", f"/sheets/{sheet_id}/records", body=[])
    assert answer == {
        "success": True,
        "records": [],
        "counts": {"total": 0, "valid": 0, "error": 0},
    }
    assert emu.events[start:] == []
    assert await call(client, "GET", f"/sheets/{sheet_id}/commits") == []


async def test_fields_the_sheet_does_not_have_are_dropped_unless_it_allows_additional_ones(
    client: FlatfileClient,
) -> None:
    _, strict = await contacts(client)
    answer = await call(
        client, "POST", f"/sheets/{strict}/records", body=[cells(email="a@b.c", nickname="Al")]
    )
    assert "nickname" not in answer["records"][0]["values"]
    _, loose = await contacts(
        client,
        sheets=[{"name": "C", "slug": "c", "fields": FIELDS, "allowAdditionalFields": True}],
    )
    answer = await call(
        client, "POST", f"/sheets/{loose}/records", body=[cells(email="a@b.c", nickname="Al")]
    )
    assert answer["records"][0]["values"]["nickname"]["value"] == "Al"
    page = await call(client, "GET", f"/sheets/{loose}/records", params={"fields": ["nickname"]})
    assert page["records"][0]["values"] == {
        "nickname": {
            "value": "Al",
            "valid": True,
            "updatedAt": page["records"][0]["values"]["nickname"]["updatedAt"],
        }
    }


async def test_an_update_merges_cells_and_answers_the_new_version(
    emu: Emulator, client: FlatfileClient
) -> None:
    _, sheet_id = await contacts(client)
    made = await insert(client, sheet_id, {"email": "a@b.c", "name": "Al", "age": 3})
    record_id = made["records"][0]["id"]
    start = len(emu.events)
    answer = await call(
        client,
        "PUT",
        f"/sheets/{sheet_id}/records",
        body=[
            {
                "id": record_id,
                "values": {"name": {"value": "Alan"}, "age": {"value": None}},
                "metadata": {"source": "crm"},
                "versionId": made["versionId"],
                "commitId": made["commitId"],
            }
        ],
    )
    assert set(answer) == {"versionId", "commitId"}
    assert answer["versionId"].startswith("us_vr_")
    assert answer["commitId"] not in (made["commitId"], made["versionId"])
    [record] = emu.records(sheet_id)
    assert record["values"]["email"]["value"] == "a@b.c"  # untouched
    assert record["values"]["name"]["value"] == "Alan"
    assert record["values"]["age"]["value"] is None
    assert record["metadata"] == {"source": "crm"}
    assert (record["versionId"], record["commitId"]) == (answer["versionId"], answer["commitId"])
    assert record["values"]["name"]["updatedAt"] >= record["values"]["email"]["updatedAt"]
    # Counts unchanged; no commit:created, as flatjobs' client sends X-Disable-Hooks: true
    # (as Flatfile's SDKs do): its write starts no record hook (tests/test_emulator_hooks.py).
    assert topics_since(emu, start) == ["records:updated"]
    assert emu.events[start]["payload"] == {"count": 1}
    assert emu.events[start]["context"]["commitId"] == answer["commitId"]


async def test_an_update_that_changes_nothing_answers_200_with_the_current_ids(
    emu: Emulator, client: FlatfileClient
) -> None:
    _, sheet_id = await contacts(client)
    made = await insert(client, sheet_id, {"email": "a@b.c", "age": 1})
    record_id = made["records"][0]["id"]
    start = len(emu.events)
    answer = await client.request(
        "PUT",
        f"/sheets/{sheet_id}/records",
        body=[
            {"id": record_id, "values": {"email": {"value": "a@b.c"}, "age": {"value": 1}}},
            {"id": record_id},
        ],
    )
    # Never a bodiless 304: both of Flatfile's SDKs fail to read one.
    assert answer == {"data": {"versionId": made["versionId"], "commitId": made["commitId"]}}
    assert emu.events[start:] == []
    # 1 and 1.0 and true are different values: changing the type is a change.
    changed = await call(
        client,
        "PUT",
        f"/sheets/{sheet_id}/records",
        body=[{"id": record_id, "values": {"age": {"value": True}}}],
    )
    assert changed["commitId"] != made["commitId"]


async def test_an_update_naming_a_record_not_in_the_sheet_changes_nothing(
    client: FlatfileClient,
) -> None:
    _, sheet_id = await contacts(client)
    made = await insert(client, sheet_id, {"email": "a@b.c"})
    record_id = made["records"][0]["id"]
    error = await refused(
        client,
        "PUT",
        f"/sheets/{sheet_id}/records",
        body=[
            {"id": record_id, "values": {"email": {"value": "changed"}}},
            {"id": "us_rc_nope", "values": {}},
        ],
    )
    assert error["key"] == "[1].id"
    page = await call(client, "GET", f"/sheets/{sheet_id}/records")
    assert page["records"][0]["values"]["email"]["value"] == "a@b.c"


async def test_handlers_messages_count_for_validity_and_replace_their_earlier_ones(
    client: FlatfileClient,
) -> None:
    _, sheet_id = await contacts(client)
    made = await insert(client, sheet_id, {"email": "a@b.c", "name": "Al"})
    record_id = made["records"][0]["id"]

    async def put(values: dict[str, Any]) -> None:
        await call(
            client, "PUT", f"/sheets/{sheet_id}/records", body=[{"id": record_id, "values": values}]
        )

    async def read() -> dict[str, Any]:
        page = await call(
            client, "GET", f"/sheets/{sheet_id}/records", params={"includeMessages": True}
        )
        record: dict[str, Any] = page["records"][0]
        return record

    await put({"name": {"messages": [{"message": "too short"}, {"message": "hm", "type": "warn"}]}})
    record = await read()
    assert record["valid"] is False
    assert record["values"]["name"]["valid"] is False
    assert record["values"]["name"]["messages"] == [
        {"message": "too short", "type": "error", "source": "custom-logic"},
        {"message": "hm", "type": "warn", "source": "custom-logic"},
    ]
    counts = await call(client, "GET", f"/sheets/{sheet_id}/counts")
    assert counts == {
        "counts": {"total": 1, "valid": 0, "error": 1, "errorsByField": {"name": 1}},
        "success": True,
    }
    # New messages for the cell replace the handler's earlier ones; a warning alone is
    # valid; messages claiming the platform's own sources are not the handler's to write.
    await put(
        {
            "name": {
                "messages": [
                    {"message": "check", "type": "warn", "source": "lookup"},
                    {"message": "fake", "type": "error", "source": "required-constraint"},
                ]
            }
        }
    )
    record = await read()
    assert record["valid"] is True
    assert record["values"]["name"]["messages"] == [
        {"message": "check", "type": "warn", "source": "lookup"}
    ]
    # The platform's messages are recomputed on every change, and kept beside the handler's.
    await put({"email": {"value": None, "messages": [{"message": "bounced"}]}})
    record = await read()
    assert record["values"]["email"]["messages"] == [
        {"type": "error", "source": "required-constraint", "message": "Email is required"},
        {"message": "bounced", "type": "error", "source": "custom-logic"},
    ]
    await put({"email": {"value": "b@c.d"}})
    record = await read()
    assert record["values"]["email"]["messages"] == [
        {"message": "bounced", "type": "error", "source": "custom-logic"}
    ]
    await put({"email": {"messages": []}})
    assert (await read())["valid"] is True


async def test_a_required_constraint_with_a_level_and_message_of_its_own(
    client: FlatfileClient,
) -> None:
    fields = [
        {
            "key": "phone",
            "type": "string",
            "constraints": [
                {"type": "required", "config": {"level": "warn", "message": "Add one"}}
            ],
        }
    ]
    made = await call(
        client,
        "POST",
        "/workbooks",
        body={"name": "W", "sheets": [{"name": "S", "fields": fields}]},
    )
    answer = await call(
        client, "POST", f"/sheets/{made['sheets'][0]['id']}/records", body=[{"phone": {}}]
    )
    record = answer["records"][0]
    assert record["valid"] is True
    assert record["values"]["phone"]["messages"] == [
        {"type": "warn", "source": "required-constraint", "message": "Add one"}
    ]


async def test_delete_takes_repeated_ids_up_to_a_hundred(
    emu: Emulator, client: FlatfileClient
) -> None:
    _, sheet_id = await contacts(client)
    made = await insert(client, sheet_id, *({"email": f"{n}@x.y"} for n in range(5)))
    ids = [r["id"] for r in made["records"]]
    start = len(emu.events)
    answer = await call(
        client,
        "DELETE",
        f"/sheets/{sheet_id}/records",
        params={"ids": [ids[1], ids[3], "us_rc_nope"]},
    )
    assert answer == {"success": True}
    page = await call(client, "GET", f"/sheets/{sheet_id}/records")
    assert [r["id"] for r in page["records"]] == [ids[0], ids[2], ids[4]]
    # No commit:created: flatjobs' client sends X-Disable-Hooks: true, which starts no hook.
    assert topics_since(emu, start) == ["records:deleted", "sheet:counts-updated"]
    assert emu.events[start]["payload"] == {"count": 2}
    request = emu.requests[-2]
    assert (request.method, request.route) == ("DELETE", "records.delete")
    error = await refused(
        client,
        "DELETE",
        f"/sheets/{sheet_id}/records",
        params={"ids": [f"us_rc_{n}" for n in range(101)]},
    )
    assert error["key"] == "ids"
    assert "100" in error["message"]
    assert (await refused(client, "DELETE", f"/sheets/{sheet_id}/records"))["key"] == "ids"
    start = len(emu.events)
    await call(client, "DELETE", f"/sheets/{sheet_id}/records", params={"ids": ["us_rc_nope"]})
    assert emu.events[start:] == []


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"email": {"value": "a"}}, ""),
        (["x"], "[0]"),
        ([{"email": "a@b.c"}], "[0].email"),
        ([{"email": {"value": {"nested": 1}}}], "[0].email.value"),
        ([{"tags": {"value": [1, 2]}}], "[0].tags.value"),
        ([{"tags": {"value": ["a", None]}}], "[0].tags.value"),
        ([{}, {"email": {"messages": "bad"}}], "[1].email.messages"),
        ([{"email": {"messages": ["bad"]}}], "[0].email.messages[0]"),
        ([{"email": {"messages": [{"message": 1}]}}], "[0].email.messages[0].message"),
    ],
)
async def test_an_insert_of_the_wrong_shape_is_refused_naming_where(
    emu: Emulator, client: FlatfileClient, body: Any, key: str
) -> None:
    _, sheet_id = await contacts(client)
    error = await refused(client, "POST", f"/sheets/{sheet_id}/records", body=body)
    assert error.get("key", "") == key
    assert emu.data.sheets[sheet_id].rows == []


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"id": "x"}, ""),
        ([{"values": {}}], "[0].id"),
        ([{"id": 7}], "[0].id"),
        ([{"id": "RID", "metadata": []}], "[0].metadata"),
        ([{"id": "RID", "config": "x"}], "[0].config"),
        ([{"id": "RID", "versionId": 3}], "[0].versionId"),
        ([{"id": "RID", "values": []}], "[0].values"),
        ([{"id": "RID", "values": {"email": {"value": {"a": 1}}}}], "[0].values.email.value"),
        ([{"id": "RID"}, {"id": 1}], "[1].id"),
    ],
)
async def test_an_update_of_the_wrong_shape_is_refused_naming_where(
    client: FlatfileClient, body: Any, key: str
) -> None:
    _, sheet_id = await contacts(client)
    made = await insert(client, sheet_id, {"email": "a@b.c"})
    body = json.loads(json.dumps(body).replace("RID", made["records"][0]["id"]))
    error = await refused(client, "PUT", f"/sheets/{sheet_id}/records", body=body)
    assert error.get("key", "") == key


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_numbers_in_a_body_are_refused(
    emu: Emulator, client: FlatfileClient, http: aiohttp.ClientSession, number: str
) -> None:
    _, sheet_id = await contacts(client)
    for path, raw in (
        (f"/v1/sheets/{sheet_id}/records", f'[{{"age": {{"value": {number}}}}}]'),
        ("/v1/workbooks", f'{{"name": "W", "metadata": {{"n": {number}}}}}'),
        ("/v1/spaces", f'{{"metadata": {{"n": {number}}}}}'),
    ):
        async with http.post(emu.url + path, data=raw) as resp:
            assert resp.status == 400, (path, await resp.text())
            body = await resp.json()
            assert "not valid JSON" in body["errors"][0]["message"]
    assert emu.data.sheets[sheet_id].rows == []
    assert len(emu.data.workbooks) == 1


async def test_huge_and_deeply_nested_values_are_stored_or_refused_never_a_crash(
    client: FlatfileClient, http: aiohttp.ClientSession, emu: Emulator
) -> None:
    _, sheet_id = await contacts(client)
    huge = "x" * 5_000_000
    # Sent as a stream: aiohttp warns about raw bodies of more than a megabyte.
    body = io.BytesIO(json.dumps([cells(email="a@b.c", name=huge)]).encode())
    async with http.post(f"{emu.url}/v1/sheets/{sheet_id}/records", data=body) as resp:
        assert resp.status == 200
        record_id = (await resp.json())["data"]["records"][0]["id"]
    page = await call(client, "GET", f"/sheets/{sheet_id}/records", params={"ids": [record_id]})
    assert page["records"][0]["values"]["name"]["value"] == huge
    deep: Any = "end"
    for _ in range(40):
        deep = {"d": deep}
    error = await refused(
        client, "PUT", f"/sheets/{sheet_id}/records", body=[{"id": record_id, "metadata": deep}]
    )
    assert error["key"] == "[0].metadata"
    assert "nested" in error["message"]
    for raw in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000):
        async with http.post(f"{emu.url}/v1/sheets/{sheet_id}/records", data=raw) as resp:
            assert resp.status == 400
            assert "not valid JSON" in (await resp.json())["errors"][0]["message"]
    too_large = io.BytesIO(b"x" * (129 * 1024**2))
    async with http.post(f"{emu.url}/v1/sheets/{sheet_id}/records", data=too_large) as resp:
        assert resp.status == 413
    counts = await call(client, "GET", f"/sheets/{sheet_id}/counts")
    assert counts["counts"]["total"] == 1


# ------------------------------------------------------------ records: reading


@pytest.fixture
async def people(
    emu: Emulator, client: FlatfileClient, http: aiohttp.ClientSession
) -> tuple[str, list[str], dict[str, str]]:
    """A sheet of six records, two with errors, written by a user (each write starts the
    hooks, so its commit has a commit:created): (sheet id, ids in order, commits)."""
    _, sheet_id = await contacts(client)
    first = await user_insert(
        http,
        emu,
        sheet_id,
        {"email": "ann@x.io", "name": "Ann Lee", "status": "active", "age": 41},
        {"email": "bob@x.io", "name": "Bob", "status": "inactive", "age": 35},
        {"name": "Carla", "status": "active", "age": 29},  # no email
    )
    second = await user_insert(
        http,
        emu,
        sheet_id,
        {"email": "dan@x.io", "name": "Dan", "status": "paused", "age": 52},  # bad status
        {"email": "eve@x.io", "name": "Eve ANN", "tags": ["vip", "b2b"]},
        {"email": "fay@x.io", "name": "", "status": "inactive", "age": 7},
    )
    ids = [r["id"] for r in first["records"] + second["records"]]
    return sheet_id, ids, {"first": first["commitId"], "second": second["commitId"]}


async def test_records_are_paged_from_one_and_answer_no_pagination(
    client: FlatfileClient, people: tuple[str, list[str], dict[str, str]]
) -> None:
    sheet_id, ids, commits = people
    answer = await client.request("GET", f"/sheets/{sheet_id}/records")
    assert set(answer) == {"data"}
    data = answer["data"]
    assert set(data) == {"success", "records", "commitId", "versionId"}
    assert data["commitId"] == commits["second"]
    assert [r["id"] for r in data["records"]] == ids
    assert all("messages" not in cell for r in data["records"] for cell in r["values"].values())
    assert list(data["records"][0]["values"]) == [f["key"] for f in FIELDS]
    pages = [
        [
            r["id"]
            for r in (
                await call(
                    client,
                    "GET",
                    f"/sheets/{sheet_id}/records",
                    params={"pageSize": 4, "pageNumber": n},
                )
            )["records"]
        ]
        for n in (1, 2, 3)
    ]
    assert pages == [ids[:4], ids[4:], []]
    for bad in ({"pageSize": 0}, {"pageNumber": 0}, {"pageSize": "ten"}, {"pageNumber": -1}):
        assert (await refused(client, "GET", f"/sheets/{sheet_id}/records", params=bad))[
            "key"
        ] in bad


async def test_the_default_page_is_ten_thousand_records(client: FlatfileClient) -> None:
    made = await call(
        client,
        "POST",
        "/workbooks",
        body={"name": "W", "sheets": [{"name": "S", "fields": [{"key": "n", "type": "number"}]}]},
    )
    sheet_id = made["sheets"][0]["id"]
    for start in (0, 5_000):
        rows = [{"n": {"value": n}} for n in range(start, start + 5_000)]
        await call(client, "POST", f"/sheets/{sheet_id}/records", body=rows)
    await call(client, "POST", f"/sheets/{sheet_id}/records", body=[{"n": {"value": 10_000}}])
    first = await call(client, "GET", f"/sheets/{sheet_id}/records", params={"includeLength": True})
    assert len(first["records"]) == 10_000
    assert first["counts"]["total"] == 10_001
    second = await call(client, "GET", f"/sheets/{sheet_id}/records", params={"pageNumber": 2})
    assert [r["values"]["n"]["value"] for r in second["records"]] == [10_000]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"filter": "valid"}, [0, 1, 4, 5]),
        ({"filter": "error"}, [2, 3]),
        ({"filter": "all"}, [0, 1, 2, 3, 4, 5]),
        ({"filter": "none"}, [0, 1, 2, 3, 4, 5]),
        ({"filter": "error", "filterField": "status"}, [3]),
        ({"filter": "valid", "filterField": "email"}, [0, 1, 3, 4, 5]),
        ({"searchValue": "ann"}, [0, 4]),
        ({"searchValue": "ann", "searchField": "email"}, [0]),
        ({"searchValue": '"Bob"'}, [1]),
        ({"searchValue": '"bob"'}, []),
        ({"searchValue": '"vip"', "searchField": "tags"}, [4]),
        ({"searchValue": "", "searchField": "email"}, [2]),
        ({"searchValue": "", "searchField": "name"}, [5]),
        ({"searchValue": "4", "searchField": "age"}, [0]),
        ({"sortField": "age"}, [5, 2, 1, 0, 3, 4]),
        ({"sortField": "age", "sortDirection": "desc"}, [3, 0, 1, 2, 5, 4]),
        ({"sortField": "name", "sortDirection": "asc"}, [0, 1, 2, 3, 4, 5]),
        ({"sortField": "email", "sortDirection": "desc"}, [5, 4, 3, 1, 0, 2]),
        ({"filter": "valid", "sortField": "age", "sortDirection": "desc"}, [0, 1, 5, 4]),
        ({"ids": [5, 0, 3]}, [0, 3, 5]),
        ({"ids": [5, 0], "filter": "valid"}, [1, 4]),
        ({"ids": [5, 0], "filter": "all"}, [1, 2, 3, 4]),
        ({"ids": [5, 0], "filter": "none"}, [0, 5]),
        ({"ids": [5, 0], "searchValue": "x.io"}, [1, 3, 4]),
        ({"sinceCommitId": "first"}, [3, 4, 5]),
        ({"commitId": "first"}, [0, 1, 2]),
        ({"sinceCommitId": "second"}, []),
    ],
)
async def test_records_are_filtered_searched_sorted_and_selected(
    client: FlatfileClient,
    people: tuple[str, list[str], dict[str, str]],
    params: dict[str, Any],
    expected: list[int],
) -> None:
    sheet_id, ids, commits = people
    if "ids" in params:
        params = {**params, "ids": [ids[i] for i in params["ids"]]}
    for key in ("sinceCommitId", "commitId"):
        if key in params:
            params = {**params, key: commits[params[key]]}
    page = await call(client, "GET", f"/sheets/{sheet_id}/records", params=params)
    assert [ids.index(r["id"]) for r in page["records"]] == expected
    # Counts of the same selection agree.
    counts_params = {k: v for k, v in params.items() if not k.startswith("sort")}
    counts = await call(client, "GET", f"/sheets/{sheet_id}/counts", params=counts_params)
    assert counts["counts"]["total"] == len(expected)


async def test_messages_counts_fields_and_commits_of_a_read(
    emu: Emulator, client: FlatfileClient, people: tuple[str, list[str], dict[str, str]]
) -> None:
    sheet_id, ids, commits = people
    page = await call(
        client,
        "GET",
        f"/sheets/{sheet_id}/records",
        params={"includeMessages": True, "includeCounts": True, "fields": ["email", "status"]},
    )
    assert page["counts"] == {
        "total": 6,
        "valid": 4,
        "error": 2,
        "errorsByField": {"email": 1, "status": 1},
    }
    carla = page["records"][2]
    assert list(carla["values"]) == ["email", "status"]
    assert carla["values"]["email"]["messages"][0]["source"] == "required-constraint"
    assert carla["values"]["status"]["messages"] == []
    errors = await call(
        client,
        "GET",
        f"/sheets/{sheet_id}/records",
        params={"filter": "error", "includeLength": True},
    )
    assert errors["counts"] == {
        "total": 2,
        "valid": 0,
        "error": 2,
        "errorsByField": {"email": 1, "status": 1},
    }
    by_field = await call(client, "GET", f"/sheets/{sheet_id}/counts", params={"byField": True})
    assert by_field["counts"]["byField"]["email"] == {
        "total": 6,
        "valid": 5,
        "error": 1,
        "empty": 1,
    }
    # `for`: the records of the commit an event announced.
    event = next(
        e
        for e in emu.events
        if e["topic"] == "commit:created" and e["context"]["commitId"] == commits["first"]
    )
    found = await call(client, "GET", f"/sheets/{sheet_id}/records", params={"for": event["id"]})
    assert [r["id"] for r in found["records"]] == ids[:3]
    listed = await call(client, "GET", f"/sheets/{sheet_id}/commits")
    assert [c["id"] for c in listed] == [commits["first"], commits["second"]]
    commit = await call(client, "GET", f"/commits/{commits['first']}")
    assert commit["sheetId"] == sheet_id
    assert commit["createdBy"] == "us_usr_emulator"
    assert TS.match(commit["completedAt"])  # the workbook does not track changes


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"filter": "bad"}, "filter"),
        ({"filterField": "nope", "filter": "error"}, "filterField"),
        ({"searchField": "nope", "searchValue": "x"}, "searchField"),
        ({"sortField": "nope"}, "sortField"),
        ({"sortDirection": "up", "sortField": "age"}, "sortDirection"),
        ({"fields": ["email", "nope"]}, "fields"),
        ({"includeMessages": "yes"}, "includeMessages"),
        ({"includeCounts": "1"}, "includeCounts"),
        ({"sinceCommitId": "us_vr_nope"}, "sinceCommitId"),
        ({"commitId": "us_vr_nope"}, "commitId"),
        ({"for": "us_evt_nope"}, "for"),
        ({"q": "email like %a%"}, "q"),
        ({"ids": [f"us_rc_{n}" for n in range(101)]}, "ids"),
    ],
)
async def test_a_bad_records_query_is_refused_naming_the_parameter(
    client: FlatfileClient,
    people: tuple[str, list[str], dict[str, str]],
    params: dict[str, Any],
    key: str,
) -> None:
    sheet_id, _, _ = people
    assert (await refused(client, "GET", f"/sheets/{sheet_id}/records", params=params))[
        "key"
    ] == key


async def test_the_sheet_downloads_as_csv_with_a_header_of_field_keys(
    emu: Emulator, http: aiohttp.ClientSession, people: tuple[str, list[str], dict[str, str]]
) -> None:
    sheet_id, _, _ = people
    async with http.get(f"{emu.url}/v1/sheets/{sheet_id}/download") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert 'filename="contacts.csv"' in resp.headers["Content-Disposition"]
        text = (await resp.read()).decode()
    assert text.splitlines() == [
        "email,name,status,age,tags",
        "ann@x.io,Ann Lee,active,41,",
        "bob@x.io,Bob,inactive,35,",
        ",Carla,active,29,",
        "dan@x.io,Dan,paused,52,",
        'eve@x.io,Eve ANN,,,"vip, b2b"',
        "fay@x.io,,inactive,7,",
    ]
    params = [("filter", "error")]
    async with http.get(f"{emu.url}/v1/sheets/{sheet_id}/download", params=params) as resp:
        assert len((await resp.read()).decode().splitlines()) == 3


async def test_a_workbook_that_tracks_changes_leaves_commits_open_until_completed(
    emu: Emulator, client: FlatfileClient, http: aiohttp.ClientSession
) -> None:
    workbook_id, sheet_id = await contacts(client, settings={"trackChanges": True})
    # A user's write: one that starts no hook (flatjobs' client's) is complete at once.
    made = await user_insert(http, emu, sheet_id, {"email": "a@b.c"})
    assert emu.events[-2]["payload"]["trackChanges"] is True
    open_ = await call(
        client, "GET", f"/workbooks/{workbook_id}/commits", params={"completed": False}
    )
    assert [c["id"] for c in open_] == [made["commitId"]]
    assert "completedAt" not in open_[0]
    start = len(emu.events)
    assert await call(client, "POST", f"/commits/{made['commitId']}/complete") == {"success": True}
    assert topics_since(emu, start) == ["commit:completed"]
    assert (
        await call(client, "GET", f"/sheets/{sheet_id}/commits", params={"completed": False}) == []
    )
    await refused(client, "GET", "/commits/us_vr_nope", status=404)


# ------------------------------------------------------------ files


def form(
    emu: Emulator,
    content: bytes,
    *,
    name: str = "contacts.csv",
    content_type: str = "text/csv",
    mode: str | None = None,
    actions: list[Any] | None = None,
    space_id: str = "us_sp_emulator",
) -> aiohttp.FormData:
    """The multipart body Flatfile's SDKs send: the fields, the file, one part per action."""
    data = aiohttp.FormData()
    data.add_field("spaceId", space_id)
    data.add_field("environmentId", emu.environment_id)
    if mode is not None:
        data.add_field("mode", mode)
    data.add_field("file", content, filename=name, content_type=content_type)
    for action in actions or []:
        data.add_field("actions", json.dumps(action))
    return data


async def test_a_file_is_uploaded_listed_read_downloaded_updated_and_deleted(
    emu: Emulator, http: aiohttp.ClientSession, client: FlatfileClient
) -> None:
    content = bytes(range(256)) * 3 + b"\r\n--not-a-boundary\r\n"
    start = len(emu.events)
    async with http.post(
        f"{emu.url}/v1/files",
        data=form(
            emu,
            content,
            name="raw.bin",
            content_type="application/x-thing",
            actions=[{"label": "Import", "operation": "import"}],
        ),
    ) as resp:
        assert resp.status == 200, await resp.text()
        file = (await resp.json())["data"]
    assert file["id"].startswith("us_fl_")
    assert {k: file[k] for k in ("name", "ext", "mimetype", "encoding", "status", "mode")} == {
        "name": "raw.bin",
        "ext": "bin",
        "mimetype": "application/x-thing",
        "encoding": "binary",
        "status": "partial",
        "mode": "import",
    }
    assert file["size"] == file["bytesReceived"] == len(content)
    assert file["spaceId"] == "us_sp_emulator"
    assert file["actions"] == [{"label": "Import", "operation": "import"}]
    assert TS.match(file["createdAt"])
    assert topics_since(emu, start) == ["file:created"]
    assert emu.events[start]["context"]["fileId"] == file["id"]
    assert emu.events[start]["domain"] == "file"
    async with http.get(f"{emu.url}/v1/files/{file['id']}/download") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/x-thing"
        assert await resp.read() == content
    assert emu.file_content(file["id"]) == content
    assert await call(client, "GET", f"/files/{file['id']}") == file
    listed = await client.request("GET", "/files", params={"spaceId": "us_sp_emulator"})
    assert [f["id"] for f in listed["data"]] == [file["id"]]
    assert listed["pagination"] == {"currentPage": 1, "pageCount": 1, "totalCount": 1}
    assert await call(client, "GET", "/files", params={"mode": "export"}) == []
    updated = await call(
        client, "PATCH", f"/files/{file['id']}", body={"status": "complete", "name": "x.csv"}
    )
    # A rename keeps the extension the file was uploaded with (the platform does: the
    # ext is what an extractor matches on, not part of the name a user sees).
    assert (updated["status"], updated["name"], updated["ext"]) == ("complete", "x.csv", "bin")
    assert (await refused(client, "PATCH", f"/files/{file['id']}", body={"status": "lost"}))[
        "key"
    ] == "status"
    assert (await refused(client, "PATCH", f"/files/{file['id']}", body={"name": 1}))[
        "key"
    ] == "name"
    assert await call(client, "DELETE", f"/files/{file['id']}") == {"success": True}
    await refused(client, "GET", f"/files/{file['id']}", status=404)
    async with http.get(f"{emu.url}/v1/files/{file['id']}/download") as resp:
        assert resp.status == 404
        assert (await resp.json())["errors"][0]["key"] == "fileId"
    assert topics_since(emu, start) == ["file:created", "file:updated", "file:deleted"]


async def test_files_are_listed_by_mode_twenty_to_a_page(
    emu: Emulator, http: aiohttp.ClientSession, client: FlatfileClient
) -> None:
    for n in range(21):
        async with http.post(f"{emu.url}/v1/files", data=form(emu, b"a,b\n", name=f"{n}.csv")):
            pass
    async with http.post(
        f"{emu.url}/v1/files", data=form(emu, "é,ü\n".encode(), name="out.csv", mode="export")
    ) as resp:
        export = (await resp.json())["data"]
    assert (export["mode"], export["status"], export["encoding"]) == ("export", "complete", "utf-8")
    first = await client.request("GET", "/files")
    assert len(first["data"]) == 20
    assert first["pagination"] == {"currentPage": 1, "pageCount": 2, "totalCount": 21}
    exports = await call(
        client, "GET", "/files", params={"mode": "export", "spaceId": "us_sp_emulator"}
    )
    assert [f["id"] for f in exports] == [export["id"]]
    assert (await refused(client, "GET", "/files", params={"mode": "both"}))["key"] == "mode"


async def test_a_bad_upload_is_refused_naming_the_part(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    async def upload(data: Any, status: int = 400) -> dict[str, Any]:
        async with http.post(f"{emu.url}/v1/files", data=data) as resp:
            assert resp.status == status, await resp.text()
            error: dict[str, Any] = (await resp.json())["errors"][0]
            return error

    no_file = aiohttp.MultipartWriter("form-data")  # FormData would send it url-encoded
    for name, value in (("spaceId", "us_sp_emulator"), ("environmentId", emu.environment_id)):
        no_file.append(value).set_content_disposition("form-data", name=name)
    assert (await upload(no_file))["key"] == "file"
    assert (await upload(form(emu, b"x", space_id="us_sp_nope"), 404))["key"] == "spaceId"
    assert (await upload(form(emu, b"x", mode="sideways")))["key"] == "mode"
    assert (await upload(form(emu, b"x", actions=[{"operation": "go"}])))[
        "key"
    ] == "actions[0].label"
    bad_json = form(emu, b"x")
    bad_json.add_field("actions", "{not json")
    assert "not valid JSON" in (await upload(bad_json))["message"]
    missing_env = aiohttp.FormData()
    missing_env.add_field("spaceId", "us_sp_emulator")
    missing_env.add_field("file", b"x", filename="a.txt")
    assert (await upload(missing_env))["key"] == "environmentId"
    assert "multipart" in (await upload(b'{"spaceId": "us_sp_emulator"}'))["message"]
    assert emu.data.files == {}


# ------------------------------------------------------------ documents


async def test_documents_of_a_space(emu: Emulator, client: FlatfileClient) -> None:
    start = len(emu.events)
    base = "/spaces/us_sp_emulator/documents"
    document = await call(client, "POST", base, body={"title": "Hello", "body": "<p>hi</p>"})
    assert document["id"].startswith("us_dc_")
    assert (document["title"], document["body"], document["spaceId"]) == (
        "Hello",
        "<p>hi</p>",
        "us_sp_emulator",
    )
    assert TS.match(document["createdAt"])
    assert await call(client, "GET", base) == [document]
    assert await call(client, "GET", f"{base}/{document['id']}") == document
    updated = await call(client, "PATCH", f"{base}/{document['id']}", body={"title": "Bye"})
    assert (updated["title"], updated["body"]) == ("Bye", "<p>hi</p>")
    other = await call(client, "POST", "/spaces", body={"name": "Other"})
    await refused(client, "GET", f"/spaces/{other['id']}/documents/{document['id']}", status=404)
    await refused(client, "GET", "/spaces/us_sp_nope/documents", status=404)
    assert (await refused(client, "POST", base, body={"title": "No body"}))["key"] == "body"
    assert (await refused(client, "POST", base, body={"title": 1, "body": "b"}))["key"] == "title"
    assert await call(client, "DELETE", f"{base}/{document['id']}") == {"success": True}
    assert await call(client, "GET", base) == []
    assert [t for t in topics_since(emu, start) if t.startswith("document:")] == [
        "document:created",
        "document:updated",
        "document:deleted",
    ]
    assert emu.events[start]["context"]["documentId"] == document["id"]


# ------------------------------------------------------------ hostile ids and paths


@pytest.mark.parametrize(
    "raw",
    [
        "/v1/sheets/{sheet}%2Fcounts/records",
        "/v1/sheets/{sheet}%3FpageSize=1/records",
        "/v1/sheets/%2E%2E/records",
        "/v1/sheets/..%2Fjobs/records",
        "/v1/sheets/../sheets/{sheet}/records",
        "/v1/sheets/{sheet}/../../jobs",
        "/v1/sheets/{sheet}/records/",
        "/v1/sheets/{sheet}%00/counts",
        "/v1/workbooks/%2E%2E",
        "/v1/files/..%2F..%2Fetc%2Fpasswd/download",
        "/v1/spaces/us_sp_emulator%2Fdocuments",
        "/v1/spaces/us_sp_emulator/documents/%2E%2E",
        "/v1/commits/{sheet}",
    ],
)
async def test_an_id_with_a_slash_question_mark_or_dots_routes_nowhere_else(
    seeded: Emulator, raw: str
) -> None:
    sheet_id = seeded.seeded.sheets["contacts"]
    url = yarl.URL(seeded.url + raw.format(sheet=sheet_id), encoded=True)
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {seeded.token}"}) as s,
        s.get(url) as resp,
    ):
        assert resp.status == 404
        body = await resp.json()
    assert isinstance(body["errors"][0]["message"], str)
    assert "data" not in body


async def test_ids_quoted_by_the_client_find_nothing_else(client: FlatfileClient) -> None:
    from flatjobs.client import segment

    _, sheet_id = await contacts(client)
    for hostile in (f"{sheet_id}/records", f"{sheet_id}?x=1", "...", f"{sheet_id}#", " "):
        error = await refused(client, "GET", f"/sheets/{segment(hostile)}/records", status=404)
        assert error["key"] == "sheetId"
        assert hostile in error["message"]


# ------------------------------------------------------------ events, faults, routes


async def test_every_event_of_the_data_is_one_flatfiles_python_sdk_can_read(
    emu: Emulator, client: FlatfileClient, http: aiohttp.ClientSession
) -> None:
    space = await call(client, "POST", "/spaces", body={"name": "S"})
    await call(client, "PATCH", f"/spaces/{space['id']}", body={"name": "T"})
    workbook_id, sheet_id = await contacts(
        client, spaceId=space["id"], settings={"trackChanges": True}
    )
    # A user's write, which starts the hooks: its commit stays open (trackChanges).
    made = await user_insert(http, emu, sheet_id, {"email": "a@b.c"}, {"name": "x"})
    record_id = made["records"][0]["id"]
    await call(
        client,
        "PUT",
        f"/sheets/{sheet_id}/records",
        body=[{"id": record_id, "values": {"email": {"value": None}}}],
    )
    await call(client, "POST", f"/commits/{made['commitId']}/complete")
    await call(client, "DELETE", f"/sheets/{sheet_id}/records", params={"ids": [record_id]})
    await call(client, "PATCH", f"/workbooks/{workbook_id}", body={"name": "W2"})
    await call(client, "PATCH", f"/sheets/{sheet_id}", body={"name": "S2"})
    async with http.post(f"{emu.url}/v1/files", data=form(emu, b"x", space_id=space["id"])) as resp:
        file_id = (await resp.json())["data"]["id"]
    await call(client, "PATCH", f"/files/{file_id}", body={"status": "complete"})
    await call(client, "DELETE", f"/files/{file_id}")
    document = await call(
        client, "POST", f"/spaces/{space['id']}/documents", body={"title": "t", "body": "b"}
    )
    await call(
        client, "PATCH", f"/spaces/{space['id']}/documents/{document['id']}", body={"body": "c"}
    )
    await call(client, "DELETE", f"/spaces/{space['id']}")
    topics = {e["topic"] for e in emu.events}
    assert topics <= PY_SDK_TOPICS, topics - PY_SDK_TOPICS
    assert {
        "records:created",
        "records:updated",
        "records:deleted",
        "commit:created",
        "commit:completed",
        "sheet:counts-updated",
        "file:created",
        "document:updated",
        "space:deleted",
        "workbook:deleted",
        "sheet:deleted",
    } <= topics
    for raw in emu.events:
        event = FlatfileEvent.parse(raw)  # flatjobs' own door takes every one
        assert event.context.account_id == "us_acc_emulator"
        assert event.context.environment_id == emu.environment_id
        assert raw["context"]["spaceId"] in (space["id"], "us_sp_emulator")
        assert TS.match(raw["createdAt"])
    # The feed serves them, filtered like any event.
    listed = await call(
        client,
        "GET",
        "/events",
        params={
            "environmentId": emu.environment_id,
            "topic": "records:created",
            "includeAcknowledged": True,
        },
    )
    assert [e["context"]["sheetId"] for e in listed] == [sheet_id]


async def test_faults_select_the_data_routes_by_name(emu: Emulator, client: FlatfileClient) -> None:
    assert {
        "records.list",
        "records.insert",
        "records.update",
        "records.delete",
        "sheets.get",
        "sheets.counts",
        "sheets.download",
        "workbooks.create",
        "files.upload",
        "files.download",
        "spaces.list",
        "documents.create",
    } <= set(ROUTES)
    _, sheet_id = await contacts(client)
    emu.faults.add(routes="records.*", status=503, limit=1)
    await refused(client, "GET", f"/sheets/{sheet_id}/records", status=503)
    assert (await call(client, "GET", f"/sheets/{sheet_id}/records"))["records"] == []
    assert [r.route for r in emu.requests[-2:]] == ["records.list", "records.list"]


async def test_the_recorded_request_holds_the_body_the_handler_read(
    emu: Emulator, client: FlatfileClient
) -> None:
    _, sheet_id = await contacts(client)
    await insert(client, sheet_id, {"email": "a@b.c"})
    request = emu.requests[-1]
    assert (request.route, request.status) == ("records.insert", 200)
    assert request.json == [{"email": {"value": "a@b.c"}}]


# ------------------------------------------------------------ actions and jobs


async def test_an_action_on_a_sheet_becomes_a_job_with_the_sheets_context(seeded: Emulator) -> None:
    sheet = seeded.sheet("contacts")
    workbook = seeded.workbook("Contacts")
    space = seeded.space("Acme")
    start = len(seeded.events)
    job = seeded.trigger_action("contacts", "dedupe", input={"keep": "first"})
    assert (job.type, job.operation, job.source) == ("sheet", "dedupe", sheet.id)
    assert (job.trigger, job.mode, job.status) == ("immediate", "background", "ready")
    assert job.space_id == space.id
    assert job.input == {"keep": "first"}
    created, ready = seeded.events[start:]
    assert (created["topic"], ready["topic"]) == ("job:created", "job:ready")
    assert ready["payload"]["job"] == "sheet:dedupe"
    context = ready["context"]
    assert context["sheetId"] == sheet.id
    assert context["sheetSlug"] == "contacts"
    assert context["workbookId"] == workbook.id
    assert context["spaceId"] == space.id
    assert context["actionName"] == "sheet:dedupe"
    assert context["jobId"] == job.id
    # A workbook's action, by id and by "domain:operation"; the mode defaults to foreground.
    job = seeded.trigger_action(workbook.id, "workbook:export")
    assert (job.type, job.operation, job.source, job.mode) == (
        "workbook",
        "export",
        workbook.id,
        "foreground",
    )
    assert seeded.trigger_action(sheet.id, "validate").mode == "foreground"
    with pytest.raises(
        LookupError, match=r"no action with operation 'nope' \(it has 'dedupe', 'validate'\)"
    ):
        seeded.trigger_action("contacts", "nope")
    with pytest.raises(LookupError, match="no workbook, sheet or space 'ghost'"):
        seeded.trigger_action("ghost", "dedupe")


async def test_trigger_picks_the_first_workbook_or_sheet_when_there_is_data(
    seeded: Emulator, emu: Emulator
) -> None:
    job = seeded.trigger("workbook:export")
    assert job.source == seeded.seeded.workbooks["Contacts"]
    ready = seeded.events[-1]
    assert ready["context"]["spaceId"] == seeded.seeded.spaces["Acme"]
    assert seeded.trigger("sheet:anything").source == seeded.seeded.sheets["contacts"]
    # Without data, the made-up ids of before.
    assert emu.trigger("workbook:export").source == "us_wb_emulator"
    assert emu.trigger("sheet:x").source == "us_sh_emulator"


async def test_a_job_created_through_the_api_on_a_known_sheet_gets_its_context(
    seeded: Emulator, sclient: FlatfileClient
) -> None:
    sheet_id = seeded.seeded.sheets["contacts"]
    job = await call(
        sclient,
        "POST",
        "/jobs",
        body={"type": "sheet", "operation": "clean", "source": sheet_id, "trigger": "immediate"},
    )
    assert job["spaceId"] == seeded.seeded.spaces["Acme"]
    ready = seeded.events[-1]
    assert ready["topic"] == "job:ready"
    assert ready["context"]["sheetSlug"] == "contacts"
    assert ready["context"]["workbookId"] == seeded.seeded.workbooks["Contacts"]


async def test_a_handler_reads_and_writes_the_sheet_its_action_names(seeded: Emulator) -> None:
    jobs = Jobs()

    @jobs.handle("sheet:dedupe")
    async def dedupe(event: FlatfileEvent, tick: Any) -> str:
        sheet_id = event.context.sheet_id
        answer = await event.client.request("GET", f"/sheets/{sheet_id}/records")
        seen: set[str] = set()
        doomed = []
        for record in answer["data"]["records"]:
            email = record["values"]["email"]["value"]
            if email in seen:
                doomed.append(record["id"])
            seen.add(email)
        await event.client.request("DELETE", f"/sheets/{sheet_id}/records", params={"ids": doomed})
        return f"removed {len(doomed)}"

    async with emulated(Listener().use(jobs), emulator=seeded):
        job = seeded.trigger_action("contacts", "dedupe")
        done = await seeded.wait_for(job.id)
    assert done.status == "complete"
    assert done.outcome is not None
    assert done.outcome.message == "removed 1"
    assert seeded.counts("contacts").total == 3


async def test_flatjobs_client_reads_and_writes_through_its_typed_api(
    seeded: Emulator, sclient: FlatfileClient
) -> None:
    sheet_id = seeded.seeded.sheets["contacts"]
    page = await sclient.records.get(sheet_id, include_messages=True)
    assert len(page) == 4
    assert page.commit_id is not None
    invalid = [r for r in page if r.valid is False]
    assert len(invalid) == 1
    record = invalid[0]
    record["email"] = "carla@example.com"
    result = await sclient.records.update(sheet_id, [record])
    assert result.version_id is not None
    assert (await sclient.sheets.counts(sheet_id)).error == 0
    made = await sclient.records.insert(sheet_id, [{"email": "zed@example.com", "age": 9}])
    assert [r.get("age") for r in made] == [9]
    assert [r["email"] async for r in sclient.records.iterate(sheet_id, page_size=2)][
        -1
    ] == "zed@example.com"
    file = await sclient.files.upload(b"a,b\n", name="x.csv", space_id=seeded.seeded.spaces["Acme"])
    assert seeded.file_content(file.id) == b"a,b\n"


# ------------------------------------------------------------ seeds


async def test_a_seed_file_with_a_csv_makes_the_space_workbook_sheet_and_records(
    seeded: Emulator, sclient: FlatfileClient
) -> None:
    ids = seeded.seeded
    assert set(ids.spaces) == {"Acme"}
    assert ids.workbooks == {
        "Contacts": ids.workbooks["Contacts"],
        "Acme/Contacts": ids.workbooks["Contacts"],
    }
    assert ids.sheets["contacts"] == ids.sheets["Contacts/contacts"]
    assert set(ids.documents) == {"Welcome"}
    space = seeded.space("Acme")
    assert space.metadata == {"customer": "acme"}
    sheet = seeded.sheet("contacts")
    assert sheet.id == ids.sheets["contacts"]
    assert sheet.config is not None
    assert [f.key for f in sheet.config.fields] == ["email", "name", "status", "age"]
    email = sheet.config.field("email")
    assert email is not None
    assert email.required
    status = sheet.config.field("status")
    assert status is not None
    assert status.options == ["active", "inactive"]
    assert [a.operation for a in sheet.config.actions or []] == ["dedupe", "validate"]
    assert [a.operation for a in seeded.workbook("Contacts").actions or []] == ["export"]
    records = seeded.records("contacts")
    assert [r["values"]["email"]["value"] for r in records] == [
        "ann@example.com",
        "bob@example.com",
        None,
        "ann@example.com",
    ]
    assert records[0]["values"]["age"]["value"] == 41  # a number field's cell is a number
    assert [r["valid"] for r in records] == [True, True, False, True]
    counts = seeded.counts("contacts")
    assert (counts.total, counts.valid, counts.error) == (4, 3, 1)
    assert [d.title for d in seeded.documents("Acme")] == ["Welcome"]
    # Seeding is silent: the world as it already was.
    assert seeded.events == []
    listed = await call(sclient, "GET", "/workbooks", params={"spaceId": space.id})
    assert [w["name"] for w in listed] == ["Contacts"]


async def test_a_seed_from_a_dict_with_cells_fixed_ids_documents_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data.txt").write_bytes(b"\x00\x01raw")
    monkeypatch.chdir(tmp_path)
    async with Emulator() as emu:
        seeded = emu.seed(
            {
                "workbooks": [
                    {
                        "id": "us_wb_fixed",
                        "name": "Orders",
                        "settings": {"trackChanges": True},
                        "sheets": [
                            {
                                "id": "us_sh_orders",
                                "name": "Orders",
                                "fields": [
                                    {"key": "sku", "required": True},
                                    {"key": "qty", "type": "number"},
                                    {
                                        "key": "kind",
                                        "type": "enum",
                                        "options": [{"value": 1, "label": "One"}],
                                    },
                                ],
                                "records": [
                                    {"sku": "A-1", "qty": 3, "kind": 1},
                                    {
                                        "sku": {
                                            "value": "B-2",
                                            "messages": [{"message": "discontinued"}],
                                        }
                                    },
                                ],
                            }
                        ],
                    }
                ],
                "documents": [{"id": "us_dc_readme", "title": "Readme", "body": "b"}],
                "files": [
                    {"name": "data.txt", "path": "data.txt", "mimetype": "text/plain"},
                    {"name": "out.csv", "content": "a\n", "mode": "export"},
                ],
            },
            events=True,
        )
        assert seeded.workbooks["Orders"] == "us_wb_fixed"
        assert seeded.sheets["orders"] == "us_sh_orders"  # the slug made from the name
        assert seeded.documents == {"Readme": "us_dc_readme"}
        assert emu.seeded.sheets["orders"] == "us_sh_orders"
        records = emu.records("orders")
        assert records[1]["valid"] is False
        assert records[1]["values"]["sku"]["messages"] == [
            {"message": "discontinued", "type": "error", "source": "custom-logic"}
        ]
        assert emu.file_content(seeded.files["data.txt"]) == b"\x00\x01raw"
        assert emu.file(seeded.files["data.txt"]).mimetype == "text/plain"
        assert emu.file(seeded.files["out.csv"]).mode == "export"
        # Asked for, the events of the seed are emitted.
        assert "records:created" in {e["topic"] for e in emu.events}
        # Seeding again adds; a fixed id in use is refused.
        with pytest.raises(SeedError, match=r"workbooks\[0\]: id 'us_wb_fixed' must start"):
            emu.seed({"workbooks": [{"id": "us_wb_fixed", "name": "Again"}]})
        # Two workbooks with one slug: the plain slug is ambiguous, the qualified one is not.
        again = emu.seed(
            {"workbooks": [{"name": "Orders 2", "sheets": [{"name": "Orders", "fields": []}]}]}
        )
        assert again.sheets["orders"] != "us_sh_orders"
        with pytest.raises(LookupError, match="names 2 of them"):
            emu.sheet("orders")
        assert emu.sheet("orders", workbook="Orders 2").id == again.sheets["orders"]


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ({"sheets": []}, "unknown key 'sheets'"),
        ({"workbooks": {}}, "workbooks: must be an array"),
        ({"workbooks": [{"name": "W", "sheet": []}]}, r"workbooks\[0\]: unknown key 'sheet'"),
        (
            {"workbooks": [{"name": "W", "sheets": [{"name": "S", "fields": [{"key": "e", "type": "enum"}]}]}]},
            r"workbooks\[0\]: sheets\[0\]\.fields\[0\]\.config\.options must be an array",
        ),
        (
            {"workbooks": [{"name": "W", "sheets": [{"name": "S", "fields": [{"key": "a"}], "records": [{"a": [1, 2]}]}]}]},
            r"workbooks\[0\]\.sheets\[0\]\.records: \[0\]\.a\.value must be",
        ),
        (
            {"workbooks": [{"name": "W", "sheets": [{"name": "S", "fields": [], "records": "missing.csv"}]}]},
            r"workbooks\[0\]\.sheets\[0\]\.records: cannot read .*missing\.csv",
        ),
        ({"spaces": [{"name": 3}]}, r"spaces\[0\]: name must be a string"),
        ({"files": [{"name": "f"}]}, r"files\[0\]: needs a path or a content"),
    ],
)  # fmt: skip
def test_a_bad_seed_says_where_and_why(seed: dict[str, Any], message: str) -> None:
    with pytest.raises(SeedError, match=message):
        Emulator(seed=seed)


def test_an_integer_seed_points_at_fault_seed() -> None:
    with pytest.raises(TypeError, match="fault_seed=7"):
        Emulator(seed=7)  # type: ignore[arg-type]


def test_a_seed_file_that_is_not_json_or_not_there(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(SeedError, match=r"bad\.json is not valid JSON"):
        Emulator(seed=bad)
    with pytest.raises(SeedError, match="cannot read the seed"):
        Emulator(seed=str(tmp_path / "absent.json"))


def test_a_csv_seed_reads_each_cell_by_its_fields_type(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text(
        'n,b,l,s,extra\n42,yes,"a, b",007,x\n4.5,false,,,\nNaN,maybe,c,"",\n1e999,1,,,\n'
    )
    seed = {
        "workbooks": [
            {
                "name": "W",
                "sheets": [
                    {
                        "name": "S",
                        "fields": [
                            {"key": "n", "type": "number"},
                            {"key": "b", "type": "boolean"},
                            {"key": "l", "type": "string-list"},
                            {"key": "s"},
                        ],
                        "records": "rows.csv",
                    }
                ],
            }
        ]
    }
    (tmp_path / "seed.json").write_text(json.dumps(seed))
    emu = Emulator(seed=tmp_path / "seed.json")
    values = [{k: c["value"] for k, c in r["values"].items()} for r in emu.records("s")]
    assert values == [
        {"n": 42, "b": True, "l": ["a", "b"], "s": "007"},
        {"n": 4.5, "b": False, "l": None, "s": None},
        {"n": "NaN", "b": "maybe", "l": ["c"], "s": None},
        {"n": "1e999", "b": True, "l": None, "s": None},
    ]


# ------------------------------------------------------------ the command line


async def _flatjobs(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flatjobs",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_emulator_command_serves_a_seed() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flatjobs",
        "emulator",
        "--port",
        "0",
        "--seed",
        str(SEED),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("  seeded sheet contacts:"):
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line, "the emulator stopped: " + "".join(lines)
            lines.append(line)
        url = lines[0].rsplit(" ", 1)[1].strip()
        sheet_id = lines[-1].rsplit(" ", 1)[1].strip()
        assert sheet_id.startswith("us_sh_")
        request = urllib.request.Request(
            f"{url}/v1/sheets/{sheet_id}/records?filter=error",
            headers={"Authorization": "Bearer sk_emulator_local"},
        )
        body = await asyncio.to_thread(
            lambda: json.load(urllib.request.urlopen(request, timeout=10))
        )
        assert [r["values"]["name"]["value"] for r in body["data"]["records"]] == ["Carla Diaz"]
    finally:
        proc.terminate()
        await proc.wait()


async def test_a_bad_seed_stops_the_commands_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "seed.json"
    bad.write_text('{"spaces": [{"name": 1}]}')
    code, _, err = await _flatjobs("emulator", "--port", "0", "--seed", str(bad), timeout=30)
    assert code == 2
    assert "flatjobs emulator: error:" in err
    assert "spaces[0]: name must be a string" in err
    code, _, err = await _flatjobs(
        "dev", "tests/apps/slow.py", "--seed", str(bad), "--exit-when-idle", timeout=30
    )
    assert code == 2
    assert "flatjobs dev: error:" in err


async def test_dev_runs_a_sheet_action_against_the_seeded_sheet(tmp_path: Path) -> None:
    app = tmp_path / "dedupe_app.py"
    app.write_text(
        "from flatjobs import Jobs\n"
        "jobs = Jobs()\n"
        "@jobs.handle('sheet:dedupe')\n"
        "async def dedupe(event, tick):\n"
        "    sheet_id = event.context.sheet_id\n"
        "    answer = await event.client.request('GET', f'/sheets/{sheet_id}/records')\n"
        "    records = answer['data']['records']\n"
        "    emails = [r['values']['email']['value'] for r in records]\n"
        "    doomed = [r['id'] for i, r in enumerate(records) if emails[i] in emails[:i]]\n"
        "    await event.client.request(\n"
        "        'DELETE', f'/sheets/{sheet_id}/records', params={'ids': doomed})\n"
        "    return f'removed {len(doomed)} of {len(records)} in {event.context.sheet_slug}'\n"
    )
    code, out, err = await _flatjobs(
        "dev",
        str(app),
        "--seed",
        str(SEED),
        "--trigger",
        "sheet:dedupe",
        "--exit-when-idle",
        "--timeout",
        "30",
    )
    assert code == 0, out + err
    assert "removed 1 of 4 in contacts" in out
    assert "1 job(s): 1 complete, 0 failed" in out


# ------------------------------------------------------------ speed


async def test_a_page_of_a_large_sheet_is_a_slice_not_a_scan(client: FlatfileClient) -> None:
    made = await call(
        client,
        "POST",
        "/workbooks",
        body={
            "name": "W",
            "sheets": [
                {
                    "name": "S",
                    "fields": [
                        {"key": "n", "type": "number", "constraints": [{"type": "required"}]}
                    ],
                }
            ],
        },
    )
    sheet_id = made["sheets"][0]["id"]
    started = time.perf_counter()
    for batch in range(4):
        rows = [{"n": {"value": batch * 10_000 + n}} for n in range(10_000)]
        await call(client, "POST", f"/sheets/{sheet_id}/records", body=rows)
    inserted = time.perf_counter() - started
    started = time.perf_counter()
    page = await call(client, "GET", f"/sheets/{sheet_id}/records", params={"pageNumber": 4})
    read = time.perf_counter() - started
    assert [r["values"]["n"]["value"] for r in page["records"][:2]] == [30_000, 30_001]
    # Generous bounds (measured: ~1.5 s and ~0.1 s); a scan per page or a quadratic insert
    # would blow them on any machine.
    assert inserted < 20, inserted
    assert read < 3, read
