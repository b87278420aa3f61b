"""A library is quiet by default: an application that handles jobs with flatjobs, and left
logging alone, prints what it prints itself and nothing else; asking for more gets more."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = """
import asyncio, logging, sys
import flatjobs
from flatjobs.emulator import Emulator
from flatjobs.testing import emulated

{setup}

jobs = flatjobs.Jobs()

@jobs.handle("sheet:export")
async def export(event, tick):
    for n in range(5):
        await tick(n * 20, "working")
    return "exported"

@jobs.handle("sheet:broken")
async def broken(event, tick):
    raise RuntimeError("the handler broke")

async def main():
    async with Emulator() as emu, emulated(flatjobs.Listener().use(jobs), emulator=emu) as env:
        for name in sys.argv[1:]:
            result = await env.trigger(name)
            print(name, result.status)

asyncio.run(main())
"""


def _run(tmp_path: Path, setup: str, *jobs: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT.format(setup=setup)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLATFILE_")}
    return subprocess.run(
        [sys.executable, str(script), *jobs],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )


def test_an_application_that_left_logging_alone_prints_only_its_own_lines(
    tmp_path: Path,
) -> None:
    done = _run(tmp_path, "", "sheet:export", "sheet:export")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "sheet:export complete\nsheet:export complete\n"
    assert done.stderr == ""


def test_warnings_and_errors_go_to_stderr_never_stdout(tmp_path: Path) -> None:
    done = _run(tmp_path, "", "sheet:broken")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "sheet:broken failed\n"
    assert "the handler broke" in done.stderr
    assert "Traceback" in done.stderr  # where it broke, for whoever reads stderr
    assert "debug" not in done.stderr.lower()


def test_an_application_that_configured_logging_gets_what_it_asked_for(tmp_path: Path) -> None:
    setup = "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format='%(name)s %(levelname)s %(message)s')"
    done = _run(tmp_path, setup, "sheet:export")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "sheet:export complete\n"
    lines = done.stderr.splitlines()
    assert any(line.startswith("flatjobs.client DEBUG") for line in lines)
    assert "sk_emulator_local" not in done.stderr  # the emulator's token, never logged


def test_an_application_that_configured_structlog_gets_flatjobs_lines_there(
    tmp_path: Path,
) -> None:
    setup = textwrap.dedent("""
        import structlog
        structlog.configure(
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )
    """)
    done = _run(tmp_path, setup, "sheet:broken")
    assert done.stdout == "sheet:broken failed\n"
    assert '"level": "error"' in done.stderr
    assert "the handler broke" in done.stderr
