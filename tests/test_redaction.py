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
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from flatjobs.emulator import Emulator
from flatjobs.log import MAX_LOGGED_CHARS, REDACTED, redact_text, register_secret

ROOT = Path(__file__).parent.parent
# Tokens of these tests' own: the suite's log guard (conftest) knows the usual ones, and
# here exceptions carry these on purpose, to see them redacted where text leaves.
BEARER = "sk_live_5f2c9a81d3e64b07"
API_KEY = "ak_9d8c7b6a5f4e3d2c1b0a"


# ------------------------------------------------------------------ no secret leaves


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


# ------------------------------------------------------------------ URLs in spans


# ------------------------------------------------------------------ tracebacks in the CLI's log


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
