"""flatjobs dev --reload: new events go to the new code, running jobs finish on the old, the
subscription stays, and code that does not import leaves the previous version running."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

from flatjobs import FlatfileClient
from flatjobs.models import JobConfig

APP = """
import asyncio
from flatjobs import Jobs
from helper import VERSION

jobs = Jobs()

@jobs.handle("workbook:slow")
async def slow(event, tick):
    await tick(10, "working")
    await asyncio.sleep(3)
    return f"slow job done by {VERSION}"

@jobs.handle("workbook:quick")
async def quick(event, tick):
    return f"quick job done by {VERSION}"
"""


async def _line(stream: asyncio.StreamReader, pattern: str) -> str:
    async with asyncio.timeout(30):
        while line := (await stream.readline()).decode():
            if re.search(pattern, line):
                return line.strip()
    raise AssertionError(f"no line matching {pattern!r}")


async def _run(client: FlatfileClient, job: str) -> str:
    """Trigger ``job`` as an immediate job and wait for its outcome message."""
    domain, _, operation = job.partition(":")
    created = await client.jobs.create(
        JobConfig(type=domain, operation=operation, source="us_wb_reload", trigger="immediate")
    )
    async with asyncio.timeout(30):
        while (done := await client.jobs.get(created.id)).status not in ("complete", "failed"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert done.outcome is not None
    return str(done.outcome.message)


async def test_reload_swaps_the_code_for_new_events_and_keeps_running_jobs_on_the_old(
    tmp_path: Path,
) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    helper = tmp_path / "helper.py"
    helper.write_text('VERSION = "v1"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLATFILE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flatjobs",
        "dev",
        "app.py",
        "--reload",
        "--trigger",
        "workbook:slow",
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        first = await _line(proc.stdout, r"emulator on ")
        url = re.search(r"http://[\d.:]+", first)
        assert url is not None
        await _line(proc.stdout, r"workbook:slow .*working")  # the slow job runs, on v1
        async with FlatfileClient(
            url.group(0), "sk_emulator_local", environment_id="us_env_emulator"
        ) as client:
            assert await _run(client, "workbook:quick") == "quick job done by v1"
            helper.write_text('VERSION = "v2"\n')  # a module the target imports changes
            said = await _line(proc.stderr, r"flatjobs dev: reloaded")
            assert "helper.py" in said
            assert await _run(client, "workbook:quick") == "quick job done by v2"
            (tmp_path / "app.py").write_text("this is not python (\n")
            refused = await _line(proc.stderr, r"flatjobs dev: ")
            assert await _run(client, "workbook:quick") == "quick job done by v2"
        slow = await _line(proc.stdout, r"workbook:slow\s+ok")
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.communicate(), 30)
    assert "slow job done by v1" in slow  # it finished on the code it started with
    assert "app.py changed, but the new code does not load" in refused
    assert "SyntaxError" in refused
    assert refused.endswith("the previous version keeps running")


def test_reload_without_watchfiles_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flatjobs.dev._reload import Reloader
    from flatjobs.errors import ConfigurationError

    monkeypatch.setitem(sys.modules, "watchfiles", None)  # as if not installed
    with pytest.raises(ConfigurationError, match=r"pip install -e '\.\[reload\]'"):
        Reloader("app.py", print, lambda target: None)
