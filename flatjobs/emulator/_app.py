"""The emulator's aiohttp application: the routes under ``/v1``, auth, faults, records.

Jobs, events and secrets are served from :class:`PlatformState`; spaces, workbooks, sheets,
records, commits, files and documents from :class:`DataStore`. Each route has a name
(``jobs.ack``, ``records.list``...) that fault rules select on.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.message
import email.parser
import email.utils
import json
import math
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from aiohttp import web

from flatjobs.models import Job, to_wire

from ._checks import Params
from ._data import FILES_PAGE_SIZE, SPACES_PAGE_SIZE, DataStore, paused_gc
from ._faults import FaultInjector
from ._pubnub import PushServer
from ._state import EmulatorError, PlatformState, RawJSON

__all__ = ["PANEL_ROUTES", "ROUTES", "RecordedRequest", "build_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.frozen
class RecordedRequest:
    """One request the emulator received, for assertions in tests."""

    method: str
    path: str
    route: str
    query: Mapping[str, str]
    json: Any
    status: int | None
    """The status answered; ``None`` when the connection was dropped."""


def _data(value: Any, status: int = 200) -> web.Response:
    return web.json_response({"data": value}, status=status, dumps=_dumps)


def _fast(value: Any) -> web.Response:
    """``{"data": value}`` for the data store's answers, built fresh by the store and so
    free of cycles: the encoder's cycle check (a fifth of the time of a page of 10,000
    records) is skipped."""
    text = json.dumps({"data": value}, separators=(",", ":"), check_circular=False)
    return web.Response(text=text, content_type="application/json")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# Flatfile's documented default page sizes ("default 20" for jobs, "default 10" for events).
JOBS_PAGE_SIZE = 20
EVENTS_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000


def paging(query: Mapping[str, str], default_size: int) -> tuple[int, int]:
    """``(pageSize, pageNumber)`` from a query, checked."""
    try:
        size = int(query.get("pageSize", default_size))
        number = int(query.get("pageNumber", 1))
    except ValueError as exc:
        raise EmulatorError(400, f"pageSize and pageNumber must be integers: {exc}") from exc
    if not 1 <= size <= MAX_PAGE_SIZE or number < 1:
        raise EmulatorError(
            400,
            f"pageSize must be within 1..{MAX_PAGE_SIZE} and pageNumber >= 1, got {size} and "
            f"{number}",
        )
    return size, number


def _page(items: list[Any], query: Mapping[str, str], default_size: int) -> web.Response:
    """A list with ``pagination``, as ``GET /jobs`` answers."""
    size, number = paging(query, default_size)
    start = (number - 1) * size
    body = {
        "data": items[start : start + size],
        "pagination": {
            "currentPage": number,
            "pageCount": max(1, math.ceil(len(items) / size)),
            "totalCount": len(items),
        },
    }
    return web.json_response(body, dumps=_dumps)


def _raw_list(items: list[Any]) -> web.Response:
    """``{"data": [...]}`` whose items may be JSON text stored as it came (a hostile event
    nested too deeply for ``json.dumps``); no ``pagination``, as the events list answers."""
    parts = [i.text if isinstance(i, RawJSON) else _dumps(i) for i in items]
    return web.Response(text='{"data":[' + ",".join(parts) + "]}", content_type="application/json")


# The body the middleware parsed for the recording, handed to the handler it calls (in the
# same task), so that a large batch of records is parsed once.
_PARSED: contextvars.ContextVar[tuple[Any] | None] = contextvars.ContextVar(
    "flatjobs_emulator_body", default=None
)


def _parse(raw: bytes) -> Any:
    """A request body as JSON; NaN and Infinity (also as ``1e999``) are refused."""
    if not raw:
        return None
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise EmulatorError(400, f"request body is not valid JSON: {exc}") from exc


def _params(request: web.Request) -> Params:
    """The query, each name with all its values (``ids=a&ids=b``)."""
    query = request.query
    return {key: query.getall(key) for key in query}


def _bytes(content: bytes, content_type: str, name: str) -> web.Response:
    """A download: the bytes as they are, named for a browser's save dialog."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "download"
    quoted = urllib.parse.quote(name, safe="")
    return web.Response(
        body=content,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{fallback}"; '
            f"filename*=UTF-8''{quoted}",
        },
    )


def _form(content_type: str, raw: bytes) -> list[tuple[str, str | None, str | None, bytes]]:
    """Each part of a ``multipart/form-data`` body: (name, file name, content type, bytes).

    Parsed here from the body already read (the middleware reads every body once, with a
    deadline and a size limit), byte-exact: a file's content is never decoded."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise EmulatorError(400, "POST /files takes a multipart/form-data body with a boundary")
    parts = []
    for chunk in raw.split(b"--" + boundary.encode("latin-1"))[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        chunk = chunk.removeprefix(b"\r\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise EmulatorError(400, "a multipart part has no blank line after its headers")
        # Browsers and SDKs send names as raw UTF-8 in these headers.
        text = head.decode("utf-8", "replace")
        headers = email.parser.HeaderParser().parsestr(text + "\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if name is None:
            continue
        parts.append(
            (
                email.utils.collapse_rfc2231_value(name),
                headers.get_filename(),
                headers.get_content_type() if headers.get("content-type") else None,
                content.removesuffix(b"\r\n"),
            )
        )
    return parts


class _Api:
    def __init__(self, state: PlatformState, data: DataStore, push: PushServer | None) -> None:
        self.state = state
        self.data = data
        self.push = push

    async def _json(self, request: web.Request) -> Any:
        return self._parsed(await request.read())

    @staticmethod
    def _parsed(raw: bytes) -> Any:
        parsed = _PARSED.get()
        return parsed[0] if parsed is not None else _parse(raw)

    @staticmethod
    def _job(job: Job) -> web.Response:
        return _data(to_wire(job))

    async def list_jobs(self, request: web.Request) -> web.Response:
        jobs = [to_wire(j) for j in self.state.list_jobs(request.query)]
        return _page(jobs, request.query, JOBS_PAGE_SIZE)

    async def create_job(self, request: web.Request) -> web.Response:
        return self._job(self.state.create_job(await self._json(request)))

    async def get_job(self, request: web.Request) -> web.Response:
        return self._job(self.state.get_job(request.match_info["job_id"]))

    async def update_job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return self._job(self.state.update(job_id, await self._json(request)))

    async def delete_job(self, request: web.Request) -> web.Response:
        self.state.delete(request.match_info["job_id"])
        return _data({"success": True})

    async def ack(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return self._job(self.state.ack(job_id, await self._json(request)))

    async def complete(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return self._job(self.state.finish(job_id, await self._json(request), call="complete"))

    async def fail(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return self._job(self.state.finish(job_id, await self._json(request), call="fail"))

    async def cancel(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return self._job(self.state.cancel(job_id, await self._json(request)))

    async def retry(self, request: web.Request) -> web.Response:
        return self._job(self.state.retry(request.match_info["job_id"]))

    async def execute(self, request: web.Request) -> web.Response:
        self.state.execute(request.match_info["job_id"])
        return _data({"success": True})

    async def outcome_ack(self, request: web.Request) -> web.Response:
        return self._job(self.state.ack_outcome(request.match_info["job_id"]))

    async def split(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return self._job(self.state.split(job_id, await self._json(request)))

    async def list_events(self, request: web.Request) -> web.Response:
        size, number = paging(request.query, EVENTS_PAGE_SIZE)
        return _raw_list(self.state.list_events(request.query, size=size, number=number))

    async def create_event(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if not isinstance(body, Mapping):
            raise EmulatorError(400, "the body must be an event object")
        missing = [k for k in ("topic", "domain", "context", "payload") if k not in body]
        if missing:
            raise EmulatorError(400, f"missing required field(s): {', '.join(missing)}")
        if not isinstance(body["topic"], str) or not isinstance(body["context"], Mapping):
            raise EmulatorError(400, "topic must be a string and context an object")
        if not isinstance(body["payload"], Mapping):
            raise EmulatorError(400, "payload must be an object", key="payload")
        absent = [k for k in ("accountId", "environmentId") if not body["context"].get(k)]
        if absent:
            raise EmulatorError(400, f"context needs {' and '.join(absent)}", key="context")
        context = dict(body["context"])
        event = self.state.emit(
            body["topic"],
            domain=str(body["domain"]),
            context=context,
            payload=body["payload"],
            attributes=body.get("attributes"),
        )
        return _data(event)

    async def get_event(self, request: web.Request) -> web.Response:
        return _data(self.state.get_event(request.match_info["event_id"]))

    async def subscription(self, request: web.Request) -> web.Response:
        scope = request.query.get("scope", "")
        if not scope:
            raise EmulatorError(400, "scope is required: an environment or space id", key="scope")
        if self.push is None:
            raise EmulatorError(404, "this emulator serves no push channel")
        ttl = self.push.ttl
        return _data(
            {
                "accountId": self.state.account_id,
                "subscribeKey": self.push.subscribe_key,
                "ttl": int(ttl) if ttl == int(ttl) else ttl,
                "token": self.push.issue_token(),
            }
        )

    async def ack_event(self, request: web.Request) -> web.Response:
        self.state.ack_event(request.match_info["event_id"])
        return _data({"success": True})

    async def list_secrets(self, request: web.Request) -> web.Response:
        return _data(self.state.list_secrets(request.query))

    # ----------------------------------------------------------- spaces and documents

    async def list_spaces(self, request: web.Request) -> web.Response:
        return _page(self.data.list_spaces(_params(request)), request.query, SPACES_PAGE_SIZE)

    async def create_space(self, request: web.Request) -> web.Response:
        return _data(self.data.create_space(await self._json(request)))

    async def get_space(self, request: web.Request) -> web.Response:
        return _data(self.data.get_space(request.match_info["space_id"]))

    async def update_space(self, request: web.Request) -> web.Response:
        space_id = request.match_info["space_id"]
        return _data(self.data.update_space(space_id, await self._json(request)))

    async def delete_space(self, request: web.Request) -> web.Response:
        self.data.delete_space(request.match_info["space_id"])
        return _data({"success": True})

    async def list_documents(self, request: web.Request) -> web.Response:
        return _data(self.data.list_documents(request.match_info["space_id"]))

    async def create_document(self, request: web.Request) -> web.Response:
        space_id = request.match_info["space_id"]
        return _data(self.data.create_document(space_id, await self._json(request)))

    async def get_document(self, request: web.Request) -> web.Response:
        ids = request.match_info
        return _data(self.data.get_document(ids["space_id"], ids["document_id"]))

    async def update_document(self, request: web.Request) -> web.Response:
        ids = request.match_info
        body = await self._json(request)
        return _data(self.data.update_document(ids["space_id"], ids["document_id"], body))

    async def delete_document(self, request: web.Request) -> web.Response:
        ids = request.match_info
        self.data.delete_document(ids["space_id"], ids["document_id"])
        return _data({"success": True})

    # ----------------------------------------------------------- workbooks and sheets

    async def list_workbooks(self, request: web.Request) -> web.Response:
        return _data(self.data.list_workbooks(_params(request)))

    async def create_workbook(self, request: web.Request) -> web.Response:
        return _data(self.data.create_workbook(await self._json(request)))

    async def get_workbook(self, request: web.Request) -> web.Response:
        return _data(self.data.get_workbook(request.match_info["workbook_id"]))

    async def update_workbook(self, request: web.Request) -> web.Response:
        workbook_id = request.match_info["workbook_id"]
        return _data(self.data.update_workbook(workbook_id, await self._json(request)))

    async def delete_workbook(self, request: web.Request) -> web.Response:
        self.data.delete_workbook(request.match_info["workbook_id"])
        return _data({"success": True})

    async def workbook_commits(self, request: web.Request) -> web.Response:
        workbook = self.data.workbook(request.match_info["workbook_id"])
        sheets = [s.id for s in workbook.sheets]
        return _data(self.data.list_commits(sheets, _params(request)))

    async def list_sheets(self, request: web.Request) -> web.Response:
        return _data(self.data.list_sheets(_params(request)))

    async def get_sheet(self, request: web.Request) -> web.Response:
        return _data(self.data.get_sheet(request.match_info["sheet_id"]))

    async def update_sheet(self, request: web.Request) -> web.Response:
        sheet_id = request.match_info["sheet_id"]
        return _data(self.data.update_sheet(sheet_id, await self._json(request)))

    async def delete_sheet(self, request: web.Request) -> web.Response:
        self.data.delete_sheet(request.match_info["sheet_id"])
        return _data({"success": True})

    async def sheet_counts(self, request: web.Request) -> web.Response:
        return _data(self.data.counts(request.match_info["sheet_id"], _params(request)))

    async def sheet_download(self, request: web.Request) -> web.Response:
        with paused_gc():
            content, name = self.data.download(request.match_info["sheet_id"], _params(request))
        return _bytes(content, "text/csv; charset=utf-8", name)

    async def sheet_commits(self, request: web.Request) -> web.Response:
        sheet = self.data.sheet(request.match_info["sheet_id"])
        return _data(self.data.list_commits([sheet.id], _params(request)))

    async def get_commit(self, request: web.Request) -> web.Response:
        return _data(self.data.get_commit(request.match_info["commit_id"]))

    async def complete_commit(self, request: web.Request) -> web.Response:
        self.data.complete_commit(request.match_info["commit_id"])
        return _data({"success": True})

    # ----------------------------------------------------------- records

    async def list_records(self, request: web.Request) -> web.Response:
        sheet_id = request.match_info["sheet_id"]
        with paused_gc():
            return _fast(self.data.get_records(sheet_id, _params(request)))

    async def insert_records(self, request: web.Request) -> web.Response:
        sheet_id = request.match_info["sheet_id"]
        raw = await request.read()
        with paused_gc():
            return _fast(self.data.insert_records(sheet_id, self._parsed(raw)))

    async def update_records(self, request: web.Request) -> web.Response:
        sheet_id = request.match_info["sheet_id"]
        raw = await request.read()
        with paused_gc():
            return _data(self.data.update_records(sheet_id, self._parsed(raw)))

    async def delete_records(self, request: web.Request) -> web.Response:
        sheet_id = request.match_info["sheet_id"]
        return _data(self.data.delete_records(sheet_id, _params(request)))

    # ----------------------------------------------------------- files

    async def list_files(self, request: web.Request) -> web.Response:
        return _page(self.data.list_files(_params(request)), request.query, FILES_PAGE_SIZE)

    async def upload_file(self, request: web.Request) -> web.Response:
        fields: dict[str, str] = {}
        actions: list[Any] = []
        upload: tuple[str, bytes, str | None] | None = None
        for name, filename, content_type, content in _form(
            request.headers.get("Content-Type", ""), await request.read()
        ):
            if name == "file":
                upload = (filename or "upload", content, content_type)
            elif name == "actions":
                actions.append(_parse(content))  # one JSON part per action
            else:
                fields[name] = content.decode("utf-8", "replace")
        if upload is None:
            raise EmulatorError(400, "the form has no `file` part", key="file")
        return _data(self.data.upload_file(fields, *upload, actions))

    async def get_file(self, request: web.Request) -> web.Response:
        return _data(self.data.get_file(request.match_info["file_id"]))

    async def update_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        return _data(self.data.update_file(file_id, await self._json(request)))

    async def delete_file(self, request: web.Request) -> web.Response:
        self.data.delete_file(request.match_info["file_id"])
        return _data({"success": True})

    async def download_file(self, request: web.Request) -> web.Response:
        return _bytes(*self.data.file_content(request.match_info["file_id"]))


# (method, path, route name, handler attribute): the route names are what faults select on.
_TABLE = [
    ("GET", "/v1/jobs", "jobs.list", "list_jobs"),
    ("POST", "/v1/jobs", "jobs.create", "create_job"),
    ("GET", "/v1/jobs/{job_id}", "jobs.get", "get_job"),
    ("PATCH", "/v1/jobs/{job_id}", "jobs.update", "update_job"),
    ("DELETE", "/v1/jobs/{job_id}", "jobs.delete", "delete_job"),
    ("POST", "/v1/jobs/{job_id}/ack", "jobs.ack", "ack"),
    ("POST", "/v1/jobs/{job_id}/complete", "jobs.complete", "complete"),
    ("POST", "/v1/jobs/{job_id}/fail", "jobs.fail", "fail"),
    ("POST", "/v1/jobs/{job_id}/cancel", "jobs.cancel", "cancel"),
    ("POST", "/v1/jobs/{job_id}/retry", "jobs.retry", "retry"),
    ("POST", "/v1/jobs/{job_id}/execute", "jobs.execute", "execute"),
    ("POST", "/v1/jobs/{job_id}/outcome/ack", "jobs.outcome_ack", "outcome_ack"),
    ("POST", "/v1/jobs/{job_id}/split", "jobs.split", "split"),
    ("GET", "/v1/events", "events.list", "list_events"),
    ("POST", "/v1/events", "events.create", "create_event"),
    ("GET", "/v1/events/{event_id}", "events.get", "get_event"),
    ("GET", "/v1/subscription", "events.subscription", "subscription"),
    ("POST", "/v1/events/{event_id}/ack", "events.ack", "ack_event"),
    ("GET", "/v1/secrets", "secrets.list", "list_secrets"),
    ("GET", "/v1/spaces", "spaces.list", "list_spaces"),
    ("POST", "/v1/spaces", "spaces.create", "create_space"),
    ("GET", "/v1/spaces/{space_id}", "spaces.get", "get_space"),
    ("PATCH", "/v1/spaces/{space_id}", "spaces.update", "update_space"),
    ("DELETE", "/v1/spaces/{space_id}", "spaces.delete", "delete_space"),
    ("GET", "/v1/spaces/{space_id}/documents", "documents.list", "list_documents"),
    ("POST", "/v1/spaces/{space_id}/documents", "documents.create", "create_document"),
    ("GET", "/v1/spaces/{space_id}/documents/{document_id}", "documents.get", "get_document"),
    ("PATCH", "/v1/spaces/{space_id}/documents/{document_id}", "documents.update", "update_document"),
    ("DELETE", "/v1/spaces/{space_id}/documents/{document_id}", "documents.delete", "delete_document"),
    ("GET", "/v1/workbooks", "workbooks.list", "list_workbooks"),
    ("POST", "/v1/workbooks", "workbooks.create", "create_workbook"),
    ("GET", "/v1/workbooks/{workbook_id}", "workbooks.get", "get_workbook"),
    ("PATCH", "/v1/workbooks/{workbook_id}", "workbooks.update", "update_workbook"),
    ("DELETE", "/v1/workbooks/{workbook_id}", "workbooks.delete", "delete_workbook"),
    ("GET", "/v1/workbooks/{workbook_id}/commits", "workbooks.commits", "workbook_commits"),
    ("GET", "/v1/sheets", "sheets.list", "list_sheets"),
    ("GET", "/v1/sheets/{sheet_id}", "sheets.get", "get_sheet"),
    ("PATCH", "/v1/sheets/{sheet_id}", "sheets.update", "update_sheet"),
    ("DELETE", "/v1/sheets/{sheet_id}", "sheets.delete", "delete_sheet"),
    ("GET", "/v1/sheets/{sheet_id}/counts", "sheets.counts", "sheet_counts"),
    ("GET", "/v1/sheets/{sheet_id}/download", "sheets.download", "sheet_download"),
    ("GET", "/v1/sheets/{sheet_id}/commits", "sheets.commits", "sheet_commits"),
    ("GET", "/v1/sheets/{sheet_id}/records", "records.list", "list_records"),
    ("POST", "/v1/sheets/{sheet_id}/records", "records.insert", "insert_records"),
    ("PUT", "/v1/sheets/{sheet_id}/records", "records.update", "update_records"),
    ("DELETE", "/v1/sheets/{sheet_id}/records", "records.delete", "delete_records"),
    ("GET", "/v1/commits/{commit_id}", "commits.get", "get_commit"),
    ("POST", "/v1/commits/{commit_id}/complete", "commits.complete", "complete_commit"),
    ("GET", "/v1/files", "files.list", "list_files"),
    ("POST", "/v1/files", "files.upload", "upload_file"),
    ("GET", "/v1/files/{file_id}", "files.get", "get_file"),
    ("PATCH", "/v1/files/{file_id}", "files.update", "update_file"),
    ("DELETE", "/v1/files/{file_id}", "files.delete", "delete_file"),
    ("GET", "/v1/files/{file_id}/download", "files.download", "download_file"),
]  # fmt: skip
ROUTES = tuple(name for _, _, name, _ in _TABLE)
"""Every route name the emulator serves, for :class:`flatjobs.emulator.Fault` ``routes``."""
PANEL_ROUTES = "panel."
"""The prefix of the jobs panel's route names (``_panel.py``): the middleware serves them
as they are, without the bearer token, faults or the request recording."""


async def _read_body(request: web.Request, timeout: float, limit: int) -> web.Response | None:
    """Read the body now; an error answer when it is too large or never arrives."""
    if not request.can_read_body:
        return None
    try:
        await asyncio.wait_for(request.read(), timeout)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the request body is larger than {limit} bytes")
    except TimeoutError:
        return _error(408, f"the request body did not arrive within {timeout:g} seconds")
    return None


def _recorded(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return raw.decode("utf-8", "replace")


def _drop(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)


MAX_BODY = 1024**2
"""The largest request body the emulator takes (aiohttp's default); larger is a 413."""
MAX_DATA_BODY = 128 * 1024**2
"""The largest body of the routes that carry data (records, uploads, workbooks): a batch of
tens of thousands of records, or a file, is more than a megabyte."""
_DATA_ROUTES = frozenset(
    {"records.insert", "records.update", "files.upload", "workbooks.create", "workbooks.update"}
)
BODY_TIMEOUT = 10.0
"""Seconds a request's body may take to arrive; a body that never comes is a 408."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (NaN and Infinity are not numbers)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: valid JSON, but an answer could not write it back
        raise ValueError(f"{text[:40]} is too large a number")
    return value


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"errors": [{"message": message}]}, status=status)


def _authorized(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, the scheme's case as any client writes it."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and given.strip() == token


def build_app(
    state: PlatformState,
    *,
    token: str,
    faults: FaultInjector,
    record: Callable[[RecordedRequest], None] | None,
    body_timeout: float = BODY_TIMEOUT,
    data: DataStore | None = None,
    push: PushServer | None = None,
) -> web.Application:
    """The aiohttp application serving ``state`` and ``data`` (a new store, if not given),
    and the credentials of ``push``'s channel."""
    api = _Api(state, data if data is not None else DataStore(state), push)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name or "unknown"
        if route.startswith(PANEL_ROUTES):
            return await handler(request)
        body: Any = None
        status: int | None = None
        try:
            # The body is read here, once, with a deadline and a size limit, whatever the
            # mode: a handler then reads it from aiohttp's cache.
            readable = request.can_read_body
            limit = MAX_DATA_BODY if route in _DATA_ROUTES else MAX_BODY
            if limit != MAX_BODY:
                request = request.clone(client_max_size=limit)
            early = await _read_body(request, body_timeout, limit)
            parsed: tuple[Any] | None = None
            if early is None and record is not None and readable:
                raw = await request.read()
                try:  # parsed once: the handler takes this parse
                    with paused_gc():
                        body = _parse(raw)
                    parsed = (body,)
                except EmulatorError:
                    body = _recorded(raw)
            reset = _PARSED.set(parsed)
            try:
                response = early or await _serve(request, handler, route)
            finally:
                _PARSED.reset(reset)
            status = None if response.status == 499 else response.status
            return response
        finally:
            if record is not None:
                query = dict(request.query)
                record(RecordedRequest(request.method, request.path, route, query, body, status))

    async def _serve(request: web.Request, handler: Handler, route: str) -> web.StreamResponse:
        if not _authorized(request.headers.get("Authorization"), token):
            return _error(401, "Unauthorized: a valid bearer token is required")
        plan = faults.plan(route)
        if plan.latency:
            await asyncio.sleep(plan.latency)
        if plan.drop:
            return _drop(request)
        if plan.status is not None:
            headers = (
                {"Retry-After": f"{plan.retry_after:g}"} if plan.retry_after is not None else {}
            )
            return web.json_response(
                {"errors": [{"message": f"injected fault: {plan.status}"}]},
                status=plan.status,
                headers=headers,
            )
        try:
            response = await handler(request)
        except EmulatorError as exc:
            return web.json_response(exc.body(), status=exc.status)
        except web.HTTPException as exc:
            return _error(exc.status, exc.reason)
        if plan.drop_after:
            return _drop(request)
        return response

    app = web.Application(middlewares=[middleware], client_max_size=MAX_BODY)
    for method, path, name, attr in _TABLE:
        app.router.add_route(method, path, getattr(api, attr), name=name)
    return app
