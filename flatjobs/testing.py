"""Helpers for testing Flatfile listeners and job handlers, and flatjobs' pytest plugin.

The plugin is registered by entry point when flatjobs is installed; its fixtures need
pytest-asyncio (they are skipped from registration without it, so your other tests are
never affected). Fixtures:

``flatfile_emulator``
    a running :class:`flatjobs.emulator.Emulator` (one per test).
``flatfile_client``
    a :class:`flatjobs.FlatfileClient` bound to that emulator.

Helpers:

* :func:`emulated` runs your listener the way production does (an event source, the
  runner, the listener, the job lifecycle and the client) against an emulator: what a
  test sees there is what a deployment does;
* :func:`run_job` is the quick direct mode: it plays a user clicking an action and feeds
  the emulator's events straight to your listener, one at a time;
* :func:`client_for` is a :class:`flatjobs.FlatfileClient` for an emulator;
* :func:`make_event` builds a realistic raw event; :class:`RecordingTick` stands in for a
  tick when you call a handler directly; :func:`capture_logs` (structlog's) captures
  flatjobs' log lines so you can assert on them.

A complete test of a handler::

    from flatjobs import Jobs, Listener
    from flatjobs.testing import run_job

    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event, tick):
        await tick(50, "half way")
        return "Exported"

    async def test_export_completes(flatfile_emulator):
        job = await run_job(Listener().use(jobs), flatfile_emulator, "workbook:export")
        assert job.status == "complete"
        assert job.outcome.message == "Exported"
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from structlog.testing import capture_logs

from flatjobs.events._topics import JOB_READY

from ._seconds import check_seconds
from .client import FlatfileClient, RetryPolicy
from .emulator import Emulator
from .events._event import FlatfileEvent, job_id_of
from .jobs._outcomes import CompletionValue, completion_details
from .jobs._tick import RESOLVED, Tick
from .models import TERMINAL_STATUSES, Job, JobCompleteDetails, JobStatus, ProgressUpdate
from .observe._instruments import observe_jobs
from .observe._results import JobResult
from .running._runner import Runner, RunStats
from .running._sweep import Reconciler
from .sources import EventSource, PollingSource, PushSource

if TYPE_CHECKING:
    import pytest

    from .listener._listener import Listener

__all__ = [
    "Emulated",
    "ProgressUpdate",
    "RecordingTick",
    "capture_logs",
    "client_for",
    "emulated",
    "make_event",
    "run_job",
]

_ids = itertools.count(1)

_CONTEXT_KEY = {
    "sheet": "sheetId",
    "workbook": "workbookId",
    "file": "fileId",
    "document": "documentId",
    "space": "spaceId",
}


def client_for(emulator: Emulator, **kwargs: Any) -> FlatfileClient:
    """A :class:`flatjobs.FlatfileClient` configured for ``emulator`` (URL, token and
    environment). Retries keep their count but the deadline is short, so a test that meets
    injected faults fails fast rather than wait a minute; ``kwargs`` override."""
    kwargs.setdefault("environment_id", emulator.environment_id)
    kwargs.setdefault("retry", RetryPolicy(initial_delay=0.05, max_delay=1.0, deadline=15.0))
    return FlatfileClient(emulator.url, emulator.token, **kwargs)


class Emulated:
    """A listener running as in production against an emulator; see :func:`emulated`.

    Attributes:
        emulator: the emulator (its jobs, events, requests and faults).
        client: the client the listener's callbacks use.
        runner: the runner taking events from the source.
        results: how each job handled so far ended, by job id.
    """

    def __init__(self, emulator: Emulator, client: FlatfileClient, runner: Runner) -> None:
        self.emulator = emulator
        self.client = client
        self.runner = runner
        self.results: dict[str, JobResult] = {}
        self._running: asyncio.Task[RunStats] | None = None

    async def trigger(
        self,
        job: str,
        *,
        input: Mapping[str, Any] | None = None,
        source: str | None = None,
        wait: bool = True,
        timeout: float = 10.0,
    ) -> Job:
        """Play a user clicking the action ``job`` (``"domain:operation"``); by default wait
        until the job has ended and return it as it ended.

        Raises:
            TimeoutError: ``wait`` and the job had not ended within ``timeout`` seconds.
        """
        created = self.emulator.trigger(job, input=input, source=source)
        if not wait:
            return created
        return await self.emulator.wait_for(created.id, timeout=timeout)

    def stop(self) -> None:
        """Stop taking events; in-flight jobs finish within the grace period."""
        self.runner.stop()

    async def stopped(self) -> RunStats:
        """Wait until the runner has stopped (after :meth:`stop`, or a signal); its stats."""
        assert self._running is not None, "use Emulated through `async with emulated(...)`"
        return await asyncio.shield(self._running)


@contextlib.asynccontextmanager
async def emulated(
    listener: Listener,
    *,
    emulator: Emulator | None = None,
    concurrency: int = 50,
    grace_period: float = 5.0,
    source: Literal["push", "poll"] = "push",
    sweep_interval: float | None = 60.0,
) -> AsyncIterator[Emulated]:
    """Run ``listener`` against an emulator the way ``flatjobs run`` runs it against
    Flatfile: events come from the emulator through an event source (pushed, the feed
    filling gaps; or polled) and the runner, concurrently, with the same checks at the door,
    the same lifecycle and client.

    ::

        async def test_export() -> None:
            async with emulated(Listener().use(jobs)) as env:
                job = await env.trigger("workbook:export")
            assert job.status == "complete"

    Args:
        listener: what to run; its client is the emulator's for the duration.
        emulator: a running emulator to use (by default one is started and stopped).
        concurrency, grace_period: as :class:`flatjobs.Runner`'s.
        source: ``"push"`` (:class:`flatjobs.PushSource`, as ``flatjobs run`` by default)
            or ``"poll"`` (:class:`flatjobs.PollingSource`).
        sweep_interval: seconds between reconciliation sweeps (:class:`flatjobs.Reconciler`,
            as ``flatjobs run --sweep-interval``; the first runs at start); None: no sweep.
    """
    async with contextlib.AsyncExitStack() as stack:
        if emulator is None:
            emulator = await stack.enter_async_context(Emulator())
        client = await stack.enter_async_context(client_for(emulator))
        await stack.enter_async_context(listener.bound(client))
        events: EventSource = (
            PushSource(client, origin=emulator.push_url)
            if source == "push"
            else PollingSource(client, interval=0.02, max_interval=0.1, overlap=2.0)
        )
        sweep = (
            Reconciler(listener, client=client, interval=sweep_interval)
            if sweep_interval is not None
            else None
        )
        runner = Runner(
            listener, events, concurrency=concurrency, grace_period=grace_period, sweep=sweep
        )
        env = Emulated(emulator, client, runner)
        with observe_jobs(lambda result: env.results.__setitem__(result.job_id, result)):
            env._running = running = asyncio.create_task(runner.run())
        try:
            yield env
        finally:
            runner.stop()
            await running


def make_event(
    topic: str = JOB_READY,
    *,
    job: str | None = None,
    job_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    payload: Mapping[str, Any] | None = None,
    input: Mapping[str, Any] | None = None,
    is_part: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """A realistic raw event (wire JSON), ids filled in.

    For a job topic, give ``job="workbook:export"``: the payload gets ``job``, ``domain``,
    ``operation``, ``status`` and ``isPart``, and the context a ``jobId`` and the id of the
    job's source (``workbookId``, ``sheetId``, ...). ``context`` and ``payload`` entries
    override the generated ones; other keyword arguments become top-level fields.

    >>> make_event(job="sheet:dedupe")["payload"]["job"]
    'sheet:dedupe'
    """
    n = next(_ids)
    ctx: dict[str, Any] = {
        "accountId": "us_acc_test",
        "environmentId": "us_env_test",
        "spaceId": "us_sp_test",
        "workbookId": "us_wb_test",
        "actorId": "us_usr_test",
    }
    body: dict[str, Any] = {}
    domain = topic.split(":", 1)[0]
    if job is not None:
        job_domain, _, operation = job.partition(":")
        ctx[_CONTEXT_KEY.get(job_domain, "workbookId")] = f"us_{job_domain[:2]}_test"
        ctx["jobId"] = job_id or f"us_jb_test{n:05d}"
        ctx["actionName"] = job
        body = {
            "job": job,
            "domain": job_domain,
            "operation": operation,
            "status": "ready" if topic == JOB_READY else "executing",
            "isPart": is_part,
        }
        if input is not None:
            body["input"] = dict(input)
    elif job_id is not None:
        ctx["jobId"] = job_id
    ctx.update(context or {})
    body.update(payload or {})
    return {
        "id": f"us_evt_test{n:05d}",
        "topic": topic,
        "domain": domain,
        "context": ctx,
        "payload": body,
        "createdAt": "2026-11-22T12:00:00.000Z",
        **fields,
    }


class RecordingTick:
    """A :class:`flatjobs.Tick` for unit tests of a handler called directly: it checks and
    records what the handler reports, without any API.

    ::

        tick = RecordingTick()
        result = await export(FlatfileEvent(make_event(job="workbook:export")), tick)
        assert tick.updates[-1].progress == 90

    Args:
        job_id: what ``tick.job_id`` says.
        job: what ``await tick.job()`` returns (by default a job with that id, executing).
        cancel_at: simulate the platform canceling the job once a reported progress reaches
            this value: the handler's task is cancelled, as the real tick does it.

    Attributes:
        updates: every ``tick(...)`` call, as a :class:`flatjobs.progress.ProgressUpdate`.
        splits: every ``await tick.split(...)`` call: ``(parts, run_in_parallel)``.
        completion: what ``complete_with`` was given, as ``JobCompleteDetails``.
    """

    def __init__(
        self,
        job_id: str = "us_jb_test",
        *,
        job: Job | None = None,
        cancel_at: float | None = None,
    ) -> None:
        self._job_id = job_id
        self._job = job or Job(id=job_id, status=JobStatus.EXECUTING)
        self._cancel_at = cancel_at
        self._cancelled = False
        self._task: asyncio.Task[Any] | None = None
        self.updates: list[ProgressUpdate] = []
        self.splits: list[tuple[int | list[dict[str, Any]], bool | None]] = []
        self.completion: JobCompleteDetails | None = None

    @property
    def job_id(self) -> str:
        """The job id given at construction."""
        return self._job_id

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` ran (or ``cancel_at`` was reached)."""
        return self._cancelled

    def __call__(
        self,
        progress: float,
        info: str | None = None,
        *,
        eta: dt.datetime | dt.timedelta | None = None,
    ) -> Awaitable[Job | None]:
        """Check and record one progress report (raises as the real tick does)."""
        update = ProgressUpdate(progress, info, eta)
        self._task = self._task or asyncio.current_task()
        self.updates.append(update)
        if self._cancel_at is not None and update.progress >= self._cancel_at:
            self.cancel()
        return RESOLVED

    def complete_with(self, value: CompletionValue) -> None:
        """Record what the job would complete with."""
        self.completion = completion_details(value)

    async def job(self) -> Job:
        """The job given at construction."""
        return self._job

    async def split(
        self, parts: int | list[dict[str, Any]], *, run_in_parallel: bool | None = None
    ) -> Job:
        """Record a split; returns the job."""
        self.splits.append((parts, run_in_parallel))
        return self._job

    def cancel(self) -> None:
        """Play the platform canceling the job: ``cancelled`` becomes True and the task that
        reported progress (or that runs :meth:`run`) is cancelled, so the handler sees
        ``CancelledError`` at its next ``await``."""
        self._cancelled = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run(
        self,
        handler: Callable[[FlatfileEvent, Tick], Awaitable[CompletionValue]],
        event: FlatfileEvent,
    ) -> CompletionValue:
        """Run ``handler(event, self)`` in a task of its own, so :meth:`cancel` can reach it
        from outside; returns what it returned (``CancelledError`` if it was cancelled)."""
        task: asyncio.Task[CompletionValue] = asyncio.ensure_future(handler(event, self))
        self._task = task
        return await task


async def run_job(
    listener: Listener,
    emulator: Emulator,
    job: str,
    *,
    input: Mapping[str, Any] | None = None,
    source: str | None = None,
    timeout: float = 10.0,
) -> Job:
    """Trigger ``job`` on the emulator as a user would and feed every event the emulator
    emits to ``listener``, one at a time, until the job has ended; return the final job.

    Events of parts and ``job:parts-completed`` flow too, so multi-part jobs finish. The
    listener's client is bound to the emulator for the duration of the call.

    Raises:
        TimeoutError: the job had not ended within ``timeout`` seconds.
    """
    check_seconds("timeout", timeout)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    emulator.on_event(queue.put_nowait)
    try:
        created = emulator.trigger(job, input=input, source=source)

        async def feed() -> None:
            async with client_for(emulator) as client, listener.bound(client):
                while not (emulator.job(created.id).status in TERMINAL_STATUSES and queue.empty()):
                    await listener.dispatch(await queue.get())

        task = asyncio.ensure_future(feed())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            # Read the job before the cancellation below fails it: that is what to explain.
            why = _not_ended(listener, emulator, emulator.job(created.id), timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise TimeoutError(why)
        task.result()
        return emulator.job(created.id)
    finally:
        emulator.off_event(queue.put_nowait)


def _not_ended(listener: Listener, emulator: Emulator, job: Job, timeout: float) -> str:
    """Why a job had not ended: what a test author needs to fix it."""
    head = f"job {job.job_name} ({job.id}) had not ended after {timeout:g}s"
    if job.status == JobStatus.READY:
        ready = [e for e in emulator.events if e["topic"] == JOB_READY and job_id_of(e) == job.id]
        if ready and not listener.match(ready[-1]):
            return (
                f"{head}: it is still ready, because no callback of the listener matches "
                f"its job:ready event. Register one with @jobs.handle({job.job_name!r}) "
                "and install it with listener.use(jobs)."
            )
        return f"{head}: it is still ready: its handler never acknowledged it."
    if job.status == JobStatus.EXECUTING:
        progress = f"{job.progress}%" + (f" ({job.info!r})" if job.info else "")
        return (
            f"{head}: its handler is still running (last progress {progress}). It may be "
            "waiting on something that never comes; give run_job a longer timeout= if it "
            "is just slow."
        )
    return f"{head}: it is {job.status}."


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixtures need pytest-asyncio
    _HAVE_PYTEST_ASYNCIO = False
else:
    _HAVE_PYTEST_ASYNCIO = True

if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def flatfile_emulator() -> AsyncIterator[Emulator]:
        """A running emulator; see :class:`flatjobs.emulator.Emulator`."""
        async with Emulator() as emu:
            yield emu

    @pytest_asyncio.fixture
    async def flatfile_client(flatfile_emulator: Emulator) -> AsyncIterator[FlatfileClient]:
        """A :class:`flatjobs.FlatfileClient` bound to ``flatfile_emulator``."""
        async with client_for(flatfile_emulator) as client:
            yield client


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "flatjobs: tests of Flatfile job handlers")
