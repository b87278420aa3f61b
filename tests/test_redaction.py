"""Redaction: no secret leaves the process, end to end against the emulator.

The client's bearer token, the push channel's token and every secret read through
``event.secrets()`` are hidden from job outcomes and info, logs, spans and error texts; no
URL a span shows carries a credential; what an end user reads of a failure is readable;
and a traceback in the CLI's log keeps every frame while values stay bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import flatjobs.otel
from flatjobs import (
    MAX_MESSAGE_CHARS,
    FlatfileEvent,
    JobError,
    Jobs,
    Listener,
    PushSource,
    Runner,
    Tick,
    failure_details,
    job_lifecycle,
)
from flatjobs._otel_auto import filter_urls
from flatjobs.dev._console import configure_logging
from flatjobs.emulator import Emulator
from flatjobs.instruments import add_instrument
from flatjobs.log import (
    MAX_LOGGED_CHARS,
    REDACTED,
    get_logger,
    redact_text,
    redact_value,
    register_secret,
)
from flatjobs.models import Job
from flatjobs.testing import client_for, run_job

ROOT = Path(__file__).parent.parent
# Tokens of these tests' own: the suite's log guard (conftest) knows the usual ones, and
# here exceptions carry these on purpose, to see them redacted where text leaves.
BEARER = "sk_live_5f2c9a81d3e64b07"
API_KEY = "ak_9d8c7b6a5f4e3d2c1b0a"


@pytest.fixture
async def private_emu() -> AsyncIterator[Emulator]:
    async with Emulator(token=BEARER, push_hold=1.0) as emu:
        emu.add_secret("API_KEY", API_KEY)
        yield emu


def record_tokens(emu: Emulator) -> list[str]:
    """The push tokens ``emu`` issues from now on, as they are issued."""
    tokens: list[str] = []
    issue = emu.push.issue_token

    def recorded() -> str:
        tokens.append(issue())
        return tokens[-1]

    emu.push.issue_token = recorded  # type: ignore[method-assign]
    return tokens


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    remove = add_instrument(flatjobs.otel.OpenTelemetry(provider))
    yield exporter
    remove()
    provider.shutdown()


def span_texts(finished: tuple[ReadableSpan, ...]) -> str:
    """Everything a span exporter would send of these spans, as one text."""
    parts: list[str] = []
    for span in finished:
        parts += [span.name, str(span.status.description), repr(dict(span.attributes or {}))]
        parts += [f"{e.name} {dict(e.attributes or {})!r}" for e in span.events]
    return "\n".join(parts)


async def run_until_ended(emu: Emulator, jobs: Jobs, names: list[str]) -> list[Job]:
    """Run ``jobs`` from the emulator's push channel until each job ``names`` triggers ended."""
    async with client_for(emu) as client:
        source = PushSource(client, origin=emu.push_url)
        runner = Runner(Listener(client=client).use(jobs), source)
        task = asyncio.create_task(runner.run())
        try:
            ids = [emu.trigger(name).id for name in names]
            return [await emu.wait_for(job_id, timeout=30) for job_id in ids]
        finally:
            runner.stop()
            await asyncio.wait_for(task, 30)


# ------------------------------------------------------------------ no secret leaves


async def test_no_secret_reaches_a_job_s_outcome_info_logs_or_spans(
    private_emu: Emulator, spans: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = private_emu
    configure_logging("info")  # the CLI's own chain, printing to the captured stderr
    jobs = Jobs()
    issued = record_tokens(emu)  # the push source's token, then the one the handler reads

    @jobs.handle("workbook:crash")
    async def crash(event: FlatfileEvent, tick: Tick) -> None:
        key = await event.secrets("API_KEY")
        channel = await event.client.events.subscription()
        headers = {"Authorization": f"Bearer {BEARER}", "X-Api-Key": key}
        url = f"{emu.push_url}/v2/subscribe/k/c/0?tt=0&auth={issued[0]}"
        raise RuntimeError(f"the upstream call with {headers} to {url} failed ({channel.token})")

    @jobs.handle("workbook:reject")
    async def reject(event: FlatfileEvent, tick: Tick) -> None:
        key = await event.secrets("API_KEY")
        raise JobError(f"The key {key} was refused", heading=f"Key {key}", info=f"info {key}")

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> str:
        return f"Exported with {await event.secrets('API_KEY')}"

    ended = await run_until_ended(
        emu, jobs, ["workbook:crash", "workbook:reject", "workbook:export"]
    )
    crashed, rejected, exported = ended
    secrets = [BEARER, API_KEY, *issued]
    assert len(issued) == 2
    assert [j.status for j in ended] == ["failed", "failed", "complete"]
    sent = [r.json for r in emu.requests if r.route in ("jobs.fail", "jobs.complete")]
    shown = [*(repr(j) for j in ended), *map(repr, sent), *map(repr, emu.events)]
    shown += [capsys.readouterr().err, span_texts(spans.get_finished_spans())]
    for text in shown:
        for secret in secrets:
            assert secret not in text
    # What is left is still worth reading.
    assert crashed.outcome is not None
    assert crashed.outcome.message == (
        f"RuntimeError: the upstream call with {{'Authorization': 'Bearer {REDACTED}', "
        f"'X-Api-Key': '{REDACTED}'}} to {emu.push_url}/v2/subscribe/k/c/0?tt=0&auth={REDACTED}"
        f" failed ({REDACTED})"
    )
    assert rejected.outcome is not None
    assert rejected.outcome.message == f"The key {REDACTED} was refused"
    assert (rejected.outcome.heading, rejected.info) == (f"Key {REDACTED}", f"info {REDACTED}")
    assert exported.outcome is not None
    assert exported.outcome.message == f"Exported with {REDACTED}"


@pytest.mark.parametrize("limit", [MAX_MESSAGE_CHARS, MAX_LOGGED_CHARS])
async def test_a_secret_across_a_cut_leaves_no_part_of_itself(
    private_emu: Emulator, limit: int
) -> None:
    async with client_for(private_emu) as client:
        await client.secrets.list()  # reading it registers API_KEY
    for at in range(limit - len(API_KEY) - 2, limit + 2):
        text = "x" * at + API_KEY + "y" * 5000
        if limit == MAX_MESSAGE_CHARS:
            details = failure_details(JobError(text))
            assert details.outcome is not None
            shown = [details.info, details.outcome.message]
        else:
            shown = [redact_value(text, limit=limit)]
        for cut in shown:
            assert cut is not None
            assert API_KEY[:3] not in cut, at


def test_a_secret_is_redacted_in_the_forms_it_takes_in_reprs_json_and_urls() -> None:
    secret = ' pw"with\\odd/chars+and=é\n'
    register_secret(secret)
    inner = secret.strip()
    for text, form in [
        (repr({"password": secret}), repr(secret)[1:-1]),
        (json.dumps({"password": secret}), json.dumps(secret)[1:-1]),
        (f"https://h/p?x={quote(inner, '')}", quote(inner, "")),
        (f"https://h/p?x={quote(secret, '')}", quote(secret, "")),
        (f"said {inner}.", inner),
    ]:
        assert form in text
        assert form not in redact_text(text)
        assert REDACTED in redact_text(text)


def test_a_secret_inside_a_longer_one_leaves_nothing_of_the_longer() -> None:
    short, long = "abcd9876", "zz-abcd9876-ZZtail"
    register_secret(short)
    register_secret(long)
    assert redact_text(f"<{long}>") == f"<{REDACTED}>"


@pytest.mark.parametrize("bad", [None, 12345678, b"bytes-secret"])
def test_registering_a_secret_that_is_not_text_is_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="a secret must be a string"):
        register_secret(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /v2/subscribe/k/c/0?tt=1&auth=pn_abc-DEF_1&uuid=u", f"GET /v2/subscribe/k/c/0?tt=1&auth={REDACTED}&uuid=u"),
        ("url='https://x/?token=T0k3n'", f"url='https://x/?token={REDACTED}'"),
        ("https://x/cb?code=1&access_token=a.b.c#frag", f"https://x/cb?code=1&access_token={REDACTED}#frag"),
        ("https://maps/?KEY=AIza123 and more", f"https://maps/?KEY={REDACTED} and more"),
        ("https://x/?tt=17000000000000000&tr=12&uuid=flatjobs", "https://x/?tt=17000000000000000&tr=12&uuid=flatjobs"),
        ("the token=abc was rejected", "the token=abc was rejected"),
    ],
)  # fmt: skip
def test_a_credential_in_a_url_s_query_is_redacted_and_nothing_else(
    text: str, expected: str
) -> None:
    assert redact_text(text) == expected


# ------------------------------------------------------------------ what the user reads


async def test_a_failure_reads_as_its_type_and_text_and_a_job_error_as_written(
    emu: Emulator,
) -> None:
    jobs = Jobs()

    @jobs.handle("sheet:lookup")
    async def lookup(event: FlatfileEvent, tick: Tick) -> None:
        row: dict[str, str] = {"name": "Ada"}
        await tick(50, row["email"])

    @jobs.handle("sheet:silent")
    async def silent(event: FlatfileEvent, tick: Tick) -> None:
        raise ConnectionResetError

    @jobs.handle("sheet:validate")
    async def validate(event: FlatfileEvent, tick: Tick) -> None:
        raise JobError("  3 rows have no email: see https://help.example/?topic=email&key=7  ")

    @jobs.handle("sheet:slow", timeout=0.05)
    async def slow(event: FlatfileEvent, tick: Tick) -> None:
        await asyncio.sleep(10)

    listener = Listener().use(jobs)
    shown = {}
    for name in ("sheet:lookup", "sheet:silent", "sheet:validate", "sheet:slow"):
        job = await run_job(listener, emu, name)
        assert job.status == "failed"
        assert job.outcome is not None
        assert job.info == job.outcome.message
        shown[name] = job.outcome.message
        assert job.id not in str(job.outcome.message)
    assert shown == {
        "sheet:lookup": "KeyError: 'email'",
        "sheet:silent": "ConnectionResetError",
        # The handler's words; the URL is the one it chose to show.
        "sheet:validate": "3 rows have no email: see https://help.example/?topic=email&key=7",
        "sheet:slow": "The job timed out after 0.05 seconds and was stopped.",
    }


async def test_a_huge_failure_is_bounded_with_its_type_first(emu: Emulator) -> None:
    created = emu.trigger("workbook:export")
    event = next(e for e in emu.events if e["context"].get("jobId") == created.id)
    async with client_for(emu) as client:
        with pytest.raises(ValueError):
            async with job_lifecycle(event, client=client):
                raise ValueError("v" * 3_000_000)
    job = emu.job(created.id)
    assert job.outcome is not None
    assert job.outcome.message is not None
    assert job.outcome.message.startswith("ValueError: vvv")
    assert len(job.outcome.message) == MAX_MESSAGE_CHARS
    assert job.outcome.message.endswith("…")


# ------------------------------------------------------------------ URLs in spans


def finished_urls(exporter: InMemorySpanExporter) -> list[str]:
    return [
        str(value)
        for span in exporter.get_finished_spans()
        for key, value in (span.attributes or {}).items()
        if key in ("url.full", "http.url")
    ]


async def test_aiohttp_instrumented_with_flatjobs_url_filter_shows_no_push_token(
    private_emu: Emulator,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tokens = record_tokens(private_emu)
    instrumentor = AioHttpClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider, url_filter=flatjobs.otel.url_filter)
    try:
        jobs = Jobs()

        @jobs.handle("workbook:export")
        async def export(event: FlatfileEvent, tick: Tick) -> None:
            pass

        [job] = await run_until_ended(private_emu, jobs, ["workbook:export"])
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    assert job.status == "complete"
    subscribes = [u for u in finished_urls(exporter) if "/v2/subscribe/" in u]
    assert tokens
    assert subscribes
    assert all(f"auth={REDACTED}" in u for u in subscribes)
    texts = span_texts(exporter.get_finished_spans())
    assert not [t for t in {*tokens, BEARER} if t in texts]


async def test_flatjobs_own_http_spans_filter_their_urls() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"data": {}})

    app = web.Application()
    app.router.add_get("/v1/anything", ok)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configs = flatjobs.otel.OpenTelemetry(provider).aiohttp_trace_configs()
    async with TestServer(app) as server:
        import aiohttp

        async with aiohttp.ClientSession(trace_configs=configs) as session:
            url = server.make_url("/v1/anything")
            async with session.get(url, params={"tt": "1", "token": "tok_9f8e7d"}):
                pass
    provider.shutdown()
    [shown] = finished_urls(exporter)
    assert shown.endswith(f"/v1/anything?tt=1&token={REDACTED}")


def test_the_launcher_hook_leaves_aiohttp_s_instrumentation_off_when_it_is_off() -> None:
    instrumentor = AioHttpClientInstrumentor()
    assert not instrumentor.is_instrumented_by_opentelemetry
    filter_urls()  # as after OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=aiohttp-client
    assert not instrumentor.is_instrumented_by_opentelemetry


def test_opentelemetry_instrument_run_shows_no_push_token_in_any_span(tmp_path: Path) -> None:
    """The documented launcher, for real: it turns aiohttp's instrumentation on for every
    session, the push source's long-poll included; no span may show the channel's token."""
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    done = subprocess.run(
        [str(launcher), sys.executable, str(ROOT / "tests" / "apps" / "traced_push.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FLATFILE_"))},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["status"] == "complete"
    assert report["tokens"]
    subscribes = [s for s in report["spans"] if "/v2/subscribe/" in json.dumps(s["attributes"])]
    assert subscribes, [s["name"] for s in report["spans"]]
    everything = json.dumps(report["spans"])
    assert not [t for t in report["tokens"] if t in everything]
    assert f"auth={REDACTED}" in everything


# ------------------------------------------------------------------ tracebacks in the CLI's log


def test_without_structlog_a_logged_traceback_is_whole_and_its_lines_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    structlog.reset_defaults()  # an application that left structlog alone: stdlib logging
    register_secret(BEARER)

    def deepest() -> None:
        raise ValueError(f"{BEARER} " + "w" * 100_000)

    try:
        deepest()
    except ValueError:
        get_logger("flatjobs.test").exception("it broke", value="v" * 100_000)
    [record] = caplog.records
    text = record.getMessage()
    assert "Traceback (most recent call last)" in text
    assert re.search(r'File ".*test_redaction\.py", line \d+, in deepest', text)
    assert f"ValueError: {REDACTED} www" in text
    assert len(text) < 3 * MAX_LOGGED_CHARS + 1000
    assert BEARER not in text


async def test_the_cli_log_keeps_a_whole_traceback_and_bounds_values() -> None:
    app = "tests/apps/failing.py"
    async with Emulator() as emu:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flatjobs",
            "run",
            app,
            cwd=ROOT,
            env={**os.environ, **emu.env()},
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            ids = [emu.trigger("sheet:import").id, emu.trigger("sheet:flood").id]
            ended = [await emu.wait_for(job_id, timeout=30) for job_id in ids]
        finally:
            proc.send_signal(signal.SIGTERM)
            _, raw = await asyncio.wait_for(proc.communicate(), 30)
    err = raw.decode()
    assert [j.status for j in ended] == ["failed", "failed"]
    # Every frame from the handler down to the raise, and the exception line.
    frames = re.findall(r'File ".*failing\.py", line \d+, in (\w+)', err)
    assert frames[:3] == ["import_rows", "parse", "email_of"]
    assert "KeyError: 'email'" in err
    assert "row['email']" in err or 'row["email"]' in err
    # The megabyte exception and the megabyte log value: each cut, the flood line kept.
    assert len(err) < 40_000
    assert "ValueError: zzzz" in err
    assert err.count("more characters]") >= 3
    assert "z" * (MAX_LOGGED_CHARS + 1) not in err
    assert "q" * (MAX_LOGGED_CHARS + 1) not in err
