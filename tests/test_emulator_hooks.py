"""The emulator does what the platform does for record hooks: a write of records makes a
commit whose ``commit:created`` carries a relative ``dataUrl``; a GET of it serves the
commit's records in the shape a hook that changes nothing sends nothing back for; a gzipped
PUT to it merges what the hook changed; a write with ``X-Disable-Hooks`` starts no hook; a
workbook that tracks changes keeps each commit open until it is completed. All through real
HTTP, with the headers and bodies Flatfile's record hook sends."""

from __future__ import annotations

import gzip
import json
import resource
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from flatjobs import FlatfileClient, RetryPolicy
from flatjobs.emulator import Emulator, EmulatorError
from flatjobs.testing import client_for

FIELDS: list[dict[str, Any]] = [
    {"key": "name"},
    {"key": "email", "required": True},
    {"key": "age", "type": "number"},
]
# What Flatfile's record hook sends on every request (@flatfile/listener's event.fetch).
HOOK_HEADERS = {"x-disable-hooks": "true", "Content-Type": "application/json"}


def seed(emu: Emulator, *, track_changes: bool = False, slug: str = "contacts") -> str:
    """A workbook with one sheet; its id."""
    seeded = emu.seed(
        {
            "workbooks": [
                {
                    "name": f"W {slug}",
                    "settings": {"trackChanges": track_changes},
                    "sheets": [{"name": slug, "slug": slug, "fields": FIELDS}],
                }
            ]
        }
    )
    return seeded.sheets[slug]


@pytest.fixture
async def http(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A bare session: no X-Disable-Hooks unless a request says so."""
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with aiohttp.ClientSession(base_url=emu.url, headers=headers) as session:
        yield session


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[FlatfileClient]:
    async with client_for(emu, retry=RetryPolicy(attempts=1)) as c:
        yield c


async def send(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    gzipped: bool = False,
) -> tuple[int, Any]:
    """One request (``url`` relative to the emulator's root, as a ``dataUrl`` is): the
    status and the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    sent = dict(headers or {})
    if gzipped and data is not None:
        data = gzip.compress(data)
        sent["Content-Encoding"] = "gzip"
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    async with http.request(method, "/" + url.lstrip("/"), data=data, headers=sent) as response:
        return response.status, await response.json()


def created_events(emu: Emulator, start: int = 0) -> list[dict[str, Any]]:
    return [e for e in emu.events[start:] if e["topic"] == "commit:created"]


# ------------------------------------------------------------ commit:created and its dataUrl


async def test_a_users_write_announces_its_commit_with_a_relative_data_url(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    sheet_id = seed(emu, track_changes=True)
    status, answer = await send(
        http, "POST", f"v1/sheets/{sheet_id}/records", [{"name": {"value": "Ann"}}]
    )
    assert status == 200
    [event] = created_events(emu)
    assert event["domain"] == "workbook"
    assert event["payload"] == {"trackChanges": True, "sheetId": sheet_id}
    context = event["context"]
    sheet = emu.data.sheets[sheet_id]
    assert context == {
        "accountId": emu.state.account_id,
        "environmentId": emu.environment_id,
        "actorId": "us_usr_emulator",
        "spaceId": sheet.workbook.space.id,
        "workbookId": sheet.workbook.id,
        "sheetId": sheet_id,
        "sheetSlug": "contacts",
        "commitId": answer["data"]["commitId"],
    }
    # Relative, no leading slash, plain key=value pairs: Flatfile's listener appends it to
    # its API base and re-encodes the query with URLSearchParams.
    url = event["dataUrl"]
    assert url == f"v1/sheets/{sheet_id}/records?for={event['id']}&includeMessages=true"
    assert "%" not in url
    # The event feed serves it too, as a polling or pushed listener gets it.
    async with http.get("/v1/events", params={"environmentId": emu.environment_id}) as response:
        listed = (await response.json())["data"]
    assert next(e for e in listed if e["id"] == event["id"])["dataUrl"] == url


async def test_the_data_url_serves_the_commits_records_so_a_no_op_hook_sends_nothing(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    seed(emu)
    emu.add_records("contacts", [{"name": "Before"}])
    event = emu.add_records("contacts", [{"name": "Ann", "email": "a@x.io"}, {"age": 3}])
    assert event is not None
    status, answer = await send(http, "GET", event["dataUrl"], headers=HOOK_HEADERS)
    assert status == 200
    data = answer["data"]
    assert data["success"] is True
    ann, third = data["records"]
    # Exactly id, values, valid, metadata, config: a key more or less on either side makes
    # Flatfile's hook count the record as changed and send all of it back.
    assert set(ann) == {"id", "values", "valid", "metadata", "config"}
    assert (ann["metadata"], ann["config"]) == ({}, {})
    # Every field, an empty one with "value": null (a cell read without a value is always
    # sent back; a field not read cannot be set).
    assert list(third["values"]) == ["name", "email", "age"]
    assert third["values"]["name"]["value"] is None
    assert set(third["values"]["name"]) == {"value", "valid", "updatedAt", "messages"}
    assert third["values"]["email"]["messages"] == [
        {"type": "error", "source": "required-constraint", "message": "email is required"}
    ]
    assert third["valid"] is False
    assert ann["values"]["email"] == {
        "value": "a@x.io",
        "valid": True,
        "updatedAt": ann["values"]["email"]["updatedAt"],
        "messages": [],
    }


async def test_the_data_url_pages_and_keeps_its_records_while_a_hook_writes_back(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    sheet_id = seed(emu)
    emu.add_records("contacts", [{"name": "other"}])
    event = emu.add_records("contacts", [{"name": f"n{i}"} for i in range(25)])
    assert event is not None
    emu.add_records("contacts", [{"name": "later"}])
    seen: list[str] = []
    for number in (1, 2, 3, 4):
        url = f"{event['dataUrl']}&pageSize=10&pageNumber={number}"
        status, answer = await send(http, "GET", url, headers=HOOK_HEADERS)
        assert status == 200
        page = answer["data"]["records"]
        seen += [r["values"]["name"]["value"] for r in page]
        if not page:
            continue
        # A hook writes each page back before it reads the next: the commit's records stay
        # the same selection (a record rewritten is still the commit's), in the same order.
        back = [
            {"id": r["id"], "values": {"name": {"value": "X" + r["values"]["name"]["value"]}}}
            for r in page
        ]
        status, _ = await send(
            http, "PUT", event["dataUrl"], back, headers=HOOK_HEADERS, gzipped=True
        )
        assert status == 200
    assert seen == [f"n{i}" for i in range(25)]
    names = [r["values"]["name"]["value"] for r in emu.records(sheet_id)]
    assert names == ["other", *(f"Xn{i}" for i in range(25)), "later"]


async def test_without_a_page_size_the_data_url_answers_the_whole_commit(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """Flatfile's JS hook reads a commit in one GET and takes that for the whole commit:
    more records than a page of the records endpoint (10,000) all come at once."""
    sheet_id = seed(emu)
    event = emu.add_records("contacts", ({"name": str(i)} for i in range(10_001)))
    assert event is not None
    status, answer = await send(http, "GET", event["dataUrl"], headers=HOOK_HEADERS)
    assert status == 200
    assert len(answer["data"]["records"]) == 10_001
    status, answer = await send(http, "GET", f"v1/sheets/{sheet_id}/records")
    assert len(answer["data"]["records"]) == 10_000


async def test_a_hooks_gzipped_write_back_merges_and_starts_no_hook(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    sheet_id = seed(emu, track_changes=True)
    event = emu.add_records(
        "contacts", [{"name": "alice", "email": "a@x.io", "age": 30}, {"name": "Carol"}]
    )
    assert event is not None
    alice, carol = emu.records("contacts")
    start = len(emu.events)
    # What Flatfile's hook sends: only changed cells, a message-only cell for an empty
    # value, metadata and config with every record.
    body = [
        {
            "id": alice["id"],
            "values": {"name": {"value": "Alice", "messages": []}},
            "metadata": {"seen": True},
            "config": {},
        },
        {
            "id": carol["id"],
            "values": {
                "email": {
                    "messages": [
                        {"message": "Email is required", "type": "error", "source": "custom-logic"}
                    ]
                }
            },
            "metadata": {},
            "config": {"fields": {"email": {"readonly": True}}},
        },
    ]
    status, answer = await send(
        http, "PUT", event["dataUrl"], body, headers=HOOK_HEADERS, gzipped=True
    )
    assert status == 200
    assert set(answer["data"]) == {"versionId", "commitId"}
    alice, carol = emu.records("contacts")
    assert {k: v["value"] for k, v in alice["values"].items()} == {
        "name": "Alice",
        "email": "a@x.io",  # a cell not sent stays as it was
        "age": 30,
    }
    assert alice["metadata"] == {"seen": True}
    assert carol["values"]["name"]["value"] == "Carol"
    assert carol["values"]["email"]["messages"][-1] == {
        "message": "Email is required",
        "type": "error",
        "source": "custom-logic",
    }
    assert carol["config"] == {"fields": {"email": {"readonly": True}}}
    # The hook's own write makes a commit, which starts no hook: no loop.
    assert [e["topic"] for e in emu.events[start:]] == ["records:updated"]
    written = emu.data.commits[answer["data"]["commitId"]]
    assert written.completed_at is not None  # no hook will see it to complete it
    # The user's commit stays open: Flatfile's hook does not complete a commit it wrote
    # back to, and the emulator does not complete it for the hook.
    assert [c["id"] for c in emu.commits(completed=False)] == [event["context"]["commitId"]]
    assert emu.commits(sheet_id, completed=False) == emu.commits(completed=False)


async def test_hook_headers_decide_whether_a_write_starts_the_hooks(
    emu: Emulator, http: aiohttp.ClientSession, client: FlatfileClient
) -> None:
    sheet_id = seed(emu, track_changes=True)
    url = f"v1/sheets/{sheet_id}/records"
    cases = [
        ({}, True),  # a user, an import
        ({"X-Disable-Hooks": "true"}, False),  # Flatfile's SDKs, flatjobs' client
        ({"x-disable-hooks": "TRUE"}, False),
        ({"X-Disable-Hooks": "false"}, True),
        ({"X-Disable-Hooks": "true", "X-Force-Hooks": "true"}, True),
        ({"x-force-hooks": "true"}, True),  # Flatfile's createRecords (extractors)
    ]
    for headers, starts in cases:
        start = len(emu.events)
        status, answer = await send(http, "POST", url, [{"name": {"value": "x"}}], headers=headers)
        assert status == 200
        topics = [e["topic"] for e in emu.events[start:]]
        assert ("commit:created" in topics) is starts, headers
        assert topics[0] == "records:created"  # the write itself is always announced
        commit = emu.data.commits[answer["data"]["commitId"]]
        # trackChanges keeps open only a commit a hook is told of.
        assert (commit.completed_at is None) is starts, headers
    start = len(emu.events)
    made = await client.request(
        "POST", f"/{url.removeprefix('v1/')}", body=[{"name": {"value": "c"}}]
    )
    assert "commit:created" not in [e["topic"] for e in emu.events[start:]]
    assert made["data"]["commitId"] not in [c["id"] for c in emu.commits(completed=False)]
    # Deletes follow the same rule.
    record_id = emu.records("contacts")[0]["id"]
    start = len(emu.events)
    async with http.delete(f"/{url}", params={"ids": record_id}) as response:
        assert response.status == 200
    assert [e["topic"] for e in emu.events[start:]][:2] == ["records:deleted", "commit:created"]


async def test_a_tracked_commit_stays_open_until_completed_once(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    sheet_id = seed(emu, track_changes=True)
    event = emu.add_records("contacts", [{"name": "a"}])
    assert event is not None
    commit_id = event["context"]["commitId"]
    assert [c["id"] for c in emu.commits("contacts", completed=False)] == [commit_id]
    status, answer = await send(
        http, "GET", f"v1/sheets/{sheet_id}/commits?completed=false", headers=HOOK_HEADERS
    )
    assert [c["id"] for c in answer["data"]] == [commit_id]
    start = len(emu.events)
    for _ in range(2):  # as Flatfile's hook sends it: no body, Content-Length: 0
        status, answer = await send(
            http, "POST", f"v1/commits/{commit_id}/complete", headers=HOOK_HEADERS
        )
        assert (status, answer) == (200, {"data": {"success": True}})
    completed = [e for e in emu.events[start:] if e["topic"] == "commit:completed"]
    assert [e["context"]["commitId"] for e in completed] == [commit_id]
    assert emu.commits(completed=False) == []
    assert [c["id"] for c in emu.commits(completed=True)] == [commit_id]
    status, _ = await send(http, "POST", "v1/commits/undefined/complete", headers=HOOK_HEADERS)
    assert status == 404


async def test_a_cell_sent_as_an_empty_object_empties_its_value(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """An SDK update of {value: undefined} sends {}: the value goes (Flatfile's e2e test
    expects the cell empty after it); a cell with only messages keeps its value."""
    sheet_id = seed(emu)
    emu.add_records("contacts", [{"name": "John", "email": "j@x.io"}])
    [record] = emu.records("contacts")
    body = [{"id": record["id"], "values": {"name": {}, "email": {"messages": [{"message": "m"}]}}}]
    status, _ = await send(http, "PUT", f"v1/sheets/{sheet_id}/records", body)
    assert status == 200
    [record] = emu.records("contacts")
    assert record["values"]["name"]["value"] is None
    assert record["values"]["email"]["value"] == "j@x.io"
    assert record["values"]["email"]["messages"][-1]["message"] == "m"


async def test_a_user_adds_and_edits_records(emu: Emulator) -> None:
    sheet_id = seed(emu, track_changes=True)
    event = emu.add_records("contacts", [{"name": "a", "age": 1}])
    assert event is not None
    assert event["topic"] == "commit:created"
    [record] = emu.records(sheet_id)
    edited = emu.edit_records("contacts", {record["id"]: {"name": "b", "age": None}})
    assert edited is not None
    assert edited["context"]["commitId"] != event["context"]["commitId"]
    [record] = emu.records(sheet_id)
    assert (record["values"]["name"]["value"], record["values"]["age"]["value"]) == ("b", None)
    assert len(emu.commits(completed=False)) == 2
    # Nothing to add, nothing changed: no commit.
    assert emu.add_records("contacts", []) is None
    assert emu.edit_records("contacts", {record["id"]: {"name": "b"}}) is None
    with pytest.raises(EmulatorError, match="not in sheet"):
        emu.edit_records("contacts", {"us_rc_nope": {"name": "x"}})
    with pytest.raises(LookupError):
        emu.add_records("nope", [{"name": "x"}])


# ------------------------------------------------------------ hostile


async def test_a_data_url_for_an_unknown_or_foreign_event_is_refused(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    sheet_id = seed(emu)
    other_id = seed(emu, slug="other")
    event = emu.add_records("other", [{"name": "x"}])
    assert event is not None
    job_event = emu.emit("job:ready", domain="job", context={"jobId": "us_jb_1"})
    for given in ("us_evt_nope", event["id"], job_event["id"], "a/../b?c=d", ""):
        url = f"v1/sheets/{sheet_id}/records?for={given}"
        for method in ("GET", "PUT"):
            status, answer = await send(
                http, method, url, [] if method == "PUT" else None, headers=HOOK_HEADERS
            )
            assert status == 400, (given, method)
            assert answer["errors"][0]["key"] == "for"
    assert len(emu.records(other_id)) == 1


async def test_a_write_back_of_records_the_commit_does_not_hold_changes_nothing(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    seed(emu)
    emu.add_records("contacts", [{"name": "older"}])
    event = emu.add_records("contacts", [{"name": "mine"}])
    assert event is not None
    older, mine = emu.records("contacts")
    start = len(emu.events)
    for body, key in [
        ([{"id": mine["id"], "values": {"name": {"value": "M"}}}, {"id": older["id"], "values": {}}], "[1].id"),
        ([{"id": "us_rc_nope", "values": {}}], "[0].id"),
        ([{"id": mine["id"], "values": {"name": {"value": {"deep": 1}}}}], "[0].values.name.value"),
        ([{"id": mine["id"], "values": {"name": "M"}}], "[0].values.name"),
        ([{"id": 7}], "[0].id"),
        ({"id": mine["id"]}, ""),
        ([{"id": mine["id"], "values": {"name": {"messages": "bad"}}}], "[0].values.name.messages"),
    ]:  # fmt: skip
        status, answer = await send(
            http, "PUT", event["dataUrl"], body, headers=HOOK_HEADERS, gzipped=True
        )
        assert status == 400, body
        assert answer["errors"][0].get("key", "") == key
    assert emu.events[start:] == []
    assert [r["values"]["name"]["value"] for r in emu.records("contacts")] == ["older", "mine"]


async def test_a_deleted_record_leaves_its_commits_data_url(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    sheet_id = seed(emu)
    event = emu.add_records("contacts", [{"name": "a"}, {"name": "b"}, {"name": "c"}])
    assert event is not None
    doomed = emu.records("contacts")[1]["id"]
    async with http.delete(f"/v1/sheets/{sheet_id}/records", params={"ids": doomed}) as response:
        assert response.status == 200
    _, answer = await send(http, "GET", event["dataUrl"], headers=HOOK_HEADERS)
    assert [r["values"]["name"]["value"] for r in answer["data"]["records"]] == ["a", "c"]
    deletion = created_events(emu)[-1]
    _, answer = await send(http, "GET", deletion["dataUrl"], headers=HOOK_HEADERS)
    assert answer["data"]["records"] == []  # what a delete changed is gone
    status, answer = await send(
        http,
        "PUT",
        event["dataUrl"],
        [{"id": doomed, "values": {"name": {"value": "x"}}}],
        headers=HOOK_HEADERS,
    )
    assert status == 400
    assert "not in sheet" in answer["errors"][0]["message"]


async def test_broken_and_hostile_gzip_bodies_are_refused_within_bounds(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    seed(emu)
    event = emu.add_records("contacts", [{"name": "a"}])
    assert event is not None
    url = "/" + event["dataUrl"]
    headers = {**HOOK_HEADERS, "Content-Encoding": "gzip"}
    # Not gzip at all.
    async with http.put(url, data=b"not gzip at all", headers=headers) as response:
        assert response.status == 400
    # Gzip of something that is not JSON.
    async with http.put(url, data=gzip.compress(b"[{"), headers=headers) as response:
        assert response.status == 400
        assert "not valid JSON" in (await response.json())["errors"][0]["message"]
    # Cut short.
    whole = gzip.compress(json.dumps([{"id": "x"}]).encode())
    async with http.put(url, data=whole[:-9], headers=headers) as response:
        assert response.status == 400
        assert "cut short" in (await response.json())["errors"][0]["message"]
    # An encoding the emulator does not speak; deflate it does.
    async with http.put(url, data=b"[]", headers={**headers, "Content-Encoding": "br"}) as resp:
        assert resp.status == 415
    [record] = emu.records("contacts")
    update = [{"id": record["id"], "values": {"name": {"value": "b"}}}]
    deflated = zlib.compress(json.dumps(update).encode())
    async with http.put(
        url, data=deflated, headers={**headers, "Content-Encoding": "deflate"}
    ) as resp:
        assert resp.status == 200
    # A bomb: a few hundred kilobytes that inflate to 256 MiB of zeros. It is inflated up to
    # the limit of a records body (128 MiB) and refused, never whole (aiohttp's own
    # inflating would hold all 256 MiB, and more).
    squeezer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024**2)
    bomb = b"".join(squeezer.compress(block) for _ in range(256)) + squeezer.flush()
    assert len(bomb) < 1024**2
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with http.put(url, data=bomb, headers=headers) as response:
        assert response.status == 413
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
    assert grown < 200 * 1024, f"the bomb grew the process by {grown} KiB"
    assert [r["values"]["name"]["value"] for r in emu.records("contacts")] == ["b"]


async def test_seeded_records_and_other_workbooks_leave_no_commit_open(emu: Emulator) -> None:
    emu.seed(
        {
            "workbooks": [
                {
                    "name": "Tracked",
                    "settings": {"trackChanges": True},
                    "sheets": [
                        {"name": "A", "slug": "a", "fields": FIELDS, "records": [{"name": "x"}]}
                    ],
                },
                {"name": "Plain", "sheets": [{"name": "B", "slug": "b", "fields": FIELDS}]},
            ]
        }
    )
    # A seed is the world as it already was: its commits are complete, no hook was told.
    assert emu.commits(completed=False) == []
    assert len(emu.commits("a")) == 1
    emu.add_records("b", [{"name": "y"}])  # complete at once: no trackChanges
    tracked = emu.add_records("a", [{"name": "z"}])
    assert tracked is not None
    assert [c["id"] for c in emu.commits(workbook="Tracked", completed=False)] == [
        tracked["context"]["commitId"]
    ]
    assert emu.commits(workbook="Plain", completed=False) == []
    assert len(emu.commits()) == 3
