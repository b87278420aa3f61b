"""The runner: takes events from a source and dispatches them to a listener concurrently.

>>> async def main() -> None:
...     async with FlatfileClient() as client:
...         listener = Listener(client=client).use(jobs)
...         await listener.run(PollingSource(client))    # until SIGINT/SIGTERM

* Distinct events run concurrently, up to ``concurrency``; the callbacks of one event keep
  their order (the listener runs them one after another).
* An event id is dispatched once (bounded memory); a ``job:ready`` for a job whose handler
  is still running is skipped, so one job never runs in two handlers at once.
* A malformed event (not JSON, not an object, no topic or context, a ``job:ready``
  without a job id) is logged with what was wrong and skipped.
* Stopping (``stop()``, or SIGINT/SIGTERM with ``handle_signals``) stops taking events,
  lets in-flight events finish within ``grace_period`` seconds, then cancels them: their
  jobs are failed with a Retry button. A second signal cancels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .errors import InvalidEventError
from .logging import get_logger
from .sources import EventSource, SeenIds, event_key

if TYPE_CHECKING:
    from .listener import Listener

__all__ = ["RunStats", "Runner"]

_log = get_logger("flatjobs.runner")


@attrs.define
class RunStats:
    """What a run did."""

    received: int = 0
    dispatched: int = 0
    invalid: int = 0
    duplicates: int = 0
    busy_jobs: int = 0
    cancelled: int = 0


def _problem(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The event as a dict, or what is wrong with it."""
    if isinstance(raw, bytes | str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            return None, f"not JSON ({exc})"
        except RecursionError:
            return None, "JSON nested too deeply to read"
    if not isinstance(raw, dict):
        return None, f"not a JSON object but {type(raw).__name__}"
    topic = raw.get("topic")
    if not isinstance(topic, str) or not topic:
        return None, f"no topic (got {topic!r:.60})"
    context = raw.get("context")
    if not isinstance(context, Mapping):
        return None, f"no context object (got {type(context).__name__})"
    if topic == "job:ready":
        job_id = context.get("jobId")
        if not isinstance(job_id, str) or not job_id:
            return None, "a job:ready event without context.jobId"
    return raw, None


class Runner:
    """Runs a listener over an event source; see the module docstring."""

    def __init__(
        self,
        listener: Listener,
        source: EventSource,
        *,
        concurrency: int = 50,
        grace_period: float = 30.0,
        dedupe_size: int = 10_000,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if grace_period < 0:
            raise ValueError(f"grace_period must be >= 0 seconds, got {grace_period}")
        self.listener = listener
        self.source = source
        self.concurrency = concurrency
        self.grace_period = grace_period
        self.stats = RunStats()
        self._seen = SeenIds(dedupe_size)
        self._jobs: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)

    @property
    def in_flight(self) -> int:
        """How many events are being dispatched now."""
        return len(self._tasks)

    def stop(self) -> None:
        """Stop taking events and drain (safe from a signal handler); a second call
        cancels what is in flight at once."""
        if self._stop.is_set():
            self._force.set()
        self._stop.set()

    async def run(self) -> RunStats:
        """Run until the source ends or :meth:`stop` is called; returns the stats."""
        consumer = asyncio.create_task(self._consume(), name="flatjobs-consume")
        stopper = asyncio.create_task(self._stop.wait())
        await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not consumer.done():
            _log.info("stopping: no new events are taken", in_flight=self.in_flight)
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        else:
            stopper.cancel()
            consumer.result()  # a source that failed raises here
        aclose = getattr(self.source, "aclose", None)
        if aclose is not None:
            await aclose()
        await self._drain()
        return self.stats

    async def _drain(self) -> None:
        if not self._tasks:
            return
        if not self._stop.is_set():
            await asyncio.gather(*self._tasks, return_exceptions=True)  # the source ended
            return
        # Wait for everything in flight, the grace period, or a second stop, first of three.
        everything = asyncio.create_task(asyncio.wait(set(self._tasks)))
        force = asyncio.create_task(self._force.wait())
        await asyncio.wait({everything, force}, timeout=self.grace_period,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        everything.cancel()
        force.cancel()
        left = [t for t in self._tasks if not t.done()]
        if left:
            _log.warning("grace period over; cancelling in-flight events", count=len(left))
            self.stats.cancelled += len(left)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)

    async def _consume(self) -> None:
        async for raw in self.source:
            self.stats.received += 1
            event, problem = _problem(raw)
            if event is None:
                self.stats.invalid += 1
                event_id = raw.get("id") if isinstance(raw, dict) else None
                _log.error("malformed event skipped", problem=problem, event_id=event_id)
                continue
            if not self._seen.add(event_key(event)):
                self.stats.duplicates += 1
                _log.debug("duplicate event skipped", event_id=event.get("id"))
                continue
            job_id = event["context"].get("jobId") if event["topic"] == "job:ready" else None
            if job_id is not None and job_id in self._jobs:
                self.stats.busy_jobs += 1
                _log.warning("job is already running; event skipped", job_id=job_id,
                             event_id=event.get("id"))  # fmt: skip
                continue
            await self._slots.acquire()
            if job_id is not None:
                self._jobs.add(job_id)
            task = asyncio.create_task(self._dispatch(event, job_id))
            self._tasks.add(task)
            self.stats.dispatched += 1

    async def _dispatch(self, event: dict[str, Any], job_id: str | None) -> None:
        try:
            await self.listener.dispatch(event)
        except InvalidEventError as exc:
            self.stats.invalid += 1
            _log.error("malformed event skipped", problem=str(exc), event_id=event.get("id"))
        except Exception:
            _log.exception("dispatch failed", event_id=event.get("id"), topic=event.get("topic"))
        finally:
            if job_id is not None:
                self._jobs.discard(job_id)
            self._slots.release()
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)


async def run(
    listener: Listener,
    source: EventSource,
    *,
    concurrency: int = 50,
    grace_period: float = 30.0,
    handle_signals: bool = True,
) -> RunStats:
    """Run ``listener`` over ``source``; with ``handle_signals``, SIGINT and SIGTERM stop
    it gracefully (a second signal cancels in-flight work at once)."""
    runner = Runner(listener, source, concurrency=concurrency, grace_period=grace_period)
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, runner.stop)
                installed.append(sig)
    try:
        return await runner.run()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
