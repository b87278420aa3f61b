"""Push delivery: events on Flatfile's channel, from the emulator's PubNub-protocol server.

The source is at most once on the channel and exactly once overall: every gap (start,
reconnection, an unreadable answer, a refused token) is filled from the events feed, and
an event that came both ways is delivered once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from flatjobs import FlatfileEvent, Listener, PushSource, Runner
from flatjobs.emulator import Emulator
from flatjobs.errors import ConfigurationError
from flatjobs.sources import Delivery
from flatjobs.testing import client_for

from .faultproxy import FaultKind, FaultProxy


async def _collect(source: PushSource, into: list[Delivery]) -> None:
    async for delivery in source:
        into.append(delivery)  # noqa: PERF401 - seen as they come, not at the end


async def _until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.005)


def _ids(deliveries: list[Delivery]) -> list[str]:
    return [d.raw["id"] for d in deliveries if isinstance(d.raw, dict)]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(push_hold=1.0) as emu:
        yield emu


@contextlib.asynccontextmanager
async def running(
    emu: Emulator, origin: str | None = None, **kwargs: Any
) -> AsyncIterator[tuple[PushSource, list[Delivery]]]:
    """A push source taking events into a list, connected, stopped on exit."""
    async with client_for(emu) as client:
        source = PushSource(client, origin=origin or emu.push_url, **kwargs)
        got: list[Delivery] = []
        task = asyncio.create_task(_collect(source, got))
        try:
            await _until(lambda: source.connected)
            yield source, got
        finally:
            await source.aclose()
            await asyncio.wait_for(task, 5)


def _jobs_in(got: list[Delivery]) -> set[str]:
    return {d.raw["context"].get("jobId") for d in got if isinstance(d.raw, dict)}


def _injected(proxy: FaultProxy) -> int:
    return sum(proxy.injected.values())


async def test_events_arrive_by_push_not_by_the_feed(emu: Emulator) -> None:
    async with running(emu) as (source, got):
        feed_calls = sum(r.route == "events.list" for r in emu.requests)
        jobs = [emu.trigger(f"a:op{n}") for n in range(5)]
        await _until(lambda: len(_ids(got)) >= 10)  # job:created + job:ready each
        assert sum(r.route == "events.list" for r in emu.requests) == feed_calls  # no polls
    assert source.received >= 10
    ready = [d.raw["context"]["jobId"] for d in got if d.raw["topic"] == "job:ready"]
    assert ready == [j.id for j in jobs]
    assert len(_ids(got)) == len(set(_ids(got)))


async def test_a_space_channel_carries_that_space_only(emu: Emulator) -> None:
    space = "us_sp_mine"
    async with running(emu, space_id=space) as (source, got):
        emu.trigger("a:other")  # another space: not on this channel
        mine = emu.trigger("a:mine", context={"spaceId": space})
        await _until(lambda: mine.id in _jobs_in(got))
    assert source.channel == f"space.{space}"
    assert {d.raw["context"]["spaceId"] for d in got} == {space}


async def test_events_before_the_source_started_come_from_the_feed(emu: Emulator) -> None:
    early = emu.trigger("a:early")
    async with running(emu) as (source, got):
        await _until(lambda: early.id in _jobs_in(got))
        late = emu.trigger("a:late")
        await _until(lambda: late.id in _jobs_in(got))
    assert source.backfilled >= 2  # early's job:created and job:ready
    assert len(_ids(got)) == len(set(_ids(got)))


async def test_a_dropped_connection_loses_nothing(emu: Emulator) -> None:
    async with FaultProxy(emu.push_url) as proxy, running(emu, origin=proxy.url) as (source, got):
        # The channel's connection breaks, at the TCP level, before and after the server
        # answers: events published meanwhile do not reach this subscriber by push.
        proxy.add("reset_before", rate=1.0, paths="/v2/subscribe/*", limit=2)
        proxy.add("reset_after", rate=1.0, paths="/v2/subscribe/*", limit=1)
        wake = emu.trigger("a:wake")  # answers the long-poll in flight; the next ones break
        await _until(lambda: _injected(proxy) >= 1)
        during = [emu.trigger(f"a:during{n}") for n in range(3)]
        await _until(lambda: _injected(proxy) >= 3, timeout=10)
        after = emu.trigger("a:after")
        await _until(lambda: {j.id for j in [wake, *during, after]} <= _jobs_in(got))
    assert source.reconnects >= 1  # aiohttp itself retries a GET on a reused connection
    assert len(_ids(got)) == len(set(_ids(got)))


@pytest.mark.parametrize("kind", ["garbage", "truncate", "html", "data_null"])
async def test_an_unreadable_answer_is_resubscribed_and_the_gap_filled(
    emu: Emulator, kind: FaultKind
) -> None:
    async with FaultProxy(emu.push_url) as proxy, running(emu, origin=proxy.url) as (_, got):
        proxy.add(kind, rate=1.0, paths="/v2/subscribe/*", limit=1)
        job = emu.trigger("a:b")
        await _until(lambda: _injected(proxy) == 1)
        await _until(lambda: job.id in _jobs_in(got))
    assert len(_ids(got)) == len(set(_ids(got)))


async def test_a_stalled_long_poll_is_sent_again_after_hold(emu: Emulator) -> None:
    async with (
        FaultProxy(emu.push_url) as proxy,
        running(emu, origin=proxy.url, hold=1.5) as (source, got),
    ):
        proxy.add("stall", rate=1.0, paths="/v2/subscribe/*", limit=1, seconds=30)
        await _until(lambda: _injected(proxy) == 1)
        job = emu.trigger("a:b")
        await _until(lambda: job.id in _jobs_in(got), 8)
    assert source.timeouts >= 1


async def test_a_refused_token_is_refreshed_and_the_gap_filled(emu: Emulator) -> None:
    async with running(emu) as (source, got):
        assert source.refreshes == 1
        emu.push.revoke()  # every token refused from now on, as after expiry
        job = emu.trigger("a:b")
        await _until(lambda: job.id in _jobs_in(got))
    assert emu.push.denied >= 1
    assert source.refreshes >= 2


async def test_the_token_is_refreshed_before_it_expires(emu: Emulator) -> None:
    emu.push.ttl = 0.02  # minutes: 1.2 s, refreshed at 80 %
    async with running(emu) as (source, got):
        await _until(lambda: source.refreshes >= 3, timeout=6)
        job = emu.trigger("a:b")
        await _until(lambda: job.id in _jobs_in(got))
    assert emu.push.denied == 0


async def test_a_restarted_source_gets_what_was_published_while_it_was_down(
    emu: Emulator,
) -> None:
    async with running(emu) as (_, got):
        first = emu.trigger("a:first")
        await _until(lambda: first.id in _jobs_in(got))
    missed = [emu.trigger(f"a:missed{n}") for n in range(3)]
    async with running(emu) as (_, again):
        await _until(lambda: {j.id for j in missed} <= _jobs_in(again))


async def test_a_duplicate_message_is_delivered_once(emu: Emulator) -> None:
    async with running(emu) as (source, got):
        job = emu.trigger("a:b")
        await _until(lambda: job.id in _jobs_in(got))
        ready = next(e for e in emu.events if e["topic"] == "job:ready")
        channel = f"environment.{emu.environment_id}"
        emu.push.publish([channel], ready)
        emu.push.publish([channel], json.dumps(ready))  # as a JSON string, as Flatfile may
        marker = emu.trigger("a:marker")
        await _until(lambda: marker.id in _jobs_in(got))
    assert _ids(got).count(ready["id"]) == 1
    assert source.duplicates >= 2


def _hostile_messages() -> list[str]:
    """JSON texts of messages no event source should pass on as events."""
    return [
        json.dumps("this is not json {"),  # a string that does not parse
        json.dumps("[1, 2, 3]"),  # a string that parses, to a list
        "42",
        "null",
        '["a", "list"]',
        '{"no": "topic"}',
        json.dumps({"id": "us_evt_huge", "topic": "a:b", "context": {}, "x": "x" * 2_000_000}),
        json.dumps("[" * 100_000 + "]" * 100_000),  # a string nested too deep to parse
        json.dumps({"id": "us_evt/odd?x", "topic": "job:ready", "context": {"jobId": "../x?y"}}),
        '{"id": "us_evt_deep", "topic": "a:b", "context": {}, "x": '
        + "[" * 5000
        + "]" * 5000
        + "}",  # the whole answer nests too deep for a JSON parser
    ]


async def test_hostile_messages_are_logged_and_skipped_and_the_listener_goes_on(
    emu: Emulator,
) -> None:
    client = client_for(emu)
    listener = Listener(client=client)
    seen: list[str] = []

    @listener.on("custom:*")
    async def handle(event: FlatfileEvent) -> None:
        seen.append(event.topic)

    source = PushSource(client, origin=emu.push_url)
    runner = Runner(listener, source)
    channel = f"environment.{emu.environment_id}"
    with capture_logs() as logs:
        task = asyncio.create_task(runner.run())
        await _until(lambda: source.connected)
        *each, deepest = _hostile_messages()
        for text in each:
            emu.push.publish_json([channel], text)
        await _until(lambda: runner.stats.invalid >= len(each) - 1)
        emu.push.publish_json([channel], deepest)  # its whole answer is unreadable
        await _until(lambda: emu.push.subscribes >= 4)
        emu.emit("custom:after", domain="space")
        await _until(lambda: seen == ["custom:after"])
        runner.stop()
        stats = await asyncio.wait_for(task, 5)
    await client.close()
    assert stats.invalid >= 8
    skipped = [e for e in logs if e.get("event") == "malformed event skipped"]
    assert len(skipped) == stats.invalid
    assert all(len(json.dumps(e, default=str)) < 5_000 for e in skipped)


def test_a_push_origin_that_is_not_a_url_is_refused_without_echoing_it() -> None:
    from flatjobs import FlatfileClient

    client = FlatfileClient(token="sk_x", environment_id="us_env_1", base_url="http://h")
    for bad in ("ftp://host", "http://user:sk_secret@host", "not a url", "http://h/?k=sk_q"):
        with pytest.raises(ConfigurationError) as err:
            PushSource(client, origin=bad)
        assert "sk_" not in str(err.value)
        assert bad not in str(err.value)


# ------------------------------------------------------------ PubNub's own SDK


async def test_pubnubs_own_sdk_receives_the_emulators_events(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    from pubnub.callbacks import SubscribeCallback
    from pubnub.pnconfiguration import PNConfiguration
    from pubnub.pubnub_asyncio import PubNubAsyncio
    from pubnub.request_handlers.async_aiohttp import AsyncAiohttpRequestHandler

    async with client_for(emu) as client:
        credentials = await client.events.subscription(emu.environment_id)
    received: list[Any] = []

    class Collect(SubscribeCallback):  # type: ignore[misc]
        def message(self, pubnub: Any, message: Any) -> None:
            received.append(message)

        def status(self, pubnub: Any, status: Any) -> None:
            pass

        def presence(self, pubnub: Any, presence: Any) -> None:
            pass

    config = PNConfiguration()
    config.subscribe_key = credentials.subscribe_key
    config.user_id = credentials.account_id or "flatjobs-test"
    config.origin = emu.push_url.removeprefix("http://")
    config.ssl = False
    config.disable_config_locking = False  # else the SDK warns that mutable config is deprecated
    # The SDK sends presence heartbeats (and a leave when unsubscribing) only when told to:
    # every second here, so that the test sees them.
    config.enable_presence_heartbeat = True
    config.set_presence_timeout_with_custom_interval(20, 1)
    pn = PubNubAsyncio(config, custom_request_handler=AsyncAiohttpRequestHandler)
    caplog.set_level("WARNING", logger="pubnub")
    left = False
    try:
        pn.set_token(credentials.token)
        pn.add_listener(Collect())
        pn.subscribe().channels([f"environment.{emu.environment_id}"]).execute()
        await _until(lambda: emu.push.subscribes >= 2)  # handshake done, long-poll waiting
        await _until(lambda: emu.push.heartbeats >= 1)  # the SDK's first, on joining
        job = emu.trigger("a:b")
        await _until(
            lambda: any(
                isinstance(m.message, dict) and m.message.get("context", {}).get("jobId") == job.id
                for m in received
            )
        )
        # The SDK read the emulator's answers to its heartbeats: it logged no failure.
        assert [r.getMessage() for r in caplog.records if r.name.startswith("pubnub")] == []
        pn.unsubscribe_all()
        left = True
        await _until(lambda: emu.push.leaves >= 1)  # the SDK says it leaves the channel
    finally:
        if not left:
            pn.unsubscribe_all()  # (a second call fails in the SDK)
        await pn.stop()
        pn._subscription_manager.loop.close()  # the SDK opens an event loop it never closes
    event = next(m for m in received if m.message["topic"] == "job:ready")
    assert event.channel == f"environment.{emu.environment_id}"
    assert event.message == next(e for e in emu.events if e["id"] == event.message["id"])
    assert len(str(event.timetoken)) == 17
    # Its presence calls were answered 200 (the counters count only those), none refused.
    assert emu.push.heartbeats >= 1
    assert emu.push.leaves == 1
    assert emu.push.denied == 0
