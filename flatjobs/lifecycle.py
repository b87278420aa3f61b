"""``job_lifecycle``: acknowledge a job, report its progress, and always end it.

>>> async def on_ready(event: FlatfileEvent) -> None:
...     async with job_lifecycle(event) as tick:    # POST /ack {"info": "Accepted", "progress": 0}
...         tick(50, "half way")                     # takes effect without await
...         tick.complete_with("Exported 1,204 rows")
...     # clean exit: POST /complete; an exception: POST /fail with its message

What Flatfile's JavaScript job handler does (SPEC §5), and where this does better (§6):

* progress is coalesced: at most one update in flight, the latest value wins, and updates
  are at least ``progress_interval`` seconds apart (``0`` sends every tick, in order, as
  the JS handler does);
* a job is never left ``executing``: a failed first ack, a failed ``complete``, a timeout
  and a shutdown all end in a ``fail`` attempt with a readable message, retried by the
  client; what cannot be delivered is logged as an error with the job id;
* a job canceled on the platform cancels the body, sends nothing more, and raises
  :class:`flatjobs.JobCancelled`;
* ``timeout=`` cancels the body and fails the job, raising :class:`flatjobs.JobTimeout`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import datetime as dt
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import attrs

from .errors import (
    FlatfileAPIError,
    FlatfileConnectionError,
    FlatfileError,
    InvalidEventError,
    JobCancelled,
    JobError,
    JobTimeout,
)
from .event import FlatfileEvent, as_raw_event
from .logging import get_logger
from .models import (
    Event,
    Job,
    JobCompleteDetails,
    JobOutcome,
    JobStatus,
    Next,
    to_wire,
)

if TYPE_CHECKING:
    from .client import FlatfileClient

__all__ = [
    "DEFAULT_PROGRESS_INTERVAL",
    "CompletionValue",
    "JobLifecycle",
    "JobResult",
    "Tick",
    "completion_details",
    "failure_details",
    "job_lifecycle",
    "observe_jobs",
]

DEFAULT_PROGRESS_INTERVAL: Final = 0.5
"""Seconds between two progress updates of one job, by default."""
STOPPED_MESSAGE: Final = "The listener stopped before the job finished. Retry to run it again."
_TERMINAL: Final = frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELED})
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


def _report(job_id: str, status: Any, error: BaseException | None = None) -> None:
    callback = _observer.get()
    if callback is not None:
        try:
            callback(JobResult(job_id, status, error))
        except Exception:
            _log.exception("a job observer failed", job_id=job_id)


CompletionValue = JobCompleteDetails | JobOutcome | str | None
"""What a job may complete with: details, an outcome, a message, or None for the default."""


def completion_details(value: CompletionValue) -> JobCompleteDetails:
    """The ``complete`` body for a handler's result.

    Raises:
        TypeError: ``value`` is none of the accepted types (named in the message).
    """
    if value is None:
        return JobCompleteDetails(outcome=JobOutcome(message="Job complete"))
    if isinstance(value, JobCompleteDetails):
        return value
    if isinstance(value, JobOutcome):
        return JobCompleteDetails(outcome=value)
    if isinstance(value, str):
        return JobCompleteDetails(outcome=JobOutcome(message=value))
    raise TypeError(
        "a job completes with None, a message string, a JobOutcome or a JobCompleteDetails, "
        f"got {type(value).__name__} {value!r:.100}"
    )


# The hot path's constant bodies, built once (SPEC §5's exact wire form).
_ACCEPTED: Final = {"info": "Accepted", "progress": 0}
_DEFAULT_COMPLETION: Final = completion_details(None)
_DEFAULT_COMPLETION_WIRE: Final = to_wire(_DEFAULT_COMPLETION)


def _status_of(answer: Any) -> Any:
    """The ``status`` of a job as an API answer's ``data`` holds it, or None."""
    return answer.get("status") if isinstance(answer, Mapping) else None


def _message(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, JobError) else str(exc)
    return text.strip() or type(exc).__name__


def failure_details(exc: BaseException) -> JobCompleteDetails:
    """The ``fail`` body for an exception: its text (or type name), as info and outcome."""
    message = _message(exc)
    if isinstance(exc, JobError):
        outcome = JobOutcome(acknowledge=True, heading=exc.heading, message=message, next=exc.next)
        return JobCompleteDetails(info=exc.info or message, outcome=outcome)
    return JobCompleteDetails(info=message, outcome=JobOutcome(acknowledge=True, message=message))


def _check_progress(progress: Any) -> float:
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        raise ValueError(f"progress must be a number from 0 to 100, got {progress!r}")
    if not 0 <= progress <= 100:  # also false for NaN; no float conversion of huge ints
        raise ValueError(f"progress must be within 0..100, got {progress!r}")
    return progress


def _eta(eta: dt.datetime | dt.timedelta | None) -> dt.datetime | None:
    if eta is None or isinstance(eta, dt.datetime):
        return eta if eta is None or eta.tzinfo else eta.replace(tzinfo=dt.UTC)
    if isinstance(eta, dt.timedelta):
        return dt.datetime.now(dt.UTC) + eta
    raise TypeError(f"eta must be a datetime or a timedelta, got {type(eta).__name__} {eta!r}")


class _Update:
    __slots__ = ("eta", "info", "progress")

    def __init__(self, progress: float, info: str | None, eta: dt.datetime | None) -> None:
        self.progress = progress
        self.info = info
        self.eta = eta


class Tick:
    """Reports a job's progress; handed out by :func:`job_lifecycle`.

    ``tick(progress, info=None, *, eta=None)`` takes effect at once and returns an
    awaitable that completes when the update was delivered or superseded (its result is
    the job as the API returned it, or ``None``). Awaiting it is optional.
    """

    def __init__(self, lifecycle: JobLifecycle, interval: float) -> None:
        self._lifecycle = lifecycle
        self._interval = interval
        self._queue: collections.deque[tuple[_Update, list[asyncio.Future[Job | None]]]] = (
            collections.deque()
        )
        self._sender: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_sent = -math.inf
        self._closed = False
        self._completion: JobCompleteDetails | None = None
        self.sent = 0
        """How many progress updates were sent to the API."""

    @property
    def job_id(self) -> str:
        """The id of the job this tick reports on."""
        return self._lifecycle.job_id

    @property
    def cancelled(self) -> bool:
        """True once the platform has canceled the job (the body is being cancelled)."""
        return self._lifecycle.cancel_reason == "platform"

    def __call__(
        self,
        progress: float,
        info: str | None = None,
        *,
        eta: dt.datetime | dt.timedelta | None = None,
    ) -> Awaitable[Job | None]:
        """Report ``progress`` (0..100) with optional ``info`` text and ``eta``.

        Raises:
            ValueError: ``progress`` is not a number within 0..100.
            TypeError: ``info`` is not a string, or ``eta`` not a datetime or timedelta.
            RuntimeError: the job has already ended.
        """
        if info is not None and not isinstance(info, str):
            raise TypeError(f"info must be a string, got {type(info).__name__} {info!r}")
        update = _Update(_check_progress(progress), info, _eta(eta))
        future: asyncio.Future[Job | None] = asyncio.get_running_loop().create_future()
        if self._closed:
            if self._lifecycle.cancel_reason is not None:
                future.set_result(None)  # the job is being cancelled: nothing to report
                return future
            raise RuntimeError(f"tick() called after job {self.job_id} ended")
        if self._interval == 0 or not self._queue:
            self._queue.append((update, [future]))
        else:
            # Coalesce: the pending update takes the latest values and every waiter.
            _, waiters = self._queue[-1]
            self._queue[-1] = (update, [*waiters, future])
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(
                self._send_loop(), name=f"flatjobs-tick-{self.job_id}"
            )
        return future

    def complete_with(self, value: CompletionValue) -> None:
        """Set what the job completes with on a clean exit: a message, a
        :class:`JobOutcome` or :class:`JobCompleteDetails` (default ``"Job complete"``)."""
        self._completion = completion_details(value)

    async def job(self) -> Job:
        """The job as the API has it now (``GET /jobs/{id}``): ``part_data``, ``input``..."""
        return await self._lifecycle.client.jobs.get(self.job_id)

    async def split(
        self, parts: int | list[dict[str, Any]], *, run_in_parallel: bool | None = None
    ) -> Job:
        """Split this job into parts (SPEC §2). The job is then not completed when the body
        exits: it ends when ``job:parts-completed`` is handled (see ``Jobs``)."""
        job = await self._lifecycle.client.jobs.split(
            self.job_id, parts, run_in_parallel=run_in_parallel
        )
        self._lifecycle.awaiting_parts = True
        return job

    async def _send_loop(self) -> None:
        while self._queue and not (self._closed and self._lifecycle.cancel_reason):
            if self._interval and not self._closed:
                wait = self._last_sent + self._interval - asyncio.get_running_loop().time()
                if wait > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
                    continue
            update, waiters = self._queue.popleft()
            job = await self._lifecycle._send_progress(update)
            self.sent += 1
            self._last_sent = asyncio.get_running_loop().time()
            for future in waiters:
                if not future.done():
                    future.set_result(job)

    async def _close(self, *, flush: bool) -> None:
        """Stop reporting: send what is queued when ``flush``, else drop it; then wait for
        any update in flight so it cannot land after the job's final call."""
        self._closed = True
        if not flush:
            self._drop()
        self._wake.set()
        sender = self._sender
        if sender is not None and not sender.done():
            await asyncio.shield(sender)
        self._drop()

    def _drop(self) -> None:
        while self._queue:
            _, waiters = self._queue.popleft()
            for future in waiters:
                if not future.done():
                    future.set_result(None)


class JobLifecycle:
    """The async context manager returned by :func:`job_lifecycle`."""

    def __init__(
        self,
        event: FlatfileEvent | Mapping[str, Any] | Event,
        *,
        client: FlatfileClient | None = None,
        timeout: float | None = None,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        debug: bool = False,
        acknowledge: bool = True,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not progress_interval >= 0:
            raise ValueError(f"progress_interval must be >= 0 seconds, got {progress_interval!r}")
        raw = as_raw_event(event)
        context = raw.get("context")
        job_id = context.get("jobId") if isinstance(context, Mapping) else None
        if not isinstance(job_id, str) or not job_id:
            raise InvalidEventError(
                f"event {raw.get('id')!r} ({raw.get('topic')}) has no context.jobId: "
                "job_lifecycle needs the event of a job"
            )
        self.job_id = job_id
        self.event_id = raw.get("id")
        self.topic = raw.get("topic")
        self._event = event
        self._client = client
        self.timeout = timeout
        self.progress_interval = progress_interval
        self.debug = debug
        self._acknowledge = acknowledge
        self.cancel_reason: Literal["platform", "timeout"] | None = None
        self.awaiting_parts = False
        self._task: asyncio.Task[Any] | None = None
        self._timeout_handle: asyncio.TimerHandle | None = None
        self._body_running = False
        self._tick: Tick | None = None
        self.log = _log.bind(job_id=job_id, event_id=self.event_id, topic=self.topic)

    @property
    def client(self) -> FlatfileClient:
        """The client the job's calls use (given, the event's listener's, or from the environment)."""
        if self._client is None:
            if isinstance(self._event, FlatfileEvent):
                self._client = self._event.client
            else:
                from .client import FlatfileClient

                self._client = FlatfileClient()
        return self._client

    # ----------------------------------------------------------- entering

    async def __aenter__(self) -> Tick:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("job_lifecycle must be used inside an asyncio task")
        self._task = task
        if self.debug:
            self.log.info("job received")
        if self._acknowledge:
            try:
                answer = await self.client.data("POST", f"/jobs/{self.job_id}/ack", body=_ACCEPTED)
            except JobCancelled:
                _report(self.job_id, "canceled")
                raise
            except FlatfileError as err:
                ended = await self._ack_failed(err)
                _report(self.job_id, "skipped" if ended else "failed", None if ended else err)
                raise
            if _status_of(answer) == JobStatus.CANCELED:
                self.log.info("job was canceled before it started")
                _report(self.job_id, "canceled")
                raise JobCancelled(self.job_id)
        self._tick = Tick(self, self.progress_interval)
        if self.timeout is not None:
            loop = asyncio.get_running_loop()
            self._timeout_handle = loop.call_later(self.timeout, self._cancel_body, "timeout")
        self._body_running = True
        return self._tick

    async def _ack_failed(self, err: FlatfileError) -> bool:
        """The first ack failed: the body will not run; end the job unless it has ended.
        Returns True when the job had already ended."""
        if isinstance(err, FlatfileAPIError) and 400 <= err.status < 500:
            status = await self._status()
            if status == JobStatus.CANCELED:
                self.log.info("job was canceled before it started")
                raise JobCancelled(self.job_id) from err
            if status in _TERMINAL:
                self.log.warning("job has already ended; not running it again", status=str(status))
                return True
        self.log.error("could not acknowledge job; failing it", error=str(err))
        details = failure_details(FlatfileError(f"The job could not be started: {err}"))
        if await _shielded(self._deliver("fail", details)) is None:
            return False
        # Only an executing job can fail: if the ack never landed, the job is still ready
        # and would stay so forever. Acknowledge it (with the reason), then fail it.
        try:
            await self.client.jobs.ack(self.job_id, info=details.info, progress=0)
        except FlatfileError as again:
            self.log.error("job could not be acknowledged nor failed; it stays ready",
                           error=str(again))  # fmt: skip
            return False
        await _shielded(self._deliver("fail", details))
        return False

    # ----------------------------------------------------------- progress

    async def _send_progress(self, update: _Update) -> Job | None:
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
        except FlatfileConnectionError as err:
            self.log.warning("progress update failed", error=str(err))
            return None
        if job.status == JobStatus.CANCELED:
            self._cancel_body("platform")
        return job

    def _cancel_body(self, reason: Literal["platform", "timeout"]) -> None:
        if self._body_running and self.cancel_reason is None and self._task is not None:
            self.cancel_reason = reason
            self._task.cancel()

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
        self._body_running = False
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        tick = self._tick
        assert tick is not None
        assert self._task is not None
        if isinstance(exc, asyncio.CancelledError):
            ours = self.cancel_reason is not None and self._task.uncancel() == 0
            await tick._close(flush=False)
            if ours and self.cancel_reason == "platform":
                self.log.info("job was canceled on the platform; body cancelled")
                _report(self.job_id, "canceled")
                raise JobCancelled(self.job_id) from None
            if ours and self.cancel_reason == "timeout":
                assert self.timeout is not None
                error = JobTimeout(self.job_id, self.timeout)
                self.log.error("job timed out; failing it", timeout=self.timeout)
                await _shielded(self._deliver("fail", failure_details(error)))
                _report(self.job_id, "failed", error)
                raise error from None
            self.log.warning("listener stopped while the job ran; failing it so it can be retried")
            details = failure_details(JobError(STOPPED_MESSAGE, next=Next.retry("Retry")))
            await _shielded(self._deliver("fail", details))
            _report(self.job_id, "failed", exc)
            return False
        if exc is not None and not isinstance(exc, Exception):
            # KeyboardInterrupt, SystemExit: the process is going away.
            await tick._close(flush=False)
            details = failure_details(JobError(STOPPED_MESSAGE, next=Next.retry("Retry")))
            await _shielded(self._deliver("fail", details))
            _report(self.job_id, "failed", exc)
            return False
        await tick._close(flush=True)
        if exc is not None:
            if isinstance(exc, JobError):  # chosen by the handler: the user sees the message
                self.log.warning("job failed with a user-facing error", error=_message(exc))
            else:
                self.log.error("job failed", error=f"{type(exc).__name__}: {_message(exc)}",
                               exc_info=exc)  # fmt: skip
            await _shielded(self._deliver("fail", failure_details(exc)))
            _report(self.job_id, "failed", exc)
            return False
        if self.awaiting_parts:
            if self.debug:
                self.log.info("job split; it ends when its parts have completed")
            _report(self.job_id, "split")
            return False
        try:
            await _shielded(self._complete(tick._completion or _DEFAULT_COMPLETION))
        except JobCancelled:
            _report(self.job_id, "canceled")
            raise
        except FlatfileError as err:
            _report(self.job_id, "failed", err)
            raise
        _report(self.job_id, "complete")
        return False

    async def _complete(self, details: JobCompleteDetails) -> None:
        error = await self._deliver("complete", details)
        if error is None:
            if self.debug:
                self.log.info("job completed")
            return
        if isinstance(error, JobCancelled):
            raise error
        failure = failure_details(FlatfileError(f"The job could not be completed: {error}"))
        if await self._deliver("fail", failure) is not None:
            self.log.error("job could not be completed nor failed; it may stay executing",
                           error=str(error))  # fmt: skip
        raise error

    async def _deliver(
        self, call: Literal["complete", "fail"], details: JobCompleteDetails
    ) -> FlatfileError | None:
        """Send the final call. Returns None when the job has ended (by this call, or
        earlier: a retried call whose first attempt landed), else the error."""
        # Only whether it landed matters here: the answer is not read into a model.
        body = _DEFAULT_COMPLETION_WIRE if details is _DEFAULT_COMPLETION else to_wire(details)
        try:
            await self.client.data("POST", f"/jobs/{self.job_id}/{call}", body=body)
            return None
        except FlatfileAPIError as err:
            # A refusal of a call sent once is an answer; after a retry, the first attempt
            # may have landed, and only the job's status tells. A refused fail is checked
            # too, so a job canceled or ended elsewhere is not reported as stuck.
            if not 400 <= err.status < 500 or (call == "complete" and err.attempts == 1):
                self.log.error(f"could not {call} job", error=str(err))
                return err
            status = await self._status()
            if status == JobStatus.CANCELED:
                self.log.info(f"job was canceled on the platform; not sent: {call}")
                return JobCancelled(self.job_id) if call == "complete" else None
            if status in _TERMINAL:
                self.log.info(f"job had already ended; not sent again: {call}", status=str(status))
                return None
            self.log.error(f"{call} was refused", error=str(err))
            return err
        except FlatfileConnectionError as err:
            self.log.error(f"could not {call} job", error=str(err))
            return err


async def _shielded(coro: Coroutine[Any, Any, T]) -> T:
    """Run a final API call so that cancelling the caller does not abandon it."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return await asyncio.shield(task)


def job_lifecycle(
    event: FlatfileEvent | Mapping[str, Any] | Event,
    *,
    client: FlatfileClient | None = None,
    timeout: float | None = None,
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
    debug: bool = False,
) -> JobLifecycle:
    """Run a job's body between an ack and a complete/fail: ``async with job_lifecycle(event) as tick``.

    Args:
        event: the ``job:ready`` event (as a callback receives it, raw JSON, or an Event).
        client: the API client; by default the listener's (``event.client``), or one built
            from the environment.
        timeout: seconds the body may run before it is cancelled and the job failed.
        progress_interval: minimum seconds between progress updates; ``0`` sends every
            tick in order, call for call like Flatfile's JS handler.
        debug: log the job's receipt and completion at info level.

    Raises:
        InvalidEventError: the event has no ``context.jobId``.
        JobCancelled: (out of the block) the platform canceled the job.
        JobTimeout: (out of the block) the body ran past ``timeout``; the job was failed.
    """
    return JobLifecycle(
        event, client=client, timeout=timeout, progress_interval=progress_interval, debug=debug
    )
