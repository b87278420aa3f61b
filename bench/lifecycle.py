"""Lifecycle throughput: jobs/s through ``@jobs.handle`` with a no-op handler.

Beside it, measured in the same run against the same minimal server (a separate process):
a hand-written aiohttp loop making the same three calls per job (read the job, to run it
only if it is ready; ack; complete), the same loop without the read (the two calls
Flatfile's JS job handler makes), and Flatfile's JS job handler when Node is available.
Throughput, and the CPU time of the listener's process per job (the server runs in a
process of its own). Also: HTTP calls per job for handlers that tick 10, 1,000 and
100,000 times (default progress interval).

    python bench/lifecycle.py [--quick] [--no-js]
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from _common import js_reference, machine, run_node, table

from flatjobs import FlatfileClient, FlatfileEvent, Jobs, Listener, Tick

TOKEN = "sk_bench"
BATCH_SIZES = [1, 50]
ROUNDS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_server.py")), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def event(i: int) -> dict[str, Any]:
    return {
        "id": f"us_evt_{i}",
        "topic": "job:ready",
        "domain": "job",
        "context": {"accountId": "a", "environmentId": "e", "jobId": f"us_jb_{i}"},
        "payload": {"job": "workbook:export", "isPart": False},
    }


Rate = tuple[float, float]
"""Jobs per second, and microseconds of this process's CPU time per job."""


async def timed(count: int, batch: int, one: Callable[[int], Awaitable[Any]]) -> Rate:
    for i in range(200):  # warm-up, as the JS reference does
        await one(i)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, count, batch):
        await asyncio.gather(*(one(j) for j in range(i, min(count, i + batch))))
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count * 1e6


async def flatjobs_rate(url: str, count: int, batch: int) -> Rate:
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        return None

    async with FlatfileClient(url, TOKEN, environment_id="e") as client:
        listener = Listener(client=client).use(jobs)
        return await timed(count, batch, lambda i: listener.dispatch(event(i)))


async def hand_written_rate(url: str, count: int, batch: int, read: bool = True) -> Rate:
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "X-Disable-Hooks": "true",
        "Content-Type": "application/json",
    }
    ack = b'{"info":"Accepted","progress":0}'
    complete = b'{"outcome":{"message":"Job complete"}}'
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(i: int) -> None:
            job = f"{url}/v1/jobs/us_jb_{i}"
            if read:
                async with session.get(job) as resp:
                    if (await resp.json())["data"]["status"] != "ready":
                        return
            async with session.post(f"{job}/ack", data=ack) as resp:
                await resp.json()
            async with session.post(f"{job}/complete", data=complete) as resp:
                await resp.json()

        return await timed(count, batch, one)


async def calls_per_job(url: str, ticks: int, jobs_count: int) -> float:
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        for i in range(ticks):
            tick(i * 100 / ticks)
            if i % 100 == 0:
                await asyncio.sleep(0)  # a handler doing work between ticks

    async with FlatfileClient(url, TOKEN) as client, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/__count"):
            pass
        listener = Listener(client=client).use(jobs)
        for i in range(jobs_count):
            await listener.dispatch(event(i))
        async with session.get(f"{url}/__count") as resp:
            served: int = (await resp.json())["count"]
    return served / jobs_count


def js_rates(url: str, count: int) -> dict[int, float]:
    folder = js_reference()
    if folder is None:
        return {}
    out = run_node(folder, "bench-jobs.cjs", str(count), env={"FLATFILE_API_URL": url})
    return {int(m[1]): float(m[2]) for m in re.finditer(r"concurrency=(\d+)\s+jobs/s=(\d+)", out)}


def main(quick: bool = False, with_js: bool = True) -> None:
    print(f"lifecycle benchmark: {machine()}")
    count = 300 if quick else 2000
    rows = []
    with server() as url:
        js = js_rates(url, count) if with_js and not quick else {}
        for batch in BATCH_SIZES:
            # Alternate the three over several rounds and compare medians: this machine is
            # shared and noisy, so a ratio is only fair when all sides see the same noise.
            runs: dict[str, list[Rate]] = {"ours": [], "hand": [], "two": []}
            for _ in range(ROUNDS if not quick else 1):
                runs["ours"].append(asyncio.run(flatjobs_rate(url, count, batch)))
                runs["hand"].append(asyncio.run(hand_written_rate(url, count, batch)))
                runs["two"].append(asyncio.run(hand_written_rate(url, count, batch, False)))
            (ours, ours_cpu), (hand, hand_cpu), (two, two_cpu) = (
                (statistics.median(r for r, _ in v), statistics.median(c for _, c in v))
                for v in runs.values()
            )
            js_rate = js.get(batch)
            rows.append(
                [
                    "sequential" if batch == 1 else f"{batch} at a time",
                    f"{ours:,.0f} ({ours_cpu:,.0f} µs)",
                    f"{hand:,.0f} ({hand_cpu:,.0f} µs)",
                    f"{ours / hand:.2f}",
                    f"{two:,.0f} ({two_cpu:,.0f} µs)",
                    f"{ours / two:.2f}",
                    f"{js_rate:,.0f}" if js_rate else "n/a",
                    f"{ours / js_rate:.2f}" if js_rate else "n/a",
                ]
            )
        table(
            f"jobs/s (CPU µs per job) through @jobs.handle, no-op handler, {count:,} jobs, "
            f"median of {ROUNDS if not quick else 1} alternating rounds; flatjobs makes 3 "
            "calls a job (read, ack, complete)",
            ["concurrency", "flatjobs", "hand-written, same 3 calls", "ratio",
             "hand-written, ack + complete", "ratio", "JS job handler (2 calls)", "ratio"],
            rows,
        )  # fmt: skip
        tick_rows = []
        for ticks in (10, 1_000, 10_000, 100_000):
            per_job = asyncio.run(calls_per_job(url, ticks, 3 if ticks > 10_000 else 10))
            tick_rows.append([f"{ticks:,}", f"{per_job:.1f}"])
        table(
            "HTTP calls per job by tick count (default progress_interval 0.5 s)",
            ["ticks per job", "HTTP calls per job"],
            tick_rows,
        )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, with_js="--no-js" not in sys.argv)
