"""The distributed mode with real processes: ``flatjobs run --nats`` ingress and worker
processes against the emulator and a real nats-server, real SIGKILLs and a broker restart.
Each test is bounded in time; figures are in docs/scaling.md."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import aiohttp
import pytest

from flatjobs import ORPHAN_MESSAGE, STOPPED_MESSAGE
from flatjobs.emulator import Emulator
from flatjobs.models import TERMINAL_STATUSES

from .nats_server import NatsServer
from .test_nats import nats_server
from .test_recovery import all_ended, runs_of

__all__ = ["nats_server"]  # the fixture, shared with test_nats.py

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
APP = "tests/nats_app.py"
ACK_WAIT = 3.0


@contextlib.contextmanager
def _log_file(path: Path) -> Iterator[IO[bytes]]:
    with path.open("ab") as file:
        yield file


class Cluster:
    """``flatjobs run --nats`` processes, each logging to a file of its own."""

    def __init__(self, emu: Emulator, server: NatsServer, tmp: Path, *, ack_wait: float) -> None:
        self.emu, self.server, self.tmp, self.ack_wait = emu, server, tmp, ack_wait
        self.runs = tmp / "runs"
        self.procs: list[asyncio.subprocess.Process] = []
        self._stack = contextlib.ExitStack()

    async def start(self, role: str, *extra: str) -> asyncio.subprocess.Process:
        env = {
            **os.environ,
            **self.emu.env(),
            "FLATJOBS_TEST_RUNS": str(self.runs),
            "FLATJOBS_NATS_URL": self.server.url,
        }
        log = self._stack.enter_context(_log_file(self.tmp / f"{role}-{len(self.procs)}.log"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flatjobs",
            "run",
            APP,
            "--role",
            role,
            "--interval",
            "0.05",
            "--sweep-interval",
            "0.5",
            "--ready-grace",
            "1",
            "--ack-wait",
            str(self.ack_wait),
            "--partitions",
            "2",
            "--log-level",
            "warning",
            *extra,
            cwd=ROOT,
            env=env,
            stderr=log,
        )
        self.procs.append(proc)
        return proc

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        try:
            for proc in self.procs:
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:  # stuck: never leave a process behind a test
                    proc.kill()
                    await proc.wait()
                    raise
        finally:
            for proc in self.procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            self._stack.close()

    def pids(self) -> dict[str, list[int]]:
        """Which process started each body, in order."""
        path = self.runs.with_name("runs.pids")
        ran: dict[str, list[int]] = collections.defaultdict(list)
        if path.exists():
            for line in path.read_text().splitlines():
                job_id, pid = line.split()
                ran[job_id].append(int(pid))
        return ran

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("*.log")))


@contextlib.asynccontextmanager
async def cluster(
    emu: Emulator, server: NatsServer, tmp: Path, *, ack_wait: float = ACK_WAIT
) -> AsyncIterator[Cluster]:
    made = Cluster(emu, server, tmp, ack_wait=ack_wait)
    try:
        yield made
    finally:
        await made.stop()


def message(emu: Emulator, job_id: str) -> str | None:
    outcome = emu.job(job_id).outcome
    return outcome.message if outcome is not None else None


async def started(made: Cluster, ids: list[str], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while set(ids) - set(made.pids()):  # noqa: ASYNC110 - other processes write it
            await asyncio.sleep(0.05)


async def test_two_ingresses_and_three_workers_run_300_jobs_each_once(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async with Emulator(record=False) as emu, cluster(emu, nats_server, tmp_path) as made:
        for role in ("ingress", "ingress", "worker", "worker", "worker"):
            await made.start(role)
        ids = []
        for n in range(300):
            ids.append(emu.trigger("workbook:work").id)
            if n % 50 == 49:
                await asyncio.sleep(0.2)
        await all_ended(emu, ids, timeout=90)
        statuses = collections.Counter(str(emu.job(i).status) for i in ids)
        workers = {pid for pids in made.pids().values() for pid in pids}
    counts = runs_of(made.runs)
    assert statuses == {"complete": 300}, made.logs()[-3000:]
    assert [i for i in ids if counts[i] != 1] == []  # each body ran once
    assert len(workers) == 3  # every worker took a share


async def test_a_killed_worker_s_jobs_end_within_ack_wait(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async with Emulator(record=False) as emu, cluster(emu, nats_server, tmp_path) as made:
        await made.start("ingress")
        for _ in range(3):
            await made.start("worker", "--grace-period", "0.5", "--concurrency", "8")
        work = [emu.trigger("workbook:work", input={"seconds": 60}).id for _ in range(12)]
        rerun = [emu.trigger("workbook:idempotent", input={"seconds": 60}).id for _ in range(6)]
        await started(made, work + rerun)
        by_pid = collections.Counter(pids[0] for pids in made.pids().values())
        victim_pid = by_pid.most_common(1)[0][0]
        victim = next(p for p in made.procs if p.pid == victim_pid)
        theirs = [i for i, pids in made.pids().items() if pids[0] == victim_pid]
        loop = asyncio.get_running_loop()
        victim.send_signal(signal.SIGKILL)
        killed_at = loop.time()
        await victim.wait()
        failed = [i for i in theirs if i in work]
        rerun_here = [i for i in theirs if i in rerun]
        await all_ended(emu, theirs, timeout=ACK_WAIT + 10)
        ended_after = loop.time() - killed_at
        others = [i for i in work + rerun if i not in theirs]
        assert others
        assert {str(emu.job(i).status) for i in others} == {"executing"}
    # After the stop (grace period 0.5 s), every job has ended.
    assert {emu.job(i).status for i in work + rerun} <= TERMINAL_STATUSES
    assert {message(emu, i) for i in failed} <= {ORPHAN_MESSAGE}
    assert {str(emu.job(i).status) for i in rerun_here} <= {"complete"}
    assert {message(emu, i) for i in others if i in work} <= {STOPPED_MESSAGE}
    pids = made.pids()
    assert all(len(pids[i]) == 1 for i in work)  # a failed orphan's body ran once
    assert all(len(pids[i]) == 2 and victim_pid not in pids[i][1:] for i in rerun_here)
    # Bounded by all_ended's timeout above; how soon within it is a figure, not a test.
    print(f"{len(theirs)} jobs on the killed worker ended {ended_after:.1f} s after the kill")


async def test_a_broker_restart_mid_run_loses_no_job_and_runs_none_twice(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async with (
        Emulator(record=False) as emu,
        cluster(emu, nats_server, tmp_path, ack_wait=5) as made,
    ):
        for role in ("ingress", "worker", "worker"):
            await made.start(role)
        ids = [emu.trigger("workbook:work", input={"seconds": 0.3}).id for _ in range(100)]
        async with asyncio.timeout(30):  # the cluster is up and busy
            while sum(emu.job(i).status == "complete" for i in ids) < 20:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        # Stopped with jobs in flight, messages pending and events to publish; jobs keep
        # coming while it is away.
        restart = asyncio.create_task(asyncio.to_thread(nats_server.restart, 1.0))
        for _ in range(10):
            ids += [emu.trigger("workbook:work", input={"seconds": 0.3}).id for _ in range(10)]
            await asyncio.sleep(0.1)
        await restart
        await all_ended(emu, ids, timeout=90)
        statuses = collections.Counter(str(emu.job(i).status) for i in ids)
        logs = made.logs()
    counts = runs_of(made.runs)
    assert statuses == {"complete": 200}, logs[-3000:]
    assert [i for i in ids if counts[i] != 1] == []
    assert "lost the connection to the NATS server" in logs  # the restart was seen


async def test_a_worker_s_readyz_follows_its_broker(nats_server: NatsServer) -> None:
    """``/readyz`` of a worker process (no event source of its own) answers for its broker:
    503 while the NATS server is away, 200 again once it is back."""
    async with Emulator(record=False) as emu, aiohttp.ClientSession() as http:
        env = {**os.environ, **emu.env(), "FLATJOBS_NATS_URL": nats_server.url}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flatjobs",
            "run",
            APP,
            "--role",
            "worker",
            "--ack-wait",
            str(ACK_WAIT),
            "--partitions",
            "2",
            "--log-level",
            "info",
            "--metrics-port",
            "0",
            "--metrics-host",
            "127.0.0.1",
            cwd=ROOT,
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        try:
            url = await _health_url(proc.stderr)
            drain = asyncio.create_task(proc.stderr.read())

            async def readyz(status: int) -> dict[str, object]:
                async with asyncio.timeout(20):
                    while True:
                        async with http.get(f"{url}/readyz") as answer:
                            body: dict[str, object] = json.loads(await answer.text())
                            if answer.status == status:
                                return body
                        await asyncio.sleep(0.05)

            assert (await readyz(200))["source"] == {"connected": True}
            await asyncio.to_thread(nats_server.stop)
            assert (await readyz(503))["source"] == {"connected": False}
            await asyncio.to_thread(nats_server.start)
            assert (await readyz(200))["source"] == {"connected": True}
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        await drain
    assert proc.returncode == 0


async def _health_url(stderr: asyncio.StreamReader) -> str:
    """The health server's URL, from the line the process logs when it listens."""
    lines: list[str] = []
    async with asyncio.timeout(30):
        while True:
            line = (await stderr.readline()).decode()
            assert line, "flatjobs run exited:\n" + "".join(lines)
            lines.append(line)
            found = re.search(r"url=(http://\S+)", line)
            if found:
                return found[1]


async def test_sigterm_with_the_broker_gone_stops_each_role_cleanly(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """The broker is away when SIGTERM comes: each process still stops, within its grace
    period and without a traceback (an ingress could not save its cursor: a warning says
    so; an event whose message could not be settled is waited for, then given up)."""
    async with Emulator(record=False) as emu, cluster(emu, nats_server, tmp_path) as made:
        ingress = await made.start("ingress", "--grace-period", "2")
        worker = await made.start("worker", "--grace-period", "2")
        ids = [emu.trigger("workbook:work").id for _ in range(3)]
        await all_ended(emu, ids, timeout=30)
        await asyncio.to_thread(nats_server.kill)
        await asyncio.sleep(0.5)
        for proc in (ingress, worker):
            proc.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(proc.wait(), 30) for proc in (ingress, worker)]
    assert codes == [0, 0], made.logs()[-3000:]
    assert "Traceback" not in made.logs(), made.logs()[-3000:]
