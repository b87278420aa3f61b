"""Security: ids from events never reach another endpoint, the token never leaves, logs stay small."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest
from structlog.testing import capture_logs

from flatjobs import (
    ConfigurationError,
    FlatfileAPIError,
    FlatfileClient,
    FlatfileEvent,
    InvalidEventError,
    InvalidRequestError,
    Jobs,
    Listener,
    MemorySource,
    Runner,
    Tick,
)
from flatjobs.emulator import Emulator
from flatjobs.log import MAX_LOGGED_CHARS, redact_text
from flatjobs.testing import client_for, make_event

from .conftest import TOKEN, RecordingServer

# ------------------------------------------------------------------ ids from events


def attacks(victim: str) -> list[str]:
    return [f"{victim}/cancel?", f"../jobs/{victim}/cancel#", f"{victim}%2Fcancel", "..", "."]


async def test_a_job_id_that_is_not_an_id_never_reaches_another_endpoint(emu: Emulator) -> None:
    victim = emu.trigger("workbook:export")
    jobs = Jobs()
    ran: list[str] = []

    @jobs.handle("workbook:*")
    async def handler(event: FlatfileEvent, tick: Tick) -> None:
        ran.append(str(event.job_id))

    hostile = [make_event(job="workbook:export", job_id=bad) for bad in attacks(victim.id)]
    async with client_for(emu) as client:
        source = MemorySource(hostile)
        source.close()
        with capture_logs() as logs:
            stats = await Runner(Listener(client=client).use(jobs), source).run()
    assert ran == []
    assert stats.invalid == len(hostile)
    assert emu.job(victim.id).status == "ready"  # untouched: nothing was canceled
    assert [r for r in emu.requests if r.method != "GET"] == []
    problems = [e["problem"] for e in logs if e["event"] == "malformed event skipped"]
    assert all("context.jobId is not a well-formed id" in p for p in problems)


@pytest.mark.parametrize("bad", ["us_jb_1/cancel?", "a b", "x" * 201, 5, ["us_jb_1"]])
def test_an_event_with_a_malformed_job_id_is_a_malformed_event(bad: Any) -> None:
    with pytest.raises(InvalidEventError, match="jobId"):
        FlatfileEvent(make_event("job:updated", job_id="x") | {"context": {"jobId": bad}})


async def test_every_id_the_client_puts_in_a_path_is_one_quoted_segment(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    await rclient.jobs.get("us_jb_1/cancel?x=1#f")
    await rclient.events.ack("e/1")
    assert [r.raw_path for r in recorder.requests] == [
        "/v1/jobs/us_jb_1%2Fcancel%3Fx=1%23f",  # "=" may stand unquoted in a path
        "/v1/events/e%2F1/ack",
    ]


@pytest.mark.parametrize("bad", ["", ".", ".."])
async def test_an_id_a_url_would_resolve_away_is_refused_before_sending(
    recorder: RecordingServer, rclient: FlatfileClient, bad: str
) -> None:
    with pytest.raises(InvalidRequestError, match="must be a non-empty string"):
        await rclient.jobs.cancel(bad)
    assert recorder.requests == []


# ------------------------------------------------------------------ the token never leaves


async def test_a_token_the_server_echoes_is_not_kept_on_the_error(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script.append(
        (400, {"errors": [{"message": f"token {TOKEN} is not allowed here"}], "echo": TOKEN})
    )
    with pytest.raises(FlatfileAPIError) as info:
        await rclient.jobs.get("us_jb_1")
    err = info.value
    for text in (str(err), err.detail, repr(err.body), repr(err.args)):
        assert TOKEN not in text
    assert "[redacted]" in err.detail


async def test_a_token_echoed_in_an_unexpected_2xx_is_not_kept_either(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script += [(200, f"<html>{TOKEN}</html>")] * 3
    with pytest.raises(FlatfileAPIError) as info:
        await rclient.jobs.get("us_jb_1")
    assert TOKEN not in repr(info.value.body) + str(info.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"https://user:{TOKEN}@platform.flatfile.com/api", "must not hold a user name"),
        (f"https://{TOKEN}@platform.flatfile.com/api", "must not hold a user name"),
        (f"https://platform.flatfile.com/api?token={TOKEN}", "must not have a query string"),
        (f"https://platform.flatfile.com/api#{TOKEN}", "must not have a query string"),
        (TOKEN, "must be an http:// or https:// URL"),
        (f"ftp://{TOKEN}", "must be an http:// or https:// URL"),
    ],
)
def test_a_base_url_with_a_secret_in_it_is_refused_without_echoing_it(
    url: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLATFILE_API_URL", url)
    with pytest.raises(ConfigurationError, match=message) as info:
        FlatfileClient(token="sk_other_token_1234")
    assert TOKEN not in str(info.value)
    assert "FLATFILE_API_URL" in str(info.value)


async def test_flatjobs_run_with_a_token_in_the_url_exits_2_without_echoing_it() -> None:
    env = {
        **os.environ,
        "FLATFILE_API_URL": f"https://me:{TOKEN}@example.com/api",
        "FLATFILE_BEARER_TOKEN": "sk_other_token_1234",
        "FLATFILE_ENVIRONMENT_ID": "us_env_1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flatjobs",
        "run",
        "tests/apps/slow.py:jobs",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = (out + err).decode()
    assert proc.returncode == 2
    assert TOKEN not in text
    assert "Traceback" not in text
    assert "must not hold a user name or password" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Unauthorized: a valid bearer token is required", "Unauthorized: a valid bearer token is required"),
        ("Bearer authentication failed", "Bearer authentication failed"),
        ("Authorization: Bearer sk_live_9f8e7d6c5b", "Authorization: Bearer [redacted]"),
        ("bearer eyJhbGciOiJIUzI1NiJ9.e30.x1", "bearer [redacted]"),
    ],
)  # fmt: skip
def test_the_redactor_hides_credentials_and_keeps_ordinary_words(text: str, expected: str) -> None:
    assert redact_text(text) == expected


# ------------------------------------------------------------------ bounded logs


async def test_a_megabyte_id_or_topic_cannot_write_megabytes_of_logs() -> None:
    huge = "x" * 1_000_000
    listener = Listener()

    @listener.on("**")
    async def boom(event: FlatfileEvent) -> None:
        raise RuntimeError(huge)

    source = MemorySource(
        [
            {"id": huge, "topic": huge, "context": {}},
            {"id": "e1", "topic": "job:ready", "context": {"jobId": huge}},
            {"id": huge, "topic": 5, "context": {}},
        ]
    )
    source.close()
    with capture_logs() as logs:
        await Runner(listener, source).run()
    assert logs
    for line in logs:
        for value in line.values():
            if isinstance(value, str):
                assert len(value) < MAX_LOGGED_CHARS + 100, line["event"]
