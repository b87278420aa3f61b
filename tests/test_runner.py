"""The runner: concurrency, exclusivity, dedupe, malformed input, and graceful shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from flatjobs import STOPPED_MESSAGE, FlatfileEvent, Jobs, Listener, MemorySource, Runner, Tick
from flatjobs.emulator import Emulator
from flatjobs.testing import client_for, make_event


def ready_events(emu: Emulator, name: str, count: int) -> list[dict[str, Any]]:
    ids = {emu.trigger(name).id for _ in range(count)}
    return [e for e in emu.events if e["topic"] == "job:ready" and e["context"]["jobId"] in ids]


async def test_distinct_events_run_concurrently_up_to_the_limit() -> None:
    listener = Listener()
    running = 0
    peak = 0

    @listener.on("thing:happened")
    async def work(event: FlatfileEvent) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    source = MemorySource(make_event("thing:happened") for _ in range(12))
    source.close()
    stats = await Runner(listener, source, concurrency=3).run()
    assert peak == 3
    assert stats.dispatched == 12


async def test_callbacks_of_one_event_keep_their_order() -> None:
    listener = Listener()
    log: list[str] = []

    @listener.on("x:y")
    async def first(event: FlatfileEvent) -> None:
        await asyncio.sleep(0.01)
        log.append(f"first {event.id}")

    @listener.on("x:y")
    async def second(event: FlatfileEvent) -> None:
        log.append(f"second {event.id}")

    events = [make_event("x:y") for _ in range(3)]
    source = MemorySource(events)
    source.close()
    await Runner(listener, source, concurrency=3).run()
    for event in events:
        assert log.index(f"first {event['id']}") < log.index(f"second {event['id']}")


async def test_a_redelivered_event_is_dispatched_once() -> None:
    listener = Listener()
    seen: list[str | None] = []

    @listener.on("**")
    async def record(event: FlatfileEvent) -> None:
        seen.append(event.id)

    event = make_event("x:y")
    source = MemorySource([event, dict(event), event])
    source.close()
    stats = await Runner(listener, source).run()
    assert seen == [event["id"]]
    assert stats.duplicates == 2


async def test_the_same_job_never_runs_twice_at_once(emu: Emulator) -> None:
    jobs = Jobs()
    runs: list[str] = []

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        runs.append(event.id or "")
        await asyncio.sleep(0.05)

    listener = Listener(client=client_for(emu)).use(jobs)
    (ready,) = ready_events(emu, "workbook:export", 1)
    source = MemorySource([ready, dict(ready, id="us_evt_again")])
    source.close()
    with capture_logs() as logs:
        stats = await Runner(listener, source).run()
    await listener.client.close()
    assert runs == [ready["id"]]
    assert stats.busy_jobs == 1
    assert any(e["event"] == "job is already running; event skipped" for e in logs)


MALFORMED: list[tuple[Any, str]] = [
    ("{not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    ([1, 2, 3], "must be a JSON object, got list"),
    (None, "must be a JSON object, got NoneType"),
    (42, "must be a JSON object, got int"),
    ({"id": "e1"}, "no topic"),
    ({"id": "e2", "topic": 7, "context": {}}, "no topic"),
    ({"id": "e3", "topic": "job:ready"}, "no context object"),
    ({"id": "e4", "topic": "job:ready", "context": "ctx"}, "no context object"),
    ({"id": "e5", "topic": "job:ready", "context": {}}, "a job:ready event without context.jobId"),
    ({"id": "e6", "topic": "job:ready", "context": {"jobId": ""}}, "without context.jobId"),
]


async def test_malformed_events_are_logged_with_the_problem_and_skipped() -> None:
    listener = Listener()
    good: list[str | None] = []

    @listener.on("**")
    async def record(event: FlatfileEvent) -> None:
        good.append(event.id)

    after = make_event("x:y")
    source = MemorySource([raw for raw, _ in MALFORMED] + [after])
    source.close()
    with capture_logs() as logs:
        stats = await Runner(listener, source).run()
    problems = [e["problem"] for e in logs if e["event"] == "malformed event skipped"]
    assert len(problems) == len(MALFORMED)
    for problem, (_, expected) in zip(problems, MALFORMED, strict=True):
        assert expected in problem
    assert good == [after["id"]]
    assert stats.invalid == len(MALFORMED)


async def test_a_json_string_event_is_parsed() -> None:
    listener = Listener()
    seen: list[str] = []

    @listener.on("x:y")
    async def record(event: FlatfileEvent) -> None:
        seen.append(event.topic)

    source = MemorySource(['{"id": "s1", "topic": "x:y", "context": {}}'])
    source.close()
    await Runner(listener, source).run()
    assert seen == ["x:y"]


async def test_stop_lets_in_flight_jobs_finish_within_the_grace_period(emu: Emulator) -> None:
    jobs = Jobs()
    started = asyncio.Event()

    @jobs.handle("workbook:slow")
    async def slow(event: FlatfileEvent, tick: Tick) -> str:
        started.set()
        await asyncio.sleep(0.2)
        return "done"

    listener = Listener(client=client_for(emu)).use(jobs)
    source = MemorySource(ready_events(emu, "workbook:slow", 5))
    runner = Runner(listener, source, grace_period=5)
    running = asyncio.create_task(runner.run())
    await started.wait()
    runner.stop()
    stats = await running
    await listener.client.close()
    assert {j.status for j in emu.jobs()} == {"complete"}
    assert stats.cancelled == 0


async def test_after_the_grace_period_jobs_are_failed_with_a_retry_button(emu: Emulator) -> None:
    jobs = Jobs()
    started = asyncio.Event()

    @jobs.handle("workbook:stuck")
    async def stuck(event: FlatfileEvent, tick: Tick) -> None:
        started.set()
        await asyncio.sleep(60)

    listener = Listener(client=client_for(emu)).use(jobs)
    source = MemorySource(ready_events(emu, "workbook:stuck", 4))
    runner = Runner(listener, source, grace_period=0.1)
    running = asyncio.create_task(runner.run())
    await started.wait()
    await asyncio.sleep(0.05)
    runner.stop()
    stats = await running
    await listener.client.close()
    jobs_now = emu.jobs()
    assert {j.status for j in jobs_now} == {"failed"}
    assert all(j.outcome is not None and j.outcome.message == STOPPED_MESSAGE for j in jobs_now)
    assert all(j.outcome is not None and j.outcome.next is not None for j in jobs_now)
    assert stats.cancelled == 4


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        Runner(Listener(), MemorySource(), concurrency=0)
    with pytest.raises(ValueError, match="grace_period must be >= 0"):
        Runner(Listener(), MemorySource(), grace_period=-1)
