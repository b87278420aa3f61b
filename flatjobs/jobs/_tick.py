"""``Tick``: how a job handler reports progress, and how those reports reach the API.

:class:`Tick` is a protocol: the lifecycle hands out an implementation that talks to the
API; :class:`flatjobs.testing.RecordingTick` is one for unit tests.

The lifecycle's implementation sends progress through a :class:`Coalescer`:

* a tick costs O(1) and takes effect at once; awaiting it is optional;
* the latest values win: at most one update is in flight, and updates go out at least
  ``interval`` seconds apart (``0`` sends every tick in order, as Flatfile's JS handler);
* awaiting a tick waits at most for the one update already in flight (backpressure of one
  round trip), never for the interval: a tick that is coalesced resolves at once;
* while nothing else goes out, the current progress is re-sent every ``heartbeat`` seconds,
  so the job's ``updatedAt`` shows the job is alive;
* the last value is never dropped: closing flushes it.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import math
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Literal, Protocol, runtime_checkable

from flatjobs.client import FlatfileClient
from flatjobs.log import get_logger
from flatjobs.models import Job, JobCompleteDetails
from flatjobs.models._progress import ProgressUpdate, check_eta, check_info, check_progress
from flatjobs.observe._instruments import INSTRUMENTS

from ._outcomes import CompletionValue, completion_details

__all__ = ["RESOLVED", "Coalescer", "JobRun", "JobTick", "Tick"]

_log = get_logger("flatjobs.tick")


@runtime_checkable
class Tick(Protocol):
    """What a job handler gets to report on its job: ``async def handler(event, tick)``.

    ``await tick(50, "half way")`` reports progress; ``tick.complete_with(...)`` sets what
    the job completes with; ``await tick.job()`` reads the job; ``await tick.split(n)``
    splits it into parts.
    """

    @property
    def job_id(self) -> str:
        """The id of the job being reported on."""
        ...

    @property
    def cancelled(self) -> bool:
        """True once the platform has canceled the job (the body is being cancelled)."""
        ...

    def __call__(
        self,
        progress: float,
        info: str | None = None,
        *,
        eta: dt.datetime | dt.timedelta | None = None,
    ) -> Awaitable[Job | None]:
        """Report ``progress`` (0..100) with optional ``info`` text and ``eta``.

        Takes effect at once; the awaitable completes when the update was delivered,
        coalesced or superseded (its result is the job as the API returned it, or None).

        Raises:
            ValueError: ``progress`` is not a number within 0..100.
            TypeError: ``info`` is not a string, or ``eta`` not a datetime or timedelta.
            RuntimeError: the job has already ended.
        """
        ...

    def complete_with(self, value: CompletionValue) -> None:
        """Set what the job completes with on a clean exit: a message, a ``JobOutcome``
        or ``JobCompleteDetails`` (default: the message ``"Job complete"``)."""
        ...

    async def job(self) -> Job:
        """The job as the API has it now: ``part_data``, ``input``..."""
        ...

    async def split(
        self, parts: int | list[dict[str, Any]], *, run_in_parallel: bool | None = None
    ) -> Job:
        """Split the job into ``parts`` (a count, or one dict of part data per part); the
        job then ends when its parts have, not when the handler returns."""
        ...


# --------------------------------------------------------------------------- awaitables


class Resolved:
    """An awaitable that is already done (with None): what a coalesced tick returns.

    Not a coroutine, so leaving it un-awaited warns of nothing, and one instance serves
    every tick: a tick that is coalesced allocates nothing.
    """

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return None
        yield  # a generator that returns at once


RESOLVED = Resolved()


class Delivery:
    """Awaits one update in flight. Cancelling the awaiting task does not cancel the
    update: other ticks may be waiting on it too."""

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[Job | None]) -> None:
        self._future = future

    def __await__(self) -> Generator[Any, None, Job | None]:
        future = self._future
        if future.done():
            return future.result()
        return (yield from asyncio.shield(future).__await__())


# --------------------------------------------------------------------------- the sender

Send = Callable[[ProgressUpdate], Awaitable["Job | None"]]


class Coalescer:
    """Delivers one job's progress updates through ``send`` (see the module docstring).

    ``send`` must not raise for an API failure (it logs and returns None); anything it
    raises anyway is logged here, so a waiter is never left hanging.
    """

    def __init__(
        self,
        send: Send,
        *,
        interval: float,
        heartbeat: float | None = None,
        name: str = "job",
    ) -> None:
        self._send = send
        self._interval = interval
        self._heartbeat = heartbeat
        self._name = name
        self._loop = asyncio.get_running_loop()
        self._pending: tuple[float, str | None, dt.datetime | None] | None = None
        self._current: ProgressUpdate | None = None  # the last update sent
        self._inflight: Delivery | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._beat: asyncio.TimerHandle | None = None
        self._last_sent = -math.inf
        self._queue: collections.deque[tuple[ProgressUpdate, asyncio.Future[Job | None]]] = (
            collections.deque()
        )
        self._closed = False
        self.sent = 0
        """How many progress updates were sent to the API."""
        self.coalesced = 0
        self._coalesced_reported = 0
        """How many ticks were folded into a later update instead of being sent."""
        self.heartbeats = 0
        """How many of the updates sent were heartbeats."""

    def start_heartbeat(self, progress: ProgressUpdate) -> None:
        """Begin re-sending ``progress`` (the acknowledged state) while nothing else goes out."""
        self._current = progress
        self._last_sent = self._loop.time()
        self._arm_heartbeat()

    def put(
        self, progress: float, info: str | None, eta: dt.datetime | None
    ) -> Awaitable[Job | None]:
        """Take an update whose values are checked already (the tick checks them, once);
        see the module docstring for what the result awaits."""
        if self._closed:
            return RESOLVED  # the job has ended (a body ignoring its timeout): nothing is sent
        if self._interval == 0:
            return self._enqueue(ProgressUpdate.trusted(progress, info, eta))
        if self._pending is not None:
            self.coalesced += 1
        self._pending = (progress, info, eta)
        inflight = self._inflight
        if inflight is not None:
            return inflight
        if self._timer is None:
            delay = self._last_sent + self._interval - self._loop.time()
            if delay <= 0:
                return self._flush()
            self._timer = self._loop.call_later(delay, self._on_timer)
        return RESOLVED

    def _enqueue(self, update: ProgressUpdate) -> Awaitable[Job | None]:
        future: asyncio.Future[Job | None] = self._loop.create_future()
        self._queue.append((update, future))
        if self._task is None:
            self._task = self._loop.create_task(
                self._drain_queue(), name=f"flatjobs-tick-{self._name}"
            )
        return Delivery(future)

    async def _drain_queue(self) -> None:
        try:
            while self._queue:
                update, future = self._queue[0]
                job = await self._deliver(update)
                self._queue.popleft()
                if not future.done():
                    future.set_result(job)
        finally:
            self._task = None
            self._drop_queue()
            self._arm_heartbeat()

    def _flush(self) -> Delivery:
        """Send the pending update now (nothing may be in flight)."""
        assert self._pending is not None
        assert self._inflight is None
        progress, info, eta = self._pending
        self._pending = None
        return self._start(ProgressUpdate.trusted(progress, info, eta))

    def _start(self, update: ProgressUpdate) -> Delivery:
        future: asyncio.Future[Job | None] = self._loop.create_future()
        self._inflight = delivery = Delivery(future)
        self._task = self._loop.create_task(
            self._run(update, future), name=f"flatjobs-tick-{self._name}"
        )
        return delivery

    async def _run(self, update: ProgressUpdate, future: asyncio.Future[Job | None]) -> None:
        job: Job | None = None
        try:
            job = await self._deliver(update)
        finally:
            self._inflight = None
            self._task = None
            if not future.done():
                future.set_result(job)
            if self._pending is not None and not self._closed:
                delay = max(self._last_sent + self._interval - self._loop.time(), 0.0)
                self._timer = self._loop.call_later(delay, self._on_timer)
            else:
                self._arm_heartbeat()

    async def _deliver(self, update: ProgressUpdate) -> Job | None:
        try:
            return await self._send(update)
        except Exception:  # a bug below; never let it strand a waiter or kill the sender
            _log.exception("progress update failed", job_id=self._name)
            return None
        finally:
            self.sent += 1
            self._current = update
            self._last_sent = self._loop.time()
            if INSTRUMENTS:
                INSTRUMENTS.progress_sent(self._name, self.coalesced - self._coalesced_reported)
                self._coalesced_reported = self.coalesced

    def _on_timer(self) -> None:
        self._timer = None
        if self._pending is not None and self._inflight is None and not self._closed:
            self._flush()

    def _arm_heartbeat(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        if self._heartbeat is not None and not self._closed and self._current is not None:
            when = self._last_sent + self._heartbeat
            self._beat = self._loop.call_at(when, self._on_heartbeat)

    def _on_heartbeat(self) -> None:
        self._beat = None
        if self._closed or self._inflight is not None or self._task is not None:
            return  # something is going out anyway; it re-arms the heartbeat when done
        if self._pending is not None or self._current is None:
            return
        self.heartbeats += 1
        self._start(self._current)

    async def close(self, *, flush: bool) -> None:
        """Stop: send the pending update when ``flush`` (else drop it), then wait for what
        is in flight, so no update can land after the job's final call."""
        self._closed = True
        for handle in (self._timer, self._beat):
            if handle is not None:
                handle.cancel()
        self._timer = self._beat = None
        if not flush:
            self._pending = None
            self._drop_queue(keep_first=True)
        while True:
            task = self._task
            if task is not None:
                await asyncio.shield(task)
                continue
            if flush and self._pending is not None:
                self._flush()
                continue
            break
        self._drop_queue()

    def _drop_queue(self, *, keep_first: bool = False) -> None:
        # The first item of the queue may be in flight; it resolves when it lands.
        keep = 1 if keep_first and self._task is not None else 0
        while len(self._queue) > keep:
            _, future = self._queue.pop()
            if not future.done():
                future.set_result(None)


# --------------------------------------------------------------------------- the job's tick


class JobRun:
    """What a job's lifecycle and its tick share about one run of the job: the lifecycle
    writes it, the tick reads it (and marks a split)."""

    __slots__ = ("awaiting_parts", "cancel_reason", "client", "closed", "job_id")

    def __init__(self, job_id: str, client: FlatfileClient) -> None:
        self.job_id = job_id
        self.client = client
        self.closed = False
        """The body has left: no more progress may be reported."""
        self.cancel_reason: Literal["platform", "timeout"] | None = None
        """Why the body is being cancelled, if it is."""
        self.awaiting_parts = False
        """The job was split: it ends when its parts have, not when the body returns."""


class JobTick:
    """The :class:`Tick` a job's lifecycle hands out: progress through a :class:`Coalescer`.

    Beside the protocol, the lifecycle reads :attr:`completion` and calls :meth:`close`.
    """

    __slots__ = ("_coalescer", "_run", "completion")

    def __init__(self, run: JobRun, coalescer: Coalescer) -> None:
        self._run = run
        self._coalescer = coalescer
        self.completion: JobCompleteDetails | None = None
        """What the job completes with on a clean exit (``complete_with``)."""

    def __repr__(self) -> str:
        return f"Tick(job_id={self.job_id!r}, sent={self.sent})"

    @property
    def job_id(self) -> str:
        """The id of the job this tick reports on."""
        return self._run.job_id

    @property
    def cancelled(self) -> bool:
        """True once the platform has canceled the job (the body is being cancelled)."""
        return self._run.cancel_reason == "platform"

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
    ) -> Awaitable[Job | None]:
        """Report ``progress`` (0..100); see :class:`Tick`."""
        progress = check_progress(progress)
        if info is not None:
            check_info(info)
        when = check_eta(eta) if eta is not None else None
        run = self._run
        if run.closed:
            if run.cancel_reason is not None:
                return RESOLVED  # the job is being cancelled: nothing to report
            raise RuntimeError(f"tick() called after job {self.job_id} ended")
        return self._coalescer.put(progress, info, when)

    def complete_with(self, value: CompletionValue) -> None:
        """Set what the job completes with on a clean exit; see :class:`Tick`."""
        self.completion = completion_details(value)

    async def job(self) -> Job:
        """The job as the API has it now (``GET /jobs/{id}``)."""
        return await self._run.client.jobs.get(self.job_id)

    async def split(
        self, parts: int | list[dict[str, Any]], *, run_in_parallel: bool | None = None
    ) -> Job:
        """Split this job into parts; see :class:`Tick`."""
        job = await self._run.client.jobs.split(self.job_id, parts, run_in_parallel=run_in_parallel)
        self._run.awaiting_parts = True
        return job

    def start_heartbeat(self, acknowledged: ProgressUpdate) -> None:
        """Begin re-sending ``acknowledged`` (the ack's progress) while nothing else goes out."""
        self._coalescer.start_heartbeat(acknowledged)

    async def close(self, *, flush: bool) -> None:
        """No more progress: send the last update (``flush``) or drop it, and wait for what
        is in flight, so no update can land after the job's final call."""
        await self._coalescer.close(flush=flush)
