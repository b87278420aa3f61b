"""flatjobs.testing: the pytest plugin's fixtures and the event factory."""

from __future__ import annotations

from flatjobs import Event, FlatfileClient, from_wire
from flatjobs.emulator import Emulator
from flatjobs.testing import make_event


async def test_emulator_fixture_runs_and_client_is_bound_to_it(
    flatfile_emulator: Emulator, flatfile_client: FlatfileClient
) -> None:
    job = flatfile_emulator.trigger("workbook:export")
    assert (await flatfile_client.jobs.get(job.id)).status == "ready"


def test_make_event_builds_a_realistic_job_ready_event() -> None:
    raw = make_event(job="sheet:dedupe", input={"key": "email"})
    event = from_wire(raw, Event)
    assert event.topic == "job:ready"
    assert event.payload == {"job": "sheet:dedupe", "domain": "sheet", "operation": "dedupe",
                             "status": "ready", "isPart": False, "input": {"key": "email"}}  # fmt: skip
    assert event.context.job_id is not None
    assert event.context.sheet_id is not None
    assert event.context.environment_id == "us_env_test"


def test_make_event_ids_are_unique_and_overrides_apply() -> None:
    a, b = make_event(job="a:b"), make_event(job="a:b")
    assert a["id"] != b["id"]
    assert a["context"]["jobId"] != b["context"]["jobId"]
    custom = make_event("records:created", context={"sheetId": "s1"}, payload={"n": 1}, extra=True)
    assert custom["domain"] == "records"
    assert custom["context"]["sheetId"] == "s1"
    assert custom["payload"] == {"n": 1}
    assert custom["extra"] is True
    assert "jobId" not in custom["context"]
