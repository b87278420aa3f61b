"""Flatfile's own listener plugins against the emulator: the scenarios of ``nox -s compat``.

Each scenario starts a fresh emulator in this process and a Node process running
``plugins.cjs`` (Flatfile's ``@flatfile/listener`` with a setup of its plugins), plays a user
(adds or edits records, creates a space, uploads a file), and asserts what the emulator then
holds. Every event the emulator emits is handed to the listener as it happens (one JSON line
on the Node process's stdin), as a driver delivers events to a listener; the listener says
when an event's dispatch ended, write-backs included (:meth:`JSListener.dispatched`).

* record hooks (``@flatfile/plugin-record-hook``, each as a ``bulkRecordHook`` and a
  ``recordHook``): changes written back, messages on cells, typed values, metadata and
  read-only config; a commit completed when the hook changed nothing or threw; no hook started
  again by the hook's own write;
* ``@flatfile/plugin-space-configure``: a space made with ``autoConfigure`` gets its
  workbooks, its primary workbook, metadata and documents, and the job completes;
* ``@flatfile/plugin-delimiter-extractor`` (a CSV with records paged by the
  ``customRecordsPageSize`` entitlement, a TSV) and ``@flatfile/plugin-xlsx-extractor`` (an
  .xlsx written with openpyxl): the ``[file] <name>`` workbook, its records, the file complete
  and the job complete;
* ``POST /v1/files/detect-header`` finds, on a set of tables, the header the delimiter
  extractor's own detection finds (``plugins.cjs parse``).

:func:`run_js_hook` is the reusable part: it runs one named JS hook over one commit and returns
the commit's records (with their messages) as the hook left them, for comparing Flatfile's
hooks with flatjobs' own on the same records.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import importlib
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Self

import aiohttp

from flatjobs.emulator import Emulator

__all__ = ["SCENARIOS", "JSListener", "node_env", "run_js_hook", "run_scenarios"]

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "plugins.cjs"
MARK = "@@flatjobs "
"""The start of each line plugins.cjs says; its other lines are the plugins' logging."""
TIMEOUT = 60.0
"""Seconds one wait of a scenario may take (an extraction takes about four)."""


def node_env(
    emu: Emulator, modules: Path, options: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The environment plugins.cjs runs in, pointed at ``emu``."""
    return {
        **os.environ,
        **emu.env(),
        # @flatfile/listener reads AGENT_INTERNAL_URL (never FLATFILE_API_URL); so do the
        # extractors' record inserts. @flatfile/api reads FLATFILE_API_URL.
        "AGENT_INTERNAL_URL": emu.url,
        "FF_API_MODULE_DIR": str(modules),
        "FF_SETUP_OPTIONS": json.dumps(dict(options or {})),
    }


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH")
    return node


class JSListener:
    """``node plugins.cjs listen <setup>``, handed every event ``emu`` emits while open.

    ``logs`` holds what the plugins logged (stdout and stderr lines), ``errors`` the
    dispatches that failed. Leaving the block closes the listener's input and waits for
    every dispatch still running."""

    def __init__(
        self,
        emu: Emulator,
        setup: str,
        modules: Path,
        *,
        options: Mapping[str, Any] | None = None,
        label: str = "",
    ) -> None:
        self.emu = emu
        self.setup = setup
        self.modules = modules
        self.options = options
        self.label = label or setup
        self.logs: list[str] = []
        self.errors: list[dict[str, Any]] = []
        self._done: dict[str, dict[str, Any]] = {}
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ready: asyncio.Future[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        self._ready = asyncio.get_running_loop().create_future()
        self._process = await asyncio.create_subprocess_exec(
            _node(),
            str(SCRIPT),
            "listen",
            self.setup,
            env=node_env(self.emu, self.modules, self.options),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        assert self._process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self._process.stdout)),
            asyncio.create_task(self._read(self._process.stderr)),
        ]
        try:
            async with asyncio.timeout(TIMEOUT):
                await self._ready
        except BaseException:
            await self._stop()
            raise
        self.emu.on_event(self._forward)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.emu.off_event(self._forward)
        await self._stop()

    async def _stop(self) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        with contextlib.suppress(ConnectionError):
            process.stdin.close()
        try:
            async with asyncio.timeout(TIMEOUT):
                await process.wait()
                await asyncio.gather(*self._readers)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(f"the {self.label} listener did not end") from None
        if process.returncode != 0:
            raise AssertionError(
                f"the {self.label} listener exited {process.returncode}: "
                + " | ".join(self.logs[-5:])
            )

    def _forward(self, event: dict[str, Any]) -> None:
        process = self._process
        if process is not None and process.stdin is not None and not process.stdin.is_closing():
            process.stdin.write(json.dumps(event).encode() + b"\n")

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line.startswith(MARK):
                self.logs.append(line)
                continue
            said = json.loads(line[len(MARK) :])
            if said.get("ready") and self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            elif "dispatched" in said:
                if "error" in said:
                    self.errors.append(said)
                self._done[said["dispatched"]] = said
                waiter = self._waiting.pop(said["dispatched"], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(said)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                AssertionError(f"the {self.label} listener ended: " + " | ".join(self.logs[-5:]))
            )

    async def dispatched(self, event_id: str) -> dict[str, Any]:
        """Wait until the listener's dispatch of the event ended (its handlers and their
        write-backs)."""
        if event_id not in self._done:
            future = self._waiting.setdefault(event_id, asyncio.get_running_loop().create_future())
            try:
                async with asyncio.timeout(TIMEOUT):
                    await future
            except TimeoutError:
                raise AssertionError(
                    f"the {self.label} listener did not finish event {event_id} in {TIMEOUT:g} s"
                ) from None
        return self._done[event_id]


async def run_js_hook(
    emu: Emulator,
    hook: str,
    event: Mapping[str, Any],
    modules: Path,
    *,
    options: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run Flatfile's record hook ``hook`` (a setup of plugins.cjs: ``bulk:capitalize``,
    ``record:lastNameRequired``...) over the commit ``event`` (a ``commit:created``) once,
    and return the commit's records as its ``dataUrl`` then serves them: the hook's changes
    written back, each cell with its messages.

    ``options``: the setup's (``sheetSlug``, default ``contacts``; ``chunkSize``). Raises
    AssertionError when Node fails."""
    process = await asyncio.create_subprocess_exec(
        _node(),
        str(SCRIPT),
        "hook",
        hook,
        env=node_env(emu, modules, options),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            out, _ = await process.communicate(json.dumps(event).encode())
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"the {hook} hook did not end in {TIMEOUT:g} s") from None
    lines = out.decode("utf-8", "replace").splitlines()
    said = [json.loads(x[len(MARK) :]) for x in lines if x.startswith(MARK)]
    if process.returncode != 0 or not said:
        raise AssertionError(f"the {hook} hook exited {process.returncode}: {lines[-5:]}")
    records: list[dict[str, Any]] = said[-1]["records"]
    return records


# ------------------------------------------------------------------ the scenarios


class Context:
    """What a scenario is given: the folder of the installed packages."""

    def __init__(self, modules: Path) -> None:
        self.modules = modules


def _hook_sheet(emu: Emulator, *, track_changes: bool = True) -> str:
    seeded = emu.seed(
        {
            "workbooks": [
                {
                    "name": "Hooks",
                    "settings": {"trackChanges": track_changes},
                    "sheets": [
                        {
                            "name": "Contacts",
                            "slug": "contacts",
                            "fields": [
                                {"key": "name"},
                                {"key": "email"},
                                {"key": "firstName"},
                                {"key": "lastName"},
                                {"key": "age", "type": "number"},
                                {"key": "alive", "type": "boolean"},
                                {"key": "category", "type": "enum", "options": ["one", "two"]},
                            ],
                        }
                    ],
                }
            ]
        }
    )
    return seeded.sheets["contacts"]


def _values(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v["value"] for k, v in record["values"].items() if v["value"] is not None}


def _messages(record: Mapping[str, Any]) -> dict[str, list[tuple[str, str, str]]]:
    return {
        k: [(m["type"], m["source"], m["message"]) for m in v["messages"]]
        for k, v in record["values"].items()
        if v["messages"]
    }


def _writes_back(emu: Emulator, event: Mapping[str, Any]) -> list[Any]:
    """The bodies the hook PUT to the event's dataUrl."""
    return [
        r.json
        for r in emu.requests
        if r.route == "records.update" and r.query.get("for") == event["id"]
    ]


def _created(emu: Emulator) -> list[str]:
    return [e["id"] for e in emu.events if e["topic"] == "commit:created"]


def _open(emu: Emulator) -> list[str]:
    return [c["id"] for c in emu.commits(completed=False)]


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def _equal(got: Any, want: Any, what: str) -> None:
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


async def hook_writes_back(ctx: Context, kind: str) -> None:
    """Changes and messages written back in one gzipped PUT to the dataUrl; the write starts
    no hook; the commit stays open (the plugin completes none it wrote back to)."""
    async with Emulator() as emu:
        _hook_sheet(emu)
        async with JSListener(emu, f"{kind}:capitalize", ctx.modules) as js:
            event = emu.add_records(
                "contacts",
                [
                    {"name": "alice", "email": "a@x.io"},
                    {"name": "Bob", "email": "b@x.io"},
                    {"name": "Carol"},
                ],
            )
            assert event is not None
            await js.dispatched(event["id"])
        alice, bob, carol = emu.records("contacts")
        _equal(_values(alice), {"name": "Alice", "email": "a@x.io"}, "alice")
        _equal(_values(bob), {"name": "Bob", "email": "b@x.io"}, "bob")
        _equal(bob["commitId"], event["context"]["commitId"], "bob's commit (untouched)")
        _equal(
            _messages(carol),
            {"email": [("error", "custom-logic", "Email is required")]},
            "carol's messages",
        )
        _equal((alice["valid"], bob["valid"], carol["valid"]), (True, True, False), "validity")
        writes = _writes_back(emu, event)
        _equal(len(writes), 1, "write-backs")
        _equal(
            sorted(r["id"] for r in writes[0]), [alice["id"], carol["id"]], "records written back"
        )
        _equal(_created(emu), [event["id"]], "commit:created events (none for the hook's write)")
        _equal(_open(emu), [event["context"]["commitId"]], "open commits")
        _equal(js.errors, [], "failed dispatches")
        _check(
            any("2 modified records" in line for line in js.logs),
            "the plugin logged 2 modified records",
        )


async def hook_changes_nothing(ctx: Context, kind: str) -> None:
    """A hook that changes nothing writes nothing and completes the commit."""
    async with Emulator() as emu:
        _hook_sheet(emu)
        async with JSListener(emu, f"{kind}:noop", ctx.modules) as js:
            event = emu.add_records(
                "contacts", [{"name": "Ann", "email": "a@x.io"}, {"name": "Bo"}]
            )
            assert event is not None
            await js.dispatched(event["id"])
        _equal(_writes_back(emu, event), [], "write-backs")
        _equal(_open(emu), [], "open commits")
        completed = [e for e in emu.events if e["topic"] == "commit:completed"]
        _equal(
            [e["context"]["commitId"] for e in completed],
            [event["context"]["commitId"]],
            "commit:completed",
        )
        _check(
            any("No records modified" in line for line in js.logs),
            "the plugin logged No records modified",
        )


async def hook_throws(ctx: Context, kind: str) -> None:
    """A hook that throws writes nothing and completes the commit."""
    async with Emulator() as emu:
        _hook_sheet(emu)
        async with JSListener(emu, f"{kind}:throws", ctx.modules) as js:
            event = emu.add_records("contacts", [{"name": "ann"}])
            assert event is not None
            await js.dispatched(event["id"])
        _equal(_writes_back(emu, event), [], "write-backs")
        _equal(_open(emu), [], "open commits")
        _equal(_values(emu.records("contacts")[0]), {"name": "ann"}, "the record")
        _check(any("[FATAL] oops" in line for line in js.logs), "the plugin logged [FATAL] oops")


async def hook_messages_follow_edits(ctx: Context, kind: str) -> None:
    """Flatfile's e2e "commits record message change", with the user's edits: a message
    comes with a first name and goes with it."""
    async with Emulator() as emu:
        _hook_sheet(emu, track_changes=False)
        async with JSListener(emu, f"{kind}:lastNameRequired", ctx.modules) as js:
            first = emu.add_records("contacts", [{"email": "john@doe.com"}])
            assert first is not None
            await js.dispatched(first["id"])
            [record] = emu.records("contacts")
            _equal(_messages(record), {}, "messages after the insert")
            second = emu.edit_records("contacts", {record["id"]: {"firstName": "John"}})
            assert second is not None
            await js.dispatched(second["id"])
            [record] = emu.records("contacts")
            _equal(
                _messages(record),
                {
                    "lastName": [
                        ("error", "custom-logic", "lastName is required if firstName is present")
                    ]
                },
                "messages after a first name",
            )
            _equal(record["valid"], False, "validity with the message")
            third = emu.edit_records("contacts", {record["id"]: {"firstName": None}})
            assert third is not None
            await js.dispatched(third["id"])
        [record] = emu.records("contacts")
        _equal(_messages(record), {}, "messages once the first name is gone")
        _equal(_values(record), {"email": "john@doe.com"}, "values")
        _equal(record["valid"], True, "validity")
        _equal(_created(emu), [first["id"], second["id"], third["id"]], "commit:created events")


async def hook_typed_values(ctx: Context, kind: str) -> None:
    """Values of every type set by a hook (null, a number, a boolean, enum options), its
    metadata and a read-only cell; an enum value not among the options makes the record
    invalid."""
    async with Emulator() as emu:
        _hook_sheet(emu)
        async with JSListener(emu, f"{kind}:typed", ctx.modules) as js:
            event = emu.add_records(
                "contacts", [{"firstName": "John", "email": "ok@x.io"}, {"email": "bad@x.io"}]
            )
            assert event is not None
            await js.dispatched(event["id"])
        good, bad = emu.records("contacts")
        _equal(
            _values(good),
            {"email": "ok@x.io", "age": 18, "alive": True, "category": "one"},
            "typed values",
        )
        _equal(type(good["values"]["age"]["value"]), int, "a number stays a number")
        _equal(good["metadata"], {"test": True}, "metadata")
        _equal(good["config"], {"fields": {"age": {"readonly": True}}}, "config")
        _equal(good["valid"], True, "a valid option")
        _equal(bad["valid"], False, "an invalid option")
        _equal(
            [m["source"] for m in bad["values"]["category"]["messages"]],
            ["invalid-option"],
            "the platform's message",
        )
        _equal(_open(emu), [event["context"]["commitId"]], "open commits")


async def hook_run_once(ctx: Context, kind: str) -> None:
    """run_js_hook (the reusable path): one hook over one commit, its records as it left
    them."""
    async with Emulator() as emu:
        _hook_sheet(emu)
        event = emu.add_records("contacts", [{"name": "zoe"}, {"name": "Yan", "email": "y@x.io"}])
        assert event is not None
        records = await run_js_hook(emu, f"{kind}:capitalize", event, ctx.modules)
        held = emu.records("contacts")
        for record in held:
            del record["versionId"], record["commitId"]
        _equal(records, held, "the records run_js_hook reports")
        _equal(_values(records[0]), {"name": "Zoe"}, "zoe")


CONFIGURE_SETUP: dict[str, Any] = {
    "workbooks": [
        {
            "name": "Contacts",
            "labels": ["pinned"],
            "sheets": [
                {
                    "name": "People",
                    "slug": "people",
                    "fields": [
                        {"key": "email", "type": "string", "label": "Email", "constraints": [{"type": "required"}]},
                        {"key": "tier", "type": "enum", "label": "Tier", "config": {"options": [{"value": "gold", "label": "Gold"}]}},
                    ],
                }
            ],
            "actions": [{"operation": "submitActionFg", "mode": "foreground", "label": "Submit", "primary": True}],
        },
        {"sheets": []},
    ],
    "space": {"metadata": {"theme": {"root": {"primaryColor": "red"}}}},
    "documents": [{"title": "Welcome", "body": "<h1>Hi</h1>"}, {"title": "Second", "body": "b"}],
}  # fmt: skip


async def _post(emu: Emulator, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.post(f"{emu.url}/v1{path}", **kwargs) as response,
    ):
        if response.status != 200:
            raise AssertionError(f"POST {path}: {response.status} {await response.text()}")
        return (await response.json())["data"]


async def space_configure(ctx: Context) -> None:
    """A space created with autoConfigure is configured by configureSpace."""
    async with (
        Emulator() as emu,
        JSListener(emu, "configure", ctx.modules, options={"setup": CONFIGURE_SETUP}) as js,
    ):
        space = await _post(emu, "/spaces", json={"name": "Onboarding", "autoConfigure": True})
        [job] = [j for j in emu.jobs() if j.job_name == "space:configure"]
        _equal(job.source, space["id"], "the job's source")
        done = await emu.wait_for(job.id, timeout=TIMEOUT)
        _equal(
            (done.status, done.info, done.progress),
            ("complete", "Space configured", 100),
            "the job",
        )
        workbooks = emu.data.list_workbooks({"spaceId": [space["id"]]})
        _equal([w["name"] for w in workbooks], ["Contacts", "Workbook"], "workbooks")
        contacts = workbooks[0]
        _equal(contacts["labels"], ["pinned"], "labels")
        [people] = contacts["sheets"]
        _equal([f["key"] for f in people["config"]["fields"]], ["email", "tier"], "fields")
        _equal(
            people["config"]["fields"][1]["config"]["options"],
            [{"value": "gold", "label": "Gold"}],
            "enum options",
        )
        _equal(contacts["actions"][0]["operation"], "submitActionFg", "action")
        held = emu.space(space["id"])
        _equal(held.primary_workbook_id, contacts["id"], "primaryWorkbookId")
        _equal(held.metadata, {"theme": {"root": {"primaryColor": "red"}}}, "space metadata")
        _equal([d.title for d in emu.documents(space["id"])], ["Welcome", "Second"], "documents")
        acks = [body for method, path, body in emu.calls(job.id) if path.endswith("/ack")]
        _equal(
            [(a.get("progress"), a.get("info")) for a in acks],
            [(0, "Accepted"), (50, "Workbook created"), (80, "Configured 2 workbooks")],
            "acks",
        )
        _equal(js.errors, [], "failed dispatches")


async def _upload(
    emu: Emulator, space_id: str, name: str, content: bytes, content_type: str
) -> str:
    form = aiohttp.FormData()
    form.add_field("spaceId", space_id)
    form.add_field("environmentId", emu.environment_id)
    form.add_field("file", content, filename=name, content_type=content_type)
    file: dict[str, Any] = await _post(emu, "/files", data=form)
    return str(file["id"])


async def _extract(
    ctx: Context,
    setup: str,
    name: str,
    content: bytes,
    content_type: str,
    entitlements: list[dict[str, Any]] | None = None,
) -> tuple[Emulator, dict[str, Any], list[dict[str, Any]]]:
    """Upload a file to a fresh space while Flatfile's extractor (``setup``) listens, and
    check the file and the job: (the emulator, the workbook made, its records by sheet
    name). The emulator has stopped."""
    async with Emulator() as emu:
        space = emu.seed({"spaces": [{"name": "Uploads"}]}).spaces["Uploads"]
        if entitlements is not None:
            emu.set_entitlements(space, entitlements)
        async with JSListener(emu, setup, ctx.modules, label=name) as js:
            file_id = await _upload(emu, space, name, content, content_type)
            created = next(e for e in emu.events if e["topic"] == "file:created")
            await js.dispatched(created["id"])
            [job] = [j for j in emu.jobs() if j.type == "file" and j.source == file_id]
            done = await emu.wait_for(job.id, timeout=TIMEOUT)
            _equal(js.errors, [], "failed dispatches")
        _equal(
            (done.status, done.outcome and done.outcome.message),
            ("complete", "plugins.extraction.extractedFile"),
            "the job",
        )
        file = emu.file(file_id)
        _equal(file.status, "complete", "the file's status")
        workbook = emu.workbook(str(file.workbook_id))
        records = [emu.records(s.id) for s in workbook.sheets or []]
        return (
            emu,
            emu.data.get_workbook(workbook.id),
            [
                {"sheet": s.name, "records": [_values(r) for r in rs]}
                for s, rs in zip(workbook.sheets or [], records, strict=True)
            ],
        )


def _fields(workbook: Mapping[str, Any]) -> list[list[tuple[str, str]]]:
    return [[(f["key"], f["label"]) for f in s["config"]["fields"]] for s in workbook["sheets"]]


CSV = (
    "Report 2026\r\n"
    "First Name,Last Name,Email,Amount %\r\n"
    "Ada,Lovelace,ada@x.io,12\r\n"
    '"Grace, Rear Adm.",Hopper,g@x.io,7\r\n'
    'Alan,"Tur""ing",alan@x.io,3.5\r\n'
)


async def extract_csv(ctx: Context) -> None:
    """A CSV after a title line, its records inserted two at a time (the
    customRecordsPageSize entitlement)."""
    emu, workbook, sheets = await _extract(
        ctx,
        "extract:csv",
        "contacts.csv",
        CSV.encode(),
        "text/csv",
        entitlements=[{"key": "customRecordsPageSize", "metadata": {"pageSize": 2}}],
    )
    _equal(
        (workbook["name"], workbook["labels"]), ("[file] contacts.csv", ["file"]), "the workbook"
    )
    _equal([s["name"] for s in workbook["sheets"]], ["Sheet1"], "sheets")
    _equal(
        _fields(workbook),
        [
            [
                ("first_name", "First Name"),
                ("last_name", "Last Name"),
                ("email", "Email"),
                ("amount_percent", "Amount %"),
            ]
        ],
        "fields",
    )
    _equal(
        sheets[0]["records"],
        [
            {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": "ada@x.io",
                "amount_percent": "12",
            },
            {
                "first_name": "Grace, Rear Adm.",
                "last_name": "Hopper",
                "email": "g@x.io",
                "amount_percent": "7",
            },
            {
                "first_name": "Alan",
                "last_name": 'Tur"ing',
                "email": "alan@x.io",
                "amount_percent": "3.5",
            },
        ],
        "records",
    )
    inserts = [r for r in emu.requests if r.route == "records.insert"]
    _equal([len(r.json) for r in inserts], [2, 1], "records inserted per request")
    asked = [r for r in emu.requests if r.route == "entitlements.list"]
    _equal(
        [(r.status, r.query) for r in asked],
        [(200, {"resourceId": workbook["spaceId"]})],
        "entitlements read",
    )


async def extract_tsv(ctx: Context) -> None:
    """A TSV with ragged and blank lines."""
    tsv = "name\tcity\tzip\nAnn\tParis\t75001\nBo\tOslo\n\nCy\tRome\t00100\n"
    _, workbook, sheets = await _extract(
        ctx, "extract:tsv", "people.tsv", tsv.encode(), "text/tab-separated-values"
    )
    _equal(workbook["name"], "[file] people.tsv", "the workbook")
    _equal(_fields(workbook), [[("name", "name"), ("city", "city"), ("zip", "zip")]], "fields")
    _equal(
        sheets[0]["records"],
        [
            {"name": "Ann", "city": "Paris", "zip": "75001"},
            {"name": "Bo", "city": "Oslo"},
            {"name": ""},
            {"name": "Cy", "city": "Rome", "zip": "00100"},
        ],
        "records",
    )


def _xlsx() -> bytes:
    """A workbook written by openpyxl (not by the SheetJS that reads it): a title row, a
    header, typed cells, a blank row, and an empty second sheet."""
    openpyxl: Any = importlib.import_module("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts 2024"
    sheet.append(["Quarterly contacts"])
    sheet.append(["Name", "Score", "Active", "Code"])
    sheet.append(["Ada", 1234.5, True, "A1"])
    sheet.append(["Grace", 7, False, None])
    sheet.append([])
    sheet.append(["Alan", 42, True, "C3"])
    book.create_sheet("Empty")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def extract_xlsx(ctx: Context) -> None:
    """An .xlsx: its header found by POST /files/detect-header, a blank row kept as an
    empty record, an empty sheet left out."""
    emu, workbook, sheets = await _extract(
        ctx,
        "extract:xlsx",
        "contacts.xlsx",
        _xlsx(),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    _equal(workbook["name"], "[file] contacts.xlsx", "the workbook")
    _equal(
        [(s["name"], s["slug"]) for s in workbook["sheets"]],
        [("Contacts 2024", "Contacts-2024")],
        "sheets",
    )
    _equal(
        _fields(workbook),
        [[("name", "Name"), ("score", "Score"), ("active", "Active"), ("code", "Code")]],
        "fields",
    )
    _equal(
        sheets[0]["records"],
        [
            {"name": "Ada", "score": "1234.5", "active": "TRUE", "code": "A1"},
            {"name": "Grace", "score": "7", "active": "FALSE"},
            {},
            {"name": "Alan", "score": "42", "active": "TRUE", "code": "C3"},
        ],
        "records",
    )
    detected = [r for r in emu.requests if r.route == "files.detect_header"]
    _equal([r.status for r in detected], [200], "detect-header answered")


DETECTED: list[tuple[str, dict[str, Any]]] = [
    ("Report 2026\nName,Age\nAnn,41\nBo,7", {"algorithm": "default"}),
    ("Name,Age,,City\nAnn,41,x,Paris\nBo,7,y,Oslo", {"algorithm": "default"}),
    ("a\nb,c\nd,e,f\ng,h,i,j", {"algorithm": "default", "rowsToSearch": 2}),
    ("x,y\n1,2\n3,4", {"algorithm": "explicitHeaders", "headers": ["A1", "B1"], "skip": 1}),
    ("top,\ngroup,sub\n1,2", {"algorithm": "specificRows", "rowNumbers": [0, 1]}),
    ("top,\ngroup,sub\n1,2\n3,4", {"algorithm": "specificRows", "rowNumbers": [1], "skip": 3}),
    ("Title\nName,Age\n,\nBob,3", {"algorithm": "dataRowAndSubHeaderDetection"}),
    (
        "Customer Name,Customer Email\nname,email\nAnn,a@x.io\nBo,b@x.io",
        {"algorithm": "dataRowAndSubHeaderDetection"},
    ),
    ("id,name\n1,Ann\n2,Bo", {"algorithm": "dataRowAndSubHeaderDetection"}),
    ("a,b\n1,2,3\n4", {"algorithm": "default"}),
    ("a,b\nc,d\ne,f", {"algorithm": "default"}),
    ("\n".join(["a"] * 11 + ["x,y,z", "1,2,3"]), {"algorithm": "default"}),
    ("\n".join(["a"] * 10 + ["x,y,z", "1,2,3"]), {"algorithm": "dataRowAndSubHeaderDetection"}),
]
"""Tables (CSV text) and header detection options the two detections must agree on."""


async def detect_header_agrees(ctx: Context) -> None:
    """POST /files/detect-header finds the header the delimiter extractor's own detection
    finds (the xlsx extractor asks the platform what the delimiter one works out itself)."""
    process = await asyncio.create_subprocess_exec(
        _node(),
        str(SCRIPT),
        "parse",
        "-",
        env={
            **os.environ,
            "FF_API_MODULE_DIR": str(ctx.modules),
            "AGENT_INTERNAL_URL": "-",
            "FLATFILE_API_URL": "-",
            "FLATFILE_BEARER_TOKEN": "-",
        },
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    tables = [{"text": text, "options": options} for text, options in DETECTED]
    async with asyncio.timeout(TIMEOUT):
        out, _ = await process.communicate(json.dumps(tables).encode())
    lines = out.decode().splitlines()
    said = [json.loads(x[len(MARK) :]) for x in lines if x.startswith(MARK)]
    _check(process.returncode == 0 and bool(said), f"the parser failed: {lines[-5:]}")
    async with Emulator() as emu:
        for (text, options), theirs in zip(DETECTED, said[0]["parsed"], strict=True):
            rows = list(csv.reader(io.StringIO(text)))
            ours = await _post(emu, "/files/detect-header", json={"options": options, "data": rows})
            _equal(
                (ours["header"], len(rows) - ours["headerRow"]),
                (theirs["headers"], theirs["rows"]),
                f"the header and the records after it, {options} over {text!r}",
            )


Scenario = Callable[[Context], Awaitable[None]]


def _kinds(name: str, run: Callable[[Context, str], Awaitable[None]]) -> dict[str, Scenario]:
    """The scenario for a bulkRecordHook and for a recordHook."""

    def bound(kind: str) -> Scenario:
        async def scenario(ctx: Context) -> None:
            await run(ctx, kind)

        return scenario

    return {f"{name}[{kind}]": bound(kind) for kind in ("bulk", "record")}


SCENARIOS: dict[str, Scenario] = {
    **_kinds("record-hook writes back", hook_writes_back),
    **_kinds("record-hook changes nothing", hook_changes_nothing),
    **_kinds("record-hook throws", hook_throws),
    **_kinds("record-hook messages follow edits", hook_messages_follow_edits),
    **_kinds("record-hook typed values", hook_typed_values),
    **_kinds("record-hook run once", hook_run_once),
    "space-configure": space_configure,
    "delimiter-extractor csv": extract_csv,
    "delimiter-extractor tsv": extract_tsv,
    "xlsx-extractor": extract_xlsx,
    "detect-header agrees with the delimiter extractor": detect_header_agrees,
}
"""Every scenario, by name."""
_TOGETHER = ("delimiter-extractor csv", "delimiter-extractor tsv", "xlsx-extractor")
"""Scenarios run side by side: each extraction waits 3 s in Flatfile's code."""


async def _one(name: str, scenario: Scenario, ctx: Context) -> bool:
    started = time.monotonic()
    try:
        await scenario(ctx)
    except Exception as exc:
        print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
        return False
    print(f"ok   {name} ({time.monotonic() - started:.1f} s)", flush=True)
    return True


async def run_scenarios(modules: Path, only: list[str] | None = None) -> tuple[int, int]:
    """Run the scenarios (those whose name holds a text of ``only``, else all): (passed,
    failed)."""
    ctx = Context(modules)
    chosen = {n: s for n, s in SCENARIOS.items() if not only or any(o in n for o in only)}
    results = [await _one(n, s, ctx) for n, s in chosen.items() if n not in _TOGETHER]
    results += await asyncio.gather(*(_one(n, s, ctx) for n, s in chosen.items() if n in _TOGETHER))
    return sum(results), len(results) - sum(results)


def main(argv: list[str]) -> int:
    """``python plugins.py --node-modules DIR [--scenario TEXT ...]``: prints each
    scenario's result, then ``N passed, M failed``; exits 1 when one failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--node-modules", metavar="DIR", required=True, type=Path)
    parser.add_argument("--scenario", action="append", metavar="TEXT")
    args = parser.parse_args(argv)
    passed, failed = asyncio.run(run_scenarios(args.node_modules, args.scenario))
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
