"""A local emulator of Flatfile's API, for development and tests.

It follows Flatfile's API: the ``/v1`` endpoints with the ``{"data": ...}`` envelope, the
job state machine, the events of a job's life, multi-part jobs, secrets and bearer auth;
and the data a job works on: spaces, workbooks, sheets and their records (validated as the
platform does: required fields, enum options, handlers' own messages), commits, files and
documents, with the events their changes emit. State lives in memory; it starts in
milliseconds, and a seed (see :meth:`Emulator.seed`) fills it.

Events are also pushed, as Flatfile pushes them: ``GET /v1/subscription`` hands out
credentials, and a server speaking PubNub's subscribe protocol, on a port of its own
(:attr:`Emulator.push_url`), publishes every event on its environment's and its space's
channels (:class:`PushServer`).

Its root URL (:attr:`Emulator.panel_url`) serves the jobs panel, the page a user would look
at: the spaces, workbooks and sheets with their action buttons, each sheet's records with
their cell messages, and every job live, with its progress and its outcome dialog. It is
unauthenticated, for local development (the emulator listens on 127.0.0.1 by default).

>>> from flatjobs import FlatfileClient
>>> async def main() -> None:
...     async with Emulator() as emu:
...         job = emu.trigger("workbook:export")      # a user clicks the action button
...         async with FlatfileClient(emu.url, emu.token) as client:
...             await client.jobs.ack(job.id, info="Accepted", progress=0)
...             await client.jobs.complete(job.id)
...         print(emu.job(job.id).status)
>>> asyncio.run(main())
complete

Record hooks, as the platform runs them:

* A write of records (``POST``, ``PUT`` or ``DELETE /v1/sheets/{id}/records``) makes a commit
  and emits ``records:*``. It starts the record hooks, ``commit:created``, unless it carries
  ``X-Disable-Hooks: true`` without ``X-Force-Hooks: true``. Flatfile's SDKs (and flatjobs'
  client) send ``X-Disable-Hooks: true`` on every call, so a job's writes start no hook; a
  user's edits (:meth:`Emulator.edit_records`, the jobs panel) and imports
  (:meth:`Emulator.add_records`; Flatfile's extractors, which send ``x-force-hooks: true``)
  do; a hook's own write-back (``X-Disable-Hooks: true``) does not, so a hook never runs
  again on its own write. A test that wants hooks to follow its handler's write sends
  ``X-Force-Hooks: true``, or plays the user.
* ``commit:created`` carries ``context.commitId`` (and the sheet's ids and slug), ``payload
  {trackChanges, sheetId}`` and a ``dataUrl``, relative as Flatfile's listener needs it:
  ``v1/sheets/{sheetId}/records?for={eventId}&includeMessages=true``. Its ``GET`` serves the
  records the commit changed, as they are now, each with every field of the sheet (an empty
  one as ``"value": null``), its cells' messages, ``valid``, ``metadata`` and ``config``
  (``{}`` when none): in that shape a hook that changes nothing sends nothing back. Without
  ``pageSize`` it answers them all at once (Flatfile's hook reads a commit in one ``GET``);
  with ``pageSize``/``pageNumber`` it pages, and stays the same selection while the hook
  writes back between pages. A ``PUT`` to it (gzipped or not) merges what the hook changed,
  cell by cell, into records that must be the commit's.
* With ``settings.trackChanges`` on the workbook, a commit that started the hooks stays open
  until ``POST /v1/commits/{id}/complete`` (which emits ``commit:completed``); one that
  started none is complete at once. Flatfile's record hook completes a commit when its
  handler changed nothing or raised, not after it wrote changes back; whether the platform
  then completes it is not established, and the emulator does not:
  ``emu.commits(completed=False)`` shows what a hook left open.

Files are extracted by listeners, as on the platform: an upload emits ``file:created``; an
extractor (Flatfile's, or yours) makes and executes its job, reads ``GET /v1/entitlements``
(none unless :meth:`Emulator.set_entitlements` gives some) and, for spreadsheets, ``POST
/v1/files/detect-header``, whose algorithms are Flatfile's own. A space created with
``autoConfigure: true`` gets its ``space:configure`` job.

Differences from the hosted platform, by design: ``POST /jobs`` without ``trigger`` makes
a ``manual`` job that waits for ``/execute``; a ``cancel`` emits ``job:updated``; a
``PUT`` of records that changes nothing answers 200 with the current ids, never a bodiless
304; ``q`` (FFQL) queries are refused; the platform's own extraction of CSV files and its
``aiDetection`` of headers are not emulated (``aiDetection`` answers as ``default``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import signal
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Self

from aiohttp import web

from flatjobs._seconds import check_seconds
from flatjobs.models import (
    TERMINAL_STATUSES,
    Document,
    File,
    Job,
    RecordCounts,
    Sheet,
    Space,
    Workbook,
    from_wire,
)

from ._app import BODY_TIMEOUT, ROUTES, RecordedRequest, build_app
from ._data import DataStore
from ._errors import EmulatorError
from ._faults import Fault, FaultInjector, FaultPlan
from ._feed import RawJSON
from ._panel import add_panel
from ._pubnub import PushServer
from ._seed import Seeded, SeedError, SeedSource, load_seed
from ._state import PlatformState

__all__ = [
    "ROUTES",
    "DataStore",
    "Emulator",
    "EmulatorError",
    "Fault",
    "FaultInjector",
    "FaultPlan",
    "PlatformState",
    "PushServer",
    "RecordedRequest",
    "SeedError",
    "SeedSource",
    "Seeded",
]

DEFAULT_TOKEN = "sk_emulator_local"
DEFAULT_ENVIRONMENT = "us_env_emulator"


class Emulator:
    """A running emulator: ``async with Emulator() as emu`` (or ``await emu.start()``).

    Args:
        token: the bearer token requests must carry; others get 401.
        environment_id: the environment its jobs and events belong to.
        host, port: where to listen; port 0 picks a free port (see :attr:`url`).
        seed: data to start with: a dict or the path of a JSON file in the seed format
            (see :meth:`seed`); the ids it created are in :attr:`seeded`.
        fault_seed: seeds fault injection, so faults are reproducible.
        parts_shape: how ``job:parts-completed`` reports parts: ``"counts"`` or ``"list"``
            (the platform has been seen sending both).
        record: keep a :class:`RecordedRequest` for every request in :attr:`requests`
            (bodies included: pass ``False`` when inserting hundreds of thousands of records).
        body_timeout: seconds a request's body may take to arrive (then: 408).
        push_port: the port of the push channel (0 picks a free one; see :attr:`push_url`).
        push_hold: seconds the push channel holds a long-poll before an empty answer.
        push_ttl: minutes a push token lives (fractions allowed, to watch tokens expire).

    Attributes:
        state: the jobs, events and secrets (:class:`PlatformState`).
        data: spaces, workbooks, sheets, records, files and documents (:class:`DataStore`);
            the default space ``us_sp_emulator`` is there from the start.
        seeded: the ids every seed so far created, by name (:class:`Seeded`).
        push: the push channel (:class:`PushServer`): its tokens, its counts.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        environment_id: str = DEFAULT_ENVIRONMENT,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: SeedSource | None = None,
        fault_seed: int = 0,
        parts_shape: Literal["counts", "list"] = "counts",
        record: bool = True,
        body_timeout: float = BODY_TIMEOUT,
        push_port: int = 0,
        push_hold: float = 20.0,
        push_ttl: float = 15.0,
    ) -> None:
        check_seconds("body_timeout", body_timeout, positive=True)
        check_seconds("push_hold", push_hold)
        check_seconds("push_ttl", push_ttl, unit="minutes")
        self.token = token
        self.body_timeout = body_timeout
        self.environment_id = environment_id
        self.host = host
        self.port = port
        self.state = PlatformState(environment_id=environment_id, parts_shape=parts_shape)
        self.data = DataStore(self.state)
        self.seeded = Seeded()
        self.faults = FaultInjector(fault_seed)
        self.requests: list[RecordedRequest] = []
        self._record = record
        self._runner: web.AppRunner | None = None
        self.push = PushServer(hold=push_hold, ttl=push_ttl)
        self.push_port = push_port
        self._push_runner: web.AppRunner | None = None
        self.state.on_event(self._publish)
        self._waiters: list[tuple[str, frozenset[str], asyncio.Future[Job]]] = []
        self.state.on_event(self._wake_waiters)
        if seed is not None:
            self.seed(seed)

    def __repr__(self) -> str:
        return f"Emulator(url={self.url if self._runner else None!r}, token='[redacted]')"

    # ----------------------------------------------------------- running

    async def start(self) -> None:
        """Start serving on :attr:`host` and :attr:`port` (0 picks a free port)."""
        app = build_app(
            self.state,
            token=self.token,
            faults=self.faults,
            record=self.requests.append if self._record else None,
            body_timeout=self.body_timeout,
            data=self.data,
            push=self.push,
        )
        add_panel(app, self)
        # Compressed bodies are inflated by the app, a part at a time within its size limits.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, auto_decompress=False
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])
        self._push_runner = web.AppRunner(
            self.push.app(), access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        await self._push_runner.setup()
        await web.TCPSite(self._push_runner, self.host, self.push_port).start()
        self.push_port = int(self._push_runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving; pending :meth:`wait_for` calls are cancelled."""
        if self._push_runner is not None:
            await self._push_runner.cleanup()
            self._push_runner = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for _, _, future in self._waiters:
            future.cancel()
        self._waiters.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The base URL to give a client (``/v1`` is appended by the client)."""
        if self._runner is None:
            raise RuntimeError("the emulator is not running: use `async with Emulator()`")
        return f"http://{self.host}:{self.port}"

    @property
    def panel_url(self) -> str:
        """The jobs panel's page, at the emulator's root URL (unauthenticated: for local
        development)."""
        return f"{self.url}/"

    @property
    def push_url(self) -> str:
        """The push channel's origin (``FLATFILE_PUSH_ORIGIN`` for a push source)."""
        if self._push_runner is None:
            raise RuntimeError("the emulator is not running: use `async with Emulator()`")
        return f"http://{self.host}:{self.push_port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point flatjobs (or Flatfile's JS SDK) at this emulator."""
        return {
            "FLATFILE_API_URL": self.url,
            "FLATFILE_BEARER_TOKEN": self.token,
            "FLATFILE_ENVIRONMENT_ID": self.environment_id,
            "FLATFILE_PUSH_ORIGIN": self.push_url,
        }

    def _publish(self, event: dict[str, Any]) -> None:
        """Push an event on its environment's and its space's channels, as Flatfile does."""
        context = event.get("context") or {}
        channels = [
            f"{kind}.{context[key]}"
            for kind, key in (("environment", "environmentId"), ("space", "spaceId"))
            if isinstance(context.get(key), str) and context[key]
        ]
        if channels:
            self.push.publish(channels, event)

    # ----------------------------------------------------------- the end user

    def trigger(
        self,
        job: str,
        *,
        source: str | None = None,
        input: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        mode: str = "foreground",
    ) -> Job:
        """Play a user clicking an action: create ``"<domain>:<operation>"`` as an immediate
        job, so ``job:created`` and ``job:ready`` follow.

        Without ``source``, a workbook, sheet, file or document job is about the oldest one
        the emulator holds (a seeded one, say), else about a made-up id. A source the
        emulator holds gives the events its context: ``spaceId``, ``workbookId``,
        ``sheetSlug``..."""
        if source is None:
            source = self.data.first(job.partition(":")[0])
        return self.state.user_action(job, source=source, input=input, context=context, mode=mode)

    def trigger_action(
        self,
        target: str,
        operation: str,
        *,
        input: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Job:
        """Play a user clicking the action ``operation`` configured on ``target`` (a
        workbook, sheet, file, document or space: its id, a sheet's slug or a workbook's
        name): the job ``<domain>:<operation>`` is created, immediate, in the action's
        ``mode`` (``foreground`` when it has none), its source the target, its events'
        context naming the space, workbook, sheet and ``actionName``.

        Raises:
            LookupError: no such target, or it has no action with that operation.
        """
        resource = self._resolve(target)
        domain, actions = self.data.actions_of(resource)
        wanted = operation.removeprefix(f"{domain}:")
        action = next((a for a in actions if a.get("operation") == wanted), None)
        if action is None:
            offered = ", ".join(repr(a.get("operation")) for a in actions) or "none"
            raise LookupError(
                f"{domain} {resource} has no action with operation {wanted!r} (it has {offered})"
            )
        return self.state.user_action(
            f"{domain}:{wanted}",
            source=resource,
            input=input,
            context=context,
            mode=str(action.get("mode") or "foreground"),
        )

    def ack_outcome(self, job_id: str) -> Job:
        """Play the user clicking the outcome dialog's button."""
        return self.state.ack_outcome(job_id)

    def cancel(self, job_id: str, info: str | None = None) -> Job:
        """Cancel a job as a user would from the UI."""
        return self.state.cancel(job_id, {"info": info} if info else {})

    def retry(self, job_id: str) -> Job:
        """Play the user clicking Retry on a failed or canceled job."""
        return self.state.retry(job_id)

    # ----------------------------------------------------------- data

    def seed(self, source: SeedSource, *, events: bool = False) -> Seeded:
        """Create the spaces, workbooks, sheets, records, documents and files ``source``
        describes (a dict, or the path of a JSON file), silently unless ``events``; the ids
        created, also merged into :attr:`seeded`.

        A seed is ``{"spaces": [...], "workbooks": [...], "documents": [...], "files":
        [...]}`` (the top-level ones go in the default space). Each object takes the fields
        of the API's create call, plus an optional fixed ``id``; a space holds
        ``workbooks``, ``documents`` and ``files``; a workbook ``sheets``; a sheet
        ``fields`` (``type`` defaults to ``string``; ``"required": true`` and ``"options":
        [...]`` are shorthands) and ``records``: ``[{field: value}]``, or the path of a CSV
        file (header row: field keys), relative to the seed file. A file has a ``name`` and
        a ``path`` or a ``content``::

            emu.seed({"workbooks": [{"name": "Contacts", "sheets": [{
                "name": "Contacts", "slug": "contacts",
                "fields": [{"key": "email", "required": True}],
                "records": [{"email": "ann@example.com"}],
            }]}]})
            emu.sheet("contacts").id

        Raises:
            SeedError: the seed cannot be read or holds something the API would refuse.
        """
        if isinstance(source, int):
            raise TypeError(
                "seed is the data an emulator starts with (a dict or a JSON file); the seed "
                f"of fault injection is fault_seed={source}"
            )
        created = load_seed(self.data, source, events=events)
        self.seeded = self.seeded.merged(created)
        return created

    def _resolve(self, name: str, *, kind: str | None = None, workbook: str | None = None) -> str:
        """The id of a resource named by its id, a sheet's slug, or a workbook's or space's
        name (of ``kind`` only, when given)."""
        data = self.data
        tables: dict[str, Mapping[str, object]] = {
            "sheet": data.sheets,
            "workbook": data.workbooks,
            "space": data.spaces,
        }
        if name in tables[kind] if kind is not None else bool(data.locate(name)):
            return name
        found: list[str] = []
        if kind in (None, "sheet"):
            within = self._resolve(workbook, kind="workbook") if workbook is not None else None
            found += [
                s.id
                for s in data.sheets.values()
                if s.slug == name and within in (None, s.workbook.id)
            ]
        if kind in (None, "workbook"):
            found += [w.id for w in data.workbooks.values() if w.name == name]
        if kind in (None, "space"):
            found += [s.id for s in data.spaces.values() if s.name == name]
        if len(found) == 1:
            return found[0]
        if not found:
            raise LookupError(f"no {kind or 'workbook, sheet or space'} {name!r}")
        raise LookupError(f"{name!r} names {len(found)} of them ({', '.join(found)}): use an id")

    def space(self, name_or_id: str) -> Space:
        """The space with that id or name, as ``GET /spaces/{id}`` answers it."""
        return from_wire(self.data.get_space(self._resolve(name_or_id, kind="space")), Space)

    def workbook(self, name_or_id: str) -> Workbook:
        """The workbook with that id or name, as ``GET /workbooks/{id}`` answers it."""
        workbook_id = self._resolve(name_or_id, kind="workbook")
        return from_wire(self.data.get_workbook(workbook_id), Workbook)

    def sheet(self, slug_or_id: str, *, workbook: str | None = None) -> Sheet:
        """The sheet with that id or slug (in ``workbook``, a name or id, when several
        workbooks have the slug), as ``GET /sheets/{id}`` answers it.

        Raises:
            LookupError: no such sheet, or the slug is ambiguous.
        """
        sheet_id = self._resolve(slug_or_id, kind="sheet", workbook=workbook)
        return from_wire(self.data.get_sheet(sheet_id), Sheet)

    def records(self, sheet: str, *, workbook: str | None = None) -> list[dict[str, Any]]:
        """Every record of a sheet (id or slug) as wire JSON, in order, with every cell's
        messages and each record's ``versionId`` and ``commitId``; a copy, yours to change."""
        sheet_id = self._resolve(sheet, kind="sheet", workbook=workbook)
        return copy.deepcopy(self.data.records_of(sheet_id))

    def counts(self, sheet: str, *, workbook: str | None = None) -> RecordCounts:
        """The sheet's record counts (total, valid, error, errors by field)."""
        sheet_id = self._resolve(sheet, kind="sheet", workbook=workbook)
        return from_wire(self.data.counts(sheet_id, {})["counts"], RecordCounts)

    def add_records(
        self, sheet: str, records: Iterable[Mapping[str, Any]], *, workbook: str | None = None
    ) -> dict[str, Any] | None:
        """Play a user (or an import) adding records to a sheet (id or slug): each record
        is ``{field: value}``. The write starts the record hooks, as a user's does: returns
        the ``commit:created`` event (its ``dataUrl`` serves the new records), or None when
        ``records`` is empty.

        Raises:
            LookupError: no such sheet.
            EmulatorError: the records are what the API would refuse (a 400).
        """
        sheet_id = self._resolve(sheet, kind="sheet", workbook=workbook)
        body = [{key: {"value": value} for key, value in r.items()} for r in records]
        return self.data.commit_event(self.data.insert_records(sheet_id, body))

    def edit_records(
        self,
        sheet: str,
        edits: Mapping[str, Mapping[str, Any]],
        *,
        workbook: str | None = None,
    ) -> dict[str, Any] | None:
        """Play a user editing cells in the sheet's table: ``edits`` maps a record id to
        ``{field: value}`` (``None`` empties a cell). One commit, which starts the record
        hooks, as the user's edits in Flatfile do (and in the jobs panel): returns its
        ``commit:created`` event, or None when nothing changed.

        Raises:
            LookupError: no such sheet.
            EmulatorError: a record not in the sheet, or a value the API would refuse.
        """
        sheet_id = self._resolve(sheet, kind="sheet", workbook=workbook)
        body = [
            {"id": record_id, "values": {key: {"value": v} for key, v in values.items()}}
            for record_id, values in edits.items()
        ]
        head = self.data.sheets[sheet_id].head
        answer = self.data.update_records(sheet_id, body)
        if answer["commitId"] == head[0]:
            return None  # nothing changed: no commit
        return self.data.commit_event(answer)

    def commits(
        self,
        sheet: str | None = None,
        *,
        completed: bool | None = None,
        workbook: str | None = None,
    ) -> list[dict[str, Any]]:
        """The commits of a sheet (id or slug), or of every sheet, oldest first, as ``GET
        /sheets/{id}/commits`` answers them; ``completed=False`` keeps those still open
        (a workbook with ``settings.trackChanges`` keeps each commit that started the hooks
        open until a listener completes it): ``assert emu.commits(completed=False) == []``
        checks that no hook left one open."""
        if sheet is not None:
            sheet_ids = [self._resolve(sheet, kind="sheet", workbook=workbook)]
        elif workbook is not None:
            sheet_ids = [
                s.id for s in self.data.workbook(self._resolve(workbook, kind="workbook")).sheets
            ]
        else:
            sheet_ids = list(self.data.sheets)
        params = {} if completed is None else {"completed": [str(completed).lower()]}
        return self.data.list_commits(sheet_ids, params)

    def set_entitlements(self, resource: str, entitlements: Iterable[Mapping[str, Any]]) -> None:
        """The entitlements ``GET /v1/entitlements?resourceId=`` answers for a space (id or
        name) or another resource id: each ``{key, metadata?}``. Flatfile's extractors read
        ``headerSelection``, ``sourceEditor`` and ``customRecordsPageSize`` (``metadata:
        {pageSize}``). Every resource has none until given some.

        Raises:
            LookupError: no such resource.
            EmulatorError: an entitlement without a ``key``, or not an object.
        """
        resource_id = (
            resource if self.data.locate(resource) else self._resolve(resource, kind="space")
        )
        self.data.set_entitlements(resource_id, entitlements)

    def file(self, file_id: str) -> File:
        """The file, as ``GET /files/{id}`` answers it."""
        return from_wire(self.data.get_file(file_id), File)

    def file_content(self, file_id: str) -> bytes:
        """The bytes of a file (uploaded, or seeded)."""
        return self.data.file_content(file_id)[0]

    def documents(self, space: str | None = None) -> list[Document]:
        """The documents of a space (id or name; the default space without one)."""
        space_id = self._resolve(space, kind="space") if space else self.state.space_id
        return [from_wire(d, Document) for d in self.data.list_documents(space_id)]

    def add_secret(
        self, name: str, value: str, *, space_id: str | None = None, actor_id: str | None = None
    ) -> None:
        """Store a secret readable through ``GET /v1/secrets``."""
        self.state.add_secret(name, value, space_id=space_id, actor_id=actor_id)

    # ----------------------------------------------------------- the feed

    def on_event(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback(raw_event)`` for every event the emulator emits, as it happens."""
        self.state.on_event(callback)

    def off_event(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Stop calling ``callback``; one never added is ignored."""
        self.state.off_event(callback)

    def emit(
        self,
        topic: str,
        *,
        domain: str,
        context: Mapping[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Emit an event as the platform would (``records:updated``, a custom topic...); the
        context gets the environment and account unless given. Returns the raw event."""
        base = {"accountId": self.state.account_id, "environmentId": self.environment_id}
        return self.state.emit(
            topic, domain=domain, context={**base, **(context or {})}, payload=payload or {}
        )

    def store_event(self, raw: Any) -> None:
        """Put ``raw`` in the events feed as a platform might hold it, whatever it is: late
        (its ``createdAt`` in the past), from a skewed clock, malformed. For testing
        listeners against hostile feeds; the ``on_event`` callbacks are not told."""
        self.state.store_event(raw)

    def store_event_json(self, text: str, *, created_at: dt.datetime | None = None) -> None:
        """Like :meth:`store_event`, for an event given as JSON text, served verbatim: one
        nested too deeply for Python to build, say. ``created_at`` places it in the feed
        (first, without one)."""
        self.state.store_event(RawJSON(text, created_at))

    # ----------------------------------------------------------- inspection

    def job(self, job_id: str) -> Job:
        """The job as the emulator has it now."""
        return self.state.get_job(job_id)

    def jobs(self, status: str | None = None) -> list[Job]:
        """Every job, or those with ``status``."""
        return [j for j in self.state.jobs.values() if status is None or j.status == status]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event emitted so far, oldest first (raw wire JSON)."""
        return self.state.events

    def calls(self, job_id: str | None = None) -> list[tuple[str, str, Any]]:
        """``(method, path, json)`` of every request received, optionally for one job."""
        return [
            (r.method, r.path, r.json)
            for r in self.requests
            if job_id is None or f"/jobs/{job_id}" in r.path
        ]

    async def wait_for(
        self, job_id: str, statuses: Iterable[str] = TERMINAL_STATUSES, *, timeout: float = 10.0
    ) -> Job:
        """Wait until the job reaches one of ``statuses`` (default: any terminal status)."""
        check_seconds("timeout", timeout)
        wanted = frozenset(str(s) for s in statuses)
        job = self.state.jobs.get(job_id)
        if job is not None and job.status in wanted:
            return job
        future: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        entry = (job_id, wanted, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            status = self.state.jobs[job_id].status if job_id in self.state.jobs else "deleted"
            raise TimeoutError(
                f"job {job_id} did not reach {sorted(wanted)} within {timeout:g}s (it is {status})"
            ) from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _wake_waiters(self, event: dict[str, Any]) -> None:
        job_id = event.get("context", {}).get("jobId")
        if job_id is None or not self._waiters:
            return
        job = self.state.jobs.get(job_id)
        for waited_id, wanted, future in self._waiters:
            if (
                waited_id == job_id
                and job is not None
                and job.status in wanted
                and not future.done()
            ):
                future.set_result(job)


async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str = DEFAULT_TOKEN,
    environment_id: str = DEFAULT_ENVIRONMENT,
    seed: SeedSource | None = None,
    push_port: int = 0,
) -> None:
    """Run an emulator until SIGINT or SIGTERM (or cancelled): ``flatjobs emulator``, with
    ``seed``'s data."""
    emulator = Emulator(
        host=host,
        port=port,
        push_port=push_port,
        token=token,
        environment_id=environment_id,
        record=False,
        seed=seed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with emulator as emu:
            print(f"flatjobs emulator listening on {emu.url}", flush=True)
            print(f"  jobs panel: {emu.panel_url} (unauthenticated)", flush=True)
            for key, value in emu.env().items():
                shown = (
                    value if key != "FLATFILE_BEARER_TOKEN" or token == DEFAULT_TOKEN else "<yours>"
                )
                print(f"  export {key}={shown}", flush=True)
            for kind in ("spaces", "workbooks", "sheets", "documents", "files"):
                for name, ident in getattr(emu.seeded, kind).items():
                    print(f"  seeded {kind[:-1]} {name}: {ident}", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
    print("flatjobs emulator: stopped", flush=True)
