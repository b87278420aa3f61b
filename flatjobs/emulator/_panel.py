"""The jobs panel: the page a person in Flatfile would look at, served by the emulator.

``GET /`` is the page (``panel/index.html``; its script and style are under
``/_panel/static/``). The page reads and acts through ``/_panel/api/``, a prefix of its
own beside Flatfile's ``/v1``:

* ``GET tree``: spaces with their workbooks, sheets, files and documents, and their actions;
* ``GET sheets/{id}/records?page=&size=&filter=``: a page of a sheet's records with their
  cell messages (``filter``: all, valid or error);
* ``GET jobs``: the jobs, newest first (the newest 500);
* ``GET stream``: server-sent events: ``snapshot`` (the jobs), then ``job`` (a job as it
  changes) and ``data`` (data changed, naming the sheets it touched);
* ``GET files/{id}/download``: a file's bytes;
* ``POST actions`` ``{target, operation, input?}``: the user clicks an action;
* ``POST sheets/{id}/records/{recordId}`` ``{values: {field: text}}``: the user edits cells
  (each text read as its field's type; an empty one empties the cell), one commit that
  starts the record hooks, as the user's edits on the platform do;
* ``POST jobs/{id}/cancel``, ``jobs/{id}/retry``, ``jobs/{id}/outcome-ack``: the user
  cancels, retries, or acknowledges the outcome.

The panel is for local development and is unauthenticated (the emulator listens on
127.0.0.1 by default). Still, it answers only requests addressed to ``localhost`` or an IP
address (a web page cannot reach it by a rebound DNS name), and its POSTs take JSON from
the page's own origin only, so another site open in the browser cannot click for you. Its
routes are named ``panel.*``: fault injection and the request recording never apply to
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import ipaddress
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from flatjobs.models import FilesNext, Job, to_wire

from ._app import PANEL_ROUTES
from ._data import DataStore
from ._errors import EmulatorError
from ._http import download
from ._state import PlatformState

__all__ = ["PREFIX", "Platform", "add_panel"]

PREFIX = "/_panel"
"""Where the panel's own routes live: never under Flatfile's ``/v1``."""
HEARTBEAT = 15.0
"""Seconds between keep-alive comments on an idle stream, which also find a browser gone."""
RECORDS_PAGE = 50
MAX_RECORDS_PAGE = 500
SNAPSHOT_JOBS = 500
"""The newest jobs a stream starts with (an emulator a test suite used may hold more)."""
_STATIC = {
    "index.html": "text/html",
    "panel.js": "text/javascript",
    "panel.css": "text/css",
}
_PAGE_HEADERS = {
    # Defence in depth for the page's own escaping (it writes data as text only): no inline
    # script or style, no plugin, nothing loaded from elsewhere, no framing.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class Platform(Protocol):
    """What the panel plays the user on: an :class:`~flatjobs.emulator.Emulator`."""

    @property
    def state(self) -> PlatformState: ...

    @property
    def data(self) -> DataStore: ...

    def trigger_action(
        self, target: str, operation: str, *, input: Mapping[str, Any] | None = None
    ) -> Job: ...

    def edit_records(
        self, sheet: str, edits: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any] | None: ...

    def cancel(self, job_id: str, info: str | None = None) -> Job: ...

    def retry(self, job_id: str) -> Job: ...

    def ack_outcome(self, job_id: str) -> Job: ...


def _sse(event: str, data: Any) -> str:
    """One server-sent event. JSON without indentation has no line break, so no value can
    end the event early or forge another."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _json(value: Any, status: int = 200) -> web.Response:
    response = web.json_response(value, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(status: int, message: str) -> web.Response:
    return _json({"errors": [{"message": message}]}, status)


def _local_host(host: str | None) -> bool:
    """``localhost`` (or a name under it) or an IP address."""
    name = (host or "").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class _Stream:
    """One browser's stream: what changed since it was last written (the latest state of
    each job wins, so a slow browser costs memory by jobs, not by events)."""

    __slots__ = ("jobs", "sheets", "tree", "wake")

    def __init__(self) -> None:
        self.jobs: dict[str, None] = {}
        self.sheets: set[str] = set()
        self.tree = False
        self.wake = asyncio.Event()


class _Panel:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.streams: set[_Stream] = set()
        self.closing = False

    @property
    def state(self) -> PlatformState:
        return self.platform.state

    @property
    def data(self) -> DataStore:
        return self.platform.data

    # ----------------------------------------------------------- the event feed

    def on_event(self, event: dict[str, Any]) -> None:
        """Note what changed for every open stream; never blocks, never writes."""
        if not self.streams:
            return
        context = event.get("context")
        context = context if isinstance(context, Mapping) else {}
        job_id = context.get("jobId") if str(event.get("topic")).startswith("job:") else None
        sheet_id = context.get("sheetId")
        for stream in self.streams:
            if isinstance(job_id, str):
                stream.jobs[job_id] = None
            else:
                stream.tree = True
                if isinstance(sheet_id, str):
                    stream.sheets.add(sheet_id)
            stream.wake.set()

    async def on_startup(self, app: web.Application) -> None:
        self.closing = False
        self.state.on_event(self.on_event)

    async def on_shutdown(self, app: web.Application) -> None:
        """Streams end now: the server's shutdown then has no handler left to wait for."""
        self.closing = True
        self.state.off_event(self.on_event)
        for stream in self.streams:
            stream.wake.set()

    # ----------------------------------------------------------- what the page shows

    def job(self, job: Job) -> dict[str, Any]:
        """A job as the API has it, with the label of the action that made it."""
        wire: dict[str, Any] = to_wire(job)
        try:
            _, actions = self.data.actions_of(job.source or "")
        except LookupError:
            actions = []
        label = next(
            (
                a["label"]
                for a in actions
                if a.get("operation") == job.operation and isinstance(a.get("label"), str)
            ),
            None,
        )
        wire["label"] = label or job.job_name
        nxt = job.outcome.next if job.outcome else None
        if isinstance(nxt, FilesNext):  # the names its links show
            files = self.data.files
            wire["fileNames"] = {
                f.file_id: str(files[f.file_id].fields.get("name", f.file_id))
                for f in nxt.files
                if f.file_id in files
            }
        return wire

    def jobs(self) -> list[dict[str, Any]]:
        newest = sorted(self.state.jobs.values(), key=lambda j: j.id, reverse=True)
        return [self.job(j) for j in newest[:SNAPSHOT_JOBS]]

    def tree(self) -> dict[str, Any]:
        data = self.data
        workbooks = data.list_workbooks({})
        files = data.list_files({"mode": ["import"]}) + data.list_files({"mode": ["export"]})
        spaces = []
        for space in data.list_spaces({}):
            ident = space["id"]
            spaces.append(
                {
                    **space,
                    "workbooks": [w for w in workbooks if w["spaceId"] == ident],
                    "files": [f for f in files if f["spaceId"] == ident],
                    "documents": data.list_documents(ident),
                }
            )
        return {"environmentId": self.state.environment_id, "spaces": spaces}

    # ----------------------------------------------------------- handlers

    async def page(self, request: web.Request) -> web.StreamResponse:
        return self._static("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in _STATIC:
            return _error(404, f"no panel file {name!r:.60}")
        return self._static(name)

    @staticmethod
    def _static(name: str) -> web.Response:
        content = (importlib.resources.files(__package__) / "panel" / name).read_bytes()
        response = web.Response(body=content, content_type=_STATIC[name], charset="utf-8")
        response.headers.update(_PAGE_HEADERS)
        return response

    async def get_tree(self, request: web.Request) -> web.Response:
        return _json(self.tree())

    async def get_jobs(self, request: web.Request) -> web.Response:
        return _json(self.jobs())

    async def get_records(self, request: web.Request) -> web.Response:
        sheet_id = request.match_info["sheet_id"]
        query = request.query
        try:
            page = max(1, int(query.get("page", 1)))
            size = min(MAX_RECORDS_PAGE, max(1, int(query.get("size", RECORDS_PAGE))))
        except ValueError:
            return _error(400, "page and size are whole numbers")
        which = query.get("filter", "all")
        if which not in ("all", "valid", "error"):
            return _error(400, "filter is all, valid or error")
        params = {
            "pageSize": [str(size)],
            "pageNumber": [str(page)],
            "includeMessages": ["true"],
            "includeCounts": ["true"],
            **({"filter": [which]} if which != "all" else {}),
        }
        answer = self.data.get_records(sheet_id, params)
        sheet = self.data.get_sheet(sheet_id)
        selected = int(answer["counts"]["total"])
        return _json(
            {
                "sheet": sheet,
                "records": answer["records"],
                "counts": sheet["recordCounts"],
                "selected": selected,
                "page": page,
                "pageSize": size,
                "pageCount": max(1, math.ceil(selected / size)),
            }
        )

    async def file_download(self, request: web.Request) -> web.Response:
        return download(*self.data.file_content(request.match_info["file_id"]))

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: every job at once, then what changes, as it changes."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        stream = _Stream()
        self.streams.add(stream)
        try:
            snapshot = {"environmentId": self.state.environment_id, "jobs": self.jobs()}
            await response.write(f"retry: 1000\n\n{_sse('snapshot', snapshot)}".encode())
            while await self._changed(stream):
                await response.write((self._drain(stream) or ": keep-alive\n\n").encode())
        except ConnectionError:
            pass  # the browser went away: its stream ends here
        finally:
            self.streams.discard(stream)
        return response

    async def _changed(self, stream: _Stream) -> bool:
        """Wait for a change, or :data:`HEARTBEAT` seconds; False once the server stops."""
        if not self.closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT):
                    await stream.wake.wait()
            stream.wake.clear()
        return not self.closing

    def _drain(self, stream: _Stream) -> str:
        parts = []
        for job_id in stream.jobs:
            job = self.state.jobs.get(job_id)
            parts.append(_sse("job", self.job(job) if job else {"id": job_id, "deleted": True}))
        if stream.tree:
            parts.append(_sse("data", {"sheets": sorted(stream.sheets)}))
        stream.jobs.clear()
        stream.sheets.clear()
        stream.tree = False
        return "".join(parts)

    async def trigger(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return _error(400, f"the body is not JSON: {exc}")
        if not isinstance(body, Mapping):
            return _error(400, "the body is {target, operation, input?}")
        target, operation, given = body.get("target"), body.get("operation"), body.get("input")
        if not isinstance(target, str) or not isinstance(operation, str):
            return _error(400, "target and operation are strings")
        if given is not None and not isinstance(given, Mapping):
            return _error(400, "input is an object")
        try:
            job = self.platform.trigger_action(target, operation, input=given)
        except LookupError as exc:
            return _error(404, str(exc))
        return _json(self.job(job))

    async def edit(self, request: web.Request) -> web.Response:
        """The user edits cells of a record: ``{values: {field: text or null}}``."""
        sheet_id, record_id = request.match_info["sheet_id"], request.match_info["record_id"]
        try:
            body = await request.json()
        except ValueError as exc:
            return _error(400, f"the body is not JSON: {exc}")
        given = body.get("values") if isinstance(body, Mapping) else None
        if not isinstance(given, Mapping) or not given:
            return _error(400, "the body is {values: {field: text}}, at least one field")
        sheet = self.data.sheet(sheet_id)
        row = sheet.by_id.get(record_id)
        if row is None:
            return _error(404, f"record {record_id!r:.60} is not in sheet {sheet.slug}")
        fields = {f["key"]: f for f in sheet.config["fields"]}
        values = {}
        for key, text in given.items():
            field = fields.get(key)
            if field is None:
                return _error(400, f"{key!r:.60} is not a field of sheet {sheet.slug}")
            if _read_only(sheet.config, field, row.config):
                return _error(400, f"{field.get('label') or key} is read-only")
            if text is not None and not isinstance(text, str):
                return _error(400, f"the value of {key!r:.60} is text or null")
            values[key] = _typed(field, text)
        event = self.platform.edit_records(sheet_id, {record_id: values})
        page = self.data.get_records(sheet_id, {"ids": [record_id], "includeMessages": ["true"]})
        return _json({"record": page["records"][0], "event": event["id"] if event else None})

    async def cancel(self, request: web.Request) -> web.Response:
        return _json(self.job(self.platform.cancel(request.match_info["job_id"])))

    async def retry(self, request: web.Request) -> web.Response:
        return _json(self.job(self.platform.retry(request.match_info["job_id"])))

    async def outcome_ack(self, request: web.Request) -> web.Response:
        return _json(self.job(self.platform.ack_outcome(request.match_info["job_id"])))


def _read_only(
    sheet: Mapping[str, Any], field: Mapping[str, Any], record: Mapping[str, Any] | None
) -> bool:
    """Whether the user may not edit a cell: its sheet, field, record or cell (a hook's
    ``setReadOnly``) is read-only."""
    config = record or {}
    cells = config.get("fields")
    cell = cells.get(field["key"]) if isinstance(cells, Mapping) else None
    return bool(
        sheet.get("readonly")
        or field.get("readonly")
        or config.get("readonly")
        or (isinstance(cell, Mapping) and cell.get("readonly"))
    )


def _typed(field: Mapping[str, Any], text: str | None) -> Any:
    """What the user typed, as the field's type holds it: a number, a boolean, a list
    (items separated by commas), else the text; empty (or only spaces) is no value."""
    if text is None or not text.strip():
        return None
    kind = field.get("type")
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r:.40} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{text!r:.40} is not a finite number")
        return int(number) if number.is_integer() and "." not in text else number
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError(f"{text!r:.40} is not true or false")
        return lowered == "true"
    if kind in ("string-list", "enum-list"):
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(handler: Handler) -> Handler:
    """The checks every panel route makes, and errors as ``{"errors": [...]}``."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if not _local_host(request.url.host):
            return _error(403, "the jobs panel answers requests to localhost or an IP address")
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"{request.scheme}://{request.host}":
                return _error(403, "the jobs panel takes clicks from its own page only")
            if request.content_type != "application/json":
                return _error(415, "the jobs panel's POSTs take application/json")
        try:
            return await handler(request)
        except EmulatorError as exc:
            return _error(exc.status, exc.message)
        except ValueError as exc:
            return _error(400, str(exc))

    return guarded


PANEL = web.AppKey("flatjobs_panel", _Panel)
"""The panel an app serves (for inspection in tests: its open streams)."""


def add_panel(app: web.Application, platform: Platform) -> None:
    """Serve the jobs panel of ``platform`` on ``app``: the page at ``/``, its API under
    :data:`PREFIX` (routes named ``panel.*``)."""
    panel = _Panel(platform)
    api = f"{PREFIX}/api"
    routes = [
        ("GET", "/", "page", panel.page),
        ("GET", f"{PREFIX}/static/{{name}}", "static", panel.static),
        ("GET", f"{api}/tree", "tree", panel.get_tree),
        ("GET", f"{api}/jobs", "jobs", panel.get_jobs),
        ("GET", f"{api}/stream", "stream", panel.stream),
        ("GET", f"{api}/sheets/{{sheet_id}}/records", "records", panel.get_records),
        ("GET", f"{api}/files/{{file_id}}/download", "download", panel.file_download),
        ("POST", f"{api}/actions", "trigger", panel.trigger),
        ("POST", f"{api}/sheets/{{sheet_id}}/records/{{record_id}}", "edit", panel.edit),
        ("POST", f"{api}/jobs/{{job_id}}/cancel", "cancel", panel.cancel),
        ("POST", f"{api}/jobs/{{job_id}}/retry", "retry", panel.retry),
        ("POST", f"{api}/jobs/{{job_id}}/outcome-ack", "outcome_ack", panel.outcome_ack),
    ]
    app[PANEL] = panel
    for method, path, name, handler in routes:
        app.router.add_route(method, path, _guarded(handler), name=f"{PANEL_ROUTES}{name}")
    app.on_startup.append(panel.on_startup)
    app.on_shutdown.append(panel.on_shutdown)
