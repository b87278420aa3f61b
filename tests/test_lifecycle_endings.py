"""The job always ends: answers that lie, messages too big to send, bodies that will not stop.

Against the emulator, through a TCP-level fault proxy where the fault is on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from flatjobs import (
    MAX_MESSAGE_CHARS,
    STOPPED_MESSAGE,
    FlatfileClient,
    FlatfileError,
    FlatfileEvent,
    InvalidRequestError,
    JobOutcome,
    Jobs,
    JobTimeout,
    Listener,
    MemorySource,
    RetryPolicy,
    Runner,
    Tick,
    job_lifecycle,
)
from flatjobs.emulator import Emulator
from flatjobs.models import Job, RetryNext
from flatjobs.testing import client_for

from .faultproxy import FaultKind, FaultProxy


@pytest.fixture
async def proxy(emu: Emulator) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(emu.url) as p:
        yield p


@pytest.fixture
async def pclient(emu: Emulator, proxy: FaultProxy) -> AsyncIterator[FlatfileClient]:
    """A client that reaches the emulator through the fault proxy."""
    async with FlatfileClient(proxy.url, emu.token, environment_id=emu.environment_id) as c:
        yield c


def ready_event(emu: Emulator, job: str = "workbook:export") -> tuple[Job, dict[str, Any]]:
    created = emu.trigger(job)
    event = next(
        e for e in emu.events if e["topic"] == "job:ready" and e["context"]["jobId"] == created.id
    )
    return created, event


def fake_job(job_id: str, status: str) -> dict[str, Any]:
    return {"data": {"id": job_id, "type": "workbook", "operation": "export", "status": status}}


# ------------------------------------------------------------------ complete counts only when it landed


async def test_a_fake_200_to_complete_is_checked_and_the_job_still_ends(
    emu: Emulator, proxy: FaultProxy, pclient: FlatfileClient
) -> None:
    created, event = ready_event(emu)
    # The complete never reaches the emulator; a 200 comes back showing the job executing.
    proxy.add(
        "status",
        status=200,
        body=fake_job(created.id, "executing"),
        paths=f"/v1/jobs/{created.id}/complete",
        limit=1,
    )
    with capture_logs() as logs, pytest.raises(Exception, match="executing after complete"):
        async with job_lifecycle(event, client=pclient):
            pass
    job = emu.job(created.id)
    assert job.status == "failed"  # not left executing: it was read, then failed
    assert job.info is not None
    assert "could not be completed" in job.info
    assert any("did not end the job" in e["event"] for e in logs)


async def test_a_garbled_answer_to_complete_is_retried_and_the_job_completes(
    emu: Emulator, proxy: FaultProxy, pclient: FlatfileClient
) -> None:
    created, event = ready_event(emu)
    for kind in ("garbage", "html", "truncate"):
        proxy.add(kind, paths=f"/v1/jobs/{created.id}/complete", limit=1)
    async with job_lifecycle(event, client=pclient):
        pass
    assert emu.job(created.id).status == "complete"


@pytest.mark.parametrize(
    ("kind", "ends"),
    [
        ("reset_before", "failed"),  # the complete never landed: the job is failed instead
        ("stall", "failed"),
        ("reset_after", "complete"),  # it landed; the lost answer is found out by reading
        ("data_null", "complete"),
        ("html", "complete"),
        ("garbage", "complete"),
        ("truncate", "complete"),
    ],
)
async def test_every_kind_of_bad_answer_to_complete_still_ends_the_job(
    emu: Emulator, proxy: FaultProxy, pclient: FlatfileClient, kind: FaultKind, ends: str
) -> None:
    created, event = ready_event(emu)
    params: dict[str, Any] = {"seconds": None} if kind == "stall" else {}
    proxy.add(kind, paths=f"/v1/jobs/{created.id}/complete", **params)  # every attempt
    pclient.retry = RetryPolicy(attempts=3, request_timeout=0.2)
    with contextlib.suppress(FlatfileError):
        async with job_lifecycle(event, client=pclient):
            pass
    job = emu.job(created.id)
    assert job.status == ends
    if ends == "failed":  # not the handler's doing: the user can run it again
        assert job.outcome is not None
        assert isinstance(job.outcome.next, RetryNext)


@pytest.mark.parametrize(
    ("kind", "runs"),
    [
        ("reset_after", True),  # every ack landed, every answer was lost: the job says so
        ("stall", False),  # never answered: it did not land; the job is still ready
        ("reset_before", False),
        ("status", False),  # 503 after every retry
    ],
)
async def test_a_lost_answer_to_the_ack_is_found_out_by_reading_the_job(
    emu: Emulator, proxy: FaultProxy, pclient: FlatfileClient, kind: FaultKind, runs: bool
) -> None:
    created, event = ready_event(emu)
    params: dict[str, Any] = {"seconds": None} if kind == "stall" else {}
    if kind == "status":
        params["status"] = 503
    proxy.add(kind, paths=f"/v1/jobs/{created.id}/ack", limit=3, **params)  # each attempt
    pclient.retry = RetryPolicy(attempts=3, request_timeout=0.2)
    ran: list[bool] = []
    with contextlib.suppress(FlatfileError):
        async with job_lifecycle(event, client=pclient):
            ran.append(True)
    job = emu.job(created.id)
    if runs:  # it landed: the body ran and the job completed
        assert (ran, job.status) == ([True], "complete")
    else:  # it did not: the body never ran, and the user sees why, with a Retry button
        assert (ran, job.status) == ([], "failed")
        assert job.outcome is not None
        assert isinstance(job.outcome.next, RetryNext)
        assert "could not be started" in (job.outcome.message or "")


# ------------------------------------------------------------------ fail cannot fail for our reasons


async def test_an_exception_with_a_two_megabyte_message_still_fails_its_job(emu: Emulator) -> None:
    created, event = ready_event(emu)
    async with client_for(emu) as client:
        with pytest.raises(RuntimeError):
            async with job_lifecycle(event, client=client):
                raise RuntimeError("x" * 2_000_000)
    job = emu.job(created.id)
    assert job.status == "failed"
    assert job.info is not None
    assert len(job.info) == MAX_MESSAGE_CHARS
    assert job.info.endswith("…")
    assert job.outcome is not None
    assert job.outcome.message == job.info


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot print me")


async def test_an_exception_whose_str_raises_fails_its_job_with_its_type_name(
    emu: Emulator,
) -> None:
    created, event = ready_event(emu)
    async with client_for(emu) as client:
        with pytest.raises(Unprintable):
            async with job_lifecycle(event, client=client):
                raise Unprintable
    assert emu.job(created.id).info == "Unprintable"


async def test_a_fail_refused_as_too_large_is_sent_again_minimal(
    emu: Emulator, proxy: FaultProxy, pclient: FlatfileClient
) -> None:
    created, event = ready_event(emu)
    proxy.add("status", status=413, paths=f"/v1/jobs/{created.id}/fail", limit=1)
    with pytest.raises(RuntimeError):
        async with job_lifecycle(event, client=pclient):
            raise RuntimeError("a long story " * 50)
    job = emu.job(created.id)
    assert job.status == "failed"
    assert job.outcome is not None
    assert job.outcome.next is None
    assert job.info is not None
    assert len(job.info) <= 200


async def test_an_outcome_json_cannot_carry_still_ends_the_job(emu: Emulator) -> None:
    created, event = ready_event(emu)
    async with client_for(emu) as client:
        with pytest.raises(InvalidRequestError, match=r"body\.outcome\.score = nan"):
            async with job_lifecycle(event, client=client) as tick:
                tick.complete_with(JobOutcome(message="done", extra={"score": math.nan}))
    job = emu.job(created.id)
    assert job.status == "failed"
    assert job.info is not None
    assert "NaN" in job.info


async def test_the_client_refuses_nan_anywhere_in_a_body_naming_the_field(
    emu: Emulator,
) -> None:
    async with client_for(emu) as client:
        with pytest.raises(InvalidRequestError, match=r"body\.metadata\.a\[1\] = inf"):
            await client.request("POST", "/events", body={"metadata": {"a": [1, math.inf]}})
    assert emu.requests == []  # nothing was sent


# ------------------------------------------------------------------ bodies that swallow CancelledError


async def test_a_body_that_swallows_its_timeout_still_fails_with_job_timeout(
    emu: Emulator,
) -> None:
    created, event = ready_event(emu)
    async with client_for(emu) as client:
        with capture_logs() as logs, pytest.raises(JobTimeout):
            async with job_lifecycle(event, client=client, timeout=0.05):
                # Swallows the cancellation and returns normally, as if it had finished.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(10)
    assert emu.job(created.id).status == "failed"
    assert any("ignored" in e["event"] for e in logs)


async def test_a_body_that_never_stops_after_its_timeout_has_its_job_failed_anyway(
    emu: Emulator,
) -> None:
    created, event = ready_event(emu)
    stop = asyncio.Event()

    async def stubborn() -> None:
        async with client_for(emu) as client, job_lifecycle(event, client=client, timeout=0.05):
            while not stop.is_set():
                try:
                    await asyncio.sleep(0.01)
                except asyncio.CancelledError:
                    continue

    task = asyncio.create_task(stubborn())
    job = await emu.wait_for(created.id, timeout=5)  # the watchdog failed it
    assert job.status == "failed"
    assert job.info is not None
    assert "timed out" in job.info
    stop.set()
    with pytest.raises(JobTimeout):
        await task


async def test_a_body_that_ignores_its_timeout_sends_no_progress_once_its_job_failed(
    emu: Emulator,
) -> None:
    created, event = ready_event(emu)
    stop = asyncio.Event()

    async def stubborn() -> None:
        options: dict[str, Any] = {"timeout": 0.05, "progress_interval": 0.01}
        async with (
            client_for(emu) as client,
            job_lifecycle(event, client=client, **options) as tick,
        ):
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    tick(n % 100, "still going")
                    await asyncio.sleep(0.01)
                except asyncio.CancelledError:
                    continue

    task = asyncio.create_task(stubborn())
    await emu.wait_for(created.id, timeout=5)  # the watchdog failed it
    acks = sum(r.route == "jobs.ack" for r in emu.requests)
    await asyncio.sleep(0.5)  # the body goes on ticking
    stop.set()
    with pytest.raises(JobTimeout):
        await task
    assert sum(r.route == "jobs.ack" for r in emu.requests) == acks
    assert not [r for r in emu.requests if (r.status or 0) >= 400]


async def test_shutdown_abandons_a_body_that_ignores_cancellation_and_fails_its_job(
    emu: Emulator,
) -> None:
    jobs = Jobs()
    started = asyncio.Event()
    stop = asyncio.Event()

    @jobs.handle("workbook:stubborn")
    async def stubborn(event: FlatfileEvent, tick: Tick) -> None:
        started.set()
        while not stop.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                continue

    created, event = ready_event(emu, "workbook:stubborn")
    async with client_for(emu) as client:
        runner = Runner(
            Listener(client=client).use(jobs),
            MemorySource([event]),
            grace_period=0.05,
            cancel_grace=0.1,
        )
        running = asyncio.create_task(runner.run())
        await started.wait()
        runner.stop()
        stats = await asyncio.wait_for(running, 5)  # it returns: nothing blocks the stop
        job = emu.job(created.id)
        stop.set()
        await asyncio.sleep(0.05)
    assert stats.abandoned == 1
    assert job.status == "failed"
    assert job.outcome is not None
    assert job.outcome.message == STOPPED_MESSAGE
    assert isinstance(job.outcome.next, RetryNext)
