"""The Jobs registry against the emulator: registration, selection, isolation, parts."""

from __future__ import annotations

import asyncio
import inspect
import math
from typing import Any

import pytest
from structlog.testing import capture_logs

from flatjobs import FlatfileEvent, JobError, Jobs, Listener, Next, Tick
from flatjobs._callables import callable_name
from flatjobs.emulator import Emulator
from flatjobs.models import JobPartsCounts
from flatjobs.testing import client_for, make_event, run_job


def ready_event(emu: Emulator, job_id: str) -> dict[str, Any]:
    return next(
        e for e in emu.events if e["topic"] == "job:ready" and e["context"]["jobId"] == job_id
    )


async def test_handle_returns_the_function_unchanged_for_unit_tests() -> None:
    jobs = Jobs()

    async def export(event: FlatfileEvent, tick: Tick) -> str:
        return "done"

    assert jobs.handle("workbook:export")(export) is export


def test_registration_rejects_a_plain_function_naming_it() -> None:
    def export(event: FlatfileEvent, tick: Tick) -> None:
        pass

    with pytest.raises(
        TypeError, match=r"must be an `async def` function.*async def export\(event, tick\)"
    ):
        Jobs().handle("workbook:export")(export)  # type: ignore[type-var]


def test_registration_rejects_the_wrong_number_of_parameters() -> None:
    async def export(event: FlatfileEvent) -> None:
        pass

    with pytest.raises(
        TypeError, match=r"must take 2 parameters \(event, tick\), got export\(event"
    ):
        Jobs().handle("workbook:export")(export)  # type: ignore[type-var]


@pytest.mark.parametrize("bad", [5, None, ["a:b"]])
def test_registration_rejects_a_job_that_is_not_a_string_or_mapping(bad: Any) -> None:
    with pytest.raises(TypeError, match="'domain:operation' string or an EventFilter mapping"):

        @Jobs().handle(bad)
        async def export(event: FlatfileEvent, tick: Tick) -> None:
            pass


def test_job_names_are_the_jobs_registered_once_each_in_order() -> None:
    jobs = Jobs()

    async def handler(event: FlatfileEvent, tick: Tick) -> None:
        pass

    async def parts(event: FlatfileEvent, tick: Tick, counts: JobPartsCounts) -> None:
        pass

    jobs.handle("workbook:export")(handler)
    jobs.handle_part("workbook:export")(handler)
    jobs.on_parts_completed("workbook:export")(parts)
    jobs.handle("sheet:*")(handler)
    jobs.handle({"job": "file:extract", "context.sheetSlug": "contacts"})(handler)
    jobs.handle({"payload.operation": "dedupe"})(handler)  # names no job
    assert jobs.job_names() == ["workbook:export", "sheet:*", "file:extract"]


def test_bad_defaults_are_rejected() -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        Jobs(timeout=-1)
    with pytest.raises(ValueError, match="progress_interval must be >= 0"):
        Jobs(progress_interval=-0.1)


async def test_a_glob_string_and_a_filter_mapping_both_select_jobs(emu: Emulator) -> None:
    jobs = Jobs()
    ran: list[str] = []

    @jobs.handle("sheet:*")
    async def any_sheet(event: FlatfileEvent, tick: Tick) -> None:
        ran.append(f"sheet {event.payload['job']}")

    @jobs.handle({"job": "workbook:*", "context.workbookId": "us_wb_special"})
    async def special(event: FlatfileEvent, tick: Tick) -> None:
        ran.append("special")

    listener = Listener().use(jobs)
    assert (await run_job(listener, emu, "sheet:dedupe")).status == "complete"
    assert (
        await run_job(listener, emu, "workbook:export", source="us_wb_special")
    ).status == "complete"
    assert ran == ["sheet sheet:dedupe", "special"]


async def test_only_the_first_matching_handler_runs_and_a_warning_names_the_others(
    emu: Emulator,
) -> None:
    jobs = Jobs()
    ran: list[str] = []

    @jobs.handle("workbook:export")
    async def first(event: FlatfileEvent, tick: Tick) -> None:
        ran.append("first")

    @jobs.handle("workbook:*")
    async def second(event: FlatfileEvent, tick: Tick) -> None:
        ran.append("second")

    with capture_logs() as logs:
        await run_job(Listener().use(jobs), emu, "workbook:export")
    assert ran == ["first"]
    (warning,) = [e for e in logs if e["event"].startswith("several job handlers match")]
    assert warning["ran"].endswith("first")
    assert [s.rsplit(".", 1)[-1] for s in warning["skipped"]] == ["second"]


async def test_a_crashing_handler_is_logged_once_as_an_error(emu: Emulator) -> None:
    jobs = Jobs()

    @jobs.handle("workbook:crash")
    async def crash(event: FlatfileEvent, tick: Tick) -> None:
        raise RuntimeError("bug")

    with capture_logs() as logs:
        job = await run_job(Listener().use(jobs), emu, "workbook:crash")
    assert job.status == "failed"
    (line,) = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert (line["event"], line["log_level"], line["error"]) == (
        "job failed",
        "error",
        "RuntimeError: bug",
    )
    assert isinstance(line["exc_info"], RuntimeError)


async def test_a_failing_handler_is_logged_once_and_the_listener_goes_on(emu: Emulator) -> None:
    jobs = Jobs()

    @jobs.handle("workbook:broken")
    async def broken(event: FlatfileEvent, tick: Tick) -> None:
        raise JobError("Nope", next=Next.retry("Again"))

    @jobs.handle("workbook:fine")
    async def fine(event: FlatfileEvent, tick: Tick) -> str:
        return "fine"

    listener = Listener().use(jobs)
    with capture_logs() as logs:
        failed = await run_job(listener, emu, "workbook:broken")
    assert failed.status == "failed"
    assert failed.outcome is not None
    assert failed.outcome.next == Next.retry("Again")
    # A JobError is the handler's choice, not a fault: an info line, no traceback.
    assert [e["event"] for e in logs if e["log_level"] in ("info", "warning", "error")] == [
        "job failed with a user-facing error"
    ]
    ok = await run_job(listener, emu, "workbook:fine")
    assert ok.status == "complete"


async def test_the_same_job_never_runs_in_two_handlers_at_once(emu: Emulator) -> None:
    jobs = Jobs()
    started = asyncio.Event()
    release = asyncio.Event()
    runs: list[str] = []

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        runs.append(event.id or "")
        started.set()
        await release.wait()

    listener = Listener(client=client_for(emu)).use(jobs)
    job = emu.trigger("workbook:export")
    event = ready_event(emu, job.id)
    first = asyncio.create_task(listener.dispatch(event))
    await started.wait()
    assert jobs.running == {job.id}
    with capture_logs() as logs:
        await listener.dispatch(dict(event, id="us_evt_redelivered"))
    assert any(e["event"] == "job is already running; duplicate event skipped" for e in logs)
    release.set()
    await first
    assert runs == [event["id"]]
    assert emu.job(job.id).status == "complete"
    await listener.client.close()


async def test_a_redelivered_event_for_a_finished_job_does_not_run_it_again(emu: Emulator) -> None:
    jobs = Jobs()
    runs: list[str] = []

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        runs.append("ran")

    listener = Listener().use(jobs)
    job = await run_job(listener, emu, "workbook:export")
    async with client_for(emu) as client, listener.bound(client):
        await listener.dispatch(ready_event(emu, job.id))
    assert runs == ["ran"]
    assert emu.job(job.id).status == "complete"


async def test_a_retried_job_runs_again(emu: Emulator) -> None:
    jobs = Jobs()
    attempts: list[int] = []

    @jobs.handle("workbook:flaky")
    async def flaky(event: FlatfileEvent, tick: Tick) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise JobError("first time fails", next=Next.retry())

    listener = Listener().use(jobs)
    job = await run_job(listener, emu, "workbook:flaky")
    emu.retry(job.id)
    async with client_for(emu) as client, listener.bound(client):
        await listener.dispatch(emu.events[-1])
    assert emu.job(job.id).status == "complete"
    assert len(attempts) == 2


async def test_handler_timeout_fails_the_job(emu: Emulator) -> None:
    jobs = Jobs(timeout=0.05)

    @jobs.handle("workbook:slow")
    async def slow(event: FlatfileEvent, tick: Tick) -> None:
        await asyncio.sleep(10)

    job = await run_job(Listener().use(jobs), emu, "workbook:slow")
    assert job.status == "failed"
    assert job.info == "The job timed out after 0.05 seconds and was stopped."


# ------------------------------------------------------------------ multi-part jobs


def split_jobs(fail_part: int | None = None) -> tuple[Jobs, list[Any]]:
    jobs = Jobs(progress_interval=0)
    seen: list[Any] = []

    @jobs.handle("workbook:bigExport")
    async def parent(event: FlatfileEvent, tick: Tick) -> None:
        await tick(5, "splitting")
        await tick.split(3)

    @jobs.handle_part("workbook:bigExport")
    async def part(event: FlatfileEvent, tick: Tick) -> None:
        data = (await tick.job()).part_data
        seen.append(data)
        if data["part"] == fail_part:
            raise RuntimeError(f"part {data['part']} broke")

    return jobs, seen


@pytest.mark.parametrize("shape", ["counts", "list"])
async def test_a_split_job_completes_when_all_parts_complete(shape: Any) -> None:
    async with Emulator(parts_shape=shape) as emu:
        jobs, seen = split_jobs()
        job = await run_job(Listener().use(jobs), emu, "workbook:bigExport")
        assert job.status == "complete"
        assert job.outcome is not None
        assert job.outcome.message == "All 3 parts completed"
        assert sorted(d["part"] for d in seen) == [0, 1, 2]
        parts = [j for j in emu.jobs() if j.parent_id == job.id]
        assert {p.status for p in parts} == {"complete"}


@pytest.mark.parametrize("shape", ["counts", "list"])
async def test_a_split_job_fails_with_a_retry_button_when_a_part_fails(shape: Any) -> None:
    async with Emulator(parts_shape=shape) as emu:
        jobs, _ = split_jobs(fail_part=1)
        job = await run_job(Listener().use(jobs), emu, "workbook:bigExport")
        assert job.status == "failed"
        assert job.outcome is not None
        assert job.outcome.message == "1 of 3 parts did not complete"
        assert job.outcome.next == Next.retry("Retry")


async def test_on_parts_completed_lets_the_user_decide(emu: Emulator) -> None:
    jobs, _ = split_jobs(fail_part=2)
    got: list[JobPartsCounts] = []

    @jobs.on_parts_completed("workbook:bigExport")
    async def merge(event: FlatfileEvent, tick: Tick, parts: JobPartsCounts) -> str:
        got.append(parts)
        return f"{parts.completed} of {parts.total} parts merged; good enough"

    job = await run_job(Listener().use(jobs), emu, "workbook:bigExport")
    assert got == [JobPartsCounts(total=3, completed=2, failed=1, canceled=0)]
    assert job.status == "complete"
    assert job.outcome is not None
    assert job.outcome.message == "2 of 3 parts merged; good enough"
    # The parent was not acknowledged again with "Accepted" when its parts completed.
    accepted = [
        r
        for r in emu.requests
        if r.route == "jobs.ack" and r.json == {"info": "Accepted", "progress": 0}
    ]
    assert len(accepted) == 4  # the parent once, and each part


async def test_parts_go_to_the_jobs_own_handler_when_there_is_no_part_handler(
    emu: Emulator,
) -> None:
    jobs = Jobs()
    kinds: list[bool] = []

    @jobs.handle("workbook:bigExport")
    async def both(event: FlatfileEvent, tick: Tick) -> None:
        kinds.append(bool(event.payload.get("isPart")))
        if not event.payload.get("isPart"):
            await tick.split([{"rows": "1-100"}, {"rows": "101-200"}])

    job = await run_job(Listener().use(jobs), emu, "workbook:bigExport")
    assert kinds == [False, True, True]
    assert job.status == "complete"


def test_on_parts_completed_needs_three_parameters() -> None:
    async def merge(event: FlatfileEvent, tick: Tick) -> None:
        pass

    with pytest.raises(TypeError, match=r"must take 3 parameters \(event, tick, parts\)"):
        Jobs().on_parts_completed("a:b")(merge)  # type: ignore[type-var]


async def test_installing_twice_registers_once(emu: Emulator) -> None:
    jobs = Jobs()
    runs: list[int] = []

    @jobs.handle("a:b")
    async def handler(event: FlatfileEvent, tick: Tick) -> None:
        runs.append(1)

    listener = Listener().use(jobs).use(jobs)
    await run_job(listener, emu, "a:b")
    assert runs == [1]


def test_a_bare_decorator_is_a_type_error_naming_the_fix() -> None:
    jobs = Jobs()

    async def export(event: FlatfileEvent, tick: Tick) -> None:
        pass

    for decorator in (jobs.handle, jobs.handle_part, jobs.on_parts_completed):
        with pytest.raises(TypeError, match=r'@jobs\.\w+\("domain:operation"\) above export'):
            decorator(export)  # type: ignore[arg-type]
    assert repr(jobs) == "Jobs(handlers=[])"


@pytest.mark.parametrize("method", ["handle", "handle_part", "on_parts_completed"])
def test_signatures_show_plain_defaults_not_sentinels(method: str) -> None:
    signature = inspect.signature(getattr(Jobs, method))
    assert "object at" not in str(signature)
    assert signature.parameters["timeout"].default is None


async def test_a_handler_can_lift_the_registrys_timeout_with_infinity(emu: Emulator) -> None:
    jobs = Jobs(timeout=0.01)

    @jobs.handle("workbook:long", timeout=math.inf)
    async def long(event: FlatfileEvent, tick: Tick) -> str:
        await asyncio.sleep(0.05)
        return "finished"

    job = await run_job(Listener().use(jobs), emu, "workbook:long")
    assert job.status == "complete"


def test_select_decides_once_which_handler_takes_a_job_and_names_the_others() -> None:
    jobs = Jobs()

    @jobs.handle("workbook:*")
    async def any_workbook(event: FlatfileEvent, tick: Tick) -> None:
        pass

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        pass

    @jobs.handle_part("workbook:export")
    async def export_part(event: FlatfileEvent, tick: Tick) -> None:
        pass

    @jobs.on_parts_completed("workbook:export")
    async def export_done(event: FlatfileEvent, tick: Tick, parts: JobPartsCounts) -> None:
        pass

    ready = jobs.select(make_event(job="workbook:export"))
    assert (ready.handler, ready.run) == (callable_name(any_workbook), "job")
    assert ready.others == (callable_name(export),)
    part = jobs.select(make_event(job="workbook:export", is_part=True))
    assert (part.handler, part.run) == (callable_name(export_part), "part")
    assert part.others == ()  # the job's own handlers are not rivals of its part handler
    done = jobs.select(make_event("job:parts-completed", job="workbook:export"))
    assert (done.handler, done.run) == (callable_name(export_done), "parts")
    other = jobs.select(make_event("job:parts-completed", job="workbook:import"))
    assert (other.handler, other.run) == (callable_name(any_workbook), "default-parts")
    assert jobs.select(make_event(job="sheet:dedupe")).handler is None
    assert jobs.select(make_event("records:created")).handler is None


def test_the_listener_names_the_handler_a_registry_chose() -> None:
    jobs = Jobs()

    @jobs.handle("sheet:dedupe")
    async def dedupe(event: FlatfileEvent, tick: Tick) -> None:
        pass

    listener = Listener().use(jobs)
    assert listener.match(make_event(job="sheet:dedupe")) == [callable_name(dedupe)]
    assert listener.match(make_event(job="sheet:other")) == []
    assert listener.callbacks() == [callable_name(dedupe)]
