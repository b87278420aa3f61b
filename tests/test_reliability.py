"""Reliability: jobs under injected faults, hostile input through every layer, secrets.

Sized for two cores: the whole module runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any

import pytest
from structlog.testing import capture_logs

import flatjobs
from flatjobs import (
    FlatfileAPIError,
    FlatfileClient,
    FlatfileEvent,
    InvalidEventError,
    JobError,
    Jobs,
    Listener,
    MemorySource,
    PollingSource,
    RetryPolicy,
    Runner,
    Tick,
    job_lifecycle,
)
from flatjobs.emulator import Emulator, Fault
from flatjobs.models import Event, from_wire
from flatjobs.testing import client_for, make_event

from .conftest import TOKEN, RecordingServer

pytestmark = pytest.mark.slow

JOBS = 1000
LIFECYCLE_ROUTES = ("jobs.ack", "jobs.complete", "jobs.fail", "events.list")


def faults(emu: Emulator) -> None:
    """About 20 % of lifecycle and feed requests fail, in every way the issue names."""
    for rule in (
        Fault(routes=LIFECYCLE_ROUTES, rate=0.05, status=500),
        Fault(routes=LIFECYCLE_ROUTES, rate=0.05, status=503),
        Fault(routes=LIFECYCLE_ROUTES, rate=0.04, status=429, retry_after=0.01),
        Fault(routes=LIFECYCLE_ROUTES, rate=0.03, drop=True),
        Fault(routes=LIFECYCLE_ROUTES, rate=0.03, drop_after=True),
        Fault(routes=LIFECYCLE_ROUTES, rate=0.2, latency=0.002),
    ):
        emu.faults.add(rule)


async def test_a_thousand_jobs_under_faults_each_run_once_and_end_once() -> None:
    flatjobs.set_testing(False)  # real backoff, kept short: Retry-After is honoured
    policy = RetryPolicy(attempts=8, initial_delay=0.005, max_delay=0.05, deadline=30)
    runs: collections.Counter[str] = collections.Counter()
    jobs = Jobs(progress_interval=0.01)

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> str:
        assert event.job_id is not None
        runs[event.job_id] += 1
        tick(30, "working")
        await asyncio.sleep(0.002)
        tick(90, "almost")
        if (event.payload.get("input") or {}).get("fail"):
            raise JobError("asked to fail", next=flatjobs.Next.retry())
        return "done"

    async with Emulator(fault_seed=2026) as emu, client_for(emu, retry=policy) as client:
        faults(emu)
        listener = Listener(client=client).use(jobs)
        source = PollingSource(client, interval=0.01, max_interval=0.05, page_size=200)
        runner = Runner(listener, source, concurrency=50)
        running = asyncio.create_task(runner.run())
        ids = []
        for n in range(JOBS):
            ids.append(emu.trigger("workbook:export", input={"fail": n % 10 == 0}).id)
            if n % 50 == 49:
                await asyncio.sleep(0.01)
        for job_id in ids:
            await emu.wait_for(job_id, timeout=120)
        runner.stop()
        await running
        statuses = collections.Counter(str(emu.job(i).status) for i in ids)
        endings = collections.Counter(
            e["context"]["jobId"]
            for e in emu.events
            if e["topic"] in ("job:completed", "job:failed")
        )
        injected = sum(emu.faults.injected.values())
        asked_to_fail = {ids[n] for n in range(0, JOBS, 10)}
        wrongly_complete = [i for i in asked_to_fail if emu.job(i).status == "complete"]

    assert set(statuses) <= {"complete", "failed"}, statuses
    assert [i for i in ids if runs[i] != 1] == []  # every body ran exactly once
    assert [i for i in ids if endings[i] != 1] == []  # one terminal call accepted per job
    assert wrongly_complete == []
    assert statuses["complete"] >= 0.85 * JOBS
    assert injected > 500  # the faults really happened


# ------------------------------------------------------------------ hostile input

DEEP: Any = {}
_node = DEEP
for _ in range(100_000):
    _node["x"] = {}
    _node = _node["x"]

HOSTILE: list[Any] = [
    "", "{", "null", "[]", "nan", "{\"topic\": ", b"\x00\x01\x02", b"\xff", "\ud800", "[" * 100_000,
    42, 3.14, True, None, [], [{}], {},
    {"topic": 5, "context": {}}, {"topic": None, "context": {}}, {"topic": ["job:ready"], "context": {}},
    {"topic": "x:y", "context": []}, {"topic": "x:y", "context": "ctx"}, {"topic": "x:y"},
    {"id": "e1"}, {"context": {}}, {"topic": "", "context": {}},
    {"topic": "job:ready", "context": {}}, {"topic": "job:ready", "context": {"jobId": None}},
    {"topic": "job:ready", "context": {"jobId": 5}}, {"topic": "job:ready", "context": {"jobId": ""}},
    {"id": 5, "topic": "hologram:beamed", "context": {}},
    {"id": "u1", "topic": "🚀:launch", "context": {"spaceId": "\u210c\U0001d522\U0001d529\U0001d529\U0001d52c"}},
    {"id": "u2", "topic": "job:\u202eydaer", "context": {}},
    {"id": "u3", "topic": "nul\x00byte", "context": {"jobId": "\x00"}},
    {"id": "u4", "topic": "e\u0301\u0301\u0301:x", "context": {}},
    {"id": "u5", "topic": "a" * 10_000, "context": {}},
    {"id": "big", "topic": "records:created", "context": {}, "payload": {"blob": "x" * 10_000_000}},
    {"id": "deep", "topic": "records:created", "context": {}, "payload": DEEP},
    {"id": "d500", "topic": "records:created", "context": {}, "payload": json.loads("[" * 500 + "]" * 500)},
    {"id": "p1", "topic": "job:ready", "context": {"jobId": "us_jb_x"}, "payload": "not an object"},
    {"id": "n1", "topic": "x:y", "context": {}, "namespaces": 5, "createdAt": "yesterday"},
    {"id": "n2", "topic": "x:y", "context": {"jobId": {"nested": True}}, "payload": [1, 2]},
    {"id": "n3", "topic": "x:y", "context": {}, "payload": {"job": 1e308, "isPart": "maybe"}},
    {"id": "n4", "topic": "x:y", "context": {"environmentId": ["a"]}, "domain": {"x": 1}},
]  # fmt: skip


def test_the_hostile_corpus_is_big_enough() -> None:
    assert len(HOSTILE) >= 40


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_models_read_hostile_input_or_name_the_problem(raw: Any) -> None:
    try:
        from_wire(raw, Event)
        problem = "parsed"
    except ValueError as exc:  # a message naming the problem, never another exception type
        problem = str(exc)
    assert problem


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
async def test_dispatch_handles_hostile_input_or_names_the_problem(raw: Any) -> None:
    listener = Listener()
    seen: list[str] = []

    @listener.on("**", {"payload.job": "**"})
    async def anything(event: FlatfileEvent) -> None:
        seen.append(event.topic)

    @listener.on("**")
    async def everything(event: FlatfileEvent) -> None:
        _ = (event.context, event.created_at, event.payload, event.namespaces, event.job_id)

    try:
        result = await listener.dispatch(raw)
        problem = "" if result.ok else repr(result.failed)
    except InvalidEventError as exc:
        problem = str(exc)
        assert problem
    else:
        assert problem == ""


async def test_hostile_input_through_the_runner_is_skipped_and_good_events_still_run() -> None:
    listener = Listener()
    good: list[str | None] = []

    @listener.on("good:event")
    async def record(event: FlatfileEvent) -> None:
        good.append(event.id)

    stream: list[Any] = []
    expected = []
    for n, raw in enumerate(HOSTILE):
        stream.append(raw)
        marker = make_event("good:event", id=f"us_evt_good{n}")
        stream.append(marker)
        expected.append(marker["id"])
    source = MemorySource(stream)
    source.close()
    with capture_logs() as logs:
        stats = await Runner(listener, source).run()
    assert good == expected
    skipped = [e for e in logs if e["event"] == "malformed event skipped"]
    assert skipped
    assert all(e["problem"] for e in skipped)
    assert stats.invalid == len(skipped)


async def test_hostile_pages_through_the_polling_source(recorder: RecordingServer) -> None:
    good = make_event("good:event", id="us_evt_after")
    page = [*(raw for raw in HOSTILE[:30] if not isinstance(raw, bytes)), good]
    recorder.responder = lambda r: (200, {"data": page, "pagination": {"pageCount": 1}})
    listener = Listener()
    seen: list[str | None] = []
    arrived = asyncio.Event()

    @listener.on("good:event")
    async def record(event: FlatfileEvent) -> None:
        seen.append(event.id)
        arrived.set()

    async with FlatfileClient(recorder.url, TOKEN, environment_id="us_env_1") as client:
        source = PollingSource(client, interval=0.01, max_interval=0.02)
        runner = Runner(listener, source)
        running = asyncio.create_task(runner.run())
        await asyncio.wait_for(arrived.wait(), 10)
        runner.stop()
        await running
    assert seen == ["us_evt_after"]
    assert runner.stats.invalid > 10


@pytest.mark.parametrize(
    "progress", [1e308, float("inf"), -1e-9, 10**400], ids=["1e308", "inf", "negative", "10**400"]
)
async def test_a_huge_progress_value_is_refused_at_the_call(
    recorder: RecordingServer, rclient: FlatfileClient, progress: Any
) -> None:
    async with job_lifecycle(make_event(job="a:b", job_id="us_jb_1"), client=rclient) as tick:
        with pytest.raises(ValueError, match="progress must be"):
            tick(progress)


@pytest.mark.parametrize("returned", [object(), 42, ["x"], {"outcome": "x"}, b"bytes"])
async def test_a_handler_returning_the_wrong_type_fails_its_job_naming_the_type(
    returned: Any,
) -> None:
    jobs = Jobs()

    @jobs.handle("workbook:odd")
    async def odd(event: FlatfileEvent, tick: Tick) -> Any:
        return returned

    async with Emulator() as emu:
        job = await flatjobs.testing.run_job(Listener().use(jobs), emu, "workbook:odd")
    assert job.status == "failed"
    assert type(returned).__name__ in (job.info or "")


# ------------------------------------------------------------------ secrets


async def test_the_token_is_in_no_log_error_or_repr(recorder: RecordingServer) -> None:
    recorder.responder = lambda r: (
        (400, {"errors": [{"message": f"bad token Bearer {TOKEN} for {TOKEN}"}]})
        if r.path.endswith("/complete")
        else recorder.job_reply(r)
    )
    raised: list[BaseException] = []
    objects: list[Any] = []
    with capture_logs() as logs:
        client = FlatfileClient(recorder.url, TOKEN, environment_id="us_env_1")
        listener = Listener(client=client)
        objects += [client, listener, client.retry]
        try:
            async with job_lifecycle(
                make_event(job="a:b", job_id="us_jb_1"), client=client
            ) as tick:
                objects.append(tick)
        except FlatfileAPIError as exc:
            raised.append(exc)
        async with FlatfileClient(
            "http://127.0.0.1:1", TOKEN, retry=RetryPolicy(attempts=1)
        ) as dead:
            try:
                await dead.jobs.get("x")
            except flatjobs.FlatfileConnectionError as exc:
                raised.append(exc)
            objects.append(dead)
        await client.close()
    assert len(raised) == 2
    texts = [repr(logs), *map(str, raised), *map(repr, raised), *map(repr, objects)]
    assert [t for t in texts if TOKEN in t] == []
    assert any("[redacted]" in t for t in texts)
