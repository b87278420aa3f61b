"""Instruments: what flatjobs tells whoever watches it run (metrics, traces, leases).

An :class:`Instrument` receives a call at each point of an event's and a job's life. Its
methods do nothing by default; subclass it, override what you need, and add it with
:func:`add_instrument`. The Prometheus and OpenTelemetry integrations
(:mod:`flatjobs.prometheus`, :mod:`flatjobs.otel`), the health server's readiness, and the
distributed mode's lease keeper are instruments.

Instruments are called synchronously on the event loop, on the hot path: keep them cheap,
and never let them raise (what they raise is logged and dropped). With no instrument
added, the hot path pays one truth test of a list per point, nothing more.

The hooks come in three kinds:

* points: ``event_received``, ``event_invalid``, ``event_duplicate``, ``event_dispatched``,
  ``event_forwarded``, ``job_started``, ``job_alive``, ``job_ended``, ``job_orphaned``,
  ``progress_sent``, ``http_retry``, ``http_call``;
* scopes, opened and closed in the same task, so that what happens between them happens
  "inside" (a tracer makes spans of them, the inner ones children of the outer):
  ``dispatch_started``/``dispatch_ended`` around one event's dispatch,
  ``job_received``/``job_left`` around one job's lifecycle, and ``http_started``/
  ``http_call`` around one API call (its retries included);
* ``aiohttp_trace_configs``, asked once per HTTP session a :class:`flatjobs.FlatfileClient`
  opens.

For one job handled through a runner, the calls come in this order::

    event_received, event_dispatched,
    dispatch_started
        job_received
            http_started, http_call          (the ack)
            job_alive, job_started
            progress_sent, job_alive ...     (the body's progress, heartbeats)
            http_started, http_call          (complete or fail)
            job_ended
        job_left
    dispatch_ended

>>> class Count(Instrument):
...     def __init__(self) -> None:
...         self.jobs = 0
...     def job_started(self, job_id: str, job_name: str | None) -> None:
...         self.jobs += 1
>>> remove = add_instrument(Count())
>>> remove()
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import JobTimeout
from .log import get_logger

if TYPE_CHECKING:
    import aiohttp

    from .events._event import FlatfileEvent
    from .jobs._lifecycle import JobResult
    from .listener._listener import DispatchResult

__all__ = [
    "HttpCall",
    "Instrument",
    "add_instrument",
    "event_age",
    "forward",
    "instruments",
    "job_outcome",
    "label",
]

_log = get_logger("flatjobs.instruments")
_instruments: list[Instrument] = []


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


def add_instrument(instrument: Instrument) -> Callable[[], None]:
    """Start calling ``instrument``; returns a function that stops it."""
    _instruments.append(instrument)

    def remove() -> None:
        if instrument in _instruments:
            _instruments.remove(instrument)

    return remove


def instruments() -> list[Instrument]:
    """The instruments in use (a copy)."""
    return list(_instruments)


def notify(method: str, *args: Any) -> None:
    """Call ``method`` of every instrument; what one raises is logged and dropped."""
    for instrument in _instruments:
        try:
            getattr(instrument, method)(*args)
        except Exception:
            _log.exception(
                "an instrument failed", instrument=type(instrument).__name__, method=method
            )


# --------------------------------------------------------------------------- HTTP calls


class HttpCall:
    """One API call in progress (for the client): begun by :meth:`begin`, which calls
    ``http_started``; :func:`http_retrying` reports its retries; :meth:`end` calls
    ``http_call``."""

    __slots__ = ("_token", "attempts", "endpoint", "method")

    def __init__(self, endpoint: str, method: str) -> None:
        self.endpoint = endpoint
        self.method = method
        self.attempts = 1
        self._token: contextvars.Token[HttpCall | None] | None = None

    @classmethod
    def begin(cls, endpoint: str, method: str) -> HttpCall:
        """A call starts in this task."""
        call = cls(endpoint, method)
        call._token = _call.set(call)
        notify("http_started", endpoint, method)
        return call

    def end(self, status: int | None, seconds: float) -> None:
        """The call ended (in the task that began it)."""
        if self._token is not None:
            _call.reset(self._token)
            self._token = None
        notify("http_call", self.endpoint, self.method, status, seconds)


_call: contextvars.ContextVar[HttpCall | None] = contextvars.ContextVar(
    "flatjobs_http_call", default=None
)


def session_trace_configs() -> list[aiohttp.TraceConfig]:
    """The trace configs the instruments want on a new aiohttp session."""
    configs: list[aiohttp.TraceConfig] = []
    for instrument in _instruments:
        try:
            configs.extend(instrument.aiohttp_trace_configs())
        except Exception:
            _log.exception(
                "an instrument failed",
                instrument=type(instrument).__name__,
                method="aiohttp_trace_configs",
            )
    return configs


def http_retrying(status: int | None) -> None:
    """The current call's attempt failed (``status``, None: no answer) and is retried."""
    call = _call.get()
    if call is None:  # a stream opened outside a call
        return
    notify("http_retry", call.endpoint, call.method, call.attempts, status)
    call.attempts += 1


# --------------------------------------------------------------------------- helpers


def forward(raw: Any) -> dict[str, str]:
    """The headers to publish with an event sent to another process (the distributed
    mode's broker): what the instruments want carried (``event_forwarded``), such as trace
    context; empty when there are no instruments.

    >>> forward({"id": "us_evt_1", "topic": "job:ready"})
    {}
    """
    headers: dict[str, str] = {}
    if _instruments:
        notify("event_forwarded", raw, headers)
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
