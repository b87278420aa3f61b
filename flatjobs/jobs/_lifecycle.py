"""``job_lifecycle``: acknowledge a job, report its progress, and always end it.

>>> import asyncio
>>> from flatjobs import Listener
>>> from flatjobs.emulator import Emulator
>>> from flatjobs.testing import client_for
>>> listener = Listener()
>>> @listener.on("job:ready", {"job": "workbook:export"})
... async def on_ready(event: FlatfileEvent) -> None:
...     async with job_lifecycle(event) as tick:    # POST /ack {"info": "Accepted", "progress": 0}
...         await tick(50, "half way")               # fast: never waits for the interval
...         tick.complete_with("Exported 1,204 rows")
...     # clean exit: POST /complete; an exception: POST /fail with its message
>>> async def main() -> None:
...     async with Emulator() as emulator, client_for(emulator) as client:
...         job = emulator.trigger("workbook:export")
...         async with listener.bound(client):
...             await listener.dispatch(emulator.events[-1])   # its job:ready
...         print(emulator.job(job.id).status, emulator.job(job.id).outcome.message)
>>> asyncio.run(main())
complete Exported 1,204 rows

What Flatfile's JavaScript job handler does, and where this does better:

* progress is coalesced (see :mod:`flatjobs.tick`): awaiting a tick in a loop is fast, and
  the HTTP calls are bounded by time, not by ticks; ``progress_interval=0`` sends every
  tick, in order, as the JS handler does;
* a job is never left ``executing``: a failed first ack, a ``complete`` that did not land,
  a timeout and a shutdown all end in a ``fail`` attempt with a readable message, retried
  by the client; a ``fail`` refused as too large or malformed is sent again, minimal;
  what cannot be delivered is logged as an error with the job id;
* messages sent as ``info`` and outcome text are cut to :data:`MAX_MESSAGE_CHARS`;
* a job canceled on the platform cancels the body, sends nothing more, and raises
  :class:`flatjobs.JobCancelled`;
* ``timeout=`` cancels the body and fails the job, raising :class:`flatjobs.JobTimeout`,
  even if the body swallows the cancellation;
* while the body runs, the current progress is re-sent every ``heartbeat`` seconds when
  nothing else went out, so a job that is alive is seen to be.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import attrs

from flatjobs._seconds import check_seconds
from flatjobs.errors import (
    FlatfileAPIError,
    FlatfileError,
    InvalidEventError,
    InvalidRequestError,
    JobAlreadyRunning,
    JobCancelled,
    JobError,
    JobSkipped,
    JobTimeout,
    UnexpectedResponseError,
)
from flatjobs.events._event import FlatfileEvent
from flatjobs.instruments import _instruments, notify
from flatjobs.log import get_logger, redact_head, shorten
from flatjobs.models import (
    TERMINAL_STATUSES,
    Event,
    Job,
    JobCompleteDetails,
    JobOutcome,
    JobStatus,
    Next,
    evolve,
    to_wire,
)

from ._progress import ProgressUpdate, check_eta, check_info, check_progress
from ._tick import DEFAULT_COMPLETION, RESOLVED, Coalescer, CompletionValue, completion_details

if TYPE_CHECKING:
    from flatjobs.client import FlatfileClient

__all__ = [
    "DEFAULT_HEARTBEAT",
    "DEFAULT_PROGRESS_INTERVAL",
    "MAX_MESSAGE_CHARS",
    "STOPPED_MESSAGE",
    "JobLifecycle",
    "JobResult",
    "claim_job",
    "failure_details",
    "job_lifecycle",
    "observe_jobs",
    "release_job",
    "running_jobs",
]

DEFAULT_PROGRESS_INTERVAL: Final = 0.5
"""Seconds between two progress updates of one job, by default."""
DEFAULT_HEARTBEAT: Final = 30.0
"""Seconds without a progress update after which the current progress is sent again."""
MAX_MESSAGE_CHARS: Final = 2000
"""``info``, outcome ``message`` and ``heading`` are cut to this many characters (with an
ellipsis), so an exception with a huge message can still fail its job."""
CANCEL_GRACE: Final = 1.0
"""Seconds a body gets to stop after a timeout cancels it, before its job is failed anyway."""
STOPPED_MESSAGE: Final = "The listener stopped before the job finished. Retry to run it again."
_log = get_logger("flatjobs.lifecycle")
T = TypeVar("T")
# Final API calls run as tasks that outlive a second cancellation; keep them referenced.
_background: set[asyncio.Task[Any]] = set()


@attrs.frozen
class JobResult:
    """How a job handled in this process ended, as :func:`observe_jobs` reports it."""

    job_id: str
    status: Literal["complete", "failed", "canceled", "split", "skipped"]
    """``split``: waiting for its parts; ``skipped``: it had already ended."""
    error: BaseException | None = None

    @property
    def expected(self) -> bool:
        """False for a failure the handler did not choose: a crash, a timeout, a stop or
        an API failure. A :class:`JobError` is an expected, user-facing failure."""
        return self.status != "failed" or isinstance(self.error, JobError)


# The jobs running now, per event loop: the one "already running" guard. A lifecycle
# claims its job on entry; a runner may claim it earlier, for the task that will run it
# (the task's context then carries the claim, so its lifecycle knows the claim is its own).
_running: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[str]] = (
    weakref.WeakKeyDictionary()
)
_claimed: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "flatjobs_claimed_job", default=None
)


def _running_here() -> set[str]:
    return _running.setdefault(asyncio.get_running_loop(), set())


def running_jobs() -> frozenset[str]:
    """Ids of the jobs running in this process (this event loop) now."""
    return frozenset(_running_here())


def claim_job(job_id: str) -> contextvars.Context | None:
    """Claim ``job_id`` as running here, for a task about to run it; None if it already
    runs. Run the task in the returned context, and call :func:`release_job` when it ends."""
    running = _running_here()
    if job_id in running:
        return None
    running.add(job_id)
    context = contextvars.copy_context()
    context.run(_claimed.set, job_id)
    return context


def release_job(job_id: str) -> None:
    """End a claim made with :func:`claim_job`."""
    _running_here().discard(job_id)


_observer: contextvars.ContextVar[Callable[[JobResult], None] | None] = contextvars.ContextVar(
    "flatjobs_job_observer", default=None
)


@contextlib.contextmanager
def observe_jobs(callback: Callable[[JobResult], None]) -> Iterator[None]:
    """Call ``callback(result)`` as each job started in this context ends (tasks created
    inside the block inherit it). For metrics, dashboards, and ``flatjobs dev``."""
    token = _observer.set(callback)
    try:
        yield
    finally:
        _observer.reset(token)


def _report(result: JobResult) -> None:
    callback = _observer.get()
    if callback is not None:
        try:
            callback(result)
        except Exception:
            _log.exception("a job observer failed", job_id=result.job_id)


# --------------------------------------------------------------------------- bodies

# The hot path's constant bodies, built once (the exact wire form of Flatfile's handler).
_ACCEPTED: Final = {"info": "Accepted", "progress": 0}
_ACCEPTED_PROGRESS: Final = ProgressUpdate(0, "Accepted")
_DEFAULT_COMPLETION_WIRE: Final = to_wire(DEFAULT_COMPLETION)
_MINIMAL_CHARS: Final = 200


def _cut(text: str | None, limit: int = MAX_MESSAGE_CHARS) -> str | None:
    """``text`` with registered secrets and bearer tokens redacted, cut to ``limit``
    characters (the last an ellipsis). A handler's words stay as written otherwise."""
    if text is None:
        return None
    head, whole = redact_head(text, limit, urls=False)
    if whole and len(head) <= limit:
        return head
    return head[: limit - 1] + "…"


def _text(exc: BaseException) -> str:
    """What the end user reads for an exception: a :class:`JobError`'s message as the
    handler wrote it; a timeout as the limit the job ran into; anything else as its type
    and text (``KeyError: 'email'``), with credentials in URLs redacted too, since nobody
    chose to show it. Bounded and redacted by :func:`_cut` after."""
    if isinstance(exc, JobTimeout):  # its own text names the job: the user knows which
        unit = "second" if exc.timeout == 1 else "seconds"
        return f"The job timed out after {exc.timeout:g} {unit} and was stopped."
    name = type(exc).__name__
    try:
        text = str(exc.message if isinstance(exc, JobError) else exc)
    except Exception:  # an exception whose __str__ raises
        return name
    if isinstance(exc, JobError):
        return text.strip() or name
    text = redact_head(text, MAX_MESSAGE_CHARS)[0].strip()
    return f"{name}: {text}" if text else name


def failure_details(exc: BaseException) -> JobCompleteDetails:
    """The ``fail`` body for an exception: what the user reads of it (see :func:`_text`),
    as info and outcome; its texts redacted and bounded, ready to send."""
    message = _cut(_text(exc))
    if isinstance(exc, JobError):
        outcome = JobOutcome(
            acknowledge=True,
            heading=_cut(exc.heading, _MINIMAL_CHARS),
            message=message,
            next=exc.next,
        )
        return JobCompleteDetails(info=_cut(exc.info) or message, outcome=outcome)
    return JobCompleteDetails(info=message, outcome=JobOutcome(acknowledge=True, message=message))


def _bounded(details: JobCompleteDetails) -> JobCompleteDetails:
    """``details`` with its texts redacted and cut to :data:`MAX_MESSAGE_CHARS` (the heading
    to fewer)."""
    outcome = details.outcome
    if outcome is not None:
        message, heading = _cut(outcome.message), _cut(outcome.heading, _MINIMAL_CHARS)
        if message != outcome.message or heading != outcome.heading:
            outcome = evolve(outcome, message=message, heading=heading)
    info = _cut(details.info)
    if outcome is details.outcome and info == details.info:
        return details
    return evolve(details, info=info, outcome=outcome)


def _minimal(details: JobCompleteDetails) -> dict[str, Any]:
    """The smallest ``fail`` body that still tells the user something: short plain text."""
    text = (details.outcome.message if details.outcome else None) or details.info or "Failed"
    short = _cut(text, _MINIMAL_CHARS) or "Failed"
    return {"info": short, "outcome": {"acknowledge": True, "message": short}}


# --------------------------------------------------------------------------- the tick


class _JobTick:
    """The :class:`flatjobs.Tick` a lifecycle hands out: progress through a Coalescer."""

    __slots__ = ("_coalescer", "_completion", "_lifecycle")

    def __init__(self, lifecycle: JobLifecycle, coalescer: Coalescer) -> None:
        self._lifecycle = lifecycle
        self._coalescer = coalescer
        self._completion: JobCompleteDetails | None = None

    def __repr__(self) -> str:
        return f"Tick(job_id={self.job_id!r}, sent={self.sent})"

    @property
    def job_id(self) -> str:
        """The id of the job this tick reports on."""
        return self._lifecycle.job_id

    @property
    def cancelled(self) -> bool:
        """True once the platform has canceled the job (the body is being cancelled)."""
        return self._lifecycle.cancel_reason == "platform"

    @property
    def sent(self) -> int:
        """How many progress updates were sent to the API (heartbeats included)."""
        return self._coalescer.sent

    @property
    def coalesced(self) -> int:
        """How many ticks were folded into a later update instead of being sent."""
        return self._coalescer.coalesced

    def __call__(
        self,
        progress: float,
        info: str | None = None,
        *,
        eta: dt.datetime | dt.timedelta | None = None,
    ) -> Any:
        """Report ``progress`` (0..100); see :class:`flatjobs.Tick`."""
        progress = check_progress(progress)
        if info is not None:
            check_info(info)
        if eta is not None:
            eta = check_eta(eta)
        lifecycle = self._lifecycle
        if lifecycle.closed:
            if lifecycle.cancel_reason is not None:
                return RESOLVED  # the job is being cancelled: nothing to report
            raise RuntimeError(f"tick() called after job {self.job_id} ended")
        return self._coalescer.put(progress, info, eta)

    def complete_with(self, value: CompletionValue) -> None:
        """Set what the job completes with on a clean exit; see :class:`flatjobs.Tick`."""
        self._completion = completion_details(value)

    async def job(self) -> Job:
        """The job as the API has it now (``GET /jobs/{id}``)."""
        return await self._lifecycle.client.jobs.get(self.job_id)

    async def split(
        self, parts: int | list[dict[str, Any]], *, run_in_parallel: bool | None = None
    ) -> Job:
        """Split this job into parts; see :class:`flatjobs.Tick`."""
        job = await self._lifecycle.client.jobs.split(
            self.job_id, parts, run_in_parallel=run_in_parallel
        )
        self._lifecycle.awaiting_parts = True
        return job


# --------------------------------------------------------------------------- the lifecycle


class JobLifecycle:
    """The async context manager returned by :func:`job_lifecycle`."""

    def __init__(
        self,
        event: FlatfileEvent | Mapping[str, Any] | Event,
        *,
        client: FlatfileClient | None = None,
        timeout: float | None = None,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        debug: bool = False,
        acknowledge: bool = True,
    ) -> None:
        check_job_options(timeout=timeout, progress_interval=progress_interval, heartbeat=heartbeat)
        self.event = FlatfileEvent.parse(event)
        if self.event.job_id is None:
            raise InvalidEventError(
                f"event {self.event.id!r} ({shorten(self.event.topic, 80)}) has no "
                "context.jobId: job_lifecycle needs the event of a job"
            )
        self.job_id: str = self.event.job_id
        self._client = client
        self.timeout = timeout
        self.progress_interval = progress_interval
        self.heartbeat = heartbeat
        self.debug = debug
        self._acknowledge = acknowledge
        self.cancel_reason: Literal["platform", "timeout"] | None = None
        self.awaiting_parts = False
        self.closed = False
        self._ended = False  # the job was ended from outside the body (a timeout's watchdog)
        self._owns_claim = True
        self._started = time.perf_counter()
        self._task: asyncio.Task[Any] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._tick: _JobTick | None = None
        self.log = _log.bind(job_id=self.job_id, event_id=self.event.id, topic=self.event.topic)

    @property
    def client(self) -> FlatfileClient:
        """The client the job's calls use (given, the event's listener's, or from the environment)."""
        if self._client is None:
            try:
                self._client = self.event.client
            except RuntimeError:  # an event no listener dispatched
                from flatjobs.client import FlatfileClient

                self._client = FlatfileClient()
        return self._client

    # ----------------------------------------------------------- entering

    async def __aenter__(self) -> _JobTick:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("job_lifecycle must be used inside an asyncio task")
        running = _running_here()
        self._owns_claim = _claimed.get() != self.job_id  # else the caller claimed it for us
        if self._owns_claim:
            if self.job_id in running:
                raise JobAlreadyRunning(self.job_id)
            running.add(self.job_id)
        self._task = task
        if _instruments:
            notify("job_received", self.job_id, self.event)
        if self.debug:
            self.log.info("job received")
        if self._acknowledge:
            try:
                await self._check_runnable()
                await self._ack()
            except BaseException:
                self._release()
                raise
            self._alive()
        if _instruments:
            notify("job_started", self.job_id, self.event.payload.get("job"))
        coalescer = Coalescer(
            self._send_progress,
            interval=self.progress_interval,
            heartbeat=self.heartbeat,
            name=self.job_id,
        )
        if self._acknowledge:
            coalescer.start_heartbeat(_ACCEPTED_PROGRESS)
        self._tick = _JobTick(self, coalescer)
        if self.timeout is not None:
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(self.timeout, self._on_timeout))
        return self._tick

    async def _check_runnable(self) -> None:
        """Run a job's body only if the job is ``ready`` now (an orphan re-run: still
        ``executing``), read just before the ack.

        An ack is accepted on a job that is already executing (it is also how progress is
        reported), so without this read a second ``job:ready`` for a running job (an event
        sent twice with two ids, a listener restarted while its last run's job is left
        executing, two listeners on one environment) would start its body again. A user's
        Retry makes the job ready again, and runs it.
        """
        wanted = JobStatus.EXECUTING if self.event.orphaned else JobStatus.READY
        try:
            status = await self.client.jobs.status(self.job_id)
        except FlatfileError as err:
            # Unsure whether it is still ready: not running it is the safe side. A job left
            # ready is run by the reconciliation sweep (or its event's redelivery).
            self.log.warning("could not read the job's status; not running it now", error=str(err))
            self._report("skipped")
            raise JobSkipped(self.job_id, f"its status could not be read: {err}") from err
        if status == wanted:
            return
        if status == JobStatus.CANCELED:
            self.log.info("job was canceled before it started")
            self._report("canceled")
            raise JobCancelled(self.job_id)
        if status == JobStatus.EXECUTING:
            _warn_executing_elsewhere(self.log)
        else:
            self.log.info("the job is not run: it is not ready", status=str(status))
        self._report("skipped")
        raise JobSkipped(self.job_id, f"it is {status}, not {wanted}")

    async def _ack(self) -> None:
        status: str | None
        try:
            status = await self.client.jobs.send(self.job_id, "ack", _ACCEPTED)
        except FlatfileAPIError as err:
            if 400 <= err.status < 500 and not isinstance(err, UnexpectedResponseError):
                await self._not_started(err, await self._status())  # refused: an answer
                return
            # A 5xx after retries, or a garbled answer: the ack may have landed. The job says.
            status = await self._status()
            failure: FlatfileError = err
        except FlatfileError as err:
            # No answer (a reset, a timeout) after the client's retries: the ack may have
            # landed before its answer was lost. The job says.
            status = await self._status()
            failure = err
        else:
            if status == JobStatus.EXECUTING:
                return
            failure = self.client.jobs.unexpected(
                self.job_id, "ack", f"the acknowledged job is {status}, not executing"
            )
            if status not in TERMINAL_STATUSES:
                status = await self._status()  # read where it really is
        if status == JobStatus.EXECUTING:  # the ack landed (it was ready just before)
            self.log.info("the ack's answer was lost, but the ack landed; running the job")
            return
        await self._not_started(failure, status)

    async def _not_started(self, err: FlatfileError, status: str | None) -> None:
        """The ack did not start the job (``status``: the job's, read after the ack; None
        when unreadable): the body does not run. The job is ended with a Retry button
        unless it has ended already. Always raises."""
        if status == JobStatus.CANCELED:
            self.log.info("job was canceled before it started")
            self._report("canceled")
            raise JobCancelled(self.job_id) from err
        if status in TERMINAL_STATUSES:
            self.log.warning("job has already ended; not running it again", status=str(status))
            self._report("skipped")
            raise err
        if status is None:
            # The job cannot be read either: whether the ack landed is unknown. Left as it
            # is, a ready job is run by the sweep, an executing one ended as an orphan.
            self.log.error(
                "could not acknowledge the job, nor read it; leaving it for the sweep",
                error=str(err),
            )
            self._report("failed", err)
            raise err
        self.log.error("could not acknowledge job; failing it", error=str(err))
        details = failure_details(
            JobError(f"The job could not be started: {err}", next=Next.retry("Retry"))
        )
        if status != JobStatus.EXECUTING:
            # Only an executing job can fail: the ack did not land, so the job is still
            # ready and would stay so. Acknowledge it (with the reason), then fail it.
            try:
                await self.client.jobs.send(
                    self.job_id, "ack", {"info": details.info, "progress": 0}
                )
            except FlatfileError as again:
                self.log.error(
                    "job could not be acknowledged nor failed; it stays ready", error=str(again)
                )
                self._report("failed", err)
                raise err from None
        await _shielded(self._end("fail", details))
        self._report("failed", err)
        raise err

    # ----------------------------------------------------------- progress

    async def _send_progress(self, update: ProgressUpdate) -> Job | None:
        try:
            job = await self.client.jobs.report_progress(
                self.job_id, update.progress, info=update.info, estimated_completion_at=update.eta
            )
        except FlatfileAPIError as err:
            if 400 <= err.status < 500 and await self._status() == JobStatus.CANCELED:
                self._cancel_body("platform")
            else:
                self.log.warning("progress update failed", error=str(err))
            return None
        except FlatfileError as err:
            self.log.warning("progress update failed", error=str(err))
            return None
        if job.status == JobStatus.CANCELED:
            self._cancel_body("platform")
        else:
            self._alive()
        return job

    def _cancel_body(self, reason: Literal["platform", "timeout"]) -> None:
        if not self.closed and self.cancel_reason is None and self._task is not None:
            self.cancel_reason = reason
            self._task.cancel()

    def _on_timeout(self) -> None:
        self._cancel_body("timeout")
        if self.cancel_reason == "timeout":
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(CANCEL_GRACE, self._timeout_watchdog))

    def _timeout_watchdog(self) -> None:
        """The body is still running after its cancellation: fail the job without it."""
        if self.closed:
            return
        self.log.error(
            "job timed out and its body ignores cancellation; failing the job", timeout=self.timeout
        )
        self._ended = True
        assert self.timeout is not None
        assert self._tick is not None
        error = JobTimeout(self.job_id, self.timeout)
        coalescer = self._tick._coalescer

        async def end() -> None:
            await coalescer.close(flush=False)
            await self._end("fail", failure_details(error))
            self._report("failed", error)

        _spawn(end())

    def _report(self, status: Any, error: BaseException | None = None) -> None:
        """The job ended as ``status``: tell the observer and the instruments."""
        result = JobResult(self.job_id, status, error)
        _report(result)
        if _instruments:
            seconds = time.perf_counter() - self._started
            notify("job_ended", result, seconds, self.event.payload.get("job"))

    def _alive(self) -> None:
        if _instruments:
            notify("job_alive", self.job_id)

    async def _status(self) -> str | None:
        try:
            return (await self.client.jobs.get(self.job_id)).status
        except FlatfileError as err:
            self.log.warning("could not read the job's status", error=str(err))
            return None

    # ----------------------------------------------------------- leaving

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            return await self._exit(exc)
        finally:  # only once the final call is done: a duplicate must not start it again
            self._release()

    def _release(self) -> None:
        if _instruments:
            notify("job_left", self.job_id)
        if self._owns_claim:
            _running_here().discard(self.job_id)

    async def _exit(self, exc: BaseException | None) -> bool:
        self.closed = True
        for timer in self._timers:
            timer.cancel()
        tick = self._tick
        assert tick is not None
        assert self._task is not None
        coalescer = tick._coalescer
        reason = self.cancel_reason
        cancelled = isinstance(exc, asyncio.CancelledError)
        # Our own cancellation (platform cancel, timeout) is absorbed here; one that is
        # not only ours (a shutdown as well) goes on to the caller.
        ours = cancelled and reason is not None and self._task.uncancel() == 0
        if self._ended:  # failed already, by the timeout watchdog
            assert self.timeout is not None
            self.log.warning("the body of a timed-out job has finally stopped")
            raise JobTimeout(self.job_id, self.timeout) from None
        if exc is not None and not isinstance(exc, Exception) and not ours:
            # A shutdown, KeyboardInterrupt, SystemExit: the process is going away. The job
            # is failed so the user can retry it.
            await coalescer.close(flush=False)
            self.log.warning("listener stopped while the job ran; failing it so it can be retried")
            details = failure_details(JobError(STOPPED_MESSAGE, next=Next.retry("Retry")))
            await _shielded(self._end("fail", details))
            self._report("failed", exc)
            return False
        if reason is not None:
            await coalescer.close(flush=False)
            if exc is None:
                self.log.warning("the job's body ignored its cancellation", reason=reason)
        if reason == "platform":
            self.log.info("job was canceled on the platform; body cancelled")
            self._report("canceled")
            raise JobCancelled(self.job_id) from None
        if reason == "timeout":
            assert self.timeout is not None
            error = JobTimeout(self.job_id, self.timeout)
            self.log.error("job timed out; failing it", timeout=self.timeout)
            await _shielded(self._end("fail", failure_details(error)))
            self._report("failed", error)
            raise error from None
        await coalescer.close(flush=True)
        if exc is not None:
            if isinstance(exc, JobError):  # chosen by the handler: the user sees the message
                self.log.info("job failed with a user-facing error", error=_text(exc))
            else:
                self.log.error("job failed", error=_text(exc), exc_info=exc)
            await _shielded(self._end("fail", failure_details(exc)))
            self._report("failed", exc)
            return False
        if self.awaiting_parts:
            if self.debug:
                self.log.info("job split; it ends when its parts have completed")
            self._report("split")
            return False
        try:
            await _shielded(self._complete(tick._completion or DEFAULT_COMPLETION))
        except JobCancelled:
            self._report("canceled")
            raise
        except FlatfileError as err:
            self._report("failed", err)
            raise
        self._report("complete")
        return False

    async def _complete(self, details: JobCompleteDetails) -> None:
        error = await self._end("complete", details)
        if error is None:  # one line a job, as a failure has: what ran, and for how long
            seconds = round(time.perf_counter() - self._started, 3)
            self.log.info("job completed", job=self.event.payload.get("job"), seconds=seconds)
            return
        if isinstance(error, JobCancelled):
            raise error
        failure = failure_details(
            JobError(f"The job could not be completed: {error}", next=Next.retry("Retry"))
        )
        if await self._end("fail", failure) is not None:
            self.log.error(
                "job could not be completed nor failed; it may stay executing", error=str(error)
            )
        raise error

    async def _end(
        self, call: Literal["complete", "fail"], details: JobCompleteDetails
    ) -> FlatfileError | None:
        """Send the final call until the job has ended. Returns None once it has (by this
        call, or earlier), else the error; a platform cancel makes ``complete`` return
        :class:`JobCancelled`."""
        if details is DEFAULT_COMPLETION:
            body: Mapping[str, Any] = _DEFAULT_COMPLETION_WIRE
        else:
            body = to_wire(_bounded(details))
        wanted = JobStatus.COMPLETE if call == "complete" else JobStatus.FAILED
        minimal = False
        while True:
            try:
                status: str | None = await self.client.jobs.send(self.job_id, call, body)
            except FlatfileAPIError as err:
                # A refusal of a call sent once is an answer; after a retry, the first
                # attempt may have landed, and only the job's status tells. A refused fail
                # is checked too, so a job canceled or ended elsewhere is not reported stuck.
                refused = 400 <= err.status < 500 and not isinstance(err, UnexpectedResponseError)
                if refused and call == "complete" and err.attempts == 1:
                    self.log.error(f"could not {call} job", error=str(err))
                    return err
                status = await self._status()
                if status not in TERMINAL_STATUSES and call == "fail" and refused and not minimal:
                    # Too large, or malformed: send the least that still says what happened.
                    self.log.warning("fail was refused; sending it again, minimal", error=str(err))
                    body, minimal = _minimal(details), True
                    continue
                failure: FlatfileError = err
            except InvalidRequestError as err:  # a body JSON cannot carry (NaN in an outcome)
                if call == "fail" and not minimal:
                    body, minimal = _minimal(details), True
                    continue
                self.log.error(f"could not {call} job", error=str(err))
                return err
            except FlatfileError as err:  # no answer, after the client's retries
                # An attempt may have landed before its answer was lost: the job says.
                status = await self._status()
                failure = err
            else:
                if status == wanted:
                    return None
                # A 2xx that does not show the job ended as asked: ask the job itself.
                status = await self._status()
                failure = self.client.jobs.unexpected(
                    self.job_id, call, f"the job is {status or 'unknown'} after {call}"
                )
            if status == wanted:  # the answer was lost or odd, but the call landed
                return None
            if status == JobStatus.CANCELED:
                self.log.info(f"job was canceled on the platform; not sent: {call}")
                return JobCancelled(self.job_id) if call == "complete" else None
            if status in TERMINAL_STATUSES:
                self.log.info(f"job had already ended; not sent again: {call}", status=str(status))
                _warn_ended_elsewhere(self.log)
                return None
            self.log.error(f"{call} did not end the job", error=str(failure))
            return failure


_SCALING_HINT: Final = (
    "one `flatjobs run` per environment runs each job once; to scale out, use "
    "`flatjobs run --workers N` on one machine or `--nats URL` across machines"
)
_warned: set[str] = set()


def _warn_once(log: Any, kind: str, message: str) -> None:
    """``message`` as a warning the first time in this process, at debug level after: the
    sign of a second listener on the environment is worth one clear line, not one a job."""
    if kind in _warned:
        log.debug(message)
        return
    _warned.add(kind)
    log.warning(f"{message}; {_SCALING_HINT}")


def _warn_executing_elsewhere(log: Any) -> None:
    _warn_once(
        log,
        "executing",
        "a job:ready came for a job already executing, not in this process: another "
        "listener runs it, or the one that ran it stopped (the reconciliation sweep ends "
        "such jobs); its body is not started again",
    )


def _warn_ended_elsewhere(log: Any) -> None:
    _warn_once(
        log,
        "ended",
        "a job this process ran was ended by someone else: another listener may be "
        "running the same jobs",
    )


def _spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


async def _shielded(coro: Coroutine[Any, Any, T]) -> T:
    """Run a final API call so that cancelling the caller does not abandon it."""
    return await asyncio.shield(_spawn(coro))


def check_job_options(
    *,
    timeout: float | None = None,
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
    heartbeat: float | None = DEFAULT_HEARTBEAT,
) -> None:
    """Check a job's options; the one place ``Jobs`` and ``job_lifecycle`` both use.

    Raises:
        ValueError: naming the option and the value.
    """
    if timeout is not None:
        check_seconds("timeout", timeout, positive=True, forever=True)
    check_seconds("progress_interval", progress_interval)
    if heartbeat is not None:
        check_seconds("heartbeat", heartbeat, positive=True)


def job_lifecycle(
    event: FlatfileEvent | Mapping[str, Any] | Event,
    *,
    client: FlatfileClient | None = None,
    timeout: float | None = None,
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
    heartbeat: float | None = DEFAULT_HEARTBEAT,
    debug: bool = False,
) -> JobLifecycle:
    """Run a job's body between an ack and a complete/fail: ``async with job_lifecycle(event) as tick``.

    Entering acknowledges the job; ``await tick(progress, info)`` reports progress; leaving
    the block completes it (with ``tick.complete_with(...)``'s outcome), an exception fails
    it with its message (a :class:`JobError`'s heading and button too):

    >>> from flatjobs import Listener
    >>> from flatjobs.emulator import Emulator
    >>> from flatjobs.testing import run_job
    >>> listener = Listener()
    >>> @listener.on("job:ready", {"job": "sheet:dedupe"})
    ... async def dedupe(event: FlatfileEvent) -> None:
    ...     async with job_lifecycle(event) as tick:
    ...         await tick(50, "Looking for duplicates")
    ...         tick.complete_with("Removed 2 duplicate rows")
    >>> async def main() -> None:
    ...     async with Emulator() as emu:
    ...         job = await run_job(listener, emu, "sheet:dedupe")
    ...         print(job.status, "-", job.outcome.message)
    >>> asyncio.run(main())
    complete - Removed 2 duplicate rows

    Args:
        event: the ``job:ready`` event (as a callback receives it, raw JSON, or an Event).
        client: the API client; by default the listener's (``event.client``), or one built
            from the environment.
        timeout: seconds the body may run before it is cancelled and the job failed.
        progress_interval: minimum seconds between progress updates; ``0`` sends every
            tick in order, call for call like Flatfile's JS handler.
        heartbeat: seconds without a progress update after which the current progress is
            sent again, so the job shows it is alive (None: never).
        debug: log the job's receipt and completion at info level.

    Raises:
        InvalidEventError: the event has no ``context.jobId``.
        JobCancelled: (out of the block) the platform canceled the job.
        JobTimeout: (out of the block) the body ran past ``timeout``; the job was failed.
    """
    return JobLifecycle(
        event,
        client=client,
        timeout=timeout,
        heartbeat=heartbeat,
        progress_interval=progress_interval,
        debug=debug,
    )
