"""Progress: awaited ticks never wait for the interval, coalescing is O(1), whole numbers."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from flatjobs import FlatfileClient, FlatfileEvent, Jobs, Listener, Tick, job_lifecycle
from flatjobs.emulator import Emulator
from flatjobs.testing import ProgressUpdate, client_for, make_event, run_job

from .conftest import RecordingServer
from .faultproxy import FaultProxy

JOB = "us_jb_1"


def ready() -> dict[str, Any]:
    return make_event(job="workbook:export", job_id=JOB)


def progress_bodies(recorder: RecordingServer) -> list[Any]:
    return [r.json for r in recorder.requests if r.path.endswith("/ack")][1:]


async def test_two_hundred_awaited_ticks_never_wait_for_the_interval(emu: Emulator) -> None:
    # An interval of a minute: if an awaited tick waited for it, this would take hours.
    jobs = Jobs(progress_interval=60)

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> str:
        for row in range(200):
            await tick(row / 2, f"row {row}")
        return "done"

    async with asyncio.timeout(20):
        job = await run_job(Listener().use(jobs), emu, "workbook:export")
    assert job.status == "complete"
    progress_calls = [r for r in emu.requests if r.route == "jobs.ack"][1:]
    assert len(progress_calls) <= 2  # bounded by time (one interval), not by ticks
    assert progress_calls[-1].json == {"progress": 99, "info": "row 199"}  # the last value


async def test_an_awaited_tick_waits_for_the_update_in_flight_only(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    async with job_lifecycle(ready(), client=rclient, progress_interval=0.01) as tick:
        await asyncio.sleep(0.02)
        first = tick(10)  # the interval has passed: it goes out now
        await first
        assert progress_bodies(recorder) == [{"progress": 10}]
        second = tick(20)  # within the interval: coalesced, resolved at once
        assert await second is None
        assert progress_bodies(recorder) == [{"progress": 10}]
    assert progress_bodies(recorder) == [{"progress": 10}, {"progress": 20}]


async def test_a_coalesced_tick_allocates_nothing(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    # The same ready-made awaitable for every coalesced tick: no future, no callback, no
    # list of waiters grows with the number of ticks.
    async with job_lifecycle(ready(), client=rclient, progress_interval=60) as tick:
        results = {id(tick(i % 100)) for i in range(100_000)}
    assert len(results) == 1
    assert progress_bodies(recorder) == [{"progress": 99}]


async def test_ticks_while_an_update_is_in_flight_share_one_awaitable(emu: Emulator) -> None:
    async with client_for(emu) as client:
        emu.faults.add(routes="jobs.ack", latency=0.05, limit=2)
        job = emu.trigger("workbook:export")
        event = next(e for e in emu.events if e["topic"] == "job:ready")
        async with job_lifecycle(event, client=client, progress_interval=0.001) as tick:
            await asyncio.sleep(0.01)
            first = tick(1)
            during = {id(tick(n % 100)) for n in range(2, 10_000)}
            await first
        assert len(during) == 1
        assert emu.job(job.id).status == "complete"


async def test_the_last_value_is_never_dropped(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    async with job_lifecycle(ready(), client=rclient, progress_interval=60) as tick:
        for i in range(1000):
            tick(i / 10)
    assert progress_bodies(recorder) == [{"progress": 99}]


@pytest.mark.parametrize(
    ("given", "sent"), [(0, 0), (33.5, 33), (99.9, 99), (99.99999, 99), (100, 100), (1e-9, 0)]
)
async def test_progress_is_sent_as_a_whole_number_rounded_down(
    recorder: RecordingServer, rclient: FlatfileClient, given: float, sent: int
) -> None:
    async with job_lifecycle(ready(), client=rclient, progress_interval=0) as tick:
        await tick(given)
    assert progress_bodies(recorder) == [{"progress": sent}]
    assert isinstance(progress_bodies(recorder)[0]["progress"], int)


async def test_the_client_sends_progress_as_a_whole_number_too(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    await rclient.jobs.ack(JOB, progress=66.6)
    await rclient.jobs.report_progress(JOB, 12.9, info="x")
    assert [r.json for r in recorder.requests] == [{"progress": 66}, {"progress": 12, "info": "x"}]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1, 100.01, True, "50", None])
def test_a_progress_update_refuses_what_is_not_a_number_within_0_100(bad: Any) -> None:
    with pytest.raises(ValueError, match="progress must be"):
        ProgressUpdate(bad)


async def test_progress_answers_that_are_not_a_job_never_hang_a_tick(emu: Emulator) -> None:
    jobs = Jobs(progress_interval=0)
    seen: list[Any] = []

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> str:
        seen.append(await tick(10, "a"))
        seen.append(await tick(20, "b"))
        return "done"

    async with FaultProxy(emu.url) as proxy:
        # Every ack is answered {"data": null} (after it reached the emulator): the first
        # ack is found to have landed by reading the job; each progress update is given up
        # after the client's retries, logged, and the handler goes on.
        proxy.add("data_null", paths="/v1/jobs/*/ack", methods="POST")
        async with FlatfileClient(proxy.url, emu.token, environment_id=emu.environment_id) as c:
            created = emu.trigger("workbook:export")
            event = next(e for e in emu.events if e["topic"] == "job:ready")
            async with asyncio.timeout(20):
                await Listener(client=c).use(jobs).dispatch(event)
    assert seen == [None, None]
    assert emu.job(created.id).status == "complete"
    assert emu.job(created.id).progress == 100
