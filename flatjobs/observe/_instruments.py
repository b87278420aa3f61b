"""The instruments' hooks (:class:`Instrument`), the registry that calls them
(:data:`INSTRUMENTS`), and :func:`observe_jobs`; documented in :mod:`flatjobs.instruments`."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import aiohttp

from flatjobs.client._observe import HTTP_INSTRUMENTS, HttpCall
from flatjobs.errors import JobTimeout
from flatjobs.events._event import FlatfileEvent
from flatjobs.log import get_logger

from ._results import DispatchResult, JobResult

__all__ = [
    "INSTRUMENTS",
    "HttpCall",
    "Instrument",
    "Instruments",
    "add_instrument",
    "event_age",
    "forward",
    "instruments",
    "job_outcome",
    "label",
    "observe_jobs",
]

_log = get_logger("flatjobs.instruments")


class Instrument:
    """What to watch; every method is a no-op unless overridden."""

    # ----------------------------------------------------------- events

    def event_received(self, source: str) -> None:
        """An event came from a source (``"polling"``, ``"push"``, ``"sweep"``...): the
        source's class name without ``Source``, in lower case."""

    def event_invalid(self) -> None:
        """An event was malformed, logged and skipped."""

    def event_duplicate(self) -> None:
        """An event was dropped as delivered already."""

    def event_dispatched(self, event: FlatfileEvent) -> None:
        """An event went to the listener (its dispatch task was created)."""

    def event_forwarded(self, raw: Any, headers: dict[str, str]) -> None:
        """An event is about to be published to another process (the distributed mode's
        broker): add to ``headers`` what should travel with it (trace context). The
        process that takes it passes those headers on as
        :attr:`flatjobs.sources.Delivery.headers`."""

    def dispatch_started(self, event: FlatfileEvent, headers: Mapping[str, str] | None) -> None:
        """The listener starts on an event, in the task that runs it; ``headers`` are
        those of its delivery (:attr:`flatjobs.sources.Delivery.headers`), if any."""

    def dispatch_ended(self, event: FlatfileEvent, result: DispatchResult | None) -> None:
        """The listener is done with an event, in the task that ran it: ``result`` says
        which callbacks ran and which failed; None when the dispatch raised or was
        cancelled."""

    # ----------------------------------------------------------- jobs

    def job_received(self, job_id: str, event: FlatfileEvent) -> None:
        """A job's lifecycle begins (it is claimed here; its ack is next), in the task
        that runs it. Always followed by :meth:`job_left` in the same task."""

    def job_started(self, job_id: str, job_name: str | None) -> None:
        """A job was acknowledged and its body starts."""

    def job_alive(self, job_id: str) -> None:
        """A running job showed the platform it is alive (its ack, progress, heartbeats)."""

    def job_ended(self, result: JobResult, seconds: float, job_name: str | None) -> None:
        """A job handled here ended (``result.status``: complete, failed, canceled...);
        ``seconds`` since its lifecycle began. It may come from another task than the
        job's (a timed-out body that ignores its cancellation is failed without it)."""

    def job_left(self, job_id: str) -> None:
        """A job's lifecycle is left (its block exited, or entering it failed), in the task
        that called :meth:`job_received`."""

    def job_orphaned(self, job_id: str, job_name: str | None, rerun: bool) -> None:
        """A job left ``executing`` by a worker that stopped was found (by the sweep, or a
        lapsed lease): run again when ``rerun``, else failed with a Retry button."""

    def progress_sent(self, job_id: str, coalesced: int) -> None:
        """A progress update went out; ``coalesced`` ticks were folded into it since the last."""

    # ----------------------------------------------------------- HTTP

    def http_started(self, endpoint: str, method: str) -> None:
        """An API call begins, in the caller's task: its endpoint name (``jobs.ack``)."""

    def http_retry(self, endpoint: str, method: str, attempt: int, status: int | None) -> None:
        """Attempt number ``attempt`` of a call failed (``status``, None when no answer
        came) and the call is about to be sent again."""

    def http_call(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        """An HTTP call to the API ended: its endpoint name (``jobs.ack``), its status
        (None when no answer came), and how long it took, retries included."""

    def aiohttp_trace_configs(self) -> list[aiohttp.TraceConfig]:
        """Trace configs for each aiohttp session a :class:`~flatjobs.FlatfileClient` opens
        from now on (a session lent to a client is the lender's to configure)."""
        return []


class Instruments:
    """The registry flatjobs calls: each hook of :class:`Instrument` is a method here that
    calls it on every instrument added, logging and dropping what one raises.

    It is true while an instrument is added: ``if INSTRUMENTS:`` keeps a hot path free of
    them. :meth:`job_ended` also tells the callback of :func:`observe_jobs`, instruments or
    not. The HTTP hooks are the client's to call (``flatjobs.client``'s
    ``HTTP_INSTRUMENTS``); :meth:`add` registers an instrument there too.
    """

    def __init__(self) -> None:
        self._members: tuple[Instrument, ...] = ()

    def __bool__(self) -> bool:
        return bool(self._members)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._members)

    def add(self, instrument: Instrument) -> Callable[[], None]:
        """Start calling ``instrument``; returns a function that stops it."""
        self._members = (*self._members, instrument)
        HTTP_INSTRUMENTS.add(instrument)

        def remove() -> None:
            self._members = tuple(m for m in self._members if m is not instrument)
            HTTP_INSTRUMENTS.remove(instrument)

        return remove

    def _each(self, hook: str, call: Callable[[Instrument], object]) -> None:
        for instrument in self._members:
            try:
                call(instrument)
            except Exception:
                _log.exception(
                    "an instrument failed", instrument=type(instrument).__name__, method=hook
                )

    def event_received(self, source: str) -> None:
        """Call :meth:`Instrument.event_received` on every instrument."""
        self._each("event_received", lambda i: i.event_received(source))

    def event_invalid(self) -> None:
        """Call :meth:`Instrument.event_invalid` on every instrument."""
        self._each("event_invalid", lambda i: i.event_invalid())

    def event_duplicate(self) -> None:
        """Call :meth:`Instrument.event_duplicate` on every instrument."""
        self._each("event_duplicate", lambda i: i.event_duplicate())

    def event_dispatched(self, event: FlatfileEvent) -> None:
        """Call :meth:`Instrument.event_dispatched` on every instrument."""
        self._each("event_dispatched", lambda i: i.event_dispatched(event))

    def event_forwarded(self, raw: Any, headers: dict[str, str]) -> None:
        """Call :meth:`Instrument.event_forwarded` on every instrument."""
        self._each("event_forwarded", lambda i: i.event_forwarded(raw, headers))

    def dispatch_started(self, event: FlatfileEvent, headers: Mapping[str, str] | None) -> None:
        """Call :meth:`Instrument.dispatch_started` on every instrument."""
        self._each("dispatch_started", lambda i: i.dispatch_started(event, headers))

    def dispatch_ended(self, event: FlatfileEvent, result: DispatchResult | None) -> None:
        """Call :meth:`Instrument.dispatch_ended` on every instrument."""
        self._each("dispatch_ended", lambda i: i.dispatch_ended(event, result))

    def job_received(self, job_id: str, event: FlatfileEvent) -> None:
        """Call :meth:`Instrument.job_received` on every instrument."""
        self._each("job_received", lambda i: i.job_received(job_id, event))

    def job_started(self, job_id: str, job_name: str | None) -> None:
        """Call :meth:`Instrument.job_started` on every instrument."""
        self._each("job_started", lambda i: i.job_started(job_id, job_name))

    def job_alive(self, job_id: str) -> None:
        """Call :meth:`Instrument.job_alive` on every instrument."""
        self._each("job_alive", lambda i: i.job_alive(job_id))

    def job_ended(self, result: JobResult, seconds: float, job_name: str | None) -> None:
        """Call :meth:`Instrument.job_ended` on every instrument."""
        observer = _observer.get()
        if observer is not None:
            try:
                observer(result)
            except Exception:
                _log.exception("a job observer failed", job_id=result.job_id)
        self._each("job_ended", lambda i: i.job_ended(result, seconds, job_name))

    def job_left(self, job_id: str) -> None:
        """Call :meth:`Instrument.job_left` on every instrument."""
        self._each("job_left", lambda i: i.job_left(job_id))

    def job_orphaned(self, job_id: str, job_name: str | None, rerun: bool) -> None:
        """Call :meth:`Instrument.job_orphaned` on every instrument."""
        self._each("job_orphaned", lambda i: i.job_orphaned(job_id, job_name, rerun))

    def progress_sent(self, job_id: str, coalesced: int) -> None:
        """Call :meth:`Instrument.progress_sent` on every instrument."""
        self._each("progress_sent", lambda i: i.progress_sent(job_id, coalesced))


INSTRUMENTS: Final = Instruments()
"""The instruments in use: what every layer of flatjobs calls at each point."""


def add_instrument(instrument: Instrument) -> Callable[[], None]:
    """Start calling ``instrument``; returns a function that stops it."""
    return INSTRUMENTS.add(instrument)


def instruments() -> list[Instrument]:
    """The instruments in use (a copy)."""
    return list(INSTRUMENTS)


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


# --------------------------------------------------------------------------- helpers


def forward(raw: Any) -> dict[str, str]:
    """The headers to publish with an event sent to another process (the distributed
    mode's broker): what the instruments want carried (``event_forwarded``), such as trace
    context; empty when there are no instruments.

    >>> forward({"id": "us_evt_1", "topic": "job:ready"})
    {}
    """
    headers: dict[str, str] = {}
    if INSTRUMENTS:
        INSTRUMENTS.event_forwarded(raw, headers)
    return headers


def event_age(event: FlatfileEvent, now: dt.datetime | None = None) -> float | None:
    """Seconds from the event's ``createdAt`` (the platform's clock) to ``now`` (ours), at
    least 0; None when the event has no readable ``createdAt``.

    >>> from flatjobs import FlatfileEvent
    >>> event = FlatfileEvent({"topic": "job:ready", "context": {"jobId": "us_jb_1"},
    ...                        "createdAt": "2026-01-01T00:00:00.000Z"})
    >>> event_age(event, dt.datetime(2026, 1, 1, 0, 0, 2, tzinfo=dt.UTC))
    2.0
    """
    created = event.created_at
    if created is None:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    seconds = ((now or dt.datetime.now(dt.UTC)) - created).total_seconds()
    return max(seconds, 0.0)


def job_outcome(result: JobResult) -> str:
    """How a job ended, as one word for a label: ``complete``; ``failed`` (a
    :class:`flatjobs.JobError` the handler chose); ``timed_out``; ``error`` (any other
    failure: a crash, the API, a shutdown); ``canceled``; ``split``; ``skipped``.

    >>> from flatjobs import JobError, JobResult, JobTimeout
    >>> [job_outcome(JobResult("us_jb_1", "failed", e))
    ...  for e in (JobError("bad row"), JobTimeout("us_jb_1", 5.0), RuntimeError("bug"))]
    ['failed', 'timed_out', 'error']
    """
    if result.status != "failed":
        return result.status
    if isinstance(result.error, JobTimeout):
        return "timed_out"
    return "failed" if result.expected else "error"


def label(value: str | None, limit: int = 100) -> str:
    """A text fit for a metric label or a span attribute: at most ``limit`` characters,
    ``""`` for None.

    >>> label("workbook:export"), label(None), len(label("x" * 500))
    ('workbook:export', '', 100)
    """
    if value is None:
        return ""
    return value if len(value) <= limit else value[:limit]
