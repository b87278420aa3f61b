"""The poller survives bad pages, bad clocks, storms and servers that do not page as asked.

A programmable feed server gives each case exactly; the emulator gives the rest.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from flatjobs import FlatfileClient, FlatfileEvent, Jobs, Listener, PollingSource, Runner, Tick
from flatjobs.client import RetryPolicy
from flatjobs.emulator import Emulator
from flatjobs.errors import UnexpectedResponseError
from flatjobs.sources import Delivery
from flatjobs.testing import client_for

from .conftest import TOKEN

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def stamp(when: dt.datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(n: int, when: dt.datetime) -> dict[str, Any]:
    return {
        "id": f"us_evt_{n:06d}",
        "topic": "x:y",
        "domain": "x",
        "context": {"environmentId": "us_env_1"},
        "createdAt": stamp(when),
    }


class Feed:
    """A GET /v1/events server with knobs for what real servers get wrong."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.now = NOW
        self.fail: set[tuple[int, int]] = set()  # (pageNumber, pageSize) answered 500, once
        self.cap: int | None = None  # the page size the server applies, whatever is asked
        self.ignore_page_number = False
        self.page_count: int | None = None  # a `pagination.pageCount` to report
        self.date: str | None = None  # a Date header to send instead of `now`'s
        self.requests: list[dict[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.requests.append(query)
        size = int(query.get("pageSize", 10))
        number = int(query.get("pageNumber", 1))
        if (number, size) in self.fail:
            self.fail.discard((number, size))
            return web.json_response({"errors": [{"message": "page failed"}]}, status=500)
        size = min(size, self.cap) if self.cap else size
        since = dt.datetime.fromisoformat(query["since"].replace("Z", "+00:00"))
        matching = [e for e in self.events if _when(e) >= since]
        start = 0 if self.ignore_page_number else (number - 1) * size
        body: dict[str, Any] = {"data": matching[start : start + size]}
        if self.page_count is not None:
            body["pagination"] = {"currentPage": number, "pageCount": self.page_count}
        text = _dumps(body)
        headers = {"Date": self.date or email.utils.format_datetime(self.now, usegmt=True)}
        return web.Response(text=text, content_type="application/json", headers=headers)


def _when(raw: Any) -> dt.datetime:
    if isinstance(raw, str):  # raw JSON text of a hostile event: its stamp is given in it
        return dt.datetime.fromisoformat(raw.split('"createdAt":"')[1][:24].replace("Z", "+00:00"))
    return dt.datetime.fromisoformat(raw["createdAt"].replace("Z", "+00:00"))


def _dumps(body: dict[str, Any]) -> str:
    items = [e if isinstance(e, str) else json.dumps(e) for e in body.pop("data")]
    rest = json.dumps(body)[1:-1]
    return '{"data":[' + ",".join(items) + "]" + ("," + rest if rest else "") + "}"


@pytest.fixture
async def feed() -> AsyncIterator[Feed]:
    server_feed = Feed()
    app = web.Application()
    app.router.add_get("/v1/events", server_feed.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    server_feed.url = str(server.make_url("")).rstrip("/")
    yield server_feed
    await server.close()


@pytest.fixture
async def fclient(feed: Feed) -> AsyncIterator[FlatfileClient]:
    policy = RetryPolicy(attempts=1)
    async with FlatfileClient(feed.url, TOKEN, environment_id="us_env_1", retry=policy) as client:
        yield client


def ids(deliveries: list[Delivery]) -> list[str]:
    return [d.raw["id"] for d in deliveries]


# ------------------------------------------------------------------ a poll commits whole


async def test_a_failed_page_commits_nothing_and_the_next_poll_loses_nothing(
    feed: Feed, fclient: FlatfileClient
) -> None:
    feed.events = [event(n, NOW - dt.timedelta(seconds=3)) for n in range(20)]
    source = PollingSource(fclient, page_size=8, since=NOW - dt.timedelta(seconds=10))
    feed.fail = {(2, 8)}  # page 2 of the first poll fails
    with pytest.raises(Exception, match="500"):
        await source.poll_once()
    assert source.polls == 0
    got = await source.poll_once()
    assert ids(got) == [f"us_evt_{n:06d}" for n in range(20)]  # all of them, once
    assert await source.poll_once() == []


# ------------------------------------------------------------------ clocks


@pytest.mark.parametrize("ahead", [dt.timedelta(minutes=5), dt.timedelta(days=365 * 973)])
async def test_an_event_from_the_future_cannot_move_the_cursor_past_the_server_clock(
    feed: Feed, fclient: FlatfileClient, ahead: dt.timedelta
) -> None:
    feed.events = [event(0, NOW - dt.timedelta(seconds=1)), event(1, NOW + ahead)]
    source = PollingSource(fclient, since=NOW - dt.timedelta(seconds=10))
    assert ids(await source.poll_once()) == ["us_evt_000000", "us_evt_000001"]
    # Later events, stamped by the server's true clock, are still found.
    feed.now = NOW + dt.timedelta(seconds=2)
    feed.events.insert(1, event(2, NOW + dt.timedelta(seconds=1)))
    assert ids(await source.poll_once()) == ["us_evt_000002"]
    assert await source.poll_once() == []  # the future one is not delivered again


# ------------------------------------------------------------------ narrowing


async def test_an_event_that_cannot_be_decoded_is_narrowed_down_then_skipped(
    feed: Feed, fclient: FlatfileClient
) -> None:
    deep = '{"id":"us_evt_deep","topic":"x:y","createdAt":"' + stamp(NOW - dt.timedelta(seconds=2))
    deep += '","context":{},"payload":' + "[" * 10_000 + "]" * 10_000 + "}"
    good = [event(n, NOW - dt.timedelta(seconds=2)) for n in range(10)]
    feed.events = [*good[:5], deep, *good[5:]]
    source = PollingSource(fclient, page_size=4, since=NOW - dt.timedelta(seconds=10))
    with capture_logs() as logs:
        for _ in range(2):  # the first polls fail: a garbled answer must never cost an event
            with pytest.raises(Exception, match="unexpected body"):
                await source.poll_once()
        got = await source.poll_once()
    assert ids(got) == [e["id"] for e in good]
    assert source.skipped == 1
    assert any(e["event"] == "an event in the feed cannot be read; it is skipped" for e in logs)
    sizes = {int(r["pageSize"]) for r in feed.requests}
    assert {4, 2, 1} <= sizes  # read in halves, down to the one event


# ------------------------------------------------------------------ volume and paging


async def test_de_duplication_holds_for_any_volume_inside_the_window(
    feed: Feed, fclient: FlatfileClient
) -> None:
    feed.events = [event(n, NOW - dt.timedelta(seconds=1)) for n in range(20_000)]
    source = PollingSource(
        fclient, page_size=1000, overlap=0.05, since=NOW - dt.timedelta(seconds=10)
    )
    first = await source.poll_once()
    await asyncio.sleep(0.03)  # the next poll reads the whole window again
    again = await source.poll_once()
    assert len(first) == 20_000
    assert again == []
    assert source.duplicates >= 1


async def test_an_idle_poll_does_not_read_the_whole_window_again(
    feed: Feed, fclient: FlatfileClient
) -> None:
    feed.events = [event(n, NOW - dt.timedelta(seconds=1)) for n in range(500)]
    source = PollingSource(fclient, page_size=128, overlap=60)
    source._cursor = NOW - dt.timedelta(seconds=5)
    await source.poll_once()  # the first poll reads the window: 500 events, 4 pages
    before = len(feed.requests)
    await source.poll_once()  # idle: from the cursor on
    assert len(feed.requests) - before == 1


async def test_a_server_that_ignores_page_number_cannot_loop_a_poll(
    feed: Feed, fclient: FlatfileClient
) -> None:
    feed.events = [event(n, NOW - dt.timedelta(seconds=1)) for n in range(300)]
    feed.ignore_page_number = True
    feed.page_count = 10**9
    source = PollingSource(fclient, page_size=64, since=NOW - dt.timedelta(seconds=10))
    with capture_logs() as logs:
        got = await asyncio.wait_for(source.poll_once(), 5)
    assert len(got) == 64
    assert len(feed.requests) == 2  # it saw the same page twice and stopped
    assert any("same page twice" in e["event"] for e in logs)


@pytest.mark.parametrize("pagination", [False, True])
async def test_any_page_size_the_server_applies_loses_nothing(
    feed: Feed, fclient: FlatfileClient, pagination: bool
) -> None:
    feed.events = [event(n, NOW - dt.timedelta(seconds=1)) for n in range(100)]
    feed.cap = 7  # asked for 128 a page, the server gives 7
    if pagination:
        feed.page_count = 15
    source = PollingSource(fclient, page_size=128, since=NOW - dt.timedelta(seconds=10))
    got: list[Delivery] = []
    for _ in range(30):
        got += await source.poll_once()
    assert sorted(ids(got)) == [f"us_evt_{n:06d}" for n in range(100)]


async def test_a_poll_is_bounded_in_pages(feed: Feed, fclient: FlatfileClient) -> None:
    feed.events = [event(n, NOW - dt.timedelta(seconds=1)) for n in range(100)]
    source = PollingSource(fclient, page_size=8, max_pages=3, since=NOW - dt.timedelta(seconds=10))
    assert len(await source.poll_once()) == 24
    assert len(feed.requests) == 3
    assert len(await source.poll_once()) == 24  # the rest waits for the next polls


async def test_events_from_before_the_first_poll_are_delivered_as_replayed(
    feed: Feed, fclient: FlatfileClient
) -> None:
    feed.events = [event(0, NOW - dt.timedelta(seconds=2))]
    source = PollingSource(fclient, since=NOW - dt.timedelta(seconds=10))
    (old,) = await source.poll_once()
    feed.now = NOW + dt.timedelta(seconds=2)
    # The first poll's clock said NOW, in whole seconds: an event of that same second may
    # have come before it (replayed: its job runs only while ready); one after is new.
    feed.events.append(event(1, NOW + dt.timedelta(milliseconds=500)))
    feed.events.append(event(2, NOW + dt.timedelta(milliseconds=1500)))
    same_second, new = await source.poll_once()
    assert (old.replayed, same_second.replayed, new.replayed) == (True, True, False)


# ------------------------------------------------------------------ against the emulator


async def test_the_listener_keeps_handling_jobs_after_hostile_events(emu: Emulator) -> None:
    jobs = Jobs()
    done: list[str] = []

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        done.append(str(event.job_id))

    now = dt.datetime.now(dt.UTC)
    emu.store_event(
        {
            "id": "us_evt_2999",
            "topic": "x:y",
            "createdAt": "2999-01-01T00:00:00.000Z",
            "context": {"environmentId": emu.environment_id},
        }
    )
    emu.store_event(
        {
            "id": "us_evt_skew",
            "topic": "x:y",
            "createdAt": stamp(now + dt.timedelta(minutes=5)),
            "context": {"environmentId": emu.environment_id},
        }
    )
    deep = '{"id":"us_evt_deep","topic":"x:y","context":{},"payload":' + "[" * 10_000 + "]" * 10_000
    emu.store_event_json(deep + "}", created_at=now)
    async with client_for(emu) as client:
        listener = Listener(client=client).use(jobs)
        source = PollingSource(client, interval=0.02, max_interval=0.05)
        runner = Runner(listener, source)
        running = asyncio.create_task(runner.run())
        triggered = [emu.trigger("workbook:export").id for _ in range(5)]
        for job_id in triggered:
            await emu.wait_for(job_id, timeout=30)
        runner.stop()
        await running
    assert sorted(done) == sorted(triggered)
    assert source.skipped == 1


async def test_a_fifty_thousand_event_storm_is_delivered_once_and_jobs_still_run(
    emu: Emulator,
) -> None:
    for n in range(50_000):
        emu.emit("records:updated", domain="records", payload={"n": n})
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        pass

    seen: list[str] = []
    all_seen = asyncio.Event()
    async with client_for(emu) as client:
        listener = Listener(client=client).use(jobs)

        @listener.on("records:updated")
        async def counted(event: FlatfileEvent) -> None:
            seen.append(str(event.id))
            if len(seen) >= 50_000:
                all_seen.set()

        source = PollingSource(client, interval=0.02, max_interval=0.05, page_size=1000)
        runner = Runner(listener, source, concurrency=200)
        running = asyncio.create_task(runner.run())
        job = emu.trigger("workbook:export")
        await emu.wait_for(job.id, timeout=60)
        await asyncio.wait_for(all_seen.wait(), 120)
        runner.stop()
        await running
    assert len(seen) == len(set(seen)) == 50_000
    assert emu.job(job.id).status == "complete"


async def test_memory_of_ids_stays_bounded_when_a_push_channel_is_the_only_path() -> None:
    # A push source observes every event and may not poll for days: what it remembers
    # must still be pruned as events age out of the overlap window.
    client = FlatfileClient("http://127.0.0.1:9", TOKEN, environment_id="us_env_1")
    source = PollingSource(client, overlap=5.0)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    for n in range(100_000):
        assert source.observe(event(n, start + dt.timedelta(milliseconds=30 * n)))
    assert source.remembered < 5_000  # the last overlap window's, and one doubling
    assert not source.observe(event(99_999, start))  # the newest are still known
    await client.close()


# ------------------------------------------------------------------ what is remembered


async def test_a_malformed_event_with_a_real_events_id_does_not_hide_it(
    feed: Feed, fclient: FlatfileClient
) -> None:
    # Was a bug: a malformed event (no context) carrying the id of a real one, read first,
    # marked that id delivered: the real event was dropped as a duplicate, by the poll and
    # by a push channel the feed backs. Only what the runner would take is remembered by id.
    real = event(1, NOW - dt.timedelta(seconds=2))
    forged = {"id": real["id"], "topic": "x:y", "createdAt": real["createdAt"]}
    feed.events = [forged, real]
    source = PollingSource(fclient, since=NOW - dt.timedelta(seconds=10))
    assert [d.raw for d in await source.poll_once()] == [forged, real]
    assert await source.poll_once() == []  # neither comes twice
    late = event(2, NOW - dt.timedelta(seconds=1))
    assert source.observe({"id": late["id"], "topic": ""})  # by push: malformed, first
    assert source.observe(late)
    assert not source.observe(late)


# ------------------------------------------------------------------ dates no datetime holds

# In UTC it is 10000-01-01T11:59:59.999999: past what Python's datetime can hold.
BEYOND = "9999-12-31T23:59:59.999999-12:00"


@pytest.mark.parametrize("created", [BEYOND, "9999-12-31T23:59:59.999Z"])
async def test_an_event_dated_beyond_what_a_datetime_holds_is_logged_and_skipped(
    feed: Feed, fclient: FlatfileClient, created: str
) -> None:
    # Was a bug: the poll did its arithmetic on the event's createdAt (`+ overlap`,
    # in UTC) and raised OverflowError out of the source: the runner stopped, and later
    # jobs stayed ready. Expected: that event is logged and skipped, once; the rest goes on.
    odd = {**event(1, NOW), "createdAt": created}
    feed.events = [event(0, NOW - dt.timedelta(seconds=2)), odd]
    source = PollingSource(fclient, since=NOW - dt.timedelta(seconds=10))
    with capture_logs() as logs:
        assert ids(await source.poll_once()) == ["us_evt_000000"]
        feed.events.append(event(2, NOW))
        assert ids(await source.poll_once()) == ["us_evt_000002"]
        assert source.observe({**odd, "id": "us_evt_pushed"}) is False  # by push: the same
    assert source.skipped == 2
    said = [e for e in logs if e["event"].startswith("an event's createdAt is out of range")]
    assert [e["event_id"] for e in said] == ["us_evt_000001", "us_evt_pushed"]  # once each
    assert source.cursor.year == NOW.year


@pytest.mark.parametrize(
    "date", ["Fri, 31 Dec 9999 23:59:59 -1200", "Fri, 31 Dec 9999 23:59:59 GMT"]
)
async def test_a_server_clock_beyond_what_a_datetime_holds_is_not_trusted(
    feed: Feed, fclient: FlatfileClient, date: str
) -> None:
    # Was a bug: the Date header was turned into a UTC datetime (OverflowError for the
    # first, out of the client's decoder), or a second was added to it (the second): the
    # poll raised OverflowError, which no caller expects of a poll.
    feed.events = [event(0, NOW - dt.timedelta(seconds=2))]
    feed.date = date
    source = PollingSource(fclient, since=NOW - dt.timedelta(seconds=10))
    assert ids(await source.poll_once()) == ["us_evt_000000"]
    assert await source.poll_once() == []


async def test_the_runner_goes_on_past_an_event_dated_beyond_a_datetime(emu: Emulator) -> None:
    # Was a bug: the whole path, as found: the poller raised OverflowError, the runner
    # stopped, and the jobs triggered after that event stayed ready.
    jobs = Jobs()
    done: list[str] = []

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        done.append(str(event.job_id))

    emu.store_event(
        {
            "id": "us_evt_beyond",
            "topic": "x:y",
            "createdAt": BEYOND,
            "context": {"environmentId": emu.environment_id},
        }
    )
    async with client_for(emu) as client:
        listener = Listener(client=client).use(jobs)
        source = PollingSource(client, interval=0.02, max_interval=0.05)
        runner = Runner(listener, source)
        running = asyncio.create_task(runner.run())
        triggered = [emu.trigger("workbook:export").id for _ in range(3)]
        for job_id in triggered:
            await emu.wait_for(job_id, timeout=30)
        runner.stop()
        await running
    assert sorted(done) == sorted(triggered)
    assert source.skipped == 1


# ------------------------------------------------------------------ answers too large


class Streamer:
    """A GET /v1/events server answering one long body, made as it is sent: what it sent
    is counted, and sending stops when the client goes (or at `total` bytes)."""

    def __init__(self, head: bytes, filler: bytes, total: int) -> None:
        self.head, self.filler, self.total = head, filler, total
        self.sent = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            await response.write(self.head)
            self.sent += len(self.head)
            while self.sent < self.total:
                await response.write(self.filler)
                self.sent += len(self.filler)
        except ConnectionError:
            pass  # the client stopped reading and closed the connection
        return response


@pytest.fixture
async def streamer() -> AsyncIterator[Streamer]:
    # One string that never ends: JSON a parser reads cheaply (no objects built).
    server_feed = Streamer(b'{"data":["', b"x" * 65536, 64 * 2**20)
    app = web.Application()
    app.router.add_get("/v1/events", server_feed.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    server_feed.url = str(server.make_url("")).rstrip("/")
    yield server_feed
    await server.close()


async def test_an_answer_larger_than_the_limit_is_cut_off_with_a_clear_error(
    streamer: Streamer,
) -> None:
    # Was a bug: an answer was read whole before anything looked at it: a 300 MB answer of
    # the feed took the listener to 946 MB. Expected: reading stops at the limit, with an
    # error naming the endpoint, the limit and the size (never the token).
    policy = RetryPolicy(attempts=3)
    async with FlatfileClient(
        streamer.url, TOKEN, environment_id="us_env_1", retry=policy
    ) as client:
        with pytest.raises(UnexpectedResponseError) as err:
            await client.events.list_raw(max_bytes=2**20)
    message = str(err.value)
    assert "GET /v1/events" in message
    assert "larger than the limit of 1,048,576 bytes" in message
    assert TOKEN not in message
    assert TOKEN not in repr(err.value.body)
    assert err.value.attempts == 1  # the same call would get the same answer
    assert str(err.value.body).startswith('{"data":["xxx')
    assert streamer.sent < 16 * 2**20, f"{streamer.sent:,} bytes sent: the answer was read on"


async def test_a_compressed_answer_counts_at_its_real_size(feed: Feed) -> None:
    # 32 MiB of JSON compressed to 32 KiB: the limit holds for what it unpacks to.
    body = b'{"data":[' + b" " * (32 * 2**20) + b"]}"

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(body),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    app = web.Application()
    app.router.add_get("/v1/events", bomb)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    try:
        async with FlatfileClient(url, TOKEN, environment_id="us_env_1") as client:
            with pytest.raises(UnexpectedResponseError, match="bytes came before it was cut"):
                await client.events.list_raw(max_bytes=2**20)
            assert len(await client.events.list_raw(max_bytes=64 * 2**20)) == 0
    finally:
        await server.close()


async def test_a_page_larger_than_the_limit_is_narrowed_and_an_event_too_large_skipped(
    feed: Feed, fclient: FlatfileClient
) -> None:
    # The page of 8 is larger than the limit, each event is not, but one: the poll reads
    # halves down to the events, delivers every one it can, and skips the one too large
    # once it failed alike in three polls, as an event that cannot be decoded.
    events = [{**event(n, NOW - dt.timedelta(seconds=2)), "pad": "p" * 300} for n in range(8)]
    events[5]["pad"] = "P" * 5000
    feed.events = events
    source = PollingSource(
        fclient, page_size=8, max_answer_bytes=2000, since=NOW - dt.timedelta(seconds=10)
    )
    with capture_logs() as logs:
        for _ in range(2):
            with pytest.raises(UnexpectedResponseError, match="larger than the limit"):
                await source.poll_once()
        got = await source.poll_once()
    assert ids(got) == [e["id"] for n, e in enumerate(events) if n != 5]
    assert source.skipped == 1
    skipped = [
        e for e in logs if e["event"] == "an event in the feed cannot be read; it is skipped"
    ]
    assert len(skipped) == 1
    assert "larger than the limit of 2,000 bytes" in skipped[0]["error"]
