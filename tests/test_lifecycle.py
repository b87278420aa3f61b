"""job_lifecycle: SPEC §5 call for call, and the "do better" rules of SPEC §6."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from flatjobs import (
    STOPPED_MESSAGE,
    FlatfileAPIError,
    FlatfileClient,
    FlatfileEvent,
    InvalidEventError,
    JobCancelled,
    JobCompleteDetails,
    JobError,
    JobOutcome,
    Jobs,
    JobTimeout,
    Listener,
    Next,
    RetryPolicy,
    Tick,
    job_lifecycle,
)
from flatjobs.emulator import Emulator
from flatjobs.testing import client_for, make_event

from .conftest import JOB_BODY, TOKEN, Recorded, RecordingServer

JOB = "us_jb_1"
ACK = ("POST", f"/v1/jobs/{JOB}/ack")
COMPLETE = ("POST", f"/v1/jobs/{JOB}/complete")
FAIL = ("POST", f"/v1/jobs/{JOB}/fail")
GET = ("GET", f"/v1/jobs/{JOB}")
RETRY = {"type": "retry", "label": "Retry"}
READ = (*GET, "")
"""The read of the job before its ack: its body runs only if the job is ready."""


def raw_bodies(recorder: RecordingServer) -> list[tuple[str, str, str]]:
    """(method, path, exact body text) of every request: byte-for-byte comparison."""
    return [(r.method, r.path, r.raw.decode()) for r in recorder.requests]


def body(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def job_answer(status: str) -> tuple[int, dict[str, Any]]:
    return (200, {"data": {**JOB_BODY["data"], "status": status}})


@pytest.fixture
async def listener(rclient: FlatfileClient) -> Listener:
    return Listener(client=rclient)


def ready(job: str = "workbook:export") -> dict[str, Any]:
    return make_event(job=job, job_id=JOB)


# ------------------------------------------------------------------ SPEC §5, row by row


async def test_spec_row_handler_returns_nothing(
    recorder: RecordingServer, listener: Listener
) -> None:
    jobs = Jobs(progress_interval=0)

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        return None

    await listener.use(jobs).dispatch(ready())
    assert raw_bodies(recorder) == [
        READ,
        (*ACK, '{"info":"Accepted","progress":0}'),
        (*COMPLETE, '{"outcome":{"message":"Job complete"}}'),
    ]


@pytest.mark.parametrize("awaited", [True, False])
async def test_spec_row_two_ticks_then_a_custom_outcome(
    recorder: RecordingServer, listener: Listener, awaited: bool
) -> None:
    jobs = Jobs(progress_interval=0)

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> JobCompleteDetails:
        first, second = tick(10, "a"), tick(50, "b")
        if awaited:
            await first
            await second
        return JobCompleteDetails(outcome=JobOutcome(message="custom"))

    await listener.use(jobs).dispatch(ready())
    assert raw_bodies(recorder) == [
        READ,
        (*ACK, '{"info":"Accepted","progress":0}'),
        (*ACK, '{"progress":10,"info":"a"}'),
        (*ACK, '{"progress":50,"info":"b"}'),
        (*COMPLETE, '{"outcome":{"message":"custom"}}'),
    ]


async def test_spec_row_tick_without_info_omits_it(
    recorder: RecordingServer, listener: Listener
) -> None:
    jobs = Jobs(progress_interval=0)

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        await tick(30)

    await listener.use(jobs).dispatch(ready())
    assert raw_bodies(recorder)[2] == (*ACK, '{"progress":30}')


async def test_spec_row_handler_raises(recorder: RecordingServer, listener: Listener) -> None:
    jobs = Jobs(progress_interval=0)

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        raise JobError("boom")

    @jobs.handle("workbook:import")
    async def import_(event: FlatfileEvent, tick: Tick) -> None:
        raise RuntimeError("boom")

    await listener.use(jobs).dispatch(ready())
    assert raw_bodies(recorder) == [
        READ,
        (*ACK, '{"info":"Accepted","progress":0}'),
        (*FAIL, '{"info":"boom","outcome":{"acknowledge":true,"message":"boom"}}'),
    ]
    # An exception nobody wrote for the user names its type.
    recorder.requests.clear()
    recorder.statuses.clear()  # the job is ready again, for a handler of another name
    await listener.dispatch(ready(job="workbook:import"))
    assert raw_bodies(recorder)[2] == (
        *FAIL,
        '{"info":"RuntimeError: boom","outcome":{"acknowledge":true,"message":"RuntimeError: boom"}}',
    )


async def test_spec_row_complete_answers_400_then_fail_with_the_error_text(
    recorder: RecordingServer, listener: Listener
) -> None:
    jobs = Jobs(progress_interval=0)
    recorder.responder = lambda r: (
        (400, {"errors": [{"message": "bad outcome"}]})
        if r.path.endswith("/complete")
        else recorder.job_reply(r)
    )

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        return None

    await listener.use(jobs).dispatch(ready())
    message = (
        f"The job could not be completed: POST /v1/jobs/{JOB}/complete answered 400: bad outcome"
    )
    assert raw_bodies(recorder) == [
        READ,
        (*ACK, '{"info":"Accepted","progress":0}'),
        (*COMPLETE, '{"outcome":{"message":"Job complete"}}'),
        (
            *FAIL,
            body(
                {
                    "info": message,
                    "outcome": {"acknowledge": True, "message": message, "next": RETRY},
                }
            ),
        ),
    ]


async def test_spec_row_first_ack_fails_body_never_runs_and_the_job_is_still_failed(
    recorder: RecordingServer, listener: Listener
) -> None:
    jobs = Jobs(progress_interval=0)
    ran: list[str] = []
    # The read (ready), then the ack and its two retries fail.
    recorder.script += [job_answer("ready"), (500, {}), (500, {}), (500, {})]

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        ran.append("body")

    await listener.use(jobs).dispatch(ready())
    assert ran == []
    calls = [(r.method, r.path) for r in recorder.requests]
    # The job is read: still ready, so the ack did not land; it is acknowledged with the
    # reason and failed (the JS handler stops after the acks, leaving it executing).
    assert calls == [GET, ACK, ACK, ACK, GET, ACK, FAIL]
    assert "The job could not be started" in recorder.requests[-1].json["info"]
    assert recorder.requests[-1].json["outcome"]["next"] == {"type": "retry", "label": "Retry"}


async def test_spec_row_an_event_for_another_job_sends_nothing(
    recorder: RecordingServer, listener: Listener
) -> None:
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        raise AssertionError("must not run")

    listener.use(jobs)
    await listener.dispatch(ready("sheet:export"))
    await listener.dispatch(make_event("job:created", job="workbook:export", job_id=JOB))
    assert recorder.requests == []


# ------------------------------------------------------------------ outcomes and messages


async def test_job_error_gives_the_user_a_heading_and_a_retry_button(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    with pytest.raises(JobError):
        async with job_lifecycle(ready(), client=rclient):
            raise JobError(
                "No email column",
                heading="Export failed",
                next=Next.retry("Try again"),
                info="missing column: email",
            )
    assert recorder.requests[-1].json == {
        "info": "missing column: email",
        "outcome": {
            "acknowledge": True,
            "heading": "Export failed",
            "message": "No email column",
            "next": {"type": "retry", "label": "Try again"},
        },
    }


@pytest.mark.parametrize(
    ("error", "message"),
    [(RuntimeError(), "RuntimeError"), (ValueError("  "), "ValueError"), (JobError(""), "JobError"),
     (KeyError("k"), "KeyError: 'k'")],
)  # fmt: skip
async def test_an_empty_message_becomes_the_exception_type_never_undefined(
    recorder: RecordingServer, rclient: FlatfileClient, error: Exception, message: str
) -> None:
    with pytest.raises(type(error)):
        async with job_lifecycle(ready(), client=rclient):
            raise error
    assert recorder.requests[-1].json == {
        "info": message,
        "outcome": {"acknowledge": True, "message": message},
    }


@pytest.mark.parametrize(
    ("value", "sent"),
    [("Exported", {"outcome": {"message": "Exported"}}),
     (JobOutcome(message="o", next=Next.download("https://x/f.csv")),
      {"outcome": {"message": "o", "next": {"type": "download", "url": "https://x/f.csv"}}}),
     (JobCompleteDetails(info="i"), {"info": "i"})],
)  # fmt: skip
async def test_complete_with_accepts_a_message_an_outcome_or_details(
    recorder: RecordingServer, rclient: FlatfileClient, value: Any, sent: dict[str, Any]
) -> None:
    async with job_lifecycle(ready(), client=rclient) as tick:
        tick.complete_with(value)
    assert recorder.requests[-1].json == sent


async def test_a_handler_returning_the_wrong_type_fails_the_job_naming_it(
    recorder: RecordingServer, listener: Listener
) -> None:
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> Any:
        return 42

    await listener.use(jobs).dispatch(ready())
    assert recorder.requests[-1].path.endswith("/fail")
    assert "got int 42" in recorder.requests[-1].json["info"]


# ------------------------------------------------------------------ never stuck in executing


async def test_complete_and_fail_both_failing_is_logged_as_an_error_with_the_job_id(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.responder = lambda r: (
        recorder.job_reply(r) if r.method == "GET" or r.path.endswith("/ack") else (503, {})
    )
    with capture_logs() as logs, pytest.raises(FlatfileAPIError):
        async with job_lifecycle(ready(), client=rclient):
            pass
    stuck = [e for e in logs if "nor failed" in e["event"]]
    assert stuck
    assert stuck[0]["job_id"] == JOB
    assert stuck[0]["log_level"] == "error"


async def test_a_retried_complete_that_had_landed_is_not_failed(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    # The first complete lands but its answer is lost; the retry is refused as the job is
    # already complete: the lifecycle reads the status and does not send fail.
    recorder.script += [
        job_answer("ready"),
        (200, JOB_BODY),
        (503, {}),
        (400, {"errors": [{"message": "job is complete"}]}),
        job_answer("complete"),
    ]
    async with job_lifecycle(ready(), client=rclient):
        pass
    calls = [(r.method, r.path) for r in recorder.requests]
    assert calls == [GET, ACK, COMPLETE, COMPLETE, GET]


async def test_timeout_cancels_the_body_and_fails_the_job(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    cancelled: list[bool] = []
    with pytest.raises(JobTimeout, match=f"job {JOB} timed out after 0.05 seconds"):
        async with job_lifecycle(ready(), client=rclient, timeout=0.05):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise
    assert cancelled == [True]
    assert recorder.requests[-1].path.endswith("/fail")
    assert (
        recorder.requests[-1].json["info"]
        == "The job timed out after 0.05 seconds and was stopped."
    )


async def test_shutdown_cancellation_fails_the_job_with_a_retry_and_propagates(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    started = asyncio.Event()

    async def handler() -> None:
        async with job_lifecycle(ready(), client=rclient):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(handler())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.requests[-1].json == {
        "info": STOPPED_MESSAGE,
        "outcome": {
            "acknowledge": True,
            "message": STOPPED_MESSAGE,
            "next": {"type": "retry", "label": "Retry"},
        },
    }


async def test_a_second_cancellation_does_not_abandon_the_fail_call(
    recorder: RecordingServer,
) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def slow_fail(r: Recorded) -> None:
        return None

    recorder.responder = lambda r: recorder.job_reply(r)
    async with FlatfileClient(recorder.url, TOKEN) as client:

        async def handler() -> None:
            async with job_lifecycle(ready(), client=client):
                started.set()
                await gate.wait()

        task = asyncio.create_task(handler())
        await started.wait()
        task.cancel()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(50):
            if recorder.requests[-1].path.endswith("/fail"):
                break
            await asyncio.sleep(0.01)
    assert recorder.requests[-1].path.endswith("/fail")


# ------------------------------------------------------------------ cancellation by the platform


async def test_platform_cancel_seen_in_a_progress_answer_cancels_the_body(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    # Answers: the "Accepted" ack, the first tick, then the platform says canceled.
    recorder.script += [job_answer("ready"), job_answer("executing"), job_answer("executing")]
    recorder.script.append(job_answer("canceled"))
    reached: list[str] = []
    with pytest.raises(JobCancelled, match=f"job {JOB} was canceled"):
        async with job_lifecycle(ready(), client=rclient, progress_interval=0) as tick:
            await tick(10)
            reached.append("after first tick")
            await tick(20)
            reached.append("after second tick")
            await asyncio.sleep(10)
    assert reached == ["after first tick"]
    assert tick.cancelled
    assert [r.path for r in recorder.requests] == [GET[1]] + [ACK[1]] * 3  # no complete, no fail


async def test_platform_cancel_seen_as_a_refusal_cancels_the_body_against_the_emulator() -> None:
    async with Emulator() as emu, client_for(emu, retry=RetryPolicy(attempts=1)) as client:
        job = emu.trigger("workbook:export")
        event = next(e for e in emu.events if e["topic"] == "job:ready")
        with pytest.raises(JobCancelled):
            async with job_lifecycle(event, client=client, progress_interval=0) as tick:
                emu.cancel(job.id)
                await tick(20)
                await asyncio.sleep(10)
        assert emu.job(job.id).status == "canceled"
        assert not any(r.route in ("jobs.complete", "jobs.fail") for r in emu.requests)


async def test_a_job_canceled_before_it_starts_never_runs(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script.append(job_answer("canceled"))
    with pytest.raises(JobCancelled):
        async with job_lifecycle(ready(), client=rclient):
            raise AssertionError("must not run")
    assert len(recorder.requests) == 1


# ------------------------------------------------------------------ progress


async def test_ten_thousand_ticks_without_await_cost_one_progress_call(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    async with job_lifecycle(ready(), client=rclient, progress_interval=0.2) as tick:
        for i in range(10_000):
            tick(i / 100, f"row {i}")
    progress = [r.json for r in recorder.requests if r.path.endswith("/ack")][1:]
    # The latest wins, sent as a whole number rounded down (99.99 never shows 100).
    assert progress == [{"progress": 99, "info": "row 9999"}]
    assert tick.sent == 1


async def test_coalesced_progress_calls_are_bounded_by_elapsed_time_over_interval(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    interval = 0.02
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with job_lifecycle(ready(), client=rclient, progress_interval=interval) as tick:
        for i in range(10_000):
            tick(i / 100)
            if i % 50 == 0:
                await asyncio.sleep(0.001)
    elapsed = loop.time() - start
    progress_calls = sum(r.path.endswith("/ack") for r in recorder.requests) - 1
    assert 2 <= progress_calls <= elapsed / interval + 2


async def test_awaiting_a_coalesced_tick_resolves_at_once_and_the_latest_value_is_sent(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    async with job_lifecycle(ready(), client=rclient, progress_interval=0.05) as tick:
        # Right after the ack, within the interval: both are coalesced, both resolve now.
        first = tick(10)
        second = tick(20)
        assert await first is None
        assert await second is None
        assert [r.path for r in recorder.requests] == [GET[1], ACK[1]]
    assert [r.json for r in recorder.requests][2:] == [
        {"progress": 20},
        {"outcome": {"message": "Job complete"}},
    ]


async def test_unawaited_ticks_raise_no_never_awaited_warning(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    async with job_lifecycle(ready(), client=rclient, progress_interval=0) as tick:
        tick(1)
        tick(2)
    gc.collect()  # filterwarnings=error turns a "never awaited" RuntimeWarning into a failure
    assert sum(r.path.endswith("/ack") for r in recorder.requests) == 3


async def test_eta_is_sent_as_estimated_completion_at(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    when = dt.datetime(2026, 11, 22, 13, 0, tzinfo=dt.UTC)
    async with job_lifecycle(ready(), client=rclient, progress_interval=0) as tick:
        await tick(10, eta=when)
        await tick(20, "x", eta=dt.timedelta(minutes=5))
    first, second = (r.json for r in recorder.requests[2:4])
    assert first == {"progress": 10, "estimatedCompletionAt": "2026-11-22T13:00:00.000Z"}
    sent = dt.datetime.fromisoformat(second["estimatedCompletionAt"])
    assert dt.timedelta(minutes=4) < sent - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=5)


@pytest.mark.parametrize("bad", [-1, 100.5, float("nan"), "50", True, None])
async def test_progress_outside_0_100_or_not_a_number_raises_at_the_call(
    recorder: RecordingServer, rclient: FlatfileClient, bad: Any
) -> None:
    async with job_lifecycle(ready(), client=rclient) as tick:
        with pytest.raises(ValueError, match="progress must be"):
            tick(bad)


async def test_tick_info_and_eta_of_the_wrong_type_raise_type_error(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    async with job_lifecycle(ready(), client=rclient) as tick:
        with pytest.raises(TypeError, match="info must be a string, got int 5"):
            tick(10, 5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="eta must be a datetime or a timedelta"):
            tick(10, eta="soon")  # type: ignore[arg-type]


async def test_tick_after_the_job_ended_is_an_error(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    async with job_lifecycle(ready(), client=rclient) as tick:
        pass
    with pytest.raises(RuntimeError, match=f"tick\\(\\) called after job {JOB} ended"):
        tick(50)


def test_bad_eta_and_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        job_lifecycle(ready(), timeout=0)
    with pytest.raises(ValueError, match="progress_interval must be >= 0"):
        job_lifecycle(ready(), progress_interval=-1)
    with pytest.raises(InvalidEventError, match=r"has no context\.jobId"):
        job_lifecycle(make_event("job:ready"))


# ------------------------------------------------------------------ logging


async def test_debug_logs_receipt_and_completion_with_job_event_and_topic(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    event = ready()
    with capture_logs() as logs:
        async with job_lifecycle(event, client=rclient, debug=True):
            pass
    lines = [e for e in logs if e["event"] in ("job received", "job completed")]
    assert [e["event"] for e in lines] == ["job received", "job completed"]
    for line in lines:
        assert (line["job_id"], line["event_id"], line["topic"]) == (JOB, event["id"], "job:ready")


async def test_a_completed_job_logs_one_info_line_with_its_name_and_duration(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    with capture_logs() as logs:
        async with job_lifecycle(ready(), client=rclient):
            pass
    (line,) = [e for e in logs if e["log_level"] == "info"]
    assert line["event"] == "job completed"
    assert (line["job_id"], line["job"]) == (JOB, "workbook:export")
    assert isinstance(line["seconds"], float)
