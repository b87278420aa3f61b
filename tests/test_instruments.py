"""Instruments see each point of an event's and a job's life."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest

from flatjobs import FlatfileEvent, JobResult, Jobs, Listener, MemorySource, Runner, Tick
from flatjobs.emulator import Emulator
from flatjobs.instruments import Instrument, add_instrument
from flatjobs.testing import client_for


class Recorder(Instrument):
    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.http: list[tuple[str, str, int | None]] = []
        self.ended: list[str] = []

    def event_received(self, source: str) -> None:
        self.calls[f"received:{source}"] += 1

    def event_invalid(self) -> None:
        self.calls["invalid"] += 1

    def event_duplicate(self) -> None:
        self.calls["duplicate"] += 1

    def event_dispatched(self, event: FlatfileEvent) -> None:
        self.calls["dispatched"] += 1

    def job_started(self, job_id: str, job_name: str | None) -> None:
        self.calls[f"started:{job_name}"] += 1

    def job_alive(self, job_id: str) -> None:
        self.calls["alive"] += 1

    def job_ended(self, result: JobResult, seconds: float, job_name: str | None) -> None:
        self.ended.append(result.status)

    def progress_sent(self, job_id: str, coalesced: int) -> None:
        self.calls["progress"] += 1

    def http_call(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        self.http.append((endpoint, method, status))


class Broken(Instrument):
    def event_received(self, source: str) -> None:
        raise RuntimeError("an instrument with a bug")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    instrument = Recorder()
    remove = add_instrument(instrument)
    yield instrument
    remove()


async def test_instruments_see_events_jobs_progress_and_http_calls(
    emu: Emulator, recorder: Recorder
) -> None:
    jobs = Jobs(progress_interval=0)

    @jobs.handle("workbook:export")
    async def export(event: FlatfileEvent, tick: Tick) -> None:
        await tick(50)

    job = emu.trigger("workbook:export")
    ready: Any = next(e for e in emu.events if e["topic"] == "job:ready")
    remove = add_instrument(Broken())
    try:
        async with client_for(emu) as client:
            source = MemorySource([ready, ready, {"not": "an event"}])
            source.close()
            await Runner(Listener(client=client).use(jobs), source).run()
    finally:
        remove()
    assert emu.job(job.id).status == "complete"
    assert recorder.calls["received:memory"] == 2
    assert recorder.calls["duplicate"] == 1
    assert recorder.calls["invalid"] == 1
    assert recorder.calls["dispatched"] == 1
    assert recorder.calls["started:workbook:export"] == 1
    assert recorder.calls["alive"] == 2  # the ack, the progress update
    assert recorder.calls["progress"] == 1
    assert recorder.ended == ["complete"]
    assert recorder.http == [
        ("jobs.get", "GET", 200),  # the job is read: its body runs only if it is ready
        ("jobs.ack", "POST", 200),
        ("jobs.ack", "POST", 200),
        ("jobs.complete", "POST", 200),
    ]
