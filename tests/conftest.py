"""Shared fixtures: a recording aiohttp server for exact-wire assertions, and sample events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

import flatjobs
from flatjobs.emulator import DEFAULT_TOKEN, Emulator

DATA = Path(__file__).parent / "data"
TOKEN = "sk_test_8c1f5e2d9a7b4c3e"

JOB_BODY = {
    "data": {
        "id": "us_jb_1",
        "type": "workbook",
        "operation": "export",
        "source": "us_wb_1",
        "status": "executing",
    }
}


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Any:
    flatjobs.set_testing(True)
    yield
    flatjobs.set_testing(False)


KNOWN_TOKENS = (TOKEN, DEFAULT_TOKEN)


@pytest.fixture(autouse=True)
def _no_token_in_any_log_line() -> Any:
    """Every log event of every test is checked: no known token may appear in it."""
    leaks: list[str] = []

    def check(logger: Any, method: str, event_dict: Any) -> Any:
        text = repr(event_dict)
        leaks.extend(text for token in KNOWN_TOKENS if token in text)
        return event_dict

    structlog.configure(processors=[check, *structlog.get_config()["processors"]])
    yield
    # The CLI configures structlog process-wide (printing to the stderr pytest captures);
    # later tests must neither write to that closed stream nor lose this check.
    structlog.reset_defaults()
    assert leaks == [], "a token reached a log line"


@pytest.fixture
def emu(flatfile_emulator: Emulator) -> Emulator:
    """A running emulator: the plugin's ``flatfile_emulator``, under a short name."""
    return flatfile_emulator


def load_event(name: str) -> dict[str, Any]:
    """A raw event from tests/data/events (copied from shared/fixtures)."""
    data: dict[str, Any] = json.loads((DATA / "events" / f"{name}.json").read_text())
    return data


@attrs.frozen
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    raw: bytes
    raw_path: str = ""
    """The path as it came on the wire, still percent-encoded."""
    raw_query: str = ""
    """The query string as it came on the wire."""


Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]] | str
"""A scripted answer: (status, body[, headers]), or "drop" to close the connection."""


def _json_or_text(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


# What the platform answers an unscripted call with: the job in the status the call leads to.
_STATUS_AFTER = {"complete": "complete", "fail": "failed", "cancel": "canceled"}


def job_reply(path: str, method: str = "POST", status: str | None = None) -> tuple[int, Any]:
    """``200`` with the job, in the status a call to ``path`` leaves it in (a ``GET`` of
    the job: ``status``, by default ``ready``, as the platform has a job before its ack)."""
    if method == "GET":
        status = status or "ready"
    else:
        status = _STATUS_AFTER.get(path.rsplit("/", 1)[-1], "executing")
    return (200, {"data": {**JOB_BODY["data"], "status": status}})


class RecordingServer:
    """A real local aiohttp server that records every request and answers from a script.

    Unscripted requests answer ``200`` with the job, as the platform would: ``ready``
    until it was acknowledged, then ``executing`` (``complete``, ``failed`` or ``canceled``
    after those calls).
    """

    def __init__(self) -> None:
        self.statuses: dict[str, str] = {}
        """The status each job is in after the calls made on it (unscripted answers)."""
        self.requests: list[Recorded] = []
        self.script: list[Reply] = []
        self.responder: Callable[[Recorded], Reply] | None = None
        self.url = ""

    def job_reply(self, rec: Recorded) -> tuple[int, Any]:
        """The platform's answer to a job call: the job in the status the calls made on it
        so far leave it in."""
        parts = rec.path.split("/")  # "", "v1", "jobs", id, action?
        job_id = parts[3] if len(parts) > 3 and parts[2] == "jobs" else ""
        reply = job_reply(rec.path, rec.method, self.statuses.get(job_id))
        if rec.method != "GET" and job_id:
            self.statuses[job_id] = reply[1]["data"]["status"]
        return reply

    def calls(self) -> list[tuple[str, str, Any]]:
        return [(r.method, r.path, r.json) for r in self.requests]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        rec = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            json=_json_or_text(raw),
            raw=raw,
            raw_path=request.raw_path.partition("?")[0],
            raw_query=request.query_string,
        )
        self.requests.append(rec)
        if self.script:
            reply = self.script.pop(0)
        elif self.responder is not None:
            reply = self.responder(rec)
        else:
            reply = self.job_reply(rec)
        if reply == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        assert not isinstance(reply, str)
        status, body, *rest = reply
        headers = rest[0] if rest else {}
        if status == 304:
            return web.Response(status=304, headers=headers)
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingServer]:
    rec = RecordingServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    rec.url = str(server.make_url("")).rstrip("/")
    yield rec
    await server.close()


@pytest.fixture
async def rclient(recorder: RecordingServer) -> AsyncIterator[flatjobs.FlatfileClient]:
    """A client bound to the recording server."""
    async with flatjobs.FlatfileClient(recorder.url, TOKEN, environment_id="us_env_1") as client:
        yield client
