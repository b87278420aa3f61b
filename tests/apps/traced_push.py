"""Run under ``opentelemetry-instrument``: one job delivered by the push channel, its spans
printed as JSON with the push tokens the emulator issued (tests/test_redaction.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flatjobs import FlatfileEvent, Jobs, Listener, PushSource, Runner, Tick
from flatjobs.emulator import Emulator
from flatjobs.testing import client_for

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # before any session: the launcher's spans come here

jobs = Jobs()


@jobs.handle("workbook:export")
async def export(event: FlatfileEvent, tick: Tick) -> str:
    return "exported"


async def main() -> dict[str, Any]:
    async with Emulator(push_hold=1.0) as emu:
        tokens: list[str] = []
        issue = emu.push.issue_token

        def recorded() -> str:
            tokens.append(issue())
            return tokens[-1]

        emu.push.issue_token = recorded  # type: ignore[method-assign]
        async with client_for(emu) as client:
            runner = Runner(
                Listener(client=client).use(jobs), PushSource(client, origin=emu.push_url)
            )
            task = asyncio.create_task(runner.run())
            job = await emu.wait_for(emu.trigger("workbook:export").id, timeout=30)
            runner.stop()
            await asyncio.wait_for(task, 30)
    spans = [
        {
            "name": s.name,
            "attributes": dict(s.attributes or {}),
            "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in s.events],
            "status": s.status.description,
        }
        for s in exporter.get_finished_spans()
    ]
    return {"status": str(job.status), "tokens": tokens, "spans": spans}


print(json.dumps(asyncio.run(main()), default=str))
