"""The runner: takes events from a source and dispatches them to a listener concurrently.

>>> import asyncio
>>> from flatjobs import Jobs, Listener, MemorySource
>>> from flatjobs.testing import make_event
>>> listener = Listener()
>>> @listener.on("records:*")
... async def changed(event) -> None:
...     print("records changed in", event.context.sheet_id)
>>> async def main() -> None:
...     source = MemorySource([make_event("records:created", context={"sheetId": "us_sh_1"})])
...     source.close()                        # a source that ends; a PollingSource does not
...     stats = await run(listener, source)   # in production: until SIGINT or SIGTERM
...     print(stats.dispatched, "dispatched")
>>> asyncio.run(main())
records changed in us_sh_1
1 dispatched

* Distinct events run concurrently, up to ``concurrency``; the callbacks of one event keep
  their order (the listener runs them one after another).
* Each event is checked once, here, where it enters (:meth:`FlatfileEvent.parse`): a
  malformed one (not JSON, not an object, no topic or context, a ``job:ready`` without a
  well-formed job id) is logged with what was wrong and skipped.
* The source delivers each event once (sources own de-duplication); a ``job:ready`` for a
  job that is already running in this process is skipped, so one job never runs in two
  handlers at once (the lifecycle's registry of running jobs is the one guard).
* Stopping (``stop()``, or SIGINT/SIGTERM with ``handle_signals``) stops taking events,
  lets in-flight events finish within ``grace_period`` seconds, then cancels them: their
  jobs are failed with a Retry button. A second signal cancels at once.
* A job body that ignores its cancellation cannot hold the stop up: ``cancel_grace``
  seconds after it was cancelled, the runner fails its job with a Retry button itself,
  abandons the body and returns (``RunStats.abandoned`` counts them).
* ``sweep`` (a :class:`flatjobs.Reconciler`) is a second source beside the events: jobs
  still ready that no event brought, and orphans, come in through the same door.
* A :class:`~flatjobs.sources.Delivery` with ``done`` has it awaited once the runner is
  through with its event (dispatched, or skipped): a broker's source acknowledges there.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Protocol

import attrs

from flatjobs._seconds import check_seconds
from flatjobs.errors import InvalidEventError
from flatjobs.events._event import FlatfileEvent
from flatjobs.events._topics import JOB_READY, JOB_RUNNING_TOPICS
from flatjobs.jobs._claims import claims
from flatjobs.jobs._ending import Ended, end_job
from flatjobs.jobs._outcomes import STOPPED_MESSAGE, retry_failure
from flatjobs.listener._listener import Listener
from flatjobs.log import get_logger, shorten
from flatjobs.observe._instruments import INSTRUMENTS
from flatjobs.observe._results import DispatchResult
from flatjobs.sources import Delivery, EventSource

__all__ = ["RunStats", "Runner"]

_log = get_logger("flatjobs.runner")


@attrs.define
class RunStats:
    """What a run did."""

    received: int = 0
    dispatched: int = 0
    invalid: int = 0
    duplicates: int = 0
    """Events the source dropped as already delivered (read from the source)."""
    busy_jobs: int = 0
    cancelled: int = 0
    abandoned: int = 0
    """Job bodies that ignored their cancellation at shutdown; their jobs were failed."""


class Runner:
    """Runs a listener over an event source; see the module docstring."""

    def __init__(
        self,
        listener: Listener,
        source: EventSource,
        *,
        concurrency: int = 50,
        grace_period: float = 30.0,
        cancel_grace: float = 5.0,
        sweep: EventSource | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        check_seconds("grace_period", grace_period)
        check_seconds("cancel_grace", cancel_grace)
        self.listener = listener
        self.source = source
        self.sweep = sweep
        self.concurrency = concurrency
        self.grace_period = grace_period
        self.cancel_grace = cancel_grace
        self.stats = RunStats()
        self._tasks: dict[asyncio.Task[None], FlatfileEvent] = {}
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._interrupted = False
        self._slots = asyncio.Semaphore(concurrency)

    @property
    def in_flight(self) -> int:
        """How many events are being dispatched now."""
        return len(self._tasks)

    def stopping_notice(self) -> str:
        """What a :meth:`stop` called now does, in a sentence for whoever pressed Ctrl-C."""
        jobs = sum(event.topic in JOB_RUNNING_TOPICS for event in self._tasks.values())
        others = self.in_flight - jobs
        if self._stop.is_set():
            return f"stopping now: {jobs} running job(s) are failed with a Retry button"
        if not self.in_flight:
            return "stopping: nothing is running"
        waiting = " and ".join(
            text
            for count, text in ((jobs, f"{jobs} running job(s)"), (others, f"{others} event(s)"))
            if count
        )
        return (
            f"stopping: no new events are taken; waiting up to {self.grace_period:g}s for "
            f"{waiting} (Ctrl-C again to stop now)"
        )

    def stop(self) -> None:
        """Stop taking events and drain (safe from a signal handler); a second call
        cancels what is in flight at once."""
        if self._stop.is_set():
            self._force.set()
        self._stop.set()

    async def run(self) -> RunStats:
        """Run until the source ends or :meth:`stop` is called; returns the stats."""
        consumer = asyncio.create_task(self._consume(self.source), name="flatjobs-consume")
        sweeper = (
            asyncio.create_task(self._consume(self.sweep), name="flatjobs-sweep")
            if self.sweep is not None
            else None
        )
        stopper = asyncio.create_task(self._stop.wait())
        await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not consumer.done():
            _log.info("stopping: no new events are taken", in_flight=self.in_flight)
        else:
            stopper.cancel()
        for task in (consumer, sweeper):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for source in (self.source, self.sweep):
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
        await self._drain()
        if not consumer.cancelled():
            consumer.result()  # a source that failed raises here
        self.stats.duplicates = getattr(self.source, "duplicates", 0)
        return self.stats

    async def _drain(self) -> None:
        if not self._tasks:
            return
        if not self._stop.is_set():
            await asyncio.gather(*self._tasks, return_exceptions=True)  # the source ended
            return
        # Wait for everything in flight, the grace period, or a second stop, first of three.
        everything = asyncio.create_task(asyncio.wait(list(self._tasks)))
        force = asyncio.create_task(self._force.wait())
        await asyncio.wait(
            {everything, force}, timeout=self.grace_period, return_when=asyncio.FIRST_COMPLETED
        )
        everything.cancel()
        force.cancel()
        left = [t for t in self._tasks if not t.done()]
        if not left:
            return
        _log.warning("grace period over; cancelling in-flight events", count=len(left))
        self.stats.cancelled += len(left)
        for task in left:
            task.cancel()
        _, stuck = await asyncio.wait(left, timeout=self.cancel_grace)
        if stuck:
            await self._abandon(stuck)

    async def _abandon(self, stuck: set[asyncio.Task[None]]) -> None:
        """Fail the jobs of bodies that ignored their cancellation, and leave them be."""
        events = [self._tasks[t] for t in stuck]
        _log.error(
            "some job bodies ignore cancellation; failing their jobs and abandoning them",
            count=len(stuck),
            event_ids=[e.id for e in events][:20],
        )
        self.stats.abandoned += len(stuck)
        details = retry_failure(STOPPED_MESSAGE)
        job_ids = {e.job_id for e in events if e.job_id and e.topic in JOB_RUNNING_TOPICS}
        client = self.listener.client
        endings = await asyncio.gather(
            *(
                end_job(client, job_id, "fail", details, log=_log.bind(job_id=job_id))
                for job_id in job_ids
            )
        )
        for job_id, ending in zip(job_ids, endings, strict=True):
            if ending.how is Ended.NOT_ENDED:
                _log.error("could not fail the job of an abandoned body", job_id=job_id)

    async def _consume(self, source: EventSource) -> None:
        name = "sweep" if source is self.sweep else type(source).__name__.removesuffix("Source")
        async for raw in source:
            done = raw.done if isinstance(raw, Delivery) else None
            self.stats.received += 1
            if INSTRUMENTS:
                INSTRUMENTS.event_received(name.lower())
            try:  # the door: an event is checked here, once
                event = FlatfileEvent.parse(raw)
            except InvalidEventError as exc:
                self.stats.invalid += 1
                if INSTRUMENTS:
                    INSTRUMENTS.event_invalid()
                inner = raw.raw if isinstance(raw, Delivery) else raw
                event_id = inner.get("id") if isinstance(inner, dict) else None
                _log.error(
                    "malformed event skipped",
                    problem=str(exc),
                    event_id=shorten(repr(event_id), 200),
                )
                if done is not None:
                    await _settle(done, event_id)
                continue
            await self._slots.acquire()
            job_id = event.job_id if event.topic == JOB_READY else None
            if job_id is not None:  # claimed here, once; the claim travels with the event
                event.claim = claims().claim(job_id)
                if event.claim is None:
                    self._slots.release()
                    self.stats.busy_jobs += 1
                    _log.warning(
                        "job is already running; event skipped", job_id=job_id, event_id=event.id
                    )
                    if done is not None:
                        await _settle(done, event.id)
                    continue
            headers = raw.headers if INSTRUMENTS and isinstance(raw, Delivery) else None
            task = asyncio.create_task(self._dispatch(event, done, headers))
            self._tasks[task] = event
            self.stats.dispatched += 1
            if INSTRUMENTS:
                INSTRUMENTS.event_dispatched(event)

    async def _dispatch(
        self,
        event: FlatfileEvent,
        done: Callable[[], Awaitable[None]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        result: DispatchResult | None = None
        if INSTRUMENTS:
            INSTRUMENTS.dispatch_started(event, headers)
        try:
            result = await self.listener.dispatch(event)
        except InvalidEventError as exc:
            self.stats.invalid += 1
            _log.error("malformed event skipped", problem=str(exc), event_id=event.id)
        except Exception:
            _log.exception("dispatch failed", event_id=event.id, topic=event.topic)
        except (KeyboardInterrupt, SystemExit) as exc:
            # A handler asked the process to stop: as on Ctrl-C, every other job finishes
            # or is failed with a Retry button within the grace period (this one's job was
            # failed so already), and the process then exits as it does on Ctrl-C.
            _log.error(
                f"a callback raised {type(exc).__name__}: the listener stops, as on Ctrl-C",
                event_id=event.id,
                topic=event.topic,
            )
            if not (self._interrupted or self._stop.is_set()):  # never a forced stop
                self._interrupted = True
                (_interrupt.get() or self.stop)()
        finally:
            if INSTRUMENTS:
                INSTRUMENTS.dispatch_ended(event, result)
            if event.claim is not None:  # made at the door: released here
                event.claim.release()
            try:
                if done is not None:
                    await _settle(done, event.id)
            finally:
                self._slots.release()
                task = asyncio.current_task()
                if task is not None:
                    self._tasks.pop(task, None)


async def _settle(done: Callable[[], Awaitable[None]], event_id: object) -> None:
    """Tell the source the runner is through with an event (its ``Delivery.done``)."""
    try:
        await done()
    except Exception:
        _log.exception(
            "settling an event with its source failed", event_id=shorten(repr(event_id), 200)
        )


class Stoppable(Protocol):
    """A runner a signal can stop: :class:`Runner`, or the distributed mode's."""

    def stopping_notice(self) -> str: ...

    def stop(self) -> None: ...


def stop_on_signal(runner: Stoppable, on_signal: Callable[[str], None] | None = None) -> None:
    """Stop ``runner`` (a signal handler), first telling ``on_signal`` what that does."""
    if on_signal is not None:
        on_signal(runner.stopping_notice())
    runner.stop()


# What a callback raising KeyboardInterrupt or SystemExit stops: the runner a signal
# stops (set by signals_stop, for the tasks started inside it), else the runner itself.
_interrupt: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "flatjobs_interrupt", default=None
)


@contextlib.contextmanager
def signals_stop(
    runner: Stoppable, on_signal: Callable[[str], None] | None = None, *, enabled: bool = True
) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM stop ``runner`` (:func:`stop_on_signal`), where the
    loop can handle signals; the handlers are removed on exit. A callback raising
    ``KeyboardInterrupt`` or ``SystemExit`` stops it the same way, signals or not."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if enabled:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop_on_signal, runner, on_signal)
                installed.append(sig)
    token = _interrupt.set(functools.partial(stop_on_signal, runner, on_signal))
    try:
        yield
    finally:
        _interrupt.reset(token)
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run(
    listener: Listener,
    source: EventSource,
    *,
    concurrency: int = 50,
    grace_period: float = 30.0,
    cancel_grace: float = 5.0,
    sweep: EventSource | None = None,
    handle_signals: bool = True,
    on_signal: Callable[[str], None] | None = None,
    started: Callable[[], None] | None = None,
) -> RunStats:
    """Run ``listener`` over ``source`` (and ``sweep``, a :class:`flatjobs.Reconciler`);
    with ``handle_signals``, SIGINT and SIGTERM stop it gracefully (a second signal cancels
    in-flight work at once), and ``on_signal`` is told what stopping does
    (:meth:`Runner.stopping_notice`), to say it at once. ``started`` is called once the
    signal handlers are in place and events are about to be taken."""
    runner = Runner(
        listener,
        source,
        concurrency=concurrency,
        grace_period=grace_period,
        cancel_grace=cancel_grace,
        sweep=sweep,
    )
    with signals_stop(runner, on_signal, enabled=handle_signals):
        if started is not None:
            started()
        return await runner.run()
