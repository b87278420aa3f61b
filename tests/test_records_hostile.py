"""Adversarial tests of the data API: records, files and sheets, against the emulator.

Tests whose comment starts "Was a bug:" failed before the fix they describe; the others are
hostile cases that held from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flatjobs import FlatfileClient
from flatjobs.client import Record
from flatjobs.emulator import Emulator
from flatjobs.errors import (
    FlatfileAPIError,
    FlatfileError,
    InvalidRequestError,
    UnexpectedResponseError,
)
from flatjobs.testing import client_for

from .conftest import TOKEN

SEED: dict[str, Any] = {
    "workbooks": [{
        "name": "People",
        "sheets": [{
            "name": "People", "slug": "people",
            "fields": [
                {"key": "name"},
                {"key": "age", "type": "number"},
                {"key": "active", "type": "boolean"},
                {"key": "tags", "type": "string-list"},
                {"key": "a.b"},
                {"key": "x/y?z%"},
            ],
            "records": [
                {"name": "Ann", "age": 41, "active": 1, "a.b": "dot", "x/y?z%": "odd"},
                {"name": "Bob", "age": 0, "active": False},
                {"name": "Cy", "age": 1.5, "active": True, "tags": ["a", "b"]},
            ],
        }],
    }],
}  # fmt: skip


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(seed=SEED) as emu:
        yield emu


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[FlatfileClient]:
    async with client_for(emu) as client:
        yield client


def _sheet(emu: Emulator) -> str:
    return emu.sheet("people").id


async def _first(client: FlatfileClient, sheet_id: str) -> Record:
    page = await client.records.get(sheet_id, include_messages=True)
    return page.records[0]


# ------------------------------------------------------------------ were bugs


async def test_true_written_over_a_cell_holding_1_is_sent(
    emu: Emulator, client: FlatfileClient
) -> None:
    # Was a bug: records decided "unchanged" with `==`, and in Python
    # `1 == True` (and `0 == False`, `1.0 == True`): a handler normalising a boolean field
    # (`record["active"] = bool(record["active"])`) sends nothing, and the platform keeps
    # the number. JSON's 1 and true are different values (the emulator's own `_same` says
    # so). Expected: the cell holds true after save; before the fix: nothing is sent, it holds 1.
    sheet_id = _sheet(emu)
    record = await _first(client, sheet_id)
    assert record["active"] == 1
    assert record["active"] is not True
    record["active"] = True
    await client.records.update(sheet_id, [record])
    stored = emu.records("people")[0]["values"]["active"]["value"]
    assert stored is True, f"the platform still holds {stored!r}"


async def test_a_value_set_back_to_what_was_read_is_not_sent(
    emu: Emulator, client: FlatfileClient
) -> None:
    # Was a bug: a record kept a key in `_changed` once set, even when
    # it is set back to the value read: `record.changed` is True and `page.save()` makes a
    # call (and a commit) though nothing differs from what the platform holds. The docs say
    # "unchanged values are not sent" and "nothing when nothing did". Expected: no change,
    # no call; before the fix: `changes()` holds the cell and save() sends a PUT.
    sheet_id = _sheet(emu)
    page = await client.records.get(sheet_id)
    page[0]["name"] = "Someone else"
    page[0]["name"] = "Ann"  # back to what was read
    assert page[0].changes() is None
    before = sum(r.route == "records.update" for r in emu.requests)
    result = await page.save()
    assert result.updated == 0
    assert sum(r.route == "records.update" for r in emu.requests) == before


async def test_delete_given_one_id_as_a_string_does_not_delete_its_characters(
    emu: Emulator, client: FlatfileClient
) -> None:
    # Was a bug: `records.delete` (and `get(ids=...)`) took a str as an iterable of ids: `delete(sheet_id, record.id)` asks to delete "u",
    # "s", "_", ... (the platform ignores ids it does not have), returns the length of the
    # id, and deletes nothing: a silent no-op the type checker accepts (str is an
    # Iterable[str]). `sheets.counts(ids=...)` already treats a str as one id. Expected:
    # the record deleted (or a TypeError); before the fix: returns the id's length (13) and the record is still there.
    sheet_id = _sheet(emu)
    record = await _first(client, sheet_id)
    with pytest.raises(TypeError, match="not one string"):
        await client.records.delete(sheet_id, record.id)
    assert record.id in [r["id"] for r in emu.records("people")]


@pytest.mark.parametrize("name", ["my export.csv", "résumé.csv", "日本語.csv"])
async def test_an_uploaded_file_keeps_its_name(
    emu: Emulator, client: FlatfileClient, name: str
) -> None:
    # Was a bug: the upload used aiohttp's default (`quote_fields=True`), which percent-encodes the file name inside the
    # quoted `filename="..."`: servers read that parameter as it is (the emulator, and
    # Node's busboy behind Flatfile's API), so the file is named "my%20export.csv",
    # "r%C3%A9sum%C3%A9.csv". Browsers and Flatfile's JS SDK send the UTF-8 name raw (only
    # `"`, CR and LF escaped). Expected: the file keeps its name; before the fix: percent-encoded.
    file = await client.files.upload(b"a,b\n", space_id="us_sp_emulator", name=name)
    assert file.name == name
    assert emu.file(file.id).name == name


# ------------------------------------------------------------------ attacks that hold


async def test_values_of_every_json_type_round_trip(emu: Emulator, client: FlatfileClient) -> None:
    sheet_id = _sheet(emu)
    values: list[Any] = [
        None,
        True,
        False,
        0,
        -1,
        2**53,
        1.5,
        -0.0,
        "",
        "日本 \u202e rtl",
        "\x00nul",
        "\ud800",
        "x" * 1_000_000,
        ["a", "b"],
    ]
    rows = [{"name": v} for v in values]
    page = await client.records.insert(sheet_id, rows)
    assert len(page) == len(values)
    read = await client.records.get(sheet_id, ids=[r.id for r in page])
    by_id = {r.id: r for r in read}
    for sent, record in zip(values, page, strict=True):
        got = by_id[record.id].get("name")
        assert got == sent, (sent, got)
        assert type(got) is type(sent), (sent, got)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_a_non_finite_number_is_refused_naming_the_cell_and_can_be_fixed(
    emu: Emulator, client: FlatfileClient, bad: float
) -> None:
    sheet_id = _sheet(emu)
    page = await client.records.get(sheet_id)
    page[1]["age"] = bad
    calls = len(emu.requests)
    with pytest.raises(InvalidRequestError, match=r"values\.age\.value"):
        await page.save()
    assert len(emu.requests) == calls  # nothing was sent
    assert page[1].changed  # still to save
    page[1]["age"] = 42
    assert (await page.save()).updated == 1
    assert emu.records("people")[1]["values"]["age"]["value"] == 42


async def test_a_nested_object_in_a_cell_is_refused_by_the_platform_nothing_changes(
    emu: Emulator, client: FlatfileClient
) -> None:
    sheet_id = _sheet(emu)
    page = await client.records.get(sheet_id)
    page[0]["name"] = {"first": "Ann"}
    page[1]["name"] = "Robert"
    with pytest.raises(FlatfileAPIError) as err:
        await page.save()
    assert err.value.status == 400
    assert "name" in str(err.value)
    assert emu.records("people")[1]["values"]["name"]["value"] == "Bob"
    assert page[1].changed


async def test_field_keys_with_dots_slashes_and_percents_read_and_write(
    emu: Emulator, client: FlatfileClient
) -> None:
    sheet_id = _sheet(emu)
    page = await client.records.get(sheet_id, fields=["a.b", "x/y?z%"])
    record = page[0]
    assert record.values() == {"a.b": "dot", "x/y?z%": "odd"}
    record["x/y?z%"] = "changed"
    record.error("a.b", "bad dot")
    await page.save()
    stored = emu.records("people")[0]["values"]
    assert stored["x/y?z%"]["value"] == "changed"
    assert [m["message"] for m in stored["a.b"]["messages"]] == ["bad dot"]


async def test_an_update_of_a_deleted_record_fails_and_leaves_the_page_to_save(
    emu: Emulator, client: FlatfileClient
) -> None:
    sheet_id = _sheet(emu)
    page = await client.records.get(sheet_id)
    await client.records.delete(sheet_id, [page[0].id])
    page[0]["name"] = "ghost"
    page[1]["name"] = "Robert"
    with pytest.raises(FlatfileAPIError) as err:
        await page.save()
    assert err.value.status == 400
    assert [r.changed for r in page] == [True, True, False]
    assert emu.records("people")[0]["values"]["name"]["value"] == "Bob"


async def test_deleting_250_ids_with_duplicates_goes_100_a_call(
    emu: Emulator, client: FlatfileClient
) -> None:
    sheet_id = _sheet(emu)
    made = await client.records.insert(sheet_id, [{"name": f"n{i}"} for i in range(200)])
    ids = [r.id for r in made] + [r.id for r in made][:50]
    before = sum(r.route == "records.delete" for r in emu.requests)
    assert await client.records.delete(sheet_id, ids) == 250
    assert sum(r.route == "records.delete" for r in emu.requests) - before == 3
    assert len(emu.records("people")) == 3
    assert await client.records.delete(sheet_id, []) == 0


async def test_pages_of_one_read_every_record_in_order_and_stop(
    emu: Emulator, client: FlatfileClient
) -> None:
    sheet_id = _sheet(emu)
    names = [p[0]["name"] async for p in client.records.pages(sheet_id, page_size=1)]
    assert names == ["Ann", "Bob", "Cy"]
    huge = [r["name"] async for r in client.records.iterate(sheet_id, page_size=10**7)]
    assert huge == names


async def test_an_early_break_in_aclosing_leaves_no_read_ahead_behind(
    emu: Emulator,
) -> None:
    sheet_id = _sheet(emu)
    async with client_for(emu) as client:
        async with contextlib.aclosing(client.records.pages(sheet_id, page_size=1)) as pages:
            async for _ in pages:
                break
        reads = sum(r.route == "records.list" for r in emu.requests)
    await asyncio.sleep(0.05)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in pending if "get" in repr(t.get_coro())]
    assert reads <= 2  # the first page and at most the one read ahead


async def test_uploads_empty_and_streamed_and_a_name_that_tries_header_injection(
    emu: Emulator, client: FlatfileClient
) -> None:
    empty = await client.files.upload(b"", space_id="us_sp_emulator", name="empty.csv")
    assert emu.file_content(empty.id) == b""

    chunk = bytes(range(256)) * 4096  # 1 MiB, every byte value

    async def stream() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield chunk

    big = await client.files.upload(stream(), space_id="us_sp_emulator", name="big.bin")
    assert emu.file_content(big.id) == chunk * 20
    async with client.files.download(big.id) as chunks:
        size = 0
        async for part in chunks:
            size += len(part)
    assert size == 20 * len(chunk)

    hostile = 'x.csv"\r\nContent-Type: text/html\r\n\r\n<h1>'
    made = await client.files.upload(b"a", space_id="us_sp_emulator", name=hostile)
    assert emu.file(made.id).mimetype in ("text/csv", "application/octet-stream", None)
    assert emu.file_content(made.id) == b"a"


async def test_downloading_a_missing_file_is_a_404_before_any_byte(
    client: FlatfileClient,
) -> None:
    with pytest.raises(FlatfileAPIError) as err:
        async with client.files.download("us_fl_missing/../x?y") as chunks:
            async for _ in chunks:
                pass
    assert err.value.status == 404
    assert "us_fl_missing%2F..%2Fx%3Fy" in err.value.path


async def test_a_304_or_an_empty_answer_to_an_update_is_a_result() -> None:
    answers = iter([web.Response(status=304), web.Response(status=200)])
    seen: list[str] = []

    async def update(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization", ""))
        await request.read()
        return next(answers)

    app = web.Application()
    app.router.add_put("/v1/sheets/{sheet_id}/records", update)
    async with (
        TestServer(app) as server,
        FlatfileClient(str(server.make_url("")), TOKEN, environment_id="us_env_1") as client,
    ):
        record = Record({"id": "us_rc_1", "values": {"name": {"value": "a"}}})
        record["name"] = "b"
        first = await client.records.update("us_sh_1", [record])
        assert first.not_modified
        assert first.updated == 1
        assert not record.changed
        record["name"] = "c"
        second = await client.records.update("us_sh_1", [record])
        assert not second.not_modified
        assert second.version_id is None
    assert len(seen) == 2


async def test_an_error_echoing_the_token_and_the_values_hides_the_token() -> None:
    async def update(request: web.Request) -> web.Response:
        body = await request.text()
        return web.json_response(
            {"errors": [{"message": f"bad {request.headers['Authorization']} in {body}"}]},
            status=400,
        )

    app = web.Application()
    app.router.add_put("/v1/sheets/{sheet_id}/records", update)
    async with (
        TestServer(app) as server,
        FlatfileClient(str(server.make_url("")), TOKEN, environment_id="us_env_1") as client,
    ):
        record = Record({"id": "us_rc_1", "values": {}})
        record["name"] = TOKEN  # a handler writing the token in a cell, say
        with pytest.raises(FlatfileAPIError) as err:
            await client.records.update("us_sh_1", [record])
    for text in (str(err.value), repr(err.value), repr(err.value.body)):
        assert TOKEN not in text


# ------------------------------------------------------------------ a page that repeats

PAGE = 10  # records a page


def _page(k: int) -> list[str]:
    """The record ids of page ``k`` of a sheet that pages rightly."""
    return [f"us_rc_{(k - 1) * PAGE + i}" for i in range(PAGE)]


@contextlib.asynccontextmanager
async def _paging(
    ids_of: Callable[[int], list[str]], *, total: int | None
) -> AsyncIterator[tuple[FlatfileClient, list[int]]]:
    """A client on a real local server whose records' page ``n`` holds the records
    ``ids_of(n)``, counting ``total`` when given; and the page numbers asked. Past 50
    pages it answers empty: a reader that never stops, stops."""
    asked: list[int] = []

    async def records(request: web.Request) -> web.Response:
        asked.append(int(request.query["pageNumber"]))
        ids = ids_of(asked[-1]) if len(asked) <= 50 else []
        data: dict[str, Any] = {"records": [{"id": i, "values": {"n": {"value": i}}} for i in ids]}
        if total is not None and request.query.get("includeLength") == "true":
            data["counts"] = {"total": total, "valid": total, "error": 0}
        return web.json_response({"data": data})

    app = web.Application()
    app.router.add_get("/v1/sheets/{sheet_id}/records", records)
    async with (
        TestServer(app) as server,
        FlatfileClient(str(server.make_url("")), TOKEN, environment_id="us_env_1") as client,
    ):
        yield client, asked


@pytest.mark.parametrize(
    ("ids_of", "total", "repeated", "earlier", "read"),
    [
        # A server that ignores pageNumber, counting three pages' worth, or not counting.
        pytest.param(lambda n: _page(1), 3 * PAGE, 2, 1, [1], id="ignored-with-counts"),
        pytest.param(lambda n: _page(1), None, 2, 1, [1], id="ignored-without-counts"),
        # Honoured up to page 3, then page 3 again for any number past it.
        pytest.param(lambda n: _page(min(n, 3)), None, 4, 3, [1, 2, 3], id="last-page-again"),
        # Honoured up to page 3, then from page 1 again: not the page just read.
        pytest.param(lambda n: _page((n - 1) % 3 + 1), None, 4, 1, [1, 2, 3], id="round-again"),
        pytest.param(
            lambda n: _page((n - 1) % 3 + 1), 10 * PAGE, 4, 1, [1, 2, 3], id="round-with-counts"
        ),
        # The same records in another order are the same page.
        pytest.param(
            lambda n: _page(1)[:: 1 if n == 1 else -1], None, 2, 1, [1], id="ignored-reordered"
        ),
    ],
)
async def test_a_page_that_repeats_an_earlier_one_stops_the_pages_naming_the_sheet(
    ids_of: Callable[[int], list[str]],
    total: int | None,
    repeated: int,
    earlier: int,
    read: list[int],
) -> None:
    # Was a bug: `records.pages` trusted pageNumber. Against a server that ignores it, it
    # yielded the same page again and again (with counts: 3 pages, 1 distinct; without, it
    # never ended).
    sheet_id = "us_sh_1/x?y"
    ids: list[str] = []
    numbers: list[int] = []
    async with _paging(ids_of, total=total) as (client, asked):
        with pytest.raises(UnexpectedResponseError) as info:
            async for page in client.records.pages(sheet_id, page_size=PAGE):
                numbers.append(page.number)
                ids.extend(record.id for record in page)
    message = str(info.value)
    assert f"sheet {sheet_id}" in message
    assert (
        f"page {repeated} of sheet {sheet_id} holds the same records as page {earlier}" in message
    )
    assert "pageNumber" in message
    assert isinstance(info.value, FlatfileError)
    assert numbers == read  # every page yielded once; the repeat never is
    assert len(ids) == len(set(ids)) == PAGE * len(read)
    assert asked == [*range(1, repeated + 1)]  # nothing read past the repeat


async def test_pages_that_share_some_records_are_read_to_the_end() -> None:
    # A record inserted before the window while a handler edits pushes each page's last
    # record onto the next page: pages that share a record are no repeat.
    def shifted(number: int) -> list[str]:
        return _page(number)[:-1] + _page(number + 1)[:1] if number <= 3 else []

    async with _paging(shifted, total=None) as (client, _):
        pages = [page async for page in client.records.pages("us_sh_1", page_size=PAGE)]
    assert [page.number for page in pages] == [1, 2, 3]
