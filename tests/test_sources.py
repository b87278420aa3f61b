"""Event sources: polling against the emulator (overlap, dedupe, paging, backoff), memory."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from flatjobs import (
    ConfigurationError,
    FlatfileClient,
    MemorySource,
    PollingSource,
    PushSource,
    RetryPolicy,
)
from flatjobs.emulator import Emulator
from flatjobs.sources import SeenIds, event_key
from flatjobs.testing import client_for


async def collect(source: PollingSource, want: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async for delivery in source:
            got.append(delivery.raw)
            if len(got) >= want:
                break
    return got


async def test_polling_delivers_every_event_once_across_polls(emu: Emulator) -> None:
    async with client_for(emu) as client:
        source = PollingSource(client, interval=0.01, max_interval=0.02)
        emu.trigger("a:b")  # 2 events

        async def later() -> None:
            await asyncio.sleep(0.05)
            emu.trigger("a:c")  # 2 more, between polls
            await asyncio.sleep(0.05)
            emu.trigger("a:d")

        writer = asyncio.create_task(later())
        got = await collect(source, 6)
        await writer
        # A few more polls find nothing new: the overlap window re-reads, dedupe drops.
        for _ in range(3):
            assert await source.poll_once() == []
    assert [e["id"] for e in got] == [e["id"] for e in emu.events]
    assert source.polls >= 3


async def test_an_event_stored_late_inside_the_overlap_window_is_not_missed(emu: Emulator) -> None:
    async with client_for(emu) as client:
        source = PollingSource(client, interval=0.01, max_interval=0.02, overlap=1)
        emu.trigger("a:b")
        first = await source.poll_once()
        late = dict(
            emu.events[0],
            id="us_evt_late",
            createdAt=(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=0.4)).isoformat(),
        )
        emu.store_event(late)
        await asyncio.sleep(0.55)  # a full poll reads the overlap window every overlap / 2
        second = await source.poll_once()
    assert len(first) == 2
    assert [d.raw["id"] for d in second] == ["us_evt_late"]


async def test_polling_follows_pages(emu: Emulator) -> None:
    for _ in range(6):
        emu.trigger("a:b")  # 12 events
    async with client_for(emu) as client:
        source = PollingSource(client, page_size=5)  # rounded down to 4: halves must be whole
        got = await source.poll_once()
    assert len(got) == 12
    assert len({d.raw["id"] for d in got}) == 12
    pages = [r.query["pageNumber"] for r in emu.requests if r.route == "events.list"]
    assert pages == ["1", "2", "3", "4"]  # three full pages, then an empty one: the end


async def test_polling_keeps_going_through_errors_and_backs_off(emu: Emulator) -> None:
    emu.faults.add(routes="events.list", status=500, limit=6)
    emu.trigger("a:b")
    async with client_for(emu, retry=RetryPolicy(attempts=1)) as client:
        source = PollingSource(client, interval=0.01, max_interval=0.04)
        got = await collect(source, 2)
    assert source.errors == 6
    assert len(got) == 2


async def test_polling_needs_an_environment(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLATFILE_ENVIRONMENT_ID", raising=False)
    async with FlatfileClient(emu.url, emu.token) as client:
        with pytest.raises(ConfigurationError, match="FLATFILE_ENVIRONMENT_ID"):
            PollingSource(client)


async def test_aclose_ends_the_iteration(emu: Emulator) -> None:
    async with client_for(emu) as client:
        source = PollingSource(client, interval=0.01, max_interval=0.02)

        async def close_soon() -> None:
            await asyncio.sleep(0.05)
            await source.aclose()

        closer = asyncio.create_task(close_soon())
        async with asyncio.timeout(5):
            got = [e async for e in source]
        await closer
    assert got == []


def test_seen_ids_forget_the_oldest() -> None:
    seen = SeenIds(3)
    assert [seen.add(k) for k in "abca"] == [True, True, True, False]
    seen.add("d")
    assert "b" not in seen
    assert len(seen) == 3
    with pytest.raises(ValueError, match="at least 1"):
        SeenIds(0)


def test_event_key_is_the_id_or_a_content_digest() -> None:
    assert event_key({"id": "e1"}) == "e1"
    assert event_key({"topic": "x"}) == event_key({"topic": "x"})
    assert event_key({"topic": "x"}).startswith("sha256:")
    assert event_key("not json") != event_key("other")


async def test_memory_source_yields_what_was_put_until_closed() -> None:
    source = MemorySource([{"id": 1}])
    source.put({"id": 2})
    source.close()
    assert [e async for e in source] == [{"id": 1}, {"id": 2}]


@pytest.mark.parametrize("kind", ["push", "poll"])
async def test_since_reaches_back_to_events_published_while_nothing_listened(
    emu: Emulator, kind: str
) -> None:
    # By default a source starts `overlap` seconds back: what was published before that is
    # the sweep's to find (jobs) or gone (other events). `since` reaches further back.
    old = emu.trigger("workbook:before").id
    await asyncio.sleep(1.0)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)

    async def jobs_seen(since: dt.datetime | None, until: Callable[[set[str]], bool]) -> set[str]:
        async with client_for(emu) as client:
            source: PushSource | PollingSource
            if kind == "push":
                source = PushSource(client, origin=emu.push_url, overlap=0.3, since=since)
            else:
                source = PollingSource(
                    client, interval=0.02, max_interval=0.05, overlap=0.3, since=since
                )
            seen: set[str] = set()
            async with asyncio.timeout(10):
                async for delivery in source:
                    seen.add(delivery.raw["context"].get("jobId"))
                    if until(seen):
                        break
            await source.aclose()
            return seen

    new: list[str] = []
    asyncio.get_running_loop().call_later(0.5, lambda: new.append(emu.trigger("b:after").id))
    default = await jobs_seen(None, lambda seen: bool(new) and new[0] in seen)
    assert old not in default
    assert old in await jobs_seen(start, lambda seen: old in seen)


async def test_a_since_from_the_year_one_or_ahead_of_the_server_loses_nothing(
    emu: Emulator,
) -> None:
    # Year 1 would overflow `since - overlap`; a since ahead of the server's clock (a
    # skewed clock, or a typo) would hide every event until then. Both read what is there.
    job = emu.trigger("workbook:export").id
    async with client_for(emu) as client:
        for since in (
            dt.datetime(1, 1, 1, tzinfo=dt.UTC),
            dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30),
        ):
            source = PollingSource(client, interval=0.02, max_interval=0.05, since=since)
            if since.year > 1:
                await source.poll_once()  # the first poll meets the server's clock
                job = emu.trigger("workbook:later").id
            seen: set[str] = set()
            async with asyncio.timeout(5):
                async for delivery in source:
                    seen.add(delivery.raw["context"].get("jobId"))
                    if job in seen:
                        break


def test_a_since_without_a_timezone_is_refused(emu: Emulator) -> None:
    client = FlatfileClient(emu.url, emu.token, environment_id=emu.environment_id)
    with pytest.raises(ValueError, match="timezone-aware"):
        PollingSource(client, since=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        PushSource(client, origin=emu.push_url, since=dt.datetime(2026, 1, 1))


async def test_events_stored_before_the_first_poll_are_replayed_whatever_the_second(
    emu: Emulator,
) -> None:
    # The server's clock (its Date header) counts whole seconds: an event stored in the
    # same second as the first poll came before this process, and may have started a job
    # in a process that just died. Delivered as fresh, its job would run a second time.
    for _ in range(3):
        job = emu.trigger("workbook:export").id
        async with client_for(emu) as client:
            source = PollingSource(client)
            got = await source.poll_once()
        mine = [d for d in got if d.raw["context"].get("jobId") == job]
        assert mine
        assert all(d.replayed for d in mine)


# ------------------------------------------------------------------ what is remembered


async def test_a_malformed_message_carrying_a_real_events_id_does_not_hide_it() -> None:
    # Was a bug: the source remembered every id it passed on, malformed or not: a message
    # the runner refuses (no topic) carrying a real event's id, arriving first, made the
    # real event a "duplicate", dropped. Only an event that passes the runner's own check
    # is remembered by its id; a malformed one is remembered by its content (passed on
    # once, for the runner to log and skip).
    real = {"id": "us_evt_1", "topic": "job:ready", "context": {"jobId": "us_jb_1"}}
    forged = [
        {"id": "us_evt_1"},  # no topic
        {"id": "us_evt_1", "topic": "job:ready", "context": {}},  # no job id
        {"id": "us_evt_1", "topic": "a:b", "context": "not an object"},
        {"id": "us_evt_1", "topic": "job:ready", "context": {"jobId": "../x?y"}},
    ]
    for bad in forged:
        source = MemorySource([bad, bad, real, real])
        source.close()
        assert [e async for e in source] == [bad, real]
        assert source.duplicates == 2
