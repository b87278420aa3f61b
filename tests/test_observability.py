"""Traces, metrics and health probes, against real servers: the emulator, the health
server, and a `flatjobs run` process scraped over HTTP. Spans go to the OpenTelemetry
SDK's in-memory exporter; metrics to a registry of each test's own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

import flatjobs.otel
import flatjobs.prometheus
from flatjobs import (
    DispatchResult,
    FlatfileEvent,
    JobError,
    JobResult,
    Jobs,
    Listener,
    MemorySource,
    PollingSource,
    Runner,
    Tick,
    serve_health,
)
from flatjobs._otel_auto import FlatjobsInstrumentor
from flatjobs.emulator import Emulator
from flatjobs.instruments import Instrument, add_instrument, forward, instruments
from flatjobs.running._sweep import Reconciler
from flatjobs.sources import Delivery
from flatjobs.testing import client_for

ROOT = Path(__file__).parent.parent


@pytest.fixture
def traced() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    remove = add_instrument(flatjobs.otel.OpenTelemetry(provider))
    yield provider, exporter
    remove()
    provider.shutdown()


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    remove = flatjobs.prometheus.instrument(registry)
    yield registry
    remove()


def ready_event(emu: Emulator, job_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        e for e in emu.events if e["topic"] == "job:ready" and e["context"]["jobId"] == job_id
    )
    return found


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def sid(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


async def run_events(emu: Emulator, jobs: Jobs, events: list[Any]) -> None:
    async with client_for(emu) as client:
        source = MemorySource(events)
        source.close()
        await Runner(Listener(client=client).use(jobs), source).run()


# --------------------------------------------------------------------------- imports


def test_importing_flatjobs_imports_no_observability_library() -> None:
    code = (
        "import sys, flatjobs, flatjobs.client, flatjobs.sources, flatjobs.instruments, "
        "flatjobs._health, flatjobs.dev._cli\n"
        "print(sorted({m.split('.')[0] for m in sys.modules "
        "if m.startswith(('opentelemetry', 'prometheus_client'))}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------- the hooks


class Order(Instrument):
    """Records the hooks of the scopes and the job's points, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def dispatch_started(self, event: FlatfileEvent, headers: Mapping[str, str] | None) -> None:
        self.calls.append(f"dispatch_started {dict(headers or {})}")

    def dispatch_ended(self, event: FlatfileEvent, result: DispatchResult | None) -> None:
        self.calls.append(f"dispatch_ended {result is not None and result.ok}")

    def job_received(self, job_id: str, event: FlatfileEvent) -> None:
        self.calls.append("job_received")

    def job_started(self, job_id: str, job_name: str | None) -> None:
        self.calls.append("job_started")

    def job_ended(self, result: JobResult, seconds: float, job_name: str | None) -> None:
        self.calls.append(f"job_ended {result.status}")

    def job_left(self, job_id: str) -> None:
        self.calls.append("job_left")

    def http_started(self, endpoint: str, method: str) -> None:
        self.calls.append(f"http_started {endpoint}")

    def http_retry(self, endpoint: str, method: str, attempt: int, status: int | None) -> None:
        self.calls.append(f"http_retry {endpoint} {attempt} {status}")

    def http_call(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        self.calls.append(f"http_call {endpoint} {status}")


async def test_the_scope_hooks_nest_around_a_job_in_one_order(emu: Emulator) -> None:
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        return None

    order = Order()
    remove = add_instrument(order)
    try:
        emu.faults.add(routes="jobs.ack", status=502, limit=1)
        job = emu.trigger("workbook:export")
        delivery = Delivery(ready_event(emu, job.id), headers={"traceparent": "x"})
        await run_events(emu, jobs, [delivery])
    finally:
        remove()
    assert order.calls == [
        "dispatch_started {'traceparent': 'x'}",
        "job_received",
        "http_started jobs.get",
        "http_call jobs.get 200",
        "http_started jobs.ack",
        "http_retry jobs.ack 1 502",
        "http_call jobs.ack 200",
        "job_started",
        "http_started jobs.complete",
        "http_call jobs.complete 200",
        "job_ended complete",
        "job_left",
        "dispatch_ended True",
    ]


def test_forward_asks_no_one_without_instruments() -> None:
    assert instruments() == []
    assert forward({"id": "us_evt_1", "topic": "job:ready"}) == {}


# --------------------------------------------------------------------------- traces


async def test_spans_nest_event_job_and_calls_and_continue_the_publishers_trace(
    emu: Emulator, traced: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = traced
    tracer = provider.get_tracer("the app")
    jobs = Jobs(progress_interval=0)

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> str:
        with tracer.start_as_current_span("load rows"):
            await tick(50)
        return "exported"

    emu.faults.add(routes="jobs.complete", status=503, limit=1)
    job = emu.trigger("workbook:export")
    ready = ready_event(emu, job.id)
    headers = forward(ready)  # what the distributed mode's publisher does
    assert "traceparent" in headers
    await run_events(emu, jobs, [Delivery(ready, headers=headers)])
    assert emu.job(job.id).status == "complete"

    spans = exporter.get_finished_spans()
    [send] = named(spans, "send job:ready")
    [process] = named(spans, "process job:ready")
    [job_span] = named(spans, "job workbook:export")
    [user] = named(spans, "load rows")
    ack, progress = named(spans, "POST jobs.ack")  # the ack, then the progress update
    [complete] = named(spans, "POST jobs.complete")
    assert send.kind == SpanKind.PRODUCER
    assert process.kind == SpanKind.CONSUMER
    assert process.context is not None
    assert send.context is not None
    assert process.context.trace_id == send.context.trace_id
    assert parent_of(process) == sid(send)
    assert parent_of(job_span) == sid(process)
    assert parent_of(user) == sid(job_span)
    assert parent_of(ack) == sid(job_span)
    assert parent_of(progress) == sid(user)  # sent while the handler's own span was current
    assert parent_of(complete) == sid(job_span)

    assert dict(process.attributes or {}) | {} == {
        "messaging.system": "flatfile",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "job:ready",
        "messaging.message.id": ready["id"],
        "flatjobs.job.id": job.id,
        "flatjobs.dispatch.callbacks": 1,
    }
    attributes = job_span.attributes or {}
    assert attributes["flatjobs.job.id"] == job.id
    assert attributes["flatjobs.job.name"] == "workbook:export"
    assert attributes["flatjobs.job.operation"] == "export"
    assert attributes["flatjobs.job.outcome"] == "complete"
    assert attributes["flatjobs.job.retries"] == 1
    assert attributes["flatjobs.job.ack_latency_s"] >= 0  # type: ignore[operator]
    assert job_span.status.status_code == StatusCode.UNSET

    # The call that was retried: one span, two attempts under it (aiohttp instrumentation).
    assert (complete.attributes or {})["http.request.resend_count"] == 1
    assert (complete.attributes or {})["http.response.status_code"] == 200
    attempts = [s for s in spans if parent_of(s) == sid(complete)]
    assert [s.kind for s in attempts] == [SpanKind.CLIENT, SpanKind.CLIENT]
    # (the instrumentation's attribute names follow OTEL_SEMCONV_STABILITY_OPT_IN)
    statuses = [
        (s.attributes or {}).get(
            "http.response.status_code", (s.attributes or {}).get("http.status_code")
        )
        for s in attempts
    ]
    assert statuses == [503, 200]
    assert [e.name for e in complete.events] == ["retry"]


async def test_a_failed_job_has_an_error_span_with_its_outcome(
    emu: Emulator, traced: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    _, exporter = traced
    jobs = Jobs()

    @jobs.handle("workbook:crash")
    async def crash(event: FlatfileEvent, tick: Tick) -> None:
        raise RuntimeError("the handler has a bug")

    @jobs.handle("workbook:reject")
    async def reject(event: FlatfileEvent, tick: Tick) -> None:
        raise JobError("row 3 has no email")

    crashed, rejected = emu.trigger("workbook:crash"), emu.trigger("workbook:reject")
    await run_events(emu, jobs, [ready_event(emu, crashed.id), ready_event(emu, rejected.id)])
    spans = exporter.get_finished_spans()
    [crash_span] = named(spans, "job workbook:crash")
    [reject_span] = named(spans, "job workbook:reject")
    assert (crash_span.attributes or {})["flatjobs.job.outcome"] == "error"
    assert (crash_span.attributes or {})["flatjobs.job.expected"] is False
    assert crash_span.status.status_code == StatusCode.ERROR
    assert crash_span.status.description == "the handler has a bug"
    assert [(e.name, dict(e.attributes or {})) for e in crash_span.events] == [
        ("acknowledged", {}),
        (
            "exception",
            {"exception.type": "RuntimeError", "exception.message": "the handler has a bug"},
        ),
    ]
    assert (reject_span.attributes or {})["flatjobs.job.outcome"] == "failed"
    assert (reject_span.attributes or {})["flatjobs.job.expected"] is True
    # The lifecycle handled both failures: the dispatches themselves went well.
    assert all(s.status.status_code == StatusCode.UNSET for s in named(spans, "process job:ready"))


def test_inject_and_extract_carry_the_current_trace() -> None:
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("publish") as span:
        carrier: dict[str, str] = {}
        flatjobs.otel.inject(carrier)
    context = flatjobs.otel.extract(carrier)
    from opentelemetry import trace

    carried = trace.get_current_span(context).get_span_context()
    assert carried.trace_id == span.get_span_context().trace_id
    assert carried.span_id == span.get_span_context().span_id


def test_opentelemetry_instrument_turns_the_spans_on_and_off() -> None:
    instrumentor = FlatjobsInstrumentor()
    before = len(instruments())
    instrumentor.instrument(tracer_provider=TracerProvider())
    try:
        assert [type(i) for i in instruments()[before:]] == [flatjobs.otel.OpenTelemetry]
    finally:
        instrumentor.uninstrument()
    assert len(instruments()) == before


# --------------------------------------------------------------------------- metrics


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_metrics_count_events_jobs_by_outcome_calls_and_progress(
    emu: Emulator, registry: CollectorRegistry
) -> None:
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        for i in range(100):
            tick(i)  # not awaited: all but the first wait for the one in flight, coalesced

    @jobs.handle("workbook:reject")
    async def reject(event: FlatfileEvent, tick: Tick) -> None:
        raise JobError("row 3 has no email")

    @jobs.handle("workbook:slow", timeout=0.05)
    async def slow(event: FlatfileEvent, tick: Tick) -> None:
        await asyncio.sleep(30)

    @jobs.handle("workbook:stop", progress_interval=0)
    async def stop(event: FlatfileEvent, tick: Tick) -> None:
        assert event.job_id is not None
        emu.cancel(event.job_id)  # the user cancels it while it runs
        await tick(20)  # the answer says canceled: the body is cancelled
        await asyncio.sleep(30)

    emu.faults.add(routes="jobs.complete", status=503, limit=1)
    ids = [emu.trigger(f"workbook:{name}").id for name in ("export", "reject", "slow", "stop")]
    readies = [ready_event(emu, job_id) for job_id in ids]
    await run_events(emu, jobs, [*readies, readies[0], {"no": "topic"}])

    # The source drops the duplicate: the runner receives the rest.
    assert sample(registry, "flatjobs_events_received_total", source="memory") == 5
    assert sample(registry, "flatjobs_events_duplicate_total") == 1
    assert sample(registry, "flatjobs_events_invalid_total") == 1
    assert sample(registry, "flatjobs_events_dispatched_total", topic="job:ready") == 4
    for name, outcome in [
        ("export", "complete"),
        ("reject", "failed"),
        ("slow", "timed_out"),
        ("stop", "canceled"),
    ]:
        job = f"workbook:{name}"
        assert sample(registry, "flatjobs_jobs_started_total", job=job) == 1
        assert sample(registry, "flatjobs_jobs_ended_total", job=job, outcome=outcome) == 1
        assert (
            sample(registry, "flatjobs_job_duration_seconds_count", job=job, outcome=outcome) == 1
        )
        assert sample(registry, "flatjobs_job_ack_latency_seconds_count", job=job) == 1
        assert sample(registry, "flatjobs_jobs_in_progress", job=job) == 0
    assert sample(registry, "flatjobs_dispatches_in_progress") == 0
    assert (
        sample(
            registry,
            "flatjobs_http_requests_total",
            endpoint="jobs.ack",
            method="POST",
            status="200",
        )
        >= 4
    )
    assert (
        sample(registry, "flatjobs_http_retries_total", endpoint="jobs.complete", method="POST")
        == 1
    )
    assert (
        sample(
            registry,
            "flatjobs_http_request_duration_seconds_count",
            endpoint="jobs.complete",
            method="POST",
        )
        == 1
    )
    assert sample(registry, "flatjobs_progress_updates_sent_total") >= 2
    assert sample(registry, "flatjobs_progress_ticks_coalesced_total") >= 1


async def test_metrics_count_orphans(emu: Emulator, registry: CollectorRegistry) -> None:
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        return None

    job = emu.trigger("workbook:export")
    async with client_for(emu) as client:
        await client.jobs.send(job.id, "ack", {"info": "Accepted", "progress": 0})
        listener = Listener(client=client).use(jobs)
        assert await Reconciler(listener).end_orphan(emu.job(job.id), why="a test") is None
    assert emu.job(job.id).status == "failed"
    assert (
        sample(registry, "flatjobs_jobs_orphaned_total", job="workbook:export", action="failed")
        == 1
    )


def test_one_registry_holds_flatjobs_metrics_once() -> None:
    registry = CollectorRegistry()
    assert flatjobs.prometheus.metrics(registry) is flatjobs.prometheus.metrics(registry)
    remove = flatjobs.prometheus.instrument(registry)
    again = flatjobs.prometheus.instrument(registry)
    assert instruments().count(flatjobs.prometheus.metrics(registry)) == 1
    again()
    remove()
    assert flatjobs.prometheus.metrics(registry) not in instruments()


# --------------------------------------------------------------------------- health


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def until(check: Any, timeout: float = 10.0) -> None:
    """Wait (bounded) until ``await check()`` is true."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polls a server: nothing to wait on
            await asyncio.sleep(0.02)


async def test_the_health_server_answers_probes_and_serves_metrics(emu: Emulator) -> None:
    registry = CollectorRegistry()
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        return None

    async with client_for(emu) as client, aiohttp.ClientSession() as http:
        source = PollingSource(client, interval=0.02, max_interval=0.05)
        runner = Runner(Listener(client=client).use(jobs), source)
        async with serve_health(0, host="127.0.0.1", source=source, registry=registry) as server:
            status, body = await get(http, f"{server.url}/readyz")
            assert (status, json.loads(body)["ready"]) == (503, False)  # nothing polled yet
            running = asyncio.create_task(runner.run())
            try:

                async def ready() -> bool:
                    return (await get(http, f"{server.url}/readyz"))[0] == 200

                await until(ready)
                job = emu.trigger("workbook:export")
                await emu.wait_for(job.id, timeout=10)
                status, body = await get(http, f"{server.url}/readyz")
                assert json.loads(body) == {
                    "ready": True,
                    "source": {"connected": True},
                    "api": {
                        "reachable": True,
                        "last_status": 200,
                        "seconds_since_last_call": json.loads(body)["api"][
                            "seconds_since_last_call"
                        ],
                    },
                }
                status, body = await get(http, f"{server.url}/healthz")
                assert status == 200
                assert json.loads(body)["status"] == "ok"

                async def counted() -> bool:
                    text = (await get(http, f"{server.url}/metrics"))[1]
                    return (
                        'flatjobs_jobs_ended_total{job="workbook:export",outcome="complete"} 1.0'
                        in text
                    )

                await until(counted)
                async with http.get(f"{server.url}/metrics") as response:
                    assert response.headers["Content-Type"].startswith("text/plain")
                    text = await response.text()
                assert 'flatjobs_events_received_total{source="polling"}' in text
                assert "flatjobs_event_loop_lag_seconds" in text
                assert emu.token not in text
            finally:
                runner.stop()
                await running
        # Stopped: it counts no more.
        assert flatjobs.prometheus.metrics(registry) not in instruments()


async def test_readyz_says_the_api_is_unreachable_and_the_source_disconnected() -> None:
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        from flatjobs import FlatfileClient, RetryPolicy

        client = FlatfileClient(
            dead, "sk_test_x", environment_id="us_env_1", retry=RetryPolicy(attempts=1)
        )
        async with client, aiohttp.ClientSession() as http:
            source = PollingSource(client, interval=0.02, max_interval=0.05)
            async with serve_health(0, host="127.0.0.1", source=source, metrics=False) as server:

                async def poll() -> None:
                    async for _ in source:
                        pass

                polling = asyncio.create_task(poll())
                try:

                    async def failed() -> bool:
                        return source.errors > 0

                    await until(failed)
                    status, body = await get(http, f"{server.url}/readyz")
                finally:
                    polling.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await polling
                assert status == 503
                answer = json.loads(body)
                assert answer["source"] == {"connected": False}
                assert answer["api"]["reachable"] is False
                assert answer["api"]["last_status"] is None
                # Without metrics, /metrics says what to install.
                status, text = await get(http, f"{server.url}/metrics")
                assert status == 501
                assert "'.[prometheus]'" in text


async def test_healthz_fails_when_the_loop_was_blocked_and_recovers() -> None:
    async with (
        serve_health(0, host="127.0.0.1", metrics=False, max_loop_lag=0.5) as server,
        aiohttp.ClientSession() as http,
    ):
        status, _ = await get(http, f"{server.url}/healthz")
        assert status == 200
        time.sleep(1.0)  # noqa: ASYNC251 - a handler blocking the loop, on purpose
        status, body = await get(http, f"{server.url}/healthz")
        assert status == 503, body
        assert json.loads(body)["status"] == "stalled"

        async def healthy() -> bool:
            return (await get(http, f"{server.url}/healthz"))[0] == 200

        await until(healthy)


# --------------------------------------------------------------------------- the CLI


@contextlib.asynccontextmanager
async def flatjobs_run(emu: Emulator, *args: str) -> AsyncIterator[tuple[Any, str]]:
    """`flatjobs run` with a health server on a port it picks; yields (process, its URL)."""
    env = {**os.environ, **emu.env(), "SLOW_JOB_SECONDS": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flatjobs",
        "run",
        "tests/apps/slow.py:jobs",
        "--interval",
        "0.05",
        "--sweep-interval",
        "0",
        "--log-level",
        "info",
        "--metrics-port",
        "0",
        "--metrics-host",
        "127.0.0.1",
        *args,
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not (found := re.search(r"url=(http://\S+)", lines[-1] if lines else "")):
                line = (await proc.stderr.readline()).decode()
                assert line, "flatjobs run exited:\n" + "".join(lines)
                lines.append(line)
        drain = asyncio.create_task(proc.stderr.read())
        yield proc, found[1]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
    await drain


async def test_flatjobs_run_serves_metrics_and_probes_while_it_runs(emu: Emulator) -> None:
    async with flatjobs_run(emu) as (proc, url), aiohttp.ClientSession() as http:

        async def ready() -> bool:
            return (await get(http, f"{url}/readyz"))[0] == 200

        await until(ready, timeout=30)
        job = emu.trigger("workbook:slow")
        await emu.wait_for(job.id, timeout=30)
        assert emu.job(job.id).status == "complete"

        async def counted() -> bool:
            text = (await get(http, f"{url}/metrics"))[1]
            return 'flatjobs_jobs_ended_total{job="workbook:slow",outcome="complete"} 1.0' in text

        await until(counted)
        text = (await get(http, f"{url}/metrics"))[1]
        assert (
            'flatjobs_http_requests_total{endpoint="events.list",method="GET",status="200"}' in text
        )
        assert 'flatjobs_job_ack_latency_seconds_count{job="workbook:slow"} 1.0' in text
        assert emu.token not in text
        status, body = await get(http, f"{url}/healthz")
        assert status == 200
        assert json.loads(body)["status"] == "ok"
    assert proc.returncode == 0
