"""The emulator's jobs panel as a person in Flatfile sees it, in headless Chromium.

Handlers run in a real listener against the emulator (``flatjobs.testing.emulated``); the
slow ones advance when the test lets them (a queue), so that what the page shows at each
step is known, and no expectation depends on timing: each waits until the page shows it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import pytest
import pytest_asyncio
from playwright.async_api import Page, Request, expect

from flatjobs import FlatfileEvent, JobError, JobOutcome, Jobs, Listener, Next, Tick
from flatjobs.emulator import Emulator
from flatjobs.testing import emulated

from .conftest import SCREENSHOTS

pytestmark = pytest.mark.asyncio(loop_scope="session")

XSS = '<img src=x onerror="window.__pwned = 1">'


def _records(count: int) -> list[dict[str, Any]]:
    names = ["Ann Lee", "Bob Diaz", "Carla Ito", "Dev Khan", "Eve Ng", "Finn Ross"]
    records: list[dict[str, Any]] = [
        {
            "email": f"{names[n % 6].split()[0].lower()}{n}@example.com",
            "name": names[n % 6],
            "status": "active" if n % 3 else "inactive",
        }
        for n in range(count)
    ]
    records[1]["email"] = ""  # required: the platform's own error
    records[2]["status"] = {
        "value": "active",
        "messages": [{"type": "warn", "message": "Status was guessed from the last login"}],
    }
    records[3]["name"] = {
        "value": "Dev Khan",
        "messages": [{"type": "info", "message": "Name normalized from DEV KHAN"}],
    }
    records[4]["name"] = XSS  # a value is text too
    return records


SEED: dict[str, Any] = {
    "spaces": [
        {
            "name": "Acme import",
            "workbooks": [
                {
                    "name": "Contacts",
                    "actions": [
                        {"label": "Export to CSV", "operation": "export", "mode": "foreground",
                         "primary": True},
                        {"label": "Send to CRM", "operation": "submit", "mode": "background"},
                        {"label": "<i>Shout</i>", "operation": "shout", "mode": "foreground"},
                        {"label": "Reindex", "operation": "reindex", "mode": "toolbarBlocking"},
                    ],
                    "sheets": [
                        {
                            "name": "Contacts",
                            "slug": "contacts",
                            "fields": [
                                {"key": "email", "label": "Email", "required": True},
                                {"key": "name", "label": "Name"},
                                {"key": "status", "label": "Status", "type": "enum",
                                 "options": ["active", "inactive"]},
                            ],
                            "actions": [
                                {"label": "Validate emails", "operation": "validate"},
                                {"label": "Flag a cell", "operation": "flag"},
                                {"label": "Publish", "operation": "publish",
                                 "constraints": [{"type": "hasAllValid"}]},
                            ],
                            "records": _records(120),
                        }
                    ],
                }
            ],
            "files": [
                {"name": "contacts.csv", "content": "email\nann@example.com\n", "mode": "export"},
                {"name": "errors.csv", "content": "email\n\n", "mode": "export"},
            ],
        }
    ]
}  # fmt: skip


@pytest_asyncio.fixture(loop_scope="session")
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(seed=SEED) as emulator:
        yield emulator


async def _open(page: Page, emu: Emulator) -> list[str]:
    """Open the panel once it is live; the requests the page makes, as "METHOD /path"."""
    requested: list[str] = []

    def seen(request: Request) -> None:
        requested.append(f"{request.method} {request.url.removeprefix(emu.url)}")

    page.on("request", seen)
    await page.goto(emu.panel_url)
    await expect(page.locator("#connection")).to_have_text("live")
    return requested


def _card(page: Page, job_id: str) -> Any:
    return page.locator(f'#jobs [data-job-id="{job_id}"]')


def _topics(emu: Emulator, job_id: str) -> list[str]:
    return [e["topic"] for e in emu.events if e["context"].get("jobId") == job_id]


def _only_job(emu: Emulator, name: str) -> str:
    (job,) = [j for j in emu.jobs() if j.job_name == name]
    return job.id


# --------------------------------------------------------------------------- running jobs


async def test_an_action_runs_its_job_with_a_moving_progress_bar_then_its_outcome(
    page: Page, emu: Emulator
) -> None:
    steps: asyncio.Queue[int | None] = asyncio.Queue()
    jobs = Jobs()
    export_file = emu.seeded.files["contacts.csv"]

    @jobs.handle("workbook:export", progress_interval=0)
    async def export(event: FlatfileEvent, tick: Tick) -> JobOutcome:
        while (step := await steps.get()) is not None:
            await tick(step, f"Exported {step} of 100 rows", eta=dt.timedelta(seconds=40))
        return JobOutcome(
            acknowledge=True,
            heading="Export ready",
            message="Exported 100 rows",
            next=Next.download(
                f"{emu.url}/_panel/api/files/{export_file}/download",
                file_name="contacts.csv",
                label="Download CSV",
            ),
        )

    async with emulated(Listener().use(jobs), emulator=emu):
        requested = await _open(page, emu)
        await page.get_by_role("button", name="Export to CSV").click()

        overlay = page.locator("#overlay")
        bar = overlay.get_by_role("progressbar")
        await expect(overlay).to_be_visible()  # a foreground job blocks the page
        await expect(page.locator("#overlay-title")).to_have_text("Export to CSV")
        job_id = _only_job(emu, "workbook:export")
        for step in (30, 70):
            await steps.put(step)
            await expect(bar).to_have_attribute("aria-valuenow", str(step))
            await expect(page.locator("#overlay-info")).to_have_text(f"Exported {step} of 100 rows")
            await expect(page.locator("#overlay-eta")).to_have_text(re.compile(r"about \d+s left"))
            card = _card(page, job_id)
            await expect(card.get_by_role("progressbar")).to_have_attribute(
                "aria-valuenow", str(step)
            )
        # The overlay is modal: what is under it cannot be clicked.
        box = await page.get_by_role("button", name="Send to CRM").bounding_box()
        assert box is not None
        point = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
        on_top = "([x, y]) => document.elementFromPoint(x, y).closest('#overlay') !== null"
        assert await page.evaluate(on_top, point)

        await steps.put(None)
        dialog = page.locator("#outcome")
        await expect(dialog).to_be_visible()
        await expect(overlay).to_be_hidden()
        await expect(dialog.get_by_role("heading")).to_have_text("Export ready")
        await expect(page.locator("#outcome-message")).to_have_text("Exported 100 rows")
        download = dialog.get_by_role("link", name="Download CSV")
        await expect(download).to_have_attribute("download", "contacts.csv")
        assert "job:outcome-acknowledged" not in _topics(emu, job_id)
        async with page.expect_download() as downloading:
            await download.click()
        assert (await downloading.value).suggested_filename == "contacts.csv"
        await expect(dialog).to_be_hidden()
        await expect(_card(page, job_id).locator(".acknowledged")).to_be_visible()
        assert _topics(emu, job_id).count("job:outcome-acknowledged") == 1
        await expect(_card(page, job_id).locator(".badge")).to_have_text("complete")
    # Jobs arrived through the event stream alone: the page never asked for them.
    assert requested.count("GET /_panel/api/stream") == 1
    assert not [r for r in requested if r.startswith("GET /_panel/api/jobs")]


async def test_retry_on_a_failed_job_runs_it_again(page: Page, emu: Emulator) -> None:
    jobs = Jobs()
    runs: list[str] = []

    @jobs.handle("sheet:validate")
    async def validate(event: FlatfileEvent, tick: Tick) -> JobOutcome:
        runs.append(event.context.job_id or "")
        if len(runs) == 1:
            raise JobError(
                "1 row has no email address",
                heading="Validation failed",
                next=Next.retry("Fix and retry"),
            )
        return JobOutcome(acknowledge=True, heading="All valid", message="Checked 120 rows")

    async with emulated(Listener().use(jobs), emulator=emu):
        await _open(page, emu)
        await page.locator("#tree").get_by_role("button", name="Validate emails").click()
        dialog = page.locator("#outcome")
        await expect(dialog.get_by_role("heading")).to_have_text("Validation failed")
        await expect(dialog).to_have_attribute("data-status", "failed")
        await expect(page.locator("#outcome-message")).to_have_text("1 row has no email address")
        await dialog.get_by_role("button", name="Fix and retry").click()
        await expect(dialog.get_by_role("heading")).to_have_text("All valid")
        await expect(dialog).to_have_attribute("data-status", "complete")
        await dialog.get_by_role("button", name="Continue").click()
        await expect(dialog).to_be_hidden()
        (job_id,) = set(runs)
        await expect(_card(page, job_id).locator(".acknowledged")).to_be_visible()
    assert len(runs) == 2
    assert _topics(emu, job_id) == [
        "job:created",
        "job:ready",
        "job:updated",
        "job:failed",
        "job:outcome-acknowledged",
        "job:ready",
        "job:updated",
        "job:completed",
        "job:outcome-acknowledged",
    ]


async def test_cancel_a_running_job_then_retry_it_from_the_jobs_panel(
    page: Page, emu: Emulator
) -> None:
    jobs = Jobs()
    started: asyncio.Queue[str] = asyncio.Queue()

    @jobs.handle("workbook:*", progress_interval=0.05)
    async def forever(event: FlatfileEvent, tick: Tick) -> None:
        await started.put(event.context.job_id or "")
        progress = 10
        while True:  # until the platform cancels the job: ticks find it out
            await tick(progress, "Sending contacts")
            await asyncio.sleep(0.05)
            progress = min(progress + 1, 90)

    async with emulated(Listener().use(jobs), emulator=emu):
        await _open(page, emu)
        # A foreground job: canceled from the overlay.
        await page.get_by_role("button", name="Export to CSV").click()
        export = await started.get()
        overlay = page.locator("#overlay")
        await expect(page.locator("#overlay-info")).to_have_text("Sending contacts")
        await overlay.get_by_role("button", name="Cancel").click()
        await expect(overlay).to_be_hidden()
        await expect(_card(page, export).locator(".badge")).to_have_text("canceled")
        assert emu.job(export).status == "canceled"

        # A background job: no overlay; canceled, then retried, from its card.
        await page.get_by_role("button", name="Send to CRM").click()
        submit = await started.get()
        card = _card(page, submit)
        await expect(card.locator(".info")).to_have_text("Sending contacts")
        await expect(overlay).to_be_hidden()
        await card.get_by_role("button", name="Cancel").click()
        await expect(card.locator(".badge")).to_have_text("canceled")
        await card.get_by_role("button", name="Retry").click()
        assert await started.get() == submit  # the same job runs again
        await expect(card.locator(".badge")).to_have_text("executing")
        await card.get_by_role("button", name="Cancel").click()
        await expect(card.locator(".badge")).to_have_text("canceled")
    assert _topics(emu, submit).count("job:ready") == 2


async def test_html_in_job_text_shows_as_text(page: Page, emu: Emulator) -> None:
    jobs = Jobs()
    gate: asyncio.Queue[None] = asyncio.Queue()

    @jobs.handle("workbook:shout", progress_interval=0)
    async def shout(event: FlatfileEvent, tick: Tick) -> None:
        await tick(50, f"Working on {XSS}")
        await gate.get()
        raise JobError(XSS, heading="<script>window.__pwned = 2</script>Oops")

    async with emulated(Listener().use(jobs), emulator=emu):
        await _open(page, emu)
        sheet = emu.sheet("contacts").id
        await page.locator(f'#tree .sheet[data-id="{sheet}"] .sheet-link').click()
        await expect(page.locator("tbody tr").nth(4).locator('[data-field="name"]')).to_have_text(
            XSS
        )
        await page.get_by_role("button", name="<i>Shout</i>").click()  # a label is text too
        await expect(page.locator("#overlay-info")).to_have_text(f"Working on {XSS}")
        job_id = _only_job(emu, "workbook:shout")
        await expect(_card(page, job_id).locator(".info")).to_have_text(f"Working on {XSS}")
        await expect(_card(page, job_id).locator(".job-label")).to_have_text("<i>Shout</i>")
        await gate.put(None)
        await expect(page.locator("#outcome-heading")).to_have_text(
            "<script>window.__pwned = 2</script>Oops"
        )
        await expect(page.locator("#outcome-message")).to_have_text(XSS)
    assert await page.locator("img, script:not([src]), i").count() == 0
    assert await page.evaluate("window.__pwned") is None


async def test_records_are_browsed_a_page_at_a_time_with_their_cell_messages(
    page: Page, emu: Emulator
) -> None:
    jobs = Jobs()
    sheet = emu.sheet("contacts").id

    @jobs.handle("sheet:flag")
    async def flag(event: FlatfileEvent, tick: Tick) -> str:
        async for records in event.client.records.pages(sheet, include_messages=True):
            for record in records:
                if record.get("email") == "eve4@example.com":
                    record.warn("email", "A free-mail address")
            await records.save()
        return "Flagged"

    async with emulated(Listener().use(jobs), emulator=emu):
        await _open(page, emu)
        await expect(page.locator(f'[data-count-of="{sheet}"]')).to_have_text("120 · 1 invalid")
        await page.locator(f'#tree .sheet[data-id="{sheet}"] .sheet-link').click()
        await expect(page.locator("#sheet-title")).to_have_text("Contacts")
        await expect(page.locator("#page-status")).to_have_text("Page 1 of 3")
        rows = page.locator("tbody tr")
        await expect(rows).to_have_count(50)

        missing = rows.nth(1).locator('[data-field="email"]')
        await expect(missing).to_have_class(re.compile(r"\binvalid\b"))
        await expect(missing.locator(".message-error")).to_have_text("Email is required")
        guessed = rows.nth(2).locator('[data-field="status"]')
        await expect(guessed).to_have_class(re.compile(r"\bhas-warn\b"))
        await expect(guessed).not_to_have_class(re.compile(r"\binvalid\b"))
        await expect(guessed.locator(".message-warn")).to_have_text(
            "Status was guessed from the last login"
        )
        normalized = rows.nth(3).locator('[data-field="name"]')
        await expect(normalized).to_have_class(re.compile(r"\bhas-info\b"))
        await expect(normalized.locator(".message-info")).to_have_text(
            "Name normalized from DEV KHAN"
        )

        await page.get_by_role("button", name="Next").click()
        await expect(page.locator("#page-status")).to_have_text("Page 2 of 3")
        await expect(rows.first.locator("th")).to_have_text("51")
        await page.get_by_role("button", name="Error 1").click()
        await expect(page.locator("#page-status")).to_have_text("Page 1 of 1")
        await expect(rows).to_have_count(1)
        await page.get_by_role("button", name="All 120").click()

        # A handler's message on a cell shows as the job writes it, without a reload.
        await page.locator("#content").get_by_role("button", name="Flag a cell").click()
        flagged = rows.nth(4).locator('[data-field="email"]')
        await expect(flagged.locator(".message-warn")).to_have_text("A free-mail address")
        await expect(flagged).to_have_class(re.compile(r"\bhas-warn\b"))


async def test_a_user_edits_a_cell_and_the_edit_is_a_commit(page: Page, emu: Emulator) -> None:
    sheet = emu.sheet("contacts").id
    record_id = emu.records(sheet)[1]["id"]  # the one without an email
    await _open(page, emu)
    await page.locator(f'#tree .sheet[data-id="{sheet}"] .sheet-link').click()
    missing = page.locator("tbody tr").nth(1).locator('[data-field="email"]')
    await expect(missing).to_have_class(re.compile(r"\binvalid\b"))
    before = len(emu.events)

    # Escape leaves the cell as it was, and writes nothing.
    await missing.dblclick()
    editor = missing.get_by_role("textbox", name="Edit Email")
    await editor.fill("nobody@example.com")
    await editor.press("Escape")
    await expect(missing.locator(".value")).to_have_text("")
    assert [e["topic"] for e in emu.events[before:]] == []

    await missing.dblclick()
    await editor.fill("bob1@example.com")
    await editor.press("Enter")
    await expect(missing.locator(".value")).to_have_text("bob1@example.com")
    await expect(missing).not_to_have_class(re.compile(r"\binvalid\b"))
    await expect(page.locator(f'[data-count-of="{sheet}"]')).to_have_text("120")
    record = next(r for r in emu.records(sheet) if r["id"] == record_id)
    assert record["values"]["email"]["value"] == "bob1@example.com"
    created = [e for e in emu.events[before:] if e["topic"] == "commit:created"]
    assert [e["context"]["commitId"] for e in created] == [record["commitId"]]
    assert created[0]["dataUrl"].startswith(f"v1/sheets/{sheet}/records?for=")

    # The keyboard alone: focus a cell, Enter to edit, Enter to save.
    name = page.locator("tbody tr").nth(0).locator('[data-field="name"]')
    await name.focus()
    await name.press("Enter")
    await name.get_by_role("textbox", name="Edit Name").fill("Ann Lee-Smith")
    await name.get_by_role("textbox", name="Edit Name").press("Enter")
    await expect(name.locator(".value")).to_have_text("Ann Lee-Smith")


# --------------------------------------------------------------------------- outcomes


def _outcome(emu: Emulator, outcome: dict[str, Any], *, fail: bool = False) -> str:
    """A workbook job that ends at once with ``outcome``, as a handler would end it."""
    job = emu.trigger_action(emu.workbook("Contacts").id, "submit")  # background: no overlay
    emu.state.ack(job.id, {"progress": 10})
    emu.state.finish(job.id, {"outcome": outcome}, call="fail" if fail else "complete")
    return job.id


async def _ack_by_clicking(page: Page, emu: Emulator, name: str, job_id: str) -> None:
    await page.locator("#outcome").get_by_role("button", name=name).click()
    await expect(page.locator("#outcome")).to_be_hidden()
    await expect(_card(page, job_id).locator(".acknowledged")).to_be_visible()
    assert _topics(emu, job_id).count("job:outcome-acknowledged") == 1


Check = Callable[[Page, Emulator, str], Any]


async def _id_next(page: Page, emu: Emulator, job_id: str) -> None:
    await _ack_by_clicking(page, emu, "Go to contacts", job_id)
    await expect(page.locator("#sheet-title")).to_have_text("Contacts")


async def _url_next(page: Page, emu: Emulator, job_id: str) -> None:
    link = page.locator("#outcome").get_by_role("link", name="Open the report")
    await expect(link).to_have_attribute("href", "https://example.com/report?id=7")
    await expect(link).to_have_attribute("target", "_blank")
    await expect(page.locator("#outcome .default-button")).to_have_count(0)  # hideDefaultButton
    await page.locator("#outcome-dismiss").click()  # dismissing acknowledges too
    await expect(page.locator("#outcome")).to_be_hidden()
    await expect(_card(page, job_id).locator(".acknowledged")).to_be_visible()
    assert "job:outcome-acknowledged" in _topics(emu, job_id)


async def _download_next(page: Page, emu: Emulator, job_id: str) -> None:
    link = page.locator("#outcome").get_by_role("link", name="Download")
    await expect(link).to_have_attribute("href", "https://example.com/export.csv")
    await expect(link).to_have_attribute("download", "export.csv")
    await _ack_by_clicking(page, emu, "Got it", job_id)  # buttonText


async def _files_next(page: Page, emu: Emulator, job_id: str) -> None:
    dialog = page.locator("#outcome")
    await expect(dialog.locator(".files-label")).to_have_text("Your exports")
    contacts, errors = emu.seeded.files["contacts.csv"], emu.seeded.files["errors.csv"]
    await expect(dialog.get_by_role("link", name="contacts.csv")).to_have_attribute(
        "href", re.compile(f"/_panel/api/files/{contacts}/download$")
    )
    await expect(dialog.get_by_role("link", name="The errors")).to_have_attribute(
        "href", re.compile(f"/_panel/api/files/{errors}/download$")
    )
    await _ack_by_clicking(page, emu, "Continue", job_id)


async def _snapshot_next(page: Page, emu: Emulator, job_id: str) -> None:
    await _ack_by_clicking(page, emu, "See before", job_id)
    await expect(page.locator(".note")).to_contain_text("Snapshot us_ss_1")


async def _view_next(page: Page, emu: Emulator, job_id: str) -> None:
    await _ack_by_clicking(page, emu, "View", job_id)
    await expect(page.locator(".hidden-columns")).to_contain_text("1 column hidden: status")
    await expect(page.locator("thead th")).to_have_text(["#", "Email", "Name"])
    await page.get_by_role("button", name="Show all").click()
    await expect(page.locator("thead th")).to_have_text(["#", "Email", "Name", "Status"])


async def _retry_next(page: Page, emu: Emulator, job_id: str) -> None:
    await expect(page.locator("#outcome")).to_have_attribute("data-status", "failed")
    await page.locator("#outcome").get_by_role("button", name="Try again").click()
    await expect(_card(page, job_id).locator(".badge")).to_have_text("ready")  # no listener
    assert _topics(emu, job_id)[-2:] == ["job:outcome-acknowledged", "job:ready"]


async def _wait_next(page: Page, emu: Emulator, job_id: str) -> None:
    dialog = page.locator("#outcome")
    await expect(dialog.locator(".waiting")).to_contain_text("Waiting…")
    await expect(dialog.locator(".confetti-burst")).to_be_visible()
    await expect(dialog.locator(".next-button")).to_have_count(0)
    await _ack_by_clicking(page, emu, "Continue", job_id)


async def _clear_filters_next(page: Page, emu: Emulator, job_id: str) -> None:
    await page.locator("#outcome-dismiss").click()  # look at the errors first
    sheet = emu.sheet("contacts").id
    await page.locator(f'#tree .sheet[data-id="{sheet}"] .sheet-link').click()
    await page.get_by_role("button", name="Error 1").click()
    await expect(page.get_by_role("button", name="Error 1")).to_have_attribute(
        "aria-pressed", "true"
    )
    await _card(page, job_id).get_by_role("button", name="Outcome").click()
    await page.locator("#outcome").get_by_role("button", name="Show everything").click()
    await expect(page.get_by_role("button", name="All 120")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(page.locator("tbody tr")).to_have_count(50)


async def _unknown_next(page: Page, emu: Emulator, job_id: str) -> None:
    await expect(page.locator("#outcome .note")).to_have_text(
        "A next action this panel does not know: confetti-cannon"
    )
    await _ack_by_clicking(page, emu, "Continue", job_id)


async def _script_url_next(page: Page, emu: Emulator, job_id: str) -> None:
    await expect(page.locator("#outcome .note")).to_have_text(
        "Not an http(s) link: javascript:window.__pwned=1"
    )
    await expect(page.locator("#outcome a")).to_have_count(0)
    await _ack_by_clicking(page, emu, "Continue", job_id)


NEXT_KINDS: dict[str, tuple[dict[str, Any], Check]] = {
    "id": ({"type": "id", "id": "<sheet>", "label": "Go to contacts"}, _id_next),
    "url": ({"type": "url", "url": "https://example.com/report?id=7", "label": "Open the report"},
            _url_next),
    "download": ({"type": "download", "url": "https://example.com/export.csv",
                  "fileName": "export.csv"}, _download_next),
    "files": ({"type": "files", "label": "Your exports",
               "files": [{"fileId": "<contacts.csv>"}, {"fileId": "<errors.csv>",
                                                        "label": "The errors"}]}, _files_next),
    "snapshot": ({"type": "snapshot", "snapshotId": "us_ss_1", "sheetId": "<sheet>",
                  "label": "See before"}, _snapshot_next),
    "view": ({"type": "view", "sheetId": "<sheet>", "hiddenColumns": ["status"]}, _view_next),
    "retry": ({"type": "retry", "label": "Try again"}, _retry_next),
    "wait": ({"type": "wait", "fade": True, "confetti": True}, _wait_next),
    "clearFilters": ({"type": "clearFilters", "label": "Show everything",
                      "sheetIds": ["<sheet>"]}, _clear_filters_next),
    "unknown": ({"type": "confetti-cannon"}, _unknown_next),
    "javascript-url": ({"type": "url", "url": "javascript:window.__pwned=1"}, _script_url_next),
}  # fmt: skip


@pytest.mark.parametrize("kind", NEXT_KINDS)
async def test_every_next_kind_in_the_outcome_dialog(page: Page, emu: Emulator, kind: str) -> None:
    nxt, check = NEXT_KINDS[kind]
    ids = {
        "<sheet>": emu.sheet("contacts").id,
        **{f"<{name}>": ident for name, ident in emu.seeded.files.items()},
    }

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return ids.get(value, value) if isinstance(value, str) else value

    outcome: dict[str, Any] = {
        "acknowledge": True,
        "heading": f"Done: {kind}",
        "message": "What the handler says",
        "next": resolve(nxt),
    }
    if kind == "url":
        outcome["hideDefaultButton"] = True
    if kind == "download":
        outcome["buttonText"] = "Got it"
    await _open(page, emu)
    job_id = _outcome(emu, outcome, fail=kind == "retry")
    dialog = page.locator("#outcome")
    await expect(dialog.get_by_role("heading")).to_have_text(f"Done: {kind}")
    await expect(page.locator("#outcome-message")).to_have_text("What the handler says")
    await check(page, emu, job_id)
    assert await page.evaluate("window.__pwned") is None


async def test_an_outcome_without_acknowledge_is_a_toast(page: Page, emu: Emulator) -> None:
    await _open(page, emu)
    job_id = _outcome(
        emu,
        {"message": "Sent 120 contacts", "next": {"type": "url", "url": "https://example.com/crm"}},
    )
    toast = page.locator(f'.toast[data-job-id="{job_id}"]')
    await expect(toast.locator(".toast-heading")).to_have_text("Send to CRM complete")
    await expect(toast.locator(".toast-message")).to_have_text("Sent 120 contacts")
    await expect(toast.get_by_role("link", name="Open link")).to_have_attribute(
        "href", "https://example.com/crm"
    )
    await expect(page.locator("#outcome")).to_be_hidden()
    await toast.get_by_role("button", name="Dismiss").click()
    await expect(toast).to_have_count(0)
    # A toast asks for no acknowledgement: nothing is sent.
    assert "job:outcome-acknowledged" not in _topics(emu, job_id)


async def test_a_finished_card_shows_its_outcome_and_toasts_cover_no_job(
    page: Page, emu: Emulator
) -> None:
    # Was a bug: the toasts sat over the top of the jobs list, covering the newest job, and
    # a card that ended kept its last progress text ("Sent 96 of 120 contacts").
    await _open(page, emu)
    ended: list[tuple[str, str]] = []
    calls: list[Literal["complete", "fail"]] = ["complete", "fail", "complete"]
    for n, call in enumerate(calls):
        job = emu.trigger_action(emu.workbook("Contacts").id, "submit")  # background
        emu.state.ack(job.id, {"progress": 80, "info": f"Sent 96 of 120 contacts ({n})"})
        card = _card(page, job.id)
        await expect(card.locator(".info")).to_have_text(f"Sent 96 of 120 contacts ({n})")
        message = f"{'Sent' if call == 'complete' else 'Refused'} 120 contacts ({n})"
        emu.state.finish(job.id, {"outcome": {"message": message}}, call=call)
        ended.append((job.id, message))
    for job_id, message in ended:
        await expect(_card(page, job_id).locator(".info")).to_have_text(message)
        await expect(page.locator(f'.toast[data-job-id="{job_id}"]')).to_be_visible()
    cards = [await _card(page, job_id).bounding_box() for job_id, _ in ended]
    toasts = [await t.bounding_box() for t in await page.locator(".toast").all()]
    assert len(toasts) == 3

    def overlap(a: Any, b: Any) -> bool:
        return bool(
            a["x"] < b["x"] + b["width"]
            and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"]
            and b["y"] < a["y"] + a["height"]
        )

    assert not [(c, t) for c in cards for t in toasts if overlap(c, t)]
    top = cards[-1]  # the newest job, first in the list
    assert top is not None
    point = [top["x"] + top["width"] / 2, top["y"] + top["height"] / 2]
    on_top = "([x, y]) => document.elementFromPoint(x, y).closest('#jobs .job') !== null"
    assert await page.evaluate(on_top, point)  # what a click there reaches: the card


async def test_actions_are_disabled_while_they_cannot_run(page: Page, emu: Emulator) -> None:
    await _open(page, emu)
    publish = page.locator("#tree").get_by_role("button", name="Publish")
    await expect(publish).to_be_disabled()  # hasAllValid, and one record has an error
    await expect(publish).to_have_attribute("title", "Every record must be valid")
    sheet = emu.sheet("contacts")
    (invalid,) = [r for r in emu.records("contacts") if not r["valid"]]
    emu.data.update_records(
        sheet.id, [{"id": invalid["id"], "values": {"email": {"value": "b@x.io"}}}]
    )
    await expect(publish).to_be_enabled()  # the data changed: the tree follows

    # A toolbar-blocking job holds its workbook's actions until it ends.
    await page.get_by_role("button", name="Reindex").click()
    export = page.get_by_role("button", name="Export to CSV")
    await expect(export).to_be_disabled()
    await expect(export).to_have_attribute("title", "Reindex is running")
    await expect(page.locator("#overlay")).to_be_hidden()  # not a foreground job
    job_id = _only_job(emu, "workbook:reindex")
    await _card(page, job_id).get_by_role("button", name="Cancel").click()
    await expect(export).to_be_enabled()


@pytest.mark.parametrize("trigger", ["automatic", "automatic_silent"])
async def test_an_automatic_outcome_runs_its_next_at_once(
    page: Page, emu: Emulator, trigger: str
) -> None:
    await _open(page, emu)
    sheet = emu.sheet("contacts").id
    job_id = _outcome(
        emu,
        {
            "acknowledge": True,
            "heading": "Imported",
            "trigger": trigger,
            "next": {"type": "id", "id": sheet},
        },
    )
    await expect(page.locator("#sheet-title")).to_have_text("Contacts")  # nobody clicked
    if trigger == "automatic":
        await expect(page.locator("#outcome-heading")).to_have_text("Imported")
        await _ack_by_clicking(page, emu, "Continue", job_id)
    else:  # nothing to see, nothing to click: acknowledged at once
        await expect(_card(page, job_id).locator(".acknowledged")).to_be_visible()
        assert await page.locator("#outcome").is_hidden()
        assert _topics(emu, job_id).count("job:outcome-acknowledged") == 1


async def test_an_action_with_an_input_form_sends_its_input(page: Page, emu: Emulator) -> None:
    workbook = emu.workbook("Contacts").id
    emu.data.update_workbook(
        workbook,
        {
            "actions": [
                {
                    "label": "Send to CRM",
                    "operation": "submit",
                    "mode": "background",
                    "confirm": True,
                    "description": "Sends every valid contact.",
                    "inputForm": {
                        "type": "simple",
                        "fields": [
                            {
                                "key": "list",
                                "label": "List",
                                "type": "enum",
                                "config": {
                                    "options": [
                                        {"value": "leads", "label": "Leads"},
                                        {"value": "customers", "label": "Customers"},
                                    ]
                                },
                            },
                            {"key": "notify", "label": "Notify the owners", "type": "boolean"},
                            {"key": "note", "label": "Note", "type": "string"},
                        ],
                    },
                }
            ]
        },
    )
    await _open(page, emu)
    await page.get_by_role("button", name="Send to CRM").click()
    form = page.locator("#action-dialog")
    await expect(form.locator("#action-description")).to_have_text("Sends every valid contact.")
    await form.get_by_label("List").select_option("customers")
    await form.get_by_label("Notify the owners").check()
    await form.get_by_label("Note").fill("<b>weekly</b>")
    await form.get_by_role("button", name="Send to CRM").click()
    await expect(form).to_be_hidden()
    await expect(page.locator("#jobs .job-label")).to_have_text("Send to CRM")
    job_id = _only_job(emu, "workbook:submit")
    assert emu.job(job_id).input == {"list": "customers", "notify": True, "note": "<b>weekly</b>"}


# --------------------------------------------------------------------------- the docs' pictures


async def test_the_docs_screenshots(page: Page, request: pytest.FixtureRequest) -> None:
    """The panel as the docs show it, on the quickstart's 1,204 contacts; with
    ``--screenshots`` the pictures are written to the docs (else to a temporary folder, so
    the scene is played and checked on every run)."""
    folder: Path = (
        SCREENSHOTS
        if request.config.getoption("--screenshots")
        else request.getfixturevalue("tmp_path")
    )
    jobs = Jobs()
    steps: asyncio.Queue[int | None] = asyncio.Queue()

    @jobs.handle("workbook:export", progress_interval=0)
    async def export(event: FlatfileEvent, tick: Tick) -> JobOutcome:
        while (step := await steps.get()) is not None:
            rows = f"{step * 1204 // 100:,} of 1,204"
            await tick(step, f"Exported {rows} rows", eta=dt.timedelta(seconds=9))
        return JobOutcome(
            acknowledge=True,
            heading="Export ready",
            message="Exported 1,204 rows to contacts.csv",
            next=Next.download("https://example.com/contacts.csv", label="Download the CSV"),
        )

    @jobs.handle("sheet:validate")
    async def validate(event: FlatfileEvent, tick: Tick) -> None:
        sheet_id = event.context.sheet_id
        assert sheet_id is not None
        invalid = 0
        async for records in event.client.records.pages(sheet_id, include_messages=True):
            for record in records:
                email = str(record.get("email") or "")
                if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                    record.error("email", f"{email!r} is not an email address")
                    invalid += 1
            await records.save()
        raise JobError(
            f"{invalid} rows have an invalid email address",
            heading="Some emails are invalid",
            next=Next.retry("Fix and retry"),
        )

    seed = Path(__file__).parents[2] / "examples" / "data" / "contacts.json"
    async with Emulator(seed=seed) as emu, emulated(Listener().use(jobs), emulator=emu):
        await _open(page, emu)
        sheet = emu.sheet("contacts").id
        await page.locator(f'#tree .sheet[data-id="{sheet}"] .sheet-link').click()
        await expect(page.locator("#page-status")).to_have_text("Page 1 of 25")
        await page.locator("#tree").get_by_role("button", name="Validate emails").click()
        await expect(page.locator("#outcome-heading")).to_have_text("Some emails are invalid")
        await page.locator("#outcome").get_by_role("button", name="Continue").click()
        await page.get_by_role("button", name="Error 3").click()
        await expect(page.locator("tbody .message-error")).to_have_count(3)
        await page.screenshot(path=folder / "panel-records.png", animations="disabled")

        await page.get_by_role("button", name="Export to CSV").click()
        await steps.put(60)
        await expect(page.locator("#overlay-progress")).to_have_attribute("aria-valuenow", "60")
        await page.screenshot(path=folder / "panel-progress.png", animations="disabled")

        await steps.put(None)
        await expect(page.locator("#outcome-heading")).to_have_text("Export ready")
        await page.screenshot(path=folder / "panel-outcome.png", animations="disabled")
        await page.locator("#outcome").get_by_role("button", name="Continue").click()
        await expect(page.locator("#outcome")).to_be_hidden()
    for name in ("panel-records.png", "panel-progress.png", "panel-outcome.png"):
        assert (folder / name).read_bytes().startswith(b"\x89PNG")
