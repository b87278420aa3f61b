"""Heartbeats, the reconciliation sweep, and replayed events: no job stranded, none run twice."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from flatjobs import (
    ORPHAN_MESSAGE,
    FlatfileEvent,
    Jobs,
    JobSkipped,
    Listener,
    MemorySource,
    PollingSource,
    Reconciler,
    Runner,
    Tick,
    job_lifecycle,
)
from flatjobs.emulator import Emulator
from flatjobs.models import RetryNext
from flatjobs.running._orphans import job_event
from flatjobs.sources import Delivery
from flatjobs.testing import client_for


def ready_event(emu: Emulator, job_id: str) -> dict[str, Any]:
    return next(
        e for e in emu.events if e["topic"] == "job:ready" and e["context"]["jobId"] == job_id
    )


async def make_executing(emu: Emulator, name: str = "workbook:export") -> str:
    """A job left executing by a worker that is gone (acknowledged, then silence)."""
    job = emu.trigger(name)
    async with client_for(emu) as client:
        await client.jobs.ack(job.id, info="Accepted", progress=0)
    return job.id


# ------------------------------------------------------------------ heartbeats


async def test_a_running_body_keeps_its_job_fresh_with_heartbeats(emu: Emulator) -> None:
    job = emu.trigger("workbook:export")
    event = ready_event(emu, job.id)
    async with client_for(emu) as client, job_lifecycle(event, client=client, heartbeat=0.1):
        first = emu.job(job.id).updated_at
        await asyncio.sleep(0.55)
        later = emu.job(job.id).updated_at
    assert first is not None
    assert later is not None
    assert later - first >= dt.timedelta(seconds=0.3)
    beats = [r for r in emu.requests if r.route == "jobs.ack"][1:]
    assert len(beats) >= 4
    assert all(r.json == {"info": "Accepted", "progress": 0} for r in beats)


async def test_a_heartbeat_resends_the_current_progress(emu: Emulator) -> None:
    job = emu.trigger("workbook:export")
    async with client_for(emu) as client:
        event = ready_event(emu, job.id)
        async with job_lifecycle(event, client=client, heartbeat=0.1, progress_interval=0) as tick:
            await tick(42, "busy")
            await asyncio.sleep(0.35)
    acks = [r.json for r in emu.requests if r.route == "jobs.ack"]
    assert acks[1] == {"progress": 42, "info": "busy"}
    assert acks[2:]
    assert all(a == {"progress": 42, "info": "busy"} for a in acks[2:])


# ------------------------------------------------------------------ replayed events


async def test_a_replayed_event_does_not_run_a_job_that_is_already_executing(
    emu: Emulator,
) -> None:
    job_id = await make_executing(emu)
    async with client_for(emu) as client:
        with pytest.raises(JobSkipped, match="it is executing, not ready"):
            event = FlatfileEvent.parse(Delivery(ready_event(emu, job_id), replayed=True))
            async with job_lifecycle(event, client=client):
                raise AssertionError("must not run")
    assert [r.route for r in emu.requests] == ["jobs.ack", "jobs.get"]  # no second ack


async def test_a_replayed_event_runs_a_job_that_is_still_ready(emu: Emulator) -> None:
    job = emu.trigger("workbook:export")
    async with client_for(emu) as client:
        event = FlatfileEvent.parse(Delivery(ready_event(emu, job.id), replayed=True))
        async with job_lifecycle(event, client=client):
            pass
    assert emu.job(job.id).status == "complete"


# ------------------------------------------------------------------ the sweep


def handled(name: str = "workbook:*", **options: Any) -> tuple[Listener, list[str]]:
    jobs = Jobs(heartbeat=0.1)
    ran: list[str] = []

    @jobs.handle(name, **options)
    async def work(event: FlatfileEvent, tick: Tick) -> str:
        ran.append(str(event.job_id))
        return "worked"

    return Listener().use(jobs), ran


async def test_the_sweep_runs_jobs_left_ready_that_no_event_brought(emu: Emulator) -> None:
    listener, ran = handled()
    jobs = [emu.trigger("workbook:export").id for _ in range(3)]
    other = emu.trigger("sheet:other").id  # no handler of ours takes it
    await asyncio.sleep(1.3)  # the server's clock (its Date header) counts whole seconds
    async with client_for(emu) as client:
        listener.client = client
        sweep = Reconciler(listener, interval=60, ready_grace=0.2)
        source = MemorySource()  # the event stream lost everything
        runner = Runner(listener, source, sweep=sweep)
        running = asyncio.create_task(runner.run())
        for job_id in jobs:
            await emu.wait_for(job_id, timeout=10)
        runner.stop()
        await running
    assert sorted(ran) == sorted(jobs)
    assert emu.job(other).status == "ready"
    assert sweep.last.ready == 3


async def test_jobs_triggered_while_no_listener_ran_are_handled_after_it_starts(
    emu: Emulator,
) -> None:
    listener, ran = handled()
    before = [emu.trigger("workbook:export").id for _ in range(5)]
    await asyncio.sleep(0.6)  # older than the poller's first window
    async with client_for(emu) as client:
        listener.client = client
        source = PollingSource(client, interval=0.02, max_interval=0.05, overlap=0.2)
        sweep = Reconciler(listener, interval=0.2, ready_grace=0.1)
        runner = Runner(listener, source, sweep=sweep)
        running = asyncio.create_task(runner.run())
        after = emu.trigger("workbook:export").id
        for job_id in [*before, after]:
            await emu.wait_for(job_id, timeout=10)
        runner.stop()
        await running
    assert sorted(ran) == sorted([*before, after])  # each once


async def test_an_orphaned_job_is_failed_with_a_retry_button(emu: Emulator) -> None:
    listener, ran = handled()
    job_id = await make_executing(emu)
    # Silent for more than three heartbeats (0.1 s), by a server clock of whole seconds.
    await asyncio.sleep(1.4)
    async with client_for(emu) as client:
        listener.client = client
        deliveries = await Reconciler(listener, ready_grace=0).sweep()
    job = emu.job(job_id)
    assert deliveries == []
    assert ran == []
    assert job.status == "failed"
    assert job.outcome is not None
    assert job.outcome.message == ORPHAN_MESSAGE
    assert isinstance(job.outcome.next, RetryNext)


async def test_an_orphan_whose_handler_opted_in_is_run_again(emu: Emulator) -> None:
    listener, ran = handled(on_orphan="rerun")
    job_id = await make_executing(emu)
    await asyncio.sleep(1.4)
    async with client_for(emu) as client:
        listener.client = client
        (delivery,) = await Reconciler(listener, ready_grace=0).sweep()
        assert (delivery.replayed, delivery.orphaned) == (True, True)
        await listener.dispatch(FlatfileEvent.parse(delivery))
    assert ran == [job_id]
    assert emu.job(job_id).status == "complete"


async def test_a_job_still_heartbeating_or_running_here_is_not_an_orphan(emu: Emulator) -> None:
    listener, _ = handled()
    running_here = emu.trigger("workbook:export")
    release = asyncio.Event()
    async with client_for(emu) as client:
        listener.client = client

        async def body() -> None:
            event = ready_event(emu, running_here.id)
            async with job_lifecycle(event, client=client, heartbeat=None):
                await release.wait()

        task = asyncio.create_task(body())
        await emu.wait_for(running_here.id, ["executing"])
        await asyncio.sleep(1.4)  # silent: no heartbeat; but it runs here
        fresh = await make_executing(emu)  # just acknowledged: a heartbeat ago
        deliveries = await Reconciler(listener, ready_grace=0).sweep()
        release.set()
        await task
    assert deliveries == []
    assert emu.job(fresh).status == "executing"
    assert emu.job(running_here.id).status == "complete"


async def test_a_split_job_waiting_for_its_parts_is_not_an_orphan(emu: Emulator) -> None:
    # A split parent sends no heartbeats: it waits for its parts. Silence alone must not
    # fail it while a part runs or waits its turn; once every part has ended and it is
    # still silent, it is an orphan like any other.
    listener, _ = handled()
    parent = await make_executing(emu)
    async with client_for(emu) as client:
        listener.client = client
        await client.jobs.split(parent, 2)
        first, second = sorted(
            (j for j in emu.jobs() if j.parent_id == parent), key=lambda j: j.part or 0
        )
        await client.jobs.ack(first.id, info="Accepted", progress=0)
        sweep = Reconciler(listener, ready_grace=60)
        await asyncio.sleep(1.4)  # the parent is silent
        await client.jobs.ack(first.id, info="still going", progress=50)  # a part speaks
        assert await sweep.sweep() == []
        assert emu.job(parent).status == "executing"
        await client.jobs.complete(first.id)  # the second part's turn: it waits, ready
        assert await sweep.sweep() == []
        assert emu.job(parent).status == "executing"
        await client.jobs.ack(second.id)
        await client.jobs.complete(second.id)
        await sweep.sweep()  # every part ended: the parent's silence now counts
    assert emu.job(parent).status == "failed"


async def test_a_split_job_with_more_parts_than_a_page_is_judged_on_all_of_them(
    emu: Emulator,
) -> None:
    listener, _ = handled()
    parent = await make_executing(emu)
    async with client_for(emu) as client:
        listener.client = client
        await client.jobs.split(parent, 5)
        parts = sorted((j for j in emu.jobs() if j.parent_id == parent), key=lambda j: j.part or 0)
        for part in parts[:4]:  # four end; the fifth still waits its turn
            await client.jobs.ack(part.id)
            await client.jobs.complete(part.id)
        await asyncio.sleep(1.4)
        assert await Reconciler(listener, ready_grace=60, page_size=2).sweep() == []
    assert emu.job(parent).status == "executing"


async def test_a_namespaced_registry_s_jobs_are_swept_through_their_own_events(
    emu: Emulator,
) -> None:
    # listener.namespace(...), Flatfile's way to scope a listener: a job rebuilt from
    # its record has no namespaces; the sweep finds the platform's own event for it.
    jobs = Jobs(heartbeat=0.1)
    ran: list[str] = []

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        ran.append(str(event.job_id))

    listener = Listener()
    listener.namespace("space:red", lambda red: red.use(jobs))
    red = {"namespaces": ["space:red"]}
    ready = emu.trigger("workbook:export", context=red).id
    orphan = emu.trigger("workbook:export", context=red).id
    blue = emu.trigger("workbook:export", context={"namespaces": ["space:blue"]}).id
    async with client_for(emu) as client:
        await client.jobs.ack(orphan, info="Accepted", progress=0)
        await asyncio.sleep(1.4)
        listener.client = client
        deliveries = await Reconciler(listener, ready_grace=0).sweep()
        for delivery in deliveries:
            await listener.dispatch(FlatfileEvent.parse(delivery))
    assert ran == [ready]
    assert emu.job(ready).status == "complete"
    assert emu.job(orphan).status == "failed"
    assert emu.job(blue).status == "ready"


async def test_a_catch_all_callback_does_not_make_other_jobs_ours(emu: Emulator) -> None:
    # An audit log on every event matches every job: the sweep must neither re-deliver
    # ready jobs to it nor fail executing jobs that some other service runs.
    listener = Listener()
    seen: list[str] = []

    @listener.on("**")
    async def audit(event: FlatfileEvent) -> None:
        seen.append(event.topic)

    ready = emu.trigger("workbook:export").id
    executing = await make_executing(emu, "workbook:other")
    await asyncio.sleep(1.4)
    async with client_for(emu) as client:
        listener.client = client
        assert await Reconciler(listener, ready_grace=0).sweep() == []
    assert emu.job(ready).status == "ready"
    assert emu.job(executing).status == "executing"


@pytest.mark.parametrize("named", [{"job": "workbook:export"}, "workbook:export"])
async def test_a_callback_filtered_by_job_name_is_swept_as_a_handler_is(
    emu: Emulator, named: dict[str, str] | str
) -> None:
    # Flatfile's own way to route a job: listener.on("job:ready", {"job": ...}), or the
    # job's name as a bare value.
    listener = Listener()

    @listener.on("job:ready", named)
    async def export(event: FlatfileEvent) -> None:
        async with job_lifecycle(event, heartbeat=0.1):
            pass

    ours = emu.trigger("workbook:export").id
    theirs = emu.trigger("workbook:other").id
    await asyncio.sleep(1.4)
    async with client_for(emu) as client:
        listener.client = client
        deliveries = await Reconciler(listener, ready_grace=0).sweep()
    assert [d.raw["context"]["jobId"] for d in deliveries] == [ours]
    assert emu.job(theirs).status == "ready"


async def test_a_sweep_scoped_to_a_space_reads_only_that_space(emu: Emulator) -> None:
    listener, _ = handled()
    job = emu.trigger("workbook:export")
    await asyncio.sleep(1.3)  # the server's clock counts whole seconds
    async with client_for(emu) as client:
        listener.client = client
        elsewhere = await Reconciler(listener, ready_grace=0, space_id="us_sp_other").sweep()
        here = await Reconciler(listener, ready_grace=0, space_id=job.space_id).sweep()
    assert elsewhere == []
    assert [d.raw["context"]["jobId"] for d in here] == [job.id]
    listed = [r.query for r in emu.requests if r.route == "jobs.list"]
    assert [q.get("spaceId") for q in listed] == ["us_sp_other", job.space_id]


async def test_a_synthetic_event_is_what_the_platform_emits_for_the_job(emu: Emulator) -> None:
    job = emu.trigger("sheet:dedupe", input={"key": "email"})
    real = ready_event(emu, job.id)
    made = job_event(emu.job(job.id))
    assert made["topic"] == real["topic"]
    assert made["payload"] == {k: real["payload"][k] for k in made["payload"]}
    assert {k: real["context"][k] for k in made["context"]} == made["context"]
