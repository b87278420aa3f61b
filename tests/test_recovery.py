"""Real processes, real signals, a real broken network: `flatjobs run` loses no event and
strands no job. Each test is bounded in time; figures are in docs/reliability.md."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flatjobs._reconcile import ORPHAN_MESSAGE
from flatjobs.emulator import Emulator
from flatjobs.models import TERMINAL_STATUSES

from .faultproxy import FaultProxy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
APP = "tests/apps/recovery.py"


@contextlib.asynccontextmanager
async def listener(
    url: str,
    emu: Emulator,
    runs: Path,
    *,
    seconds: float = 0.05,
    sweep: float = 0.5,
    source: str = "push",
    push: str | None = None,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`flatjobs run` on the recovery app, pointed at ``url`` (and ``push``, the push
    channel's origin); SIGTERM on the way out."""
    env = {
        **os.environ,
        **emu.env(),
        "FLATFILE_API_URL": url,
        "FLATFILE_PUSH_ORIGIN": push or emu.push_url,
        "FLATJOBS_TEST_RUNS": str(runs),
        "FLATJOBS_TEST_SECONDS": str(seconds),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flatjobs",
        "run",
        APP,
        "--source",
        source,
        "--interval",
        "0.05",
        "--sweep-interval",
        str(sweep),
        "--ready-grace",
        "0.5",
        "--log-level",
        "warning",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)


def runs_of(path: Path) -> collections.Counter[str]:
    return collections.Counter(path.read_text().split()) if path.exists() else collections.Counter()


async def all_ended(emu: Emulator, ids: list[str], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        for job_id in ids:
            await emu.wait_for(job_id, TERMINAL_STATUSES, timeout=timeout)


@pytest.mark.parametrize("source", ["push", "poll"])
async def test_five_hundred_jobs_through_a_broken_network_each_end_and_run_once(
    tmp_path: Path, source: str
) -> None:
    runs = tmp_path / "runs"
    async with (
        Emulator(fault_seed=11) as emu,
        FaultProxy(emu.url, seed=11) as proxy,
        FaultProxy(emu.push_url, seed=12) as push,  # the push channel breaks too
    ):
        for kind, rate, params in (
            ("reset_before", 0.04, {}),
            ("reset_after", 0.04, {}),
            ("stall", 0.02, {"seconds": 1}),
            ("truncate", 0.03, {}),
            ("garbage", 0.03, {}),
            ("html", 0.02, {}),
            ("data_null", 0.02, {}),
        ):
            proxy.add(kind, rate=rate, **params)  # type: ignore[arg-type]
            push.add(kind, rate=rate * 3, **params)  # type: ignore[arg-type]
        async with listener(proxy.url, emu, runs, sweep=1.0, source=source, push=push.url):
            ids = []
            for n in range(500):
                ids.append(emu.trigger("workbook:work", input={"fail": n % 10 == 0}).id)
                if n % 50 == 49:
                    await asyncio.sleep(0.2)
            await asyncio.sleep(5)  # the faults go on a while with jobs in flight
            faulted, requests = sum(proxy.injected.values()), proxy.requests
            proxy.clear()  # then the network heals
            push.clear()
            await all_ended(emu, ids, timeout=150)
            statuses = collections.Counter(str(emu.job(i).status) for i in ids)
    counts = runs_of(runs)
    print(
        f"{requests} requests, {faulted} faulted, statuses {dict(statuses)}; push channel: "
        f"{push.requests} requests, {sum(push.injected.values())} faulted"
    )
    assert faulted > 150  # the faults really happened: about a fifth of the calls
    assert faulted / requests > 0.15
    assert set(statuses) <= {"complete", "failed"}, statuses
    assert [i for i in ids if counts[i] > 1] == []  # no body ran twice
    assert statuses["complete"] >= 0.6 * len(ids)


@pytest.mark.parametrize("pause", [0.0, 2.0], ids=["restart at once", "restart after a pause"])
async def test_sigkill_with_jobs_in_flight_strands_no_job_and_runs_none_twice(
    tmp_path: Path, pause: float
) -> None:
    runs = tmp_path / "runs"
    async with Emulator() as emu:
        async with listener(emu.url, emu, runs, seconds=60, sweep=0.3) as first:
            ids = [emu.trigger("workbook:work").id for _ in range(20)]
            async with asyncio.timeout(30):  # every body has started
                while set(ids) - set(runs_of(runs)):  # noqa: ASYNC110 - another process writes it
                    await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            await asyncio.wait_for(first.wait(), 10)
        await asyncio.sleep(pause)
        async with listener(emu.url, emu, runs, seconds=0.05, sweep=0.3):
            await all_ended(emu, ids, timeout=30)
            later = emu.trigger("workbook:work").id  # the new process works as usual
            await emu.wait_for(later, timeout=30)
        jobs = [emu.job(i) for i in ids]
    counts = runs_of(runs)
    assert {j.status for j in jobs} == {"failed"}  # none left executing
    assert all(j.outcome is not None and j.outcome.message == ORPHAN_MESSAGE for j in jobs)
    assert [i for i in ids if counts[i] != 1] == []  # each body ran once: before the kill
    assert emu.job(later).status == "complete"
