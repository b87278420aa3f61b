"""Adversarial tests of push delivery: ``PushSource`` and the emulator's PubNub server.

Tests whose comment starts "Was a bug:" failed before the fix they describe; the others are
hostile cases that held from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from flatjobs import FlatfileClient, PushSource, serve_health
from flatjobs.emulator import Emulator
from flatjobs.sources import Delivery
from flatjobs.testing import client_for

from .faultproxy import FaultProxy


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.005)


def _ids(got: list[Delivery]) -> set[str]:
    return {d.raw["id"] for d in got if isinstance(d.raw, dict) and "id" in d.raw}


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(push_hold=0.3) as emu:
        yield emu


@contextlib.asynccontextmanager
async def collecting(source: PushSource) -> AsyncIterator[list[Delivery]]:
    """The source's deliveries, into a list, while the block runs (no wait to connect)."""
    got: list[Delivery] = []

    async def collect() -> None:
        async for delivery in source:
            got.append(delivery)  # noqa: PERF401 - seen as they come

    task = asyncio.create_task(collect())
    try:
        yield got
    finally:
        await source.aclose()
        try:
            await asyncio.wait_for(asyncio.shield(task), 3)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ------------------------------------------------------------------ were bugs


async def test_a_full_answer_after_the_consumer_lagged_loses_no_event(emu: Emulator) -> None:
    # Was a bug: when an answer is full (the channel's buffer
    # of 100 overflowed), the messages of that answer are observed first (moving the feed's
    # cursor to the newest of them) and only then is the gap backfilled, from that cursor
    # minus `overlap`. The events that overflowed are older than that: they are never
    # delivered. Expected: all 150 events delivered; before the fix: the 50 oldest are lost. In
    # production the runner stops iterating the source while its slots are full, so a
    # burst of >100 events spread over more than `overlap` (5 s) loses events silently.
    async with client_for(emu) as client:
        source = PushSource(client, origin=emu.push_url, overlap=0.2)
        stream = source.__aiter__()
        try:
            emu.emit("custom:first", domain="space")
            await asyncio.wait_for(stream.__anext__(), 5)
            # The consumer is busy (it does not iterate): events pile up on the channel.
            early = [emu.emit(f"custom:early{n}", domain="space") for n in range(50)]
            await asyncio.sleep(0.4)  # longer than `overlap` between the oldest and newest
            late = [emu.emit(f"custom:late{n}", domain="space") for n in range(100)]
            wanted = {e["id"] for e in early + late}
            got: set[str] = set()
            with contextlib.suppress(TimeoutError):
                while not wanted <= got:
                    delivery = await asyncio.wait_for(stream.__anext__(), 1)
                    got.add(delivery.raw["id"])
        finally:
            await source.aclose()
            await stream.aclose()  # type: ignore[attr-defined]
    assert len(wanted - got) == 0, f"{len(wanted - got)} events never delivered"


async def test_the_feed_fills_in_while_the_push_host_is_out_of_reach(emu: Emulator) -> None:
    # Was a bug: the handshake with the push host comes before
    # the backfill from the feed, so while the push host cannot be reached (PubNub down, a
    # firewall blocking ps.pndsn.com) the feed is never read: no event is delivered at all,
    # although the API answers. Expected (docs/reliability.md: "every gap ... is filled
    # from the events feed"): the job triggered is delivered by the feed; before the fix: nothing.
    job = emu.trigger("a:b")
    async with client_for(emu) as client:
        source = PushSource(client, origin=f"http://127.0.0.1:{_free_port()}")
        async with collecting(source) as got:
            with contextlib.suppress(AssertionError):
                await _until(lambda: any(d.raw["context"].get("jobId") == job.id for d in got), 1.5)
    assert source.reconnects >= 1
    assert any(d.raw["context"].get("jobId") == job.id for d in got), "nothing was delivered"


async def test_the_feed_fills_in_while_the_subscription_endpoint_fails(emu: Emulator) -> None:
    # Was a bug: `GET /v1/subscription` answering an error (a
    # key without the permission, an outage of that endpoint) stops the source before the
    # backfill, on every attempt: the feed, which answers, is never read. Expected: the
    # job triggered is delivered by the feed; before the fix: nothing is delivered.
    job = emu.trigger("a:b")
    async with FaultProxy(emu.url) as proxy:
        proxy.add("status", rate=1.0, paths="/v1/subscription", status=403)
        async with FlatfileClient(
            proxy.url, emu.token, environment_id=emu.environment_id
        ) as client:
            source = PushSource(client, origin=emu.push_url)
            async with collecting(source) as got:
                with contextlib.suppress(AssertionError):
                    await _until(
                        lambda: any(d.raw["context"].get("jobId") == job.id for d in got), 1.5
                    )
    assert proxy.injected["status"] >= 1
    assert any(d.raw["context"].get("jobId") == job.id for d in got), "nothing was delivered"


async def test_a_token_the_channel_always_refuses_is_not_refetched_in_a_hot_loop() -> None:
    # Was a bug: a 403 drops the token and loops at once, with
    # no backoff: a channel that refuses every token (an account without push, a clock
    # skew making every token expired) makes the source call GET /v1/subscription and the
    # push host hundreds of times a second, for ever. Expected: reconnections back off
    # (as for every other failure: 0.5 s, doubling); before the fix: ~1,000 calls in a second.
    async with Emulator(push_hold=0.3, push_ttl=0) as emu, client_for(emu) as client:
        source = PushSource(client, origin=emu.push_url)
        async with collecting(source):
            await _until(lambda: emu.push.denied >= 1)
            await asyncio.sleep(0.5)
        fetched = sum(r.route == "events.subscription" for r in emu.requests)
    assert fetched <= 10, f"GET /v1/subscription called {fetched} times in half a second"


async def test_an_answer_that_is_never_readable_does_not_spin(emu: Emulator) -> None:
    # Was a bug: an unreadable answer resubscribes at once,
    # with no backoff, and (the handshake being first) never reaches the backfill: a push
    # host behind a captive portal (always a 200 that is not JSON) makes the source spin at
    # hundreds of calls a second and deliver nothing. Expected: backoff, and the feed's
    # events delivered; before the fix: ~800 subscribe calls a second, nothing delivered.
    job = emu.trigger("a:b")
    async with FaultProxy(emu.push_url) as proxy, client_for(emu) as client:
        proxy.add("garbage", rate=1.0, paths="/v2/subscribe/*")
        source = PushSource(client, origin=proxy.url)
        async with collecting(source) as got:
            await _until(lambda: proxy.injected["garbage"] >= 1)
            await asyncio.sleep(0.5)
        calls = proxy.injected["garbage"]
    assert calls <= 10, f"{calls} subscribe calls in half a second"
    assert any(d.raw["context"].get("jobId") == job.id for d in got)


async def test_a_timetoken_the_channel_refuses_is_not_sent_for_ever(emu: Emulator) -> None:
    # Was a bug: the source took any `t.t` ("abc"; `null` becomes "None", a
    # float "1.7e+16": the same), and on the 400 the channel then answers (lines 259-261)
    # the source keeps that timetoken (lines 190-200): it sends it again for ever, and the
    # channel never delivers again (events come from the feed only, up to `max_backoff`
    # late, after each failure). Expected: the source handshakes again and push delivery
    # resumes; before the fix: nothing more is received by push.
    async with FaultProxy(emu.push_url) as proxy, client_for(emu) as client:
        source = PushSource(client, origin=proxy.url)
        async with collecting(source):
            await _until(lambda: source.connected)
            proxy.add(
                "json",
                rate=1.0,
                paths="/v2/subscribe/*",
                limit=1,
                body={"t": {"t": "abc", "r": 4}, "m": []},
            )
            emu.emit("custom:wake", domain="space")  # answers the long-poll in flight
            await _until(lambda: proxy.injected["json"] == 1)
            received = source.received
            deadline = time.monotonic() + 1.5
            while source.received == received and time.monotonic() < deadline:
                emu.emit("custom:marker", domain="space")
                await asyncio.sleep(0.2)
    assert source.received > received, "nothing came by push after the bad timetoken"


async def test_aclose_ends_the_iteration_while_the_token_is_fetched(emu: Emulator) -> None:
    # Was a bug: only the subscribe
    # call was raced against `aclose()` (`_unless_closed`); a `GET /v1/subscription` (or a
    # feed read) that hangs holds the iteration for the client's whole retry policy (3 x
    # 60 s). Expected: `aclose()` ends the iteration at once, as its docstring says;
    # before the fix: the iteration is still running 1.5 s later.
    async with FaultProxy(emu.url) as proxy:
        proxy.add("stall", rate=1.0, paths="/v1/subscription")
        async with FlatfileClient(
            proxy.url, emu.token, environment_id=emu.environment_id
        ) as client:
            source = PushSource(client, origin=emu.push_url)

            async def drain() -> None:
                async for _ in source:
                    pass

            task = asyncio.create_task(drain())
            try:
                await _until(lambda: proxy.injected["stall"] >= 1)
                await source.aclose()
                done, _ = await asyncio.wait({task}, timeout=1.5)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert done, "the iteration did not end after aclose()"


async def test_a_space_id_with_reserved_characters_is_quoted_in_the_channel(
    emu: Emulator,
) -> None:
    # Was a bug: the source built the subscribe URL with an f-string: the
    # channel (and the subscribe key) is not quoted as one path segment, unlike every other
    # URL of the library (docs/architecture.md: "every id quoted as one segment"). A space
    # id with "/" reaches another path (404 for ever), one with "%2F" subscribes to another
    # channel. PubNub's SDK quotes channels, and the emulator serves them quoted. Expected:
    # the event of that space arrives by push; before the fix: the source never connects.
    space = "us_sp_a/b"
    async with client_for(emu) as client:
        source = PushSource(client, origin=emu.push_url, space_id=space)
        async with collecting(source):
            with contextlib.suppress(AssertionError):
                await _until(lambda: source.connected, 1)
                emu.emit("custom:x", domain="space", context={"spaceId": space})
                await _until(lambda: source.received >= 1, 1)
    assert source.received >= 1, "the space's channel was never subscribed to"


async def test_a_backfill_cut_at_max_pages_goes_on(emu: Emulator) -> None:
    # Was a bug: the gap is marked filled after one poll of
    # the feed, but a poll reads at most `max_pages` pages and leaves the rest for "the next
    # poll" (PollingSource._resume), which a push source never makes until the next gap.
    # With the defaults, a gap of more than 200 x 128 = 25,600 events (an hour-long push
    # outage of a busy environment) loses the rest. Shown here with pages of 2, at most 1
    # a poll. Expected: the 10 events from before the start are delivered; before the fix: 2 are.
    early = [emu.emit(f"custom:e{n}", domain="space") for n in range(10)]
    async with client_for(emu) as client:
        source = PushSource(client, origin=emu.push_url)
        source.feed.page_size, source.feed.max_pages = 2, 1
        async with collecting(source) as got:
            await _until(lambda: source.connected)
            late = emu.emit("custom:late", domain="space")
            await _until(lambda: late["id"] in _ids(got))
            with contextlib.suppress(AssertionError):
                await _until(lambda: {e["id"] for e in early} <= _ids(got), 1)
    delivered = len(_ids(got) & {e["id"] for e in early})
    assert delivered == len(early), f"{delivered} of the {len(early)} early events delivered"


def test_the_wait_between_attempts_stays_bounded_however_long_the_failures_last() -> None:
    # Was a bug: the wait was 0.5 * 2.0 ** (failures - 2): after about a thousand failures
    # in a row (a push host out of reach for three hours, at one attempt every 10 s), the
    # float overflowed and the source raised OverflowError, ending the runner.
    client = FlatfileClient("http://127.0.0.1:9", "sk_x", environment_id="us_env_1")
    source = PushSource(client, origin="http://127.0.0.1:9", max_backoff=10.0)
    assert 0.4 <= source._backoff(2) <= 0.6  # 0.5 s, doubling, with jitter of 20 %
    assert 1.6 <= source._backoff(4) <= 2.4
    assert all(8.0 <= source._backoff(n) <= 12.0 for n in (10, 1_100, 10**9))


# ------------------------------------------------------------------ attacks that hold


async def test_a_huge_answer_is_delivered_whole_and_the_feed_fills_in(emu: Emulator) -> None:
    async with FaultProxy(emu.push_url) as proxy, client_for(emu) as client:
        source = PushSource(client, origin=proxy.url)
        async with collecting(source) as got:
            await _until(lambda: source.connected)
            channel = f"environment.{emu.environment_id}"
            messages = [
                {
                    "p": {"t": "1", "r": 4},
                    "c": channel,
                    "d": {"id": f"us_evt_many{n}", "topic": "custom:many", "context": {}},
                }
                for n in range(1000)
            ]
            proxy.add(
                "json",
                rate=1.0,
                paths="/v2/subscribe/*",
                limit=1,
                body={"t": {"t": "1", "r": 4}, "m": messages},
            )
            job = emu.trigger("a:b")  # answers the long-poll in flight (not faulted)
            # The answer sends the timetoken back to "1": what the channel holds comes again.
            await _until(lambda: len({i for i in _ids(got) if "many" in i}) == 1000)
            await _until(lambda: any(d.raw["context"].get("jobId") == job.id for d in got))
    ids = [d.raw["id"] for d in got]
    assert len(ids) == len(set(ids))


async def test_the_same_id_with_other_content_is_delivered_once(emu: Emulator) -> None:
    async with client_for(emu) as client:
        source = PushSource(client, origin=emu.push_url)
        async with collecting(source) as got:
            await _until(lambda: source.connected)
            channel = f"environment.{emu.environment_id}"
            emu.push.publish([channel], {"id": "us_evt_twin", "topic": "a:one", "context": {}})
            emu.push.publish([channel], {"id": "us_evt_twin", "topic": "a:two", "context": {}})
            marker = emu.emit("custom:marker", domain="space")
            await _until(lambda: marker["id"] in _ids(got))
    twins = [d.raw["topic"] for d in got if d.raw.get("id") == "us_evt_twin"]
    assert twins == ["a:one"]
    assert source.duplicates >= 1


async def test_an_event_from_the_future_does_not_hide_a_later_gap(emu: Emulator) -> None:
    async with FaultProxy(emu.push_url) as proxy, client_for(emu) as client:
        source = PushSource(client, origin=proxy.url)
        async with collecting(source) as got:
            await _until(lambda: source.connected)
            channel = f"environment.{emu.environment_id}"
            emu.push.publish(
                [channel],
                {
                    "id": "us_evt_future",
                    "topic": "custom:future",
                    "createdAt": "2999-01-01T00:00:00.000Z",
                    "context": {},
                },
            )
            await _until(lambda: "us_evt_future" in _ids(got))
            assert source.feed.cursor.year < 2999
            proxy.add("reset_before", rate=1.0, paths="/v2/subscribe/*", limit=2)
            wake = emu.emit("custom:wake", domain="space")
            await _until(lambda: proxy.injected["reset_before"] >= 1)
            during = [emu.trigger(f"a:during{n}") for n in range(3)]
            await _until(
                lambda: (
                    {j.id for j in during}
                    <= {d.raw["context"].get("jobId") for d in got if isinstance(d.raw, dict)}
                )
            )
    assert wake["id"] in _ids(got)


# ------------------------------------------------------------------ the emulator's server


async def test_the_push_server_refuses_bad_calls_as_pubnub_does(emu: Emulator) -> None:
    async with client_for(emu) as client:
        credentials = await client.events.subscription(emu.environment_id)
    channel = f"environment.{emu.environment_id}"
    base = f"{emu.push_url}/v2/subscribe"
    key, token = credentials.subscribe_key, credentials.token
    cases: list[tuple[str, dict[str, str], int]] = [
        (f"{base}/{key}/{channel}/0", {"tt": "garbage", "auth": token}, 400),
        (f"{base}/{key}/{channel}/0", {"tt": "1" * 5000, "auth": token}, 400),
        (f"{base}/{key}/{channel}/0", {"tt": "0"}, 403),
        (f"{base}/{key}/{channel}/0", {"tt": "0", "auth": "pn_forged"}, 403),
        (f"{base}/sub-c-wrong/{channel}/0", {"tt": "0", "auth": token}, 400),
    ]
    async with aiohttp.ClientSession() as session:
        for url, params, status in cases:
            async with session.get(url, params=params) as resp:
                assert resp.status == status, (url, params)
                body = await resp.json()
                assert body.get("error") is True or body.get("status") == status


async def test_many_subscribers_some_leaving_mid_hold_all_others_get_the_message(
    emu: Emulator,
) -> None:
    async with client_for(emu) as client:
        credentials = await client.events.subscription(emu.environment_id)
    channel = f"environment.{emu.environment_id}"
    url = f"{emu.push_url}/v2/subscribe/{credentials.subscribe_key}/{channel}/0"
    auth = {"auth": credentials.token}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        async with session.get(url, params={"tt": "0", **auth}) as resp:
            start = (await resp.json())["t"]["t"]

        async def subscribe() -> Any:
            async with session.get(url, params={"tt": start, **auth}) as resp:
                return await resp.json()

        stayers = [asyncio.create_task(subscribe()) for _ in range(60)]
        leavers = [asyncio.create_task(subscribe()) for _ in range(60)]
        await _until(lambda: emu.push.subscribes >= 121)
        for task in leavers:
            task.cancel()
        await asyncio.gather(*leavers, return_exceptions=True)
        event = emu.emit("custom:all", domain="space")
        answers = await asyncio.gather(*stayers)
    for answer in answers:
        assert [m["d"]["id"] for m in answer["m"]] == [event["id"]]
        assert int(answer["t"]["t"]) > int(start)


async def test_a_subscription_answer_with_a_bad_ttl_still_delivers(emu: Emulator) -> None:
    async with FaultProxy(emu.url) as proxy:
        proxy.add(
            "json",
            rate=1.0,
            paths="/v1/subscription",
            limit=1,
            body={
                "data": {
                    "subscribeKey": emu.push.subscribe_key,
                    "token": emu.push.issue_token(),
                    "ttl": -5,
                    "accountId": None,
                }
            },
        )
        async with FlatfileClient(
            proxy.url, emu.token, environment_id=emu.environment_id
        ) as client:
            source = PushSource(client, origin=emu.push_url)
            async with collecting(source) as got:
                await _until(lambda: source.connected)
                job = emu.trigger("a:b")
                await _until(lambda: any(d.raw["context"].get("jobId") == job.id for d in got))
    assert source.refreshes >= 2  # a ttl in the past: refreshed each time, not crashed


# ------------------------------------------------------------------ hosts that misbehave


class PushHost:
    """A push host of the test's making. A handshake (``tt=0``) is answered at once, as
    PubNub does; each long-poll as ``mode`` says:

    * ``hold``: never (held until the client goes), as PubNub holds a quiet channel's;
    * ``empty``: at once, no message, the timetoken moved on;
    * ``same``: at once, no message, the timetoken sent back;
    * ``backwards``: at once, the same message again, and an older timetoken;
    * ``huge``: a body that never ends (made as it is sent), then ``hold``.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.handshakes = 0
        self.polls = 0
        self.sent = 0  # bytes of the huge body sent
        self.url = ""

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        tt = int(request.query.get("tt") or 0)
        if tt == 0:
            self.handshakes += 1
            return web.json_response({"t": {"t": "17000000000000000", "r": 4}, "m": []})
        self.polls += 1
        message = {"d": {"id": "us_evt_again", "topic": "custom:again", "context": {}}}
        if self.mode == "empty":
            return web.json_response({"t": {"t": str(tt + 1), "r": 4}, "m": []})
        if self.mode == "same":
            return web.json_response({"t": {"t": str(tt), "r": 4}, "m": []})
        if self.mode == "backwards":
            return web.json_response({"t": {"t": str(tt - 1), "r": 4}, "m": [message]})
        if self.mode == "huge":
            self.mode = "hold"
            return await self._endless(request)
        await asyncio.Event().wait()  # held until the client goes (the handler is cancelled)
        raise AssertionError("unreachable")

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        head, filler = b'{"t":{"t":"17000000000000001","r":4},"m":["', b"x" * 65536
        try:
            await response.write(head)
            while self.sent < 64 * 2**20:
                await response.write(filler)
                self.sent += len(filler)
        except ConnectionError:
            pass  # the client stopped reading and closed the connection
        return response

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        app = web.Application(handler_args={"handler_cancellation": True})
        app.router.add_get("/v2/subscribe/{key}/{channel}/0", self.subscribe)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        self.url = str(server.make_url("")).rstrip("/")
        try:
            yield self.url
        finally:
            await server.close()


async def test_a_stalled_channel_is_filled_from_the_feed_and_not_ready(emu: Emulator) -> None:
    # Was a bug: a long-poll without an answer was sent again from the same timetoken, for
    # ever: with the channel stalled (a black hole between the listener and the push host)
    # nothing more was delivered but jobs the sweep found, and /readyz said ready.
    # Expected: each long-poll without an answer is a gap the feed fills; when the
    # handshake after it gets no answer either, the source says it is not connected.
    async with FaultProxy(emu.push_url) as proxy, client_for(emu) as client:
        source = PushSource(client, origin=proxy.url, hold=0.5)
        async with (
            collecting(source) as got,
            serve_health(0, source=source, metrics=False) as health,
            aiohttp.ClientSession() as http,
        ):
            await _until(lambda: source.connected)
            proxy.add("stall", rate=1.0, paths="/v2/subscribe/*")
            emu.emit("custom:wake", domain="space")  # ends the long-poll in flight
            await _until(lambda: proxy.injected["stall"] >= 1)
            during = emu.emit("custom:during", domain="space")  # by push: never arrives
            await _until(lambda: during["id"] in _ids(got), 10)
            await _until(lambda: not source.connected, 10)
            async with http.get(f"{health.url}/readyz") as resp:
                assert resp.status == 503
                assert (await resp.json())["source"] == {"connected": False}
            proxy.clear()  # the channel answers again: ready again
            await _until(lambda: source.connected, 30)
            after = emu.emit("custom:after", domain="space")
            await _until(lambda: after["id"] in _ids(got))
            async with http.get(f"{health.url}/readyz") as resp:
                assert resp.status == 200
    assert source.timeouts >= 1


async def test_a_quiet_channel_held_past_hold_stays_ready_and_the_feed_fills_in(
    emu: Emulator,
) -> None:
    # PubNub holds a quiet channel's long-poll for minutes, past `hold`: no answer then is
    # no failure (the handshake after it is answered), but it is a gap all the same: an
    # event the channel did not bring comes from the feed within `hold`.
    host = PushHost("hold")
    async with host.serving() as url, client_for(emu) as client:
        source = PushSource(client, origin=url, hold=0.3)
        async with collecting(source) as got:
            await _until(lambda: source.connected)
            stored = emu.emit("custom:feed-only", domain="space")  # the host never pushes
            await _until(lambda: stored["id"] in _ids(got) and source.timeouts >= 3, 10)
            assert source.connected
    assert source.reconnects == 0
    assert host.handshakes >= 3


@pytest.mark.parametrize("mode", ["empty", "same", "backwards"])
async def test_a_host_answering_every_long_poll_at_once_does_not_spin(
    emu: Emulator, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was a bug: a long-poll answered at once was sent again at once: a host that never
    # holds one (empty answers, or its timetoken sent back) drove the source at 56,000
    # calls in 30 s, 60 % of a core, delivering nothing. Expected: it waits between calls,
    # as after failures (0.5 s doubling to 10 s), the feed fills in, and the source says
    # it is not connected. The waits are counted on a clock of the test's, not slept:
    # within 30 s of waits, the host sees a handful of long-polls.
    host = PushHost(mode)
    waited: list[float] = []
    async with host.serving() as url, client_for(emu) as client:
        source = PushSource(client, origin=url)

        async def wait(seconds: float) -> bool:
            waited.append(seconds)
            await asyncio.sleep(0)
            return False

        monkeypatch.setattr(source, "_wait", wait)
        async with collecting(source) as got:
            await _until(lambda: host.polls >= 1)
            event = emu.emit("custom:x", domain="space")  # after the start's fill
            await _until(lambda: sum(waited) >= 30 or host.polls >= 500, 20)
            await _until(lambda: event["id"] in _ids(got))
            assert not source.connected
    assert host.polls <= 15, f"{host.polls} long-polls in {sum(waited):.1f} s of waiting"
    assert host.polls - 1 <= source.instant <= host.polls  # (the last, cut short by the end)


async def test_a_push_answer_larger_than_the_limit_is_cut_off_and_the_gap_filled(
    emu: Emulator,
) -> None:
    # Was a bug: a push answer was read whole before anything looked at it: one 300 MB
    # answer took the listener to 946 MB. Expected: reading stops at `max_answer_bytes`,
    # a warning names the host and the size, and the feed fills the gap.
    host = PushHost("huge")
    async with host.serving() as url, client_for(emu) as client:
        source = PushSource(client, origin=url, hold=1.0, max_answer_bytes=2**20)
        with capture_logs() as logs:
            async with collecting(source) as got:
                await _until(lambda: host.sent > 0)
                event = emu.emit("custom:x", domain="space")
                await _until(lambda: event["id"] in _ids(got))
                await _until(lambda: source.connected)
    warned = [e for e in logs if e["event"] == "a push answer could not be read; subscribing again"]
    assert len(warned) == 1
    assert "127.0.0.1" in warned[0]["error"]
    assert "larger than the limit of 1,048,576 bytes" in warned[0]["error"]
    assert host.sent < 16 * 2**20, f"{host.sent:,} bytes sent: the answer was read on"


async def test_a_malformed_message_carrying_a_real_events_id_does_not_hide_it(
    emu: Emulator,
) -> None:
    # Was a bug: the channel's malformed message (no topic) carrying a real event's id,
    # arriving first, marked the id delivered: the real event was dropped.
    async with client_for(emu) as client:
        source = PushSource(client, origin=emu.push_url)
        async with collecting(source) as got:
            await _until(lambda: source.connected)
            channel = f"environment.{emu.environment_id}"
            emu.push.publish([channel], {"id": "us_evt_real", "context": {}})
            emu.push.publish([channel], {"id": "us_evt_real", "topic": "a:b", "context": {}})
            await _until(lambda: any(d.raw.get("topic") == "a:b" for d in got))
    assert [d.raw.get("topic") for d in got if d.raw.get("id") == "us_evt_real"] == [None, "a:b"]


async def test_a_message_dated_beyond_what_a_datetime_holds_is_skipped(emu: Emulator) -> None:
    # Was a bug: the source raised OverflowError on `9999-12-31T23:59:59.999999-12:00`
    # (past year 9999 in UTC) and ended: no event was delivered after it.
    async with client_for(emu) as client:
        source = PushSource(client, origin=emu.push_url)
        async with collecting(source) as got:
            await _until(lambda: source.connected)
            channel = f"environment.{emu.environment_id}"
            emu.push.publish(
                [channel],
                {
                    "id": "us_evt_beyond",
                    "topic": "a:b",
                    "context": {},
                    "createdAt": "9999-12-31T23:59:59.999999-12:00",
                },
            )
            marker = emu.emit("custom:marker", domain="space")
            await _until(lambda: marker["id"] in _ids(got))
    assert "us_evt_beyond" not in _ids(got)
    assert source.feed.skipped == 1
