"""flatjobs.testing: the pytest plugin's fixtures and the event factory."""

from __future__ import annotations

import asyncio

import pytest

from flatjobs import ORPHAN_MESSAGE, FlatfileClient, FlatfileEvent, Jobs, Listener, Tick
from flatjobs.emulator import Emulator
from flatjobs.models import Event, from_wire
from flatjobs.testing import RecordingTick, client_for, emulated, make_event, run_job

pytest_plugins = ["pytester"]


async def test_emulator_fixture_runs_and_client_is_bound_to_it(
    flatfile_emulator: Emulator, flatfile_client: FlatfileClient
) -> None:
    job = flatfile_emulator.trigger("workbook:export")
    assert (await flatfile_client.jobs.get(job.id)).status == "ready"


def test_make_event_builds_a_realistic_job_ready_event() -> None:
    raw = make_event(job="sheet:dedupe", input={"key": "email"})
    event = from_wire(raw, Event)
    assert event.topic == "job:ready"
    assert event.payload == {
        "job": "sheet:dedupe",
        "domain": "sheet",
        "operation": "dedupe",
        "status": "ready",
        "isPart": False,
        "input": {"key": "email"},
    }
    assert event.context.job_id is not None
    assert event.context.sheet_id is not None
    assert event.context.environment_id == "us_env_test"


def test_make_event_ids_are_unique_and_overrides_apply() -> None:
    a, b = make_event(job="a:b"), make_event(job="a:b")
    assert a["id"] != b["id"]
    assert a["context"]["jobId"] != b["context"]["jobId"]
    custom = make_event("records:created", context={"sheetId": "s1"}, payload={"n": 1}, extra=True)
    assert custom["domain"] == "records"
    assert custom["context"]["sheetId"] == "s1"
    assert custom["payload"] == {"n": 1}
    assert custom["extra"] is True
    assert "jobId" not in custom["context"]


async def test_run_job_says_when_no_callback_matches_the_job(emu: Emulator) -> None:
    with pytest.raises(TimeoutError, match=r"no callback of the listener matches.*@jobs\.handle"):
        await run_job(Listener(), emu, "workbook:export", timeout=0.2)


async def test_run_job_says_when_the_handler_is_still_running(emu: Emulator) -> None:
    jobs = Jobs(progress_interval=0)

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        await tick(40, "Halfway")
        await asyncio.sleep(60)

    with pytest.raises(TimeoutError, match=r"still running \(last progress 40% \('Halfway'\)\)"):
        await run_job(Listener().use(jobs), emu, "workbook:export", timeout=0.3)


async def test_recording_tick_is_a_tick_that_records_splits_and_plays_a_cancel() -> None:
    tick = RecordingTick(cancel_at=50)
    assert isinstance(tick, Tick)
    reached: list[int] = []

    async def handler(event: FlatfileEvent, tick: Tick) -> str:
        await tick.split(3)
        for p in (10, 50, 90):
            await tick(p)
            await asyncio.sleep(0)
            reached.append(p)
        return "never"

    with pytest.raises(asyncio.CancelledError):
        await tick.run(handler, FlatfileEvent(make_event(job="workbook:export")))
    assert tick.cancelled
    assert reached == [10]
    assert [u.progress for u in tick.updates] == [10, 50]
    assert tick.splits == [(3, None)]


def test_the_plugin_works_in_a_project_in_strict_mode(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = strict\n")
    pytester.makepyfile(
        test_user="""
        import pytest
        from flatjobs import Jobs, Listener
        from flatjobs.testing import run_job

        jobs = Jobs()

        @jobs.handle("workbook:export")
        async def export(event, tick):
            await tick(50, "half way")
            return "Exported"

        @pytest.mark.asyncio
        async def test_export(flatfile_emulator):
            job = await run_job(Listener().use(jobs), flatfile_emulator, "workbook:export")
            assert job.outcome.message == "Exported"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


async def test_emulated_runs_a_listener_on_the_production_path() -> None:
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> str:
        await tick(50, "half way")
        return "Exported"

    async with emulated(Listener().use(jobs)) as env:
        job = await env.trigger("workbook:export")
        routes = {r.route for r in env.emulator.requests}
    assert job.status == "complete"
    assert job.outcome is not None
    assert job.outcome.message == "Exported"
    assert "events.list" in routes  # the events came through the feed, as in production
    assert env.results[job.id].status == "complete"
    assert env.runner.stats.dispatched >= 2  # job:created and job:ready, through the runner


async def test_emulated_sweeps_as_flatjobs_run_does(emu: Emulator) -> None:
    # A job a crashed worker left executing: the sweep at start fails it with a Retry.
    jobs = Jobs(heartbeat=0.1)

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        raise AssertionError("an orphan is not run again unless its handler opted in")

    stranded = emu.trigger("workbook:export")
    async with client_for(emu) as client:
        await client.jobs.ack(stranded.id, info="Accepted", progress=0)
    await asyncio.sleep(1.4)  # three heartbeats of silence, by a clock of whole seconds
    async with emulated(Listener().use(jobs), emulator=emu) as env:
        job = await env.emulator.wait_for(stranded.id, timeout=10)
    assert job.status == "failed"
    assert job.outcome is not None
    assert job.outcome.message == ORPHAN_MESSAGE


async def test_a_listener_never_closes_the_client_it_was_lent(emu: Emulator) -> None:
    listener = Listener()
    async with client_for(emu) as client:
        async with listener.bound(client):
            assert listener.client is client
        await client.jobs.list()  # still open: the listener only borrowed it
        listener.client = client
        await listener.aclose()
        await client.jobs.list()
