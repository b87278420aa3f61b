"""Tests of the quickstart's handlers, end to end: each plays a user clicking the action,
runs the handler against the emulator seeded with the contacts (``contacts``, from
``conftest.py``) and looks at what the user would see: the outcome, the export file, the
messages on the sheet's cells.

They are async pytest tests: they need pytest and pytest-asyncio, with
``asyncio_mode = "auto"`` under ``[tool.pytest.ini_options]`` in ``pyproject.toml``.
"""

from __future__ import annotations

import csv
import io

import quickstart

from flatjobs.emulator import Emulator
from flatjobs.models import FilesNext, RetryNext
from flatjobs.testing import run_job


async def test_the_export_writes_every_record_to_an_export_file(contacts: Emulator) -> None:
    job = await run_job(quickstart.listener, contacts, "workbook:export")
    assert job.status == "complete"
    assert job.outcome is not None
    assert job.outcome.message == "Exported 1,204 rows"
    assert isinstance(job.outcome.next, FilesNext)
    [file_id] = [f.file_id for f in job.outcome.next.files]
    exported = contacts.file(file_id)
    assert exported.mode == "export"
    assert exported.name == "contacts.csv"
    content = contacts.file_content(file_id).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(content)))
    records = contacts.records("contacts")
    assert len(rows) == len(records) == 1204
    assert [r["email"] for r in rows] == [str(r["values"]["email"]["value"]) for r in records]
    assert rows[0].keys() == {"email", "name", "status", "age"}


async def test_validation_marks_bad_cells_and_fails_with_retry(contacts: Emulator) -> None:
    job = await run_job(quickstart.listener, contacts, "sheet:validate")
    assert job.status == "failed"
    assert job.outcome is not None
    assert job.outcome.message == "3 rows have an invalid email address"
    assert isinstance(job.outcome.next, RetryNext)
    flagged = {
        r["values"]["email"]["value"]: [m["message"] for m in r["values"]["email"]["messages"]]
        for r in contacts.records("contacts")
        if r["values"]["email"].get("messages")
    }
    assert flagged == {
        "not-an-email": ["'not-an-email' is not an email address"],
        "carla.diaz at example.com": ["'carla.diaz at example.com' is not an email address"],
        "hugo.berg@": ["'hugo.berg@' is not an email address"],
    }
