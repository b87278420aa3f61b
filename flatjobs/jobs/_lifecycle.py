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

* progress is coalesced (see :class:`flatjobs.Tick`): awaiting a tick in a loop is fast, and
  the HTTP calls are bounded by time, not by ticks; ``progress_interval=0`` sends every
  tick, in order, as the JS handler does;
* a job's body runs only if the job is ``ready`` when read just before the ack: a second
  ``job:ready`` for a job already executing (elsewhere, or before a restart) does not
  start it again;
* a job is never left ``executing``: a failed first ack, a ``complete`` that did not land,
  a timeout and a shutdown all end in a ``fail`` attempt with a readable message and, when
  the failure is not the handler's, a Retry button (every final call is made by
  :func:`~flatjobs.jobs._ending.end_job`: retried, checked, read back when its answer is
  lost); what cannot be delivered is logged as an error with the job id;
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
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Literal

from flatjobs.client import FlatfileClient
from flatjobs.errors import (
    FlatfileAPIError,
    FlatfileError,
    InvalidEventError,
    JobAlreadyRunning,
    JobCancelled,
    JobError,
    JobSkipped,
    JobTimeout,
    UnexpectedResponseError,
)
from flatjobs.events._event import Claim, FlatfileEvent
from flatjobs.log import get_logger, shorten
from flatjobs.models import (
    TERMINAL_STATUSES,
    Event,
    Job,
    JobCompleteDetails,
    JobStatus,
    ProgressUpdate,
)
from flatjobs.observe._instruments import INSTRUMENTS
from flatjobs.observe._results import JobResult, JobStatusEnded

from ._claims import claims
from ._ending import Ended, Ending, end_job, read_status, spawn
from ._options import DEFAULT_HEARTBEAT, DEFAULT_PROGRESS_INTERVAL, JobOptions
from ._outcomes import (
    DEFAULT_COMPLETION,
    STOPPED_MESSAGE,
    failure_details,
    message_of,
    retry_failure,
)
from ._tick import Coalescer, JobRun, JobTick

__all__ = ["JobLifecycle", "job_lifecycle"]

CANCEL_GRACE: Final = 1.0
"""Seconds a body gets to stop after a timeout cancels it, before its job is failed anyway."""
_log = get_logger("flatjobs.lifecycle")

# The hot path's constant body, built once (the exact wire form of Flatfile's handler).
_ACCEPTED: Final = {"info": "Accepted", "progress": 0}
_ACCEPTED_PROGRESS: Final = ProgressUpdate(0, "Accepted")

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


class JobLifecycle:
    """The async context manager returned by :func:`job_lifecycle`.

    ``claim``: the job's claim, when whoever took the event in claimed it (else the
    lifecycle claims the job itself on entry, and releases it on exit).
    """

    def __init__(
        self,
        event: FlatfileEvent | Mapping[str, Any] | Event,
        *,
        client: FlatfileClient | None = None,
        options: JobOptions | None = None,
        acknowledge: bool = True,
        claim: Claim | None = None,
    ) -> None:
        self.event = FlatfileEvent.parse(event)
        if self.event.job_id is None:
            raise InvalidEventError(
                f"event {self.event.id!r} ({shorten(self.event.topic, 80)}) has no "
                "context.jobId: job_lifecycle needs the event of a job"
            )
        self.job_id: str = self.event.job_id
        self.options = options or JobOptions()
        self._client = client
        self._acknowledge = acknowledge
        self._claim = claim if claim is not None and claim.job_id == self.job_id else None
        self._own_claim: Claim | None = None
        self._ended = False  # the job was ended from outside the body (a timeout's watchdog)
        self._started = time.perf_counter()
        self._task: asyncio.Task[Any] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._run: JobRun | None = None
        self._tick: JobTick | None = None
        self.log = _log.bind(job_id=self.job_id, event_id=self.event.id, topic=self.event.topic)

    @property
    def client(self) -> FlatfileClient:
        """The client the job's calls use (given, the event's listener's, or from the environment)."""
        if self._client is None:
            try:
                self._client = self.event.client
            except RuntimeError:  # an event no listener dispatched
                self._client = FlatfileClient()
        return self._client

    @property
    def timeout(self) -> float | None:
        """Seconds the body may run (None: no limit)."""
        return self.options.timeout

    # ----------------------------------------------------------- entering

    async def __aenter__(self) -> JobTick:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("job_lifecycle must be used inside an asyncio task")
        if self._claim is None:  # used directly: the lifecycle claims the job itself
            self._own_claim = self._claim = claims().claim(self.job_id)
            if self._claim is None:
                raise JobAlreadyRunning(self.job_id)
        self._task = task
        self._run = run = JobRun(self.job_id, self.client)
        if INSTRUMENTS:
            INSTRUMENTS.job_received(self.job_id, self.event)
        if self.options.debug:
            self.log.info("job received")
        if self._acknowledge:
            try:
                await self._check_runnable()
                await self._ack()
            except BaseException:
                self._leave()
                raise
            self._alive()
        if INSTRUMENTS:
            INSTRUMENTS.job_started(self.job_id, self.event.payload.get("job"))
        coalescer = Coalescer(
            self._send_progress,
            interval=self.options.progress_interval,
            heartbeat=self.options.heartbeat,
            name=self.job_id,
        )
        self._tick = tick = JobTick(run, coalescer)
        if self._acknowledge:
            tick.start_heartbeat(_ACCEPTED_PROGRESS)
        if self.options.limit is not None:
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(self.options.limit, self._on_timeout))
        return tick

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
            _warn_once(
                self.log,
                "executing",
                "a job:ready came for a job already executing, not in this process: another "
                "listener runs it, or the one that ran it stopped (the reconciliation sweep "
                "ends such jobs); its body is not started again",
            )
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
        # A job still ready is acknowledged with the reason first (only an executing job
        # can fail), then failed.
        details = retry_failure(f"The job could not be started: {err}")
        await self._end("fail", details, status=status)
        self._report("failed", err)
        raise err

    # ----------------------------------------------------------- progress

    async def _send_progress(self, update: ProgressUpdate) -> Job | None:
        try:
            job = await self.client.jobs.send_progress(self.job_id, update)
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
        run = self._run
        if run is not None and not run.closed and run.cancel_reason is None and self._task:
            run.cancel_reason = reason
            self._task.cancel()

    def _on_timeout(self) -> None:
        self._cancel_body("timeout")
        if self._run is not None and self._run.cancel_reason == "timeout":
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(CANCEL_GRACE, self._timeout_watchdog))

    def _timeout_watchdog(self) -> None:
        """The body is still running after its cancellation: fail the job without it."""
        assert self._run is not None
        assert self._tick is not None
        assert self.options.timeout is not None
        if self._run.closed:
            return
        self.log.error(
            "job timed out and its body ignores cancellation; failing the job",
            timeout=self.options.timeout,
        )
        self._ended = True
        error = JobTimeout(self.job_id, self.options.timeout)
        tick = self._tick

        async def end() -> None:
            await tick.close(flush=False)
            await self._end("fail", failure_details(error))
            self._report("failed", error)

        spawn(end())

    def _report(self, status: JobStatusEnded, error: BaseException | None = None) -> None:
        """The job ended as ``status``: tell the observer and the instruments."""
        seconds = time.perf_counter() - self._started
        INSTRUMENTS.job_ended(JobResult(self.job_id, status, error), seconds, self._job_name)

    @property
    def _job_name(self) -> str | None:
        name = self.event.payload.get("job")
        return name if isinstance(name, str) else None

    def _alive(self) -> None:
        if INSTRUMENTS:
            INSTRUMENTS.job_alive(self.job_id)

    async def _status(self) -> str | None:
        return await read_status(self.client, self.job_id, self.log)

    async def _end(
        self,
        call: Literal["complete", "fail"],
        details: JobCompleteDetails,
        status: str | None = None,
    ) -> Ending:
        """Make the final call (:func:`end_job`). A job this process ran that someone else
        ended is the sign of a second listener on the environment: worth a warning."""
        ending = await end_job(self.client, self.job_id, call, details, log=self.log, status=status)
        if ending.how is Ended.ELSEWHERE:
            _warn_once(
                self.log,
                "ended",
                "a job this process ran was ended by someone else: another listener may be "
                "running the same jobs",
            )
        elif ending.how is Ended.NOT_ENDED and call == "fail":
            self.log.error("job could not be failed; it may stay executing")
        return ending

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
            self._leave()

    def _leave(self) -> None:
        if INSTRUMENTS:
            INSTRUMENTS.job_left(self.job_id)
        if self._own_claim is not None:
            self._own_claim.release()

    async def _exit(self, exc: BaseException | None) -> bool:
        run, tick, task = self._run, self._tick, self._task
        assert run is not None
        assert tick is not None
        assert task is not None
        run.closed = True
        for timer in self._timers:
            timer.cancel()
        reason = run.cancel_reason
        # Our own cancellation (platform cancel, timeout) is absorbed here; one that is
        # not only ours (a shutdown as well) goes on to the caller.
        ours = isinstance(exc, asyncio.CancelledError) and reason is not None
        ours = ours and task.uncancel() == 0
        if self._ended:  # failed already, by the timeout watchdog
            assert self.options.timeout is not None
            self.log.warning("the body of a timed-out job has finally stopped")
            raise JobTimeout(self.job_id, self.options.timeout) from None
        if exc is not None and not isinstance(exc, Exception) and not ours:
            return await self._stopped(tick, exc)
        if reason is not None:
            return await self._cancelled(tick, reason, exc)
        await tick.close(flush=True)
        if exc is not None:
            return await self._raised(exc)
        if run.awaiting_parts:
            if self.options.debug:
                self.log.info("job split; it ends when its parts have completed")
            self._report("split")
            return False
        return await self._complete(tick.completion or DEFAULT_COMPLETION)

    async def _stopped(self, tick: JobTick, exc: BaseException) -> bool:
        """A shutdown, KeyboardInterrupt, SystemExit: the process is going away. The job is
        failed so the user can retry it."""
        await tick.close(flush=False)
        self.log.warning("listener stopped while the job ran; failing it so it can be retried")
        await self._end("fail", retry_failure(STOPPED_MESSAGE))
        self._report("failed", exc)
        return False

    async def _cancelled(
        self, tick: JobTick, reason: Literal["platform", "timeout"], exc: BaseException | None
    ) -> bool:
        """The body was cancelled by the lifecycle: the platform canceled the job, or it
        ran past its timeout (then the job is failed)."""
        await tick.close(flush=False)
        if exc is None:
            self.log.warning("the job's body ignored its cancellation", reason=reason)
        if reason == "platform":
            self.log.info("job was canceled on the platform; body cancelled")
            self._report("canceled")
            raise JobCancelled(self.job_id) from None
        assert self.options.timeout is not None
        error = JobTimeout(self.job_id, self.options.timeout)
        self.log.error("job timed out; failing it", timeout=self.options.timeout)
        await self._end("fail", failure_details(error))
        self._report("failed", error)
        raise error from None

    async def _raised(self, exc: BaseException) -> bool:
        """The body raised: the job is failed with what the user reads of the exception."""
        if isinstance(exc, JobError):  # chosen by the handler: the user sees the message
            self.log.info("job failed with a user-facing error", error=message_of(exc))
        else:
            self.log.error("job failed", error=message_of(exc), exc_info=exc)
        await self._end("fail", failure_details(exc))
        self._report("failed", exc)
        return False

    async def _complete(self, details: JobCompleteDetails) -> bool:
        ending = await self._end("complete", details)
        if ending.how is Ended.DONE:  # one line a job, as a failure has: what, how long
            seconds = round(time.perf_counter() - self._started, 3)
            self.log.info("job completed", job=self._job_name, seconds=seconds)
            self._report("complete")
            return False
        if ending.how is Ended.CANCELED:
            self._report("canceled")
            raise JobCancelled(self.job_id)
        if ending.how is Ended.ELSEWHERE:
            self._report("skipped")
            return False
        error = ending.error
        assert error is not None
        failure = retry_failure(f"The job could not be completed: {error}")
        if (await self._end("fail", failure)).how is not Ended.DONE:
            self.log.error(
                "job could not be completed nor failed; it may stay executing", error=str(error)
            )
        self._report("failed", error)
        raise error


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
        debug: log the job's receipt at info level (its completion always is).

    Raises:
        InvalidEventError: the event has no ``context.jobId``.
        JobCancelled: (out of the block) the platform canceled the job.
        JobTimeout: (out of the block) the body ran past ``timeout``; the job was failed.
    """
    options = JobOptions(
        timeout=timeout, progress_interval=progress_interval, heartbeat=heartbeat, debug=debug
    )
    return JobLifecycle(event, client=client, options=options)
