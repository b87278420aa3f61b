"""The jobs panel's server side: its page, its JSON, its event stream, its guards.

What the page does with them is tested in a real browser (tests/browser, `nox -s browser`).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import webbrowser
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flatjobs.dev._cli import main
from flatjobs.emulator import Emulator, Fault
from flatjobs.emulator._panel import PANEL, _Panel, _Stream

ROOT = Path(__file__).parent.parent
ASSETS = ROOT / "flatjobs" / "emulator" / "panel"

SEED = {
    "workbooks": [
        {
            "name": "Contacts",
            "actions": [
                {"label": "Export", "operation": "export", "mode": "background"},
                {"label": "Submit", "operation": "submit"},
            ],
            "sheets": [
                {
                    "name": "Contacts",
                    "slug": "contacts",
                    "fields": [{"key": "email", "required": True}, {"key": "name"}],
                    "actions": [{"label": "Validate", "operation": "validate"}],
                    "records": [
                        {"email": f"p{n}@example.com", "name": f"P{n}"} for n in range(7)
                    ]
                    + [
                        {"email": "", "name": "No mail"},
                        {"email": "x@example.com", "name": {"value": "X", "messages": [
                            {"type": "warn", "message": "Odd name"}]}},
                    ],
                }
            ],
        }
    ],
    "files": [{"name": "report.csv", "content": "a,b\n1,2\n", "mode": "export"}],
}  # fmt: skip


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(seed=SEED) as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _json(response: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


class _Events:
    """A reader of the panel's event stream."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self) -> tuple[str, Any]:
        """The next event (name, data), skipping comments and the retry line."""
        name, data = "", ""
        while True:
            line = (await asyncio.wait_for(self.response.content.readline(), 10)).decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif line == "" and name:
                return name, json.loads(data)

    async def job(self, job_id: str, status: str) -> dict[str, Any]:
        """Read until the job is reported with ``status``."""
        while True:
            name, data = await self.next()
            if name == "job" and data["id"] == job_id and data["status"] == status:
                return dict(data)


async def test_the_page_is_served_at_the_root_with_a_strict_content_security_policy(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    assert emu.panel_url == f"{emu.url}/"
    async with http.get(emu.panel_url) as page:
        assert page.status == 200
        assert page.content_type == "text/html"
        html = await page.text()
        policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    for asset in re.findall(r'(?:src|href)="(/_panel/static/[^"]+)"', html):
        async with http.get(emu.url + asset) as found:
            assert found.status == 200, asset
    async with http.get(f"{emu.url}/_panel/static/..%2F_panel.py") as missing:
        assert missing.status == 404


def test_the_page_writes_data_as_text_only() -> None:
    script = (ASSETS / "panel.js").read_text()
    html = (ASSETS / "index.html").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    assert "<script>" not in html  # no inline script: the policy would refuse it anyway
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE)  # nor inline handlers


async def test_the_tree_has_spaces_workbooks_sheets_files_and_their_actions(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    tree = await _json(await http.get(f"{emu.url}/_panel/api/tree"))
    assert tree["environmentId"] == emu.environment_id
    (space,) = tree["spaces"]
    (workbook,) = space["workbooks"]
    assert [a["label"] for a in workbook["actions"]] == ["Export", "Submit"]
    (sheet,) = workbook["sheets"]
    assert sheet["slug"] == "contacts"
    assert sheet["config"]["actions"] == [{"label": "Validate", "operation": "validate"}]
    assert sheet["recordCounts"] == {"total": 9, "valid": 8, "error": 1}
    assert [f["name"] for f in space["files"]] == ["report.csv"]
    file_id = space["files"][0]["id"]
    async with http.get(f"{emu.url}/_panel/api/files/{file_id}/download") as download:
        assert await download.read() == b"a,b\n1,2\n"
        assert "report.csv" in download.headers["Content-Disposition"]


async def test_records_come_a_page_at_a_time_with_their_messages(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    sheet = emu.sheet("contacts").id
    url = f"{emu.url}/_panel/api/sheets/{sheet}/records"
    page = await _json(await http.get(url, params={"page": "2", "size": "4"}))
    assert (page["page"], page["pageCount"], page["selected"]) == (2, 3, 9)
    assert [r["values"]["name"]["value"] for r in page["records"]] == ["P4", "P5", "P6", "No mail"]
    missing = page["records"][3]["values"]["email"]
    assert missing["valid"] is False
    assert missing["messages"][0]["message"] == "email is required"
    last = await _json(await http.get(url, params={"page": "3", "size": "4"}))
    assert last["records"][0]["values"]["name"]["messages"] == [
        {"type": "warn", "message": "Odd name", "source": "custom-logic"}
    ]
    errors = await _json(await http.get(url, params={"filter": "error"}))
    assert [r["values"]["name"]["value"] for r in errors["records"]] == ["No mail"]
    assert errors["counts"] == {"total": 9, "valid": 8, "error": 1}  # the sheet's, whole
    await _json(await http.get(url, params={"filter": "nope"}), 400)
    await _json(await http.get(url, params={"size": "x"}), 400)
    await _json(await http.get(f"{emu.url}/_panel/api/sheets/us_sh_nope/records"), 404)


async def test_editing_a_cell_is_the_users_commit_which_starts_the_hooks(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    emu.seed(
        {
            "workbooks": [
                {
                    "name": "Typed",
                    "settings": {"trackChanges": True},
                    "sheets": [
                        {
                            "name": "Typed",
                            "slug": "typed",
                            "fields": [
                                {"key": "n", "type": "number"},
                                {"key": "b", "type": "boolean"},
                                {"key": "tags", "type": "string-list"},
                                {"key": "s"},
                                {"key": "locked", "readonly": True},
                            ],
                            "records": [{"s": "x"}],
                        }
                    ],
                }
            ]
        }
    )
    sheet = emu.sheet("typed").id
    [record] = emu.records(sheet)
    url = f"{emu.url}/_panel/api/sheets/{sheet}/records/{record['id']}"
    start = len(emu.events)
    edits = {"n": "12", "b": "TRUE", "tags": "a, b,", "s": "  "}
    answer = await _json(await http.post(url, json={"values": edits}))
    values = {k: v["value"] for k, v in answer["record"]["values"].items()}
    assert values == {"n": 12, "b": True, "tags": ["a", "b"], "s": None, "locked": None}
    [created] = [e for e in emu.events[start:] if e["topic"] == "commit:created"]
    assert answer["event"] == created["id"]
    assert created["dataUrl"].startswith(f"v1/sheets/{sheet}/records?for=")
    assert [c["id"] for c in emu.commits("typed", completed=False)] == [
        created["context"]["commitId"]
    ]
    await _json(await http.post(url, json={"values": {"n": "2.5"}}))
    assert emu.records(sheet)[0]["values"]["n"]["value"] == 2.5
    # Saving what is there already changes nothing: no commit.
    same = await _json(await http.post(url, json={"values": {"n": "2.5"}}))
    assert same["event"] is None
    for body, status in [
        ({"values": {"n": "twelve"}}, 400),
        ({"values": {"n": "nan"}}, 400),
        ({"values": {"b": "yes"}}, 400),
        ({"values": {"s": 3}}, 400),
        ({"values": {"nope": "x"}}, 400),
        ({"values": {"locked": "x"}}, 400),
        ({"values": {}}, 400),
        ({"s": "x"}, 400),
        ([], 400),
    ]:
        await _json(await http.post(url, json=body), status)
    await _json(
        await http.post(url.replace(record["id"], "us_rc_nope"), json={"values": edits}), 404
    )
    await _json(await http.post(url.replace(sheet, "us_sh_nope"), json={"values": edits}), 404)
    # A hook's setReadOnly on the cell (the record's config) locks it too.
    emu.data.update_records(
        sheet, [{"id": record["id"], "config": {"fields": {"s": {"readonly": True}}}}]
    )
    locked = await _json(await http.post(url, json={"values": {"s": "y"}}), 400)
    assert locked["errors"][0]["message"] == "s is read-only"
    other = await http.post(url, json={"values": {"n": "1"}}, headers={"Origin": "https://x.io"})
    await _json(other, 403)
    assert emu.records(sheet)[0]["values"]["n"]["value"] == 2.5


async def test_clicking_an_action_makes_the_job_the_platform_makes(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    workbook = emu.workbook("Contacts").id
    clicked = await _json(
        await http.post(
            f"{emu.url}/_panel/api/actions",
            json={"target": workbook, "operation": "export", "input": {"a": 1}},
        )
    )
    played = emu.trigger_action(workbook, "export", input={"a": 1})
    assert clicked["label"] == "Export"
    mine, theirs = emu.job(clicked["id"]), played
    for field in ("type", "operation", "source", "mode", "input", "trigger", "status"):
        assert getattr(mine, field) == getattr(theirs, field), field
    assert mine.mode == "background"

    def context(job_id: str) -> dict[str, Any]:
        ready = [e for e in emu.events if e["topic"] == "job:ready"]
        found = next(e for e in ready if e["context"]["jobId"] == job_id)["context"]
        return {k: v for k, v in found.items() if k != "jobId"}

    assert context(mine.id) == context(theirs.id)
    assert context(mine.id)["actionName"] == "workbook:export"
    sheet = emu.sheet("contacts").id
    validate = await _json(
        await http.post(
            f"{emu.url}/_panel/api/actions", json={"target": sheet, "operation": "validate"}
        )
    )
    assert (validate["type"], validate["mode"]) == ("sheet", "foreground")
    unknown = await http.post(
        f"{emu.url}/_panel/api/actions", json={"target": sheet, "operation": "nope"}
    )
    assert (
        "has no action with operation 'nope'" in (await _json(unknown, 404))["errors"][0]["message"]
    )
    await _json(await http.post(f"{emu.url}/_panel/api/actions", json={"target": 1}), 400)


async def test_cancel_retry_and_acknowledge_are_the_users_clicks(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    api = f"{emu.url}/_panel/api/jobs"
    job = emu.trigger_action(emu.workbook("Contacts").id, "submit")
    canceled = await _json(await http.post(f"{api}/{job.id}/cancel", json={}))
    assert canceled["status"] == "canceled"
    retried = await _json(await http.post(f"{api}/{job.id}/retry", json={}))
    assert retried["status"] == "ready"
    emu.state.ack(job.id, {})
    emu.state.finish(job.id, {"outcome": {"acknowledge": True, "message": "Sent"}}, call="complete")
    acked = await _json(await http.post(f"{api}/{job.id}/outcome-ack", json={}))
    assert acked["outcomeAcknowledgedAt"] is not None
    assert [e["topic"] for e in emu.events if e["context"].get("jobId") == job.id][-2:] == [
        "job:completed",
        "job:outcome-acknowledged",
    ]
    again = await _json(await http.post(f"{api}/{job.id}/outcome-ack", json={}), 400)
    assert "already acknowledged" in again["errors"][0]["message"]
    await _json(await http.post(f"{api}/us_jb_nope/cancel", json={}), 404)


async def test_faults_auth_and_the_recording_leave_the_panel_alone(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    emu.faults.add(Fault(rate=1.0, status=503))  # every route: but the panel's
    async with http.get(
        f"{emu.url}/v1/jobs", headers={"Authorization": f"Bearer {emu.token}"}
    ) as api:
        assert api.status == 503
    await _json(await http.get(f"{emu.url}/_panel/api/tree"))
    await _json(await http.get(f"{emu.url}/_panel/api/jobs"))
    job = emu.trigger_action(emu.workbook("Contacts").id, "submit")
    await _json(await http.post(f"{emu.url}/_panel/api/jobs/{job.id}/cancel", json={}))
    async with http.get(emu.panel_url) as page:
        assert page.status == 200
    assert [r.path for r in emu.requests] == ["/v1/jobs"]
    assert "/_panel/api/tree" not in {r.route for r in emu.requests}


async def test_another_origin_or_host_cannot_use_the_panel(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    actions = f"{emu.url}/_panel/api/actions"
    body = {"target": emu.workbook("Contacts").id, "operation": "export"}
    other = await http.post(actions, json=body, headers={"Origin": "https://evil.example"})
    assert (await _json(other, 403))["errors"][0]["message"].endswith("from its own page only")
    same = await http.post(actions, json=body, headers={"Origin": emu.url})
    await _json(same)
    form = await http.post(actions, data="target=x", headers={"Content-Type": "text/plain"})
    await _json(form, 415)  # a cross-site form cannot send JSON without a preflight
    for host in ("evil.example", "evil.example:80"):
        rebound = await http.get(f"{emu.url}/_panel/api/tree", headers={"Host": host})
        await _json(rebound, 403)
    for host in ("localhost", f"localhost:{emu.port}", "127.0.0.1", "[::1]:8080"):
        await _json(await http.get(f"{emu.url}/_panel/api/tree", headers={"Host": host}))
    assert len([j for j in emu.jobs() if j.operation == "export"]) == 1


async def test_the_stream_starts_with_every_job_then_sends_each_change(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    earlier = emu.trigger_action(emu.workbook("Contacts").id, "submit")
    async with http.get(f"{emu.url}/_panel/api/stream") as response:
        assert response.content_type == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-store"
        events = _Events(response)
        name, snapshot = await events.next()
        assert name == "snapshot"
        assert [j["id"] for j in snapshot["jobs"]] == [earlier.id]
        assert snapshot["jobs"][0]["label"] == "Submit"

        job = emu.trigger_action(emu.workbook("Contacts").id, "export")
        await events.job(job.id, "ready")
        emu.state.ack(job.id, {"progress": 40, "info": "<b>half</b>\nway"})
        executing = await events.job(job.id, "executing")
        assert (executing["progress"], executing["info"]) == (40, "<b>half</b>\nway")
        emu.state.finish(job.id, {}, call="complete")
        assert (await events.job(job.id, "complete"))["progress"] == 100

        sheet = emu.sheet("contacts").id
        emu.data.insert_records(sheet, [{"email": {"value": "new@example.com"}}])
        while (found := await events.next())[0] != "data":
            pass
        assert sheet in found[1]["sheets"]

        emu.state.delete(job.id)
        while (found := await events.next()) != ("job", {"id": job.id, "deleted": True}):
            pass


async def test_many_browsers_each_get_every_change(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    streams = [await http.get(f"{emu.url}/_panel/api/stream") for _ in range(20)]
    try:
        readers = [_Events(s) for s in streams]
        for reader in readers:
            assert (await reader.next())[0] == "snapshot"
        job = emu.trigger_action(emu.workbook("Contacts").id, "export")
        emu.state.ack(job.id, {"progress": 5})
        emu.state.finish(job.id, {}, call="fail")
        for reader in readers:
            await reader.job(job.id, "failed")
    finally:
        for stream in streams:
            stream.close()


async def test_a_browser_that_goes_away_is_forgotten(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    gone = await http.get(f"{emu.url}/_panel/api/stream")
    assert (await _Events(gone).next())[0] == "snapshot"
    staying = await http.get(f"{emu.url}/_panel/api/stream")
    reader = _Events(staying)
    await reader.next()
    assert emu._runner is not None
    panel = emu._runner.app[PANEL]
    assert len(panel.streams) == 2
    gone.close()  # the connection drops, unread
    async with asyncio.timeout(10):
        while len(panel.streams) > 1:  # a write to it fails, and ends its handler
            job = emu.trigger_action(emu.workbook("Contacts").id, "export")
            await reader.job(job.id, "ready")  # the other stream still gets every change
    staying.close()
    # Stopping the emulator does not wait for streams: they end with it.
    held = await http.get(f"{emu.url}/_panel/api/stream")
    await _Events(held).next()
    await asyncio.wait_for(emu.stop(), 10)
    assert await held.content.read() == b""


def test_a_slow_browser_costs_one_entry_per_job_not_one_per_event(emu: Emulator) -> None:
    panel = _Panel(emu)
    stream = _Stream()
    panel.streams.add(stream)
    emu.on_event(panel.on_event)
    job = emu.trigger_action(emu.workbook("Contacts").id, "export")
    for progress in range(100):
        emu.state.ack(job.id, {"progress": progress})
    sheet = emu.sheet("contacts").id
    for n in range(50):
        emu.data.insert_records(sheet, [{"email": {"value": f"n{n}@example.com"}}])
    assert list(stream.jobs) == [job.id]
    assert stream.sheets == {sheet}
    drained = panel._drain(stream)
    assert drained.count("event: job\n") == 1
    assert '"progress":99' in drained
    assert drained.count("event: data\n") == 1
    assert (stream.jobs, stream.sheets, stream.tree) == ({}, set(), False)


# --------------------------------------------------------------------------- the command


def test_dev_prints_the_panel_url_first_and_opens_it_with_open(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def open_browser(url: str) -> bool:
        opened.append(url)
        return len(opened) == 1  # the second time, no browser

    monkeypatch.setattr(webbrowser, "open", open_browser)
    monkeypatch.chdir(ROOT)
    args = ["dev", "tests/apps/slow.py", "--trigger", "workbook:crash", "--exit-when-idle"]
    for extra in ([], ["--open"], ["--open"]):
        main([*args, *extra])
        out, err = capsys.readouterr()
        first = out.splitlines()[0]
        found = re.fullmatch(
            r"flatjobs dev: emulator on (http://127\.0\.0\.1:\d+), running tests/apps/slow.py; "
            r"jobs panel: (\S+)",
            first,
        )
        assert found, first
        assert found.group(2) == found.group(1) + "/"
        if extra:
            assert opened[-1] == found.group(2)
    assert len(opened) == 2
    assert f"flatjobs dev: no browser to open: visit {opened[1]}" in err


async def test_the_emulator_command_prints_the_panel_url() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flatjobs", "emulator", "--port", "0", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        second = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        url = first.rsplit(" ", 1)[1].strip()
        assert second == f"  jobs panel: {url}/ (unauthenticated)\n"
        async with aiohttp.ClientSession() as http, http.get(f"{url}/") as page:
            assert page.status == 200
            assert "<title>flatjobs emulator</title>" in await page.text()
    finally:
        proc.terminate()
        await proc.wait()
