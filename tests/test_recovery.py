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

from flatjobs import ORPHAN_MESSAGE, STOPPED_MESSAGE
from flatjobs.emulator import Emulator
from flatjobs.models import TERMINAL_STATUSES, RetryNext

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
    log: Path | None = None,
    extra: tuple[str, ...] = (),
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`flatjobs run` on the recovery app, pointed at ``url`` (and ``push``, the push
    channel's origin), its warnings and errors in ``log``; SIGTERM on the way out."""
    stderr = contextlib.ExitStack()
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
        *extra,
        cwd=ROOT,
        env=env,
        stderr=stderr.enter_context(log.open("ab")) if log else asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        with stderr:
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


async def started_once(runs: Path, job_id: str) -> None:
    async with asyncio.timeout(30):
        while job_id not in runs_of(runs):  # noqa: ASYNC110 - another process writes it
            await asyncio.sleep(0.05)


async def read_by_lifecycle(emu: Emulator, job_id: str, after: int) -> None:
    """Wait until a listener read ``job_id`` (its lifecycle's check before the ack) in
    the emulator's requests from number ``after`` on."""
    async with asyncio.timeout(30):
        while not any(  # noqa: ASYNC110 - another process makes the request
            r.route == "jobs.get" and r.path.endswith(job_id) for r in emu.requests[after:]
        ):
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("stopped", [signal.SIGSTOP, signal.SIGKILL], ids=["paused", "dead"])
async def test_a_new_job_ready_for_a_job_executing_elsewhere_does_not_start_its_body_again(
    tmp_path: Path, stopped: signal.Signals
) -> None:
    runs, log = tmp_path / "runs", tmp_path / "second.log"
    # The first listener starts the body, then is paused or killed mid-job.
    async with Emulator() as emu, listener(emu.url, emu, runs, seconds=60, sweep=600) as first:
        job = emu.trigger("workbook:work")
        await started_once(runs, job.id)
        first.send_signal(stopped)
        # A second listener on the environment (a restart, or a second one started by
        # mistake) gets two more job:ready events for it, with ids of their own.
        async with listener(emu.url, emu, runs, seconds=0.05, sweep=600, log=log):
            for _ in range(2):
                seen = len(emu.requests)
                emu.emit(
                    "job:ready",
                    domain="job",
                    context={"jobId": job.id, "workbookId": job.source},
                    payload={"job": "workbook:work", "status": "ready", "isPart": False},
                )
                await read_by_lifecycle(emu, job.id, seen)
                async with asyncio.timeout(30):  # its warning is written
                    while "already executing" not in log.read_text():  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            assert runs_of(runs)[job.id] == 1  # not started again
            assert emu.job(job.id).status == "executing"
            # The user's Retry still runs it: the job is failed, retried, and run.
            emu.state.finish(job.id, {"info": "given up"}, call="fail")
            emu.retry(job.id)
            await emu.wait_for(job.id, ["complete"], timeout=30)
        if stopped == signal.SIGSTOP:
            first.send_signal(signal.SIGKILL)  # never resumed: it would end the job
    assert runs_of(runs)[job.id] == 2
    warnings = [line for line in log.read_text().splitlines() if "already executing" in line]
    assert len(warnings) == 1  # one clear line, naming the fix
    assert "--workers" in warnings[0]
    assert "--nats" in warnings[0]


@pytest.mark.parametrize("raised", ["KeyboardInterrupt", "SystemExit"])
async def test_a_handler_raising_keyboardinterrupt_stops_the_listener_as_ctrl_c_does(
    tmp_path: Path, raised: str
) -> None:
    runs, log = tmp_path / "runs", tmp_path / "run.log"
    async with Emulator() as emu:
        extra = ("--grace-period", "1")
        async with listener(
            emu.url, emu, runs, seconds=0.05, sweep=600, log=log, extra=extra
        ) as proc:
            finishing = [emu.trigger("workbook:work", input={"seconds": 0.5}).id for _ in range(2)]
            stuck = [emu.trigger("workbook:work", input={"seconds": 60}).id for _ in range(2)]
            await started_once(runs, stuck[-1])
            interrupt = emu.trigger("workbook:work", input={"raise": raised}).id
            code = await asyncio.wait_for(proc.wait(), 30)  # it stops by itself
            jobs = {i: emu.job(i) for i in [*finishing, *stuck, interrupt]}
    said = log.read_text()
    assert code == 0, said[-3000:]  # as after Ctrl-C: a clean stop
    assert "stopping: no new events are taken" in said  # what Ctrl-C says
    assert f"a callback raised {raised}" in said
    assert {jobs[i].status for i in finishing} == {"complete"}  # finished in the grace period
    for job_id in [*stuck, interrupt]:  # failed, so the user can run them again
        outcome = jobs[job_id].outcome
        assert jobs[job_id].status == "failed"
        assert outcome is not None
        assert outcome.message == STOPPED_MESSAGE
        assert isinstance(outcome.next, RetryNext)
