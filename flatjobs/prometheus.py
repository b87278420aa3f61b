"""Prometheus metrics: events, jobs, API calls and progress, as counters and histograms.

Needs the ``prometheus`` extra (in a checkout of flatjobs:
``pip install -e '.[prometheus]'``, which brings ``prometheus-client``). :func:`instrument` starts counting into a registry (the global one
by default); serve it with ``flatjobs run --metrics-port N`` (see
:func:`flatjobs.serve_health`), or with any of ``prometheus_client``'s exposition helpers::

    import flatjobs.prometheus
    flatjobs.prometheus.instrument()

Every name starts with ``flatjobs_``; what each means is in docs/observability.md. Label
values are bounded: topics, job names (``workbook:export``) and endpoint names
(``jobs.ack``), never ids.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from .events._event import FlatfileEvent
from .instruments import Instrument, add_instrument, event_age, instruments, job_outcome, label
from .observe._results import DispatchResult, JobResult

__all__ = ["JOB_BUCKETS", "LATENCY_BUCKETS", "PrometheusMetrics", "instrument", "metrics"]

JOB_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
"""Buckets of the job duration histogram, in seconds: from a no-op job to an hour."""
LATENCY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
"""Buckets of the event-to-ack and HTTP call histograms, in seconds."""
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, PrometheusMetrics] = (
    weakref.WeakKeyDictionary()
)


def metrics(registry: CollectorRegistry | None = None) -> PrometheusMetrics:
    """The :class:`PrometheusMetrics` of ``registry`` (the global one by default), made on
    first use: a registry holds each metric once, so every caller shares it."""
    registry = REGISTRY if registry is None else registry
    found = _by_registry.get(registry)
    if found is None:
        found = _by_registry[registry] = PrometheusMetrics(registry)
    return found


def instrument(registry: CollectorRegistry | None = None) -> Callable[[], None]:
    """Start counting into ``registry`` (the global one by default); returns a function
    that stops it. Calling it again for the same registry adds nothing more."""
    found = metrics(registry)
    if found in instruments():
        return lambda: None
    return add_instrument(found)


class PrometheusMetrics(Instrument):
    """The instrument that keeps flatjobs' metrics in ``registry``; use :func:`metrics`
    or :func:`instrument` rather than building one per call (a registry refuses a
    second set of the same names)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.events_received = Counter("flatjobs_events_received", "Events taken from a source, by source (poll, push, sweep...).", ["source"], registry=r)  # fmt: skip
        self.events_dispatched = Counter("flatjobs_events_dispatched", "Events handed to the listener, by topic.", ["topic"], registry=r)  # fmt: skip
        self.events_invalid = Counter("flatjobs_events_invalid", "Malformed events, logged and skipped.", registry=r)  # fmt: skip
        self.events_duplicate = Counter("flatjobs_events_duplicate", "Events dropped as delivered already.", registry=r)  # fmt: skip
        self.dispatches_in_progress = Gauge("flatjobs_dispatches_in_progress", "Events being handled now.", registry=r)  # fmt: skip
        self.callbacks_failed = Counter("flatjobs_callbacks_failed", "Listener callbacks that raised, by topic.", ["topic"], registry=r)  # fmt: skip
        self.jobs_started = Counter("flatjobs_jobs_started", "Jobs acknowledged, whose body started, by job name.", ["job"], registry=r)  # fmt: skip
        self.jobs_ended = Counter("flatjobs_jobs_ended", "Jobs handled here that ended, by job name and outcome (complete, failed, error, timed_out, canceled, split, skipped).", ["job", "outcome"], registry=r)  # fmt: skip
        self.jobs_orphaned = Counter("flatjobs_jobs_orphaned", "Jobs found executing with no worker, by job name and action (failed, rerun).", ["job", "action"], registry=r)  # fmt: skip
        self.jobs_in_progress = Gauge("flatjobs_jobs_in_progress", "Jobs whose body runs now, by job name.", ["job"], registry=r)  # fmt: skip
        self.job_duration = Histogram("flatjobs_job_duration_seconds", "Seconds from a job's receipt to its end, by job name and outcome.", ["job", "outcome"], buckets=JOB_BUCKETS, registry=r)  # fmt: skip
        self.job_ack_latency = Histogram("flatjobs_job_ack_latency_seconds", "Seconds from a job's event's creation (the platform's clock) to its ack, by job name.", ["job"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.http_requests = Counter("flatjobs_http_requests", "API calls that ended, by endpoint, method and status (none: no answer).", ["endpoint", "method", "status"], registry=r)  # fmt: skip
        self.http_retries = Counter("flatjobs_http_retries", "API call attempts that failed and were sent again, by endpoint and method.", ["endpoint", "method"], registry=r)  # fmt: skip
        self.http_duration = Histogram("flatjobs_http_request_duration_seconds", "Seconds an API call took, retries included, by endpoint and method.", ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.progress_updates = Counter("flatjobs_progress_updates_sent", "Progress updates sent to the API (heartbeats included).", registry=r)  # fmt: skip
        self.ticks_coalesced = Counter("flatjobs_progress_ticks_coalesced", "Progress ticks folded into a later update instead of being sent.", registry=r)  # fmt: skip
        self.loop_lag = Gauge("flatjobs_event_loop_lag_seconds", "How late the event loop ran a timer, worst of the last seconds (set by the health server).", registry=r)  # fmt: skip
        self._running: dict[str, str] = {}  # job id -> job label, while its body runs
        self._received: dict[str, FlatfileEvent] = {}  # job id -> its event, until its ack

    # ----------------------------------------------------------- events

    def event_received(self, source: str) -> None:
        """Count it, by source."""
        self.events_received.labels(source).inc()

    def event_invalid(self) -> None:
        """Count it."""
        self.events_invalid.inc()

    def event_duplicate(self) -> None:
        """Count it."""
        self.events_duplicate.inc()

    def event_dispatched(self, event: FlatfileEvent) -> None:
        """Count it, by topic."""
        self.events_dispatched.labels(label(event.topic)).inc()

    def dispatch_started(self, event: FlatfileEvent, headers: Mapping[str, str] | None) -> None:
        """One more event in flight."""
        self.dispatches_in_progress.inc()

    def dispatch_ended(self, event: FlatfileEvent, result: DispatchResult | None) -> None:
        """One fewer in flight; count failed callbacks."""
        self.dispatches_in_progress.dec()
        if result is not None and result.failed:
            self.callbacks_failed.labels(label(event.topic)).inc(len(result.failed))

    # ----------------------------------------------------------- jobs

    def job_received(self, job_id: str, event: FlatfileEvent) -> None:
        """Keep its event until the ack, for the event-to-ack latency."""
        self._received[job_id] = event

    def job_started(self, job_id: str, job_name: str | None) -> None:
        """Count it; observe the event-to-ack latency; one more job in progress."""
        job = label(job_name)
        self.jobs_started.labels(job).inc()
        event = self._received.pop(job_id, None)
        age = event_age(event) if event is not None else None
        if age is not None:
            self.job_ack_latency.labels(job).observe(age)
        self._running[job_id] = job
        self.jobs_in_progress.labels(job).inc()

    def job_ended(self, result: JobResult, seconds: float, job_name: str | None) -> None:
        """Count it by outcome; observe its duration; one fewer in progress."""
        job, outcome = label(job_name), job_outcome(result)
        self.jobs_ended.labels(job, outcome).inc()
        self.job_duration.labels(job, outcome).observe(seconds)
        running = self._running.pop(result.job_id, None)
        if running is not None:
            self.jobs_in_progress.labels(running).dec()

    def job_left(self, job_id: str) -> None:
        """Forget what was kept for a job that never started."""
        self._received.pop(job_id, None)

    def job_orphaned(self, job_id: str, job_name: str | None, rerun: bool) -> None:
        """Count it, by what was done."""
        self.jobs_orphaned.labels(label(job_name), "rerun" if rerun else "failed").inc()

    def progress_sent(self, job_id: str, coalesced: int) -> None:
        """Count the update, and the ticks it folded in."""
        self.progress_updates.inc()
        if coalesced:
            self.ticks_coalesced.inc(coalesced)

    # ----------------------------------------------------------- HTTP

    def http_retry(self, endpoint: str, method: str, attempt: int, status: int | None) -> None:
        """Count the retry."""
        self.http_retries.labels(endpoint, method).inc()

    def http_call(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        """Count the call by status; observe how long it took."""
        self.http_requests.labels(endpoint, method, "none" if status is None else str(status)).inc()
        self.http_duration.labels(endpoint, method).observe(seconds)
