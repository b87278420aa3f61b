"""OpenTelemetry traces: a span for each dispatched event, each job and each API call.

Needs the ``otel`` extra (in a checkout of flatjobs: ``pip install -e '.[otel]'``): the
OpenTelemetry API and its maintained aiohttp client instrumentation. flatjobs only *makes*
spans; where they go is the application's choice, made with the OpenTelemetry SDK (a ``TracerProvider`` and an
exporter), as for any instrumented library::

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)

    import flatjobs.otel
    flatjobs.otel.instrument()     # before the client's first call

Under ``opentelemetry-instrument flatjobs run ...`` it is turned on by itself (an
``opentelemetry_instrumentor`` entry point).

The spans, for one job (names and attributes in docs/observability.md)::

    process job:ready                 CONSUMER  one dispatched event
      job workbook:export             INTERNAL  the job: ack to complete/fail
        POST jobs.ack                 one API call, retries included
          POST                        CLIENT    one attempt (aiohttp instrumentation)
        POST jobs.complete
          POST

A span a handler starts itself is a child of its job's. Across a broker (the distributed
mode), the publisher adds trace context to the message's headers
(:func:`flatjobs.instruments.forward` does it for every instrument; :func:`inject` for
this one), and the consumer hands them back as :attr:`flatjobs.sources.Delivery.headers`:
the dispatch span continues the publisher's trace.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from . import _meta
from .events._event import FlatfileEvent
from .instruments import Instrument, add_instrument, event_age, job_outcome, label
from .log import redact_text, redact_value, shorten
from .observe._results import DispatchResult, JobResult

if TYPE_CHECKING:
    import aiohttp
    import yarl

__all__ = ["TRACER_NAME", "OpenTelemetry", "extract", "inject", "instrument", "url_filter"]

TRACER_NAME: Final = "flatjobs"
"""The instrumentation scope of every span flatjobs makes."""
_MESSAGING_SYSTEM: Final = "flatfile"


def inject(carrier: dict[str, str], context: otel_context.Context | None = None) -> None:
    """Write the current trace context (or ``context``'s) into ``carrier``, a message's
    headers, with the globally configured propagator (W3C ``traceparent`` by default)."""
    propagate.inject(carrier, context=context)


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    """The trace context a message's headers carry (as :func:`inject` wrote them)."""
    return propagate.extract(carrier)


def url_filter(url: yarl.URL | str) -> str:
    """A URL as a span may show it: the values of credentials in its query (``auth=``,
    ``token=``, ``key=``...) and every secret flatjobs knows redacted.

    flatjobs gives it to OpenTelemetry's aiohttp instrumentation; pass it yourself when you
    instrument aiohttp for the whole process in a program of your own::

        AioHttpClientInstrumentor().instrument(url_filter=flatjobs.otel.url_filter)
    """
    return redact_text(str(url))


def instrument(
    tracer_provider: trace.TracerProvider | None = None, *, http_attempts: bool = True
) -> Callable[[], None]:
    """Start making spans; returns a function that stops it.

    Args:
        tracer_provider: where spans go; by default the global one.
        http_attempts: also a CLIENT span for each HTTP attempt, by OpenTelemetry's aiohttp
            client instrumentation, on the sessions clients open from now on (skipped when
            ``AioHttpClientInstrumentor`` already instruments every session).
    """
    return add_instrument(OpenTelemetry(tracer_provider, http_attempts=http_attempts))


class _Scope:
    """A span made current in one task, until its scope closes."""

    __slots__ = (
        "ended",
        "event",
        "job",
        "kind",
        "otel_token",
        "parent",
        "retries",
        "span",
        "token",
    )

    def __init__(self, kind: str, span: Span, parent: _Scope | None) -> None:
        self.kind = kind  # "dispatch", "job" or "http"
        self.span = span
        self.parent = parent  # the scope current when this one opened
        self.job: _Scope | None = None  # the job an API call is made for
        self.event: FlatfileEvent | None = None
        self.retries = 0
        self.ended = False
        self.otel_token: contextvars.Token[otel_context.Context] | None = None
        self.token: contextvars.Token[_Scope | None] | None = None

    def outer(self, kind: str) -> _Scope | None:
        """This scope or the nearest around it of ``kind``."""
        scope: _Scope | None = self
        while scope is not None and scope.kind != kind:
            scope = scope.parent
        return scope


class OpenTelemetry(Instrument):
    """The instrument that makes flatjobs' spans (see the module docstring)."""

    def __init__(
        self, tracer_provider: trace.TracerProvider | None = None, *, http_attempts: bool = True
    ) -> None:
        self._provider = tracer_provider
        self._tracer = trace.get_tracer(
            TRACER_NAME, _meta.version(), tracer_provider=tracer_provider
        )
        self._http_attempts = http_attempts and _aiohttp_instrumentation() is not None
        self._current: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
            "flatjobs_otel_scope", default=None
        )
        self._jobs: dict[str, _Scope] = {}

    # ----------------------------------------------------------- scopes

    def _open(
        self,
        what: str,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        parent: otel_context.Context | None = None,
    ) -> _Scope:
        span = self._tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        scope = _Scope(what, span, self._current.get())
        scope.otel_token = otel_context.attach(trace.set_span_in_context(span, parent))
        scope.token = self._current.set(scope)
        return scope

    def _close(self, scope: _Scope) -> None:
        if scope.token is not None and scope.otel_token is not None:
            self._current.reset(scope.token)
            otel_context.detach(scope.otel_token)
            scope.token = scope.otel_token = None

    # ----------------------------------------------------------- events

    def event_forwarded(self, raw: Any, headers: dict[str, str]) -> None:
        """A short PRODUCER span for the publication; its context goes in ``headers``."""
        topic, event_id = _topic_and_id(raw)
        attributes = _messaging("send", topic, event_id)
        span = self._tracer.start_span(
            f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        propagate.inject(headers, context=trace.set_span_in_context(span))
        span.end()

    def dispatch_started(self, event: FlatfileEvent, headers: Mapping[str, str] | None) -> None:
        """Open the dispatch's CONSUMER span, continuing the trace ``headers`` carry."""
        topic = label(event.topic)
        attributes = _messaging("process", topic, event.id)
        if event.job_id is not None:
            attributes["flatjobs.job.id"] = event.job_id
        if event.replayed:
            attributes["flatjobs.event.replayed"] = True
        if event.orphaned:
            attributes["flatjobs.event.orphaned"] = True
        parent = propagate.extract(headers) if headers else None
        self._open("dispatch", f"process {topic}", SpanKind.CONSUMER, attributes, parent)

    def dispatch_ended(self, event: FlatfileEvent, result: DispatchResult | None) -> None:
        """Close the dispatch's span: how many callbacks ran, and failed."""
        current = self._current.get()
        scope = current.outer("dispatch") if current is not None else None
        if scope is None:
            return
        span = scope.span
        if result is None:
            span.set_status(Status(StatusCode.ERROR, "the dispatch did not finish"))
        else:
            span.set_attribute("flatjobs.dispatch.callbacks", result.matched)
            if result.failed:
                span.set_attribute("flatjobs.dispatch.failed_callbacks", len(result.failed))
                names = ", ".join(f.callback for f in result.failed)
                span.set_status(
                    Status(StatusCode.ERROR, shorten(f"callbacks failed: {names}", 200))
                )
        span.end()
        self._close(scope)

    # ----------------------------------------------------------- jobs

    def job_received(self, job_id: str, event: FlatfileEvent) -> None:
        """Open the job's span (a child of its dispatch's, when there is one)."""
        payload = event.payload
        name = payload.get("job") if isinstance(payload.get("job"), str) else None
        attributes: dict[str, Any] = {
            "flatjobs.job.id": job_id,
            "flatjobs.job.name": label(name),
            "flatjobs.event.topic": label(event.topic),
        }
        operation = payload.get("operation")
        if isinstance(operation, str):
            attributes["flatjobs.job.operation"] = label(operation)
        if event.id is not None:
            attributes["flatjobs.event.id"] = event.id
        scope = self._open(
            "job", f"job {label(name or event.topic)}", SpanKind.INTERNAL, attributes
        )
        scope.event = event
        self._jobs[job_id] = scope

    def job_started(self, job_id: str, job_name: str | None) -> None:
        """Mark the ack: ``flatjobs.job.ack_latency_s``, from the event's creation."""
        scope = self._jobs.get(job_id)
        if scope is None or scope.event is None:
            return
        age = event_age(scope.event)
        if age is not None:
            scope.span.set_attribute("flatjobs.job.ack_latency_s", age)
        scope.span.add_event("acknowledged")

    def job_ended(self, result: JobResult, seconds: float, job_name: str | None) -> None:
        """End the job's span with its outcome, duration and retries."""
        scope = self._jobs.get(result.job_id)
        if scope is None or scope.ended:
            return
        outcome = job_outcome(result)
        span = scope.span
        span.set_attribute("flatjobs.job.outcome", outcome)
        span.set_attribute("flatjobs.job.duration_s", seconds)
        span.set_attribute("flatjobs.job.retries", scope.retries)
        if outcome in ("failed", "error", "timed_out"):
            span.set_attribute("flatjobs.job.expected", result.expected)
            message = _describe(result.error) if result.error is not None else outcome
            span.set_status(Status(StatusCode.ERROR, message))
            if result.error is not None:
                span.add_event(
                    "exception",
                    {"exception.type": type(result.error).__name__, "exception.message": message},
                )
        scope.ended = True
        span.end()

    def job_left(self, job_id: str) -> None:
        """Leave the job's span (ending it, when nothing told how the job ended)."""
        scope = self._jobs.pop(job_id, None)
        if scope is None:
            return
        if not scope.ended:
            scope.span.set_attribute("flatjobs.job.outcome", "unknown")
            scope.span.set_attribute("flatjobs.job.retries", scope.retries)
            scope.ended = True
            scope.span.end()
        self._close(scope)

    def job_orphaned(self, job_id: str, job_name: str | None, rerun: bool) -> None:
        """An event on the current span (the sweep's, if the application traces it)."""
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "flatjobs.job.orphaned", {"flatjobs.job.id": job_id, "flatjobs.job.rerun": rerun}
            )

    # ----------------------------------------------------------- HTTP

    def http_started(self, endpoint: str, method: str) -> None:
        """Open the call's span (its attempts are children, by the aiohttp instrumentation)."""
        kind = SpanKind.INTERNAL if self._http_attempts else SpanKind.CLIENT
        attributes = {"http.request.method": method, "flatjobs.http.endpoint": endpoint}
        scope = self._open("http", f"{method} {endpoint}", kind, attributes)
        scope.job = scope.parent.outer("job") if scope.parent is not None else None

    def http_retry(self, endpoint: str, method: str, attempt: int, status: int | None) -> None:
        """Count the retry on the call's span and on its job's."""
        scope = self._current.get()
        if scope is None or scope.kind != "http":
            return
        scope.retries += 1
        scope.span.add_event(
            "retry", {"flatjobs.http.attempt": attempt, "http.response.status_code": status or 0}
        )
        if scope.job is not None:
            scope.job.retries += 1

    def http_call(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        """End the call's span with its status and how many times it was sent again."""
        scope = self._current.get()
        if scope is None or scope.kind != "http":
            return
        span = scope.span
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if scope.retries:
            span.set_attribute("http.request.resend_count", scope.retries)
        if status is None or status >= 400:
            error = "no answer" if status is None else str(status)
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
        self._close(scope)

    def aiohttp_trace_configs(self) -> list[aiohttp.TraceConfig]:
        """OpenTelemetry's aiohttp client instrumentation, for the client's new session."""
        found = _aiohttp_instrumentation() if self._http_attempts else None
        if found is None:
            return []
        instrumentor, create_trace_config = found
        if instrumentor().is_instrumented_by_opentelemetry:
            return []  # every session is instrumented already
        return [create_trace_config(url_filter=url_filter, tracer_provider=self._provider)]


def _aiohttp_instrumentation() -> tuple[Any, Any] | None:
    try:
        from opentelemetry.instrumentation.aiohttp_client import (
            AioHttpClientInstrumentor,
            create_trace_config,
        )
    except ImportError:
        return None
    return AioHttpClientInstrumentor, create_trace_config


def _messaging(operation: str, topic: str, event_id: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": _MESSAGING_SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": topic,
    }
    if event_id is not None:
        attributes["messaging.message.id"] = event_id
    return attributes


def _topic_and_id(raw: Any) -> tuple[str, str | None]:
    if not isinstance(raw, Mapping):
        return "event", None
    topic, event_id = raw.get("topic"), raw.get("id")
    return (
        label(topic) if isinstance(topic, str) and topic else "event",
        event_id if isinstance(event_id, str) else None,
    )


def _describe(error: BaseException) -> str:
    """An error's text for a span: secrets redacted, bounded."""
    try:
        text = str(error) or type(error).__name__
    except Exception:
        text = type(error).__name__
    described: str = redact_value(text, limit=500)
    return described
