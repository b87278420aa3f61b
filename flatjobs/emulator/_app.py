"""The emulator's aiohttp application: SPEC §2's routes under ``/v1``, auth, faults, records."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from aiohttp import web

from flatjobs.models import Job, to_wire

from ._faults import FaultInjector
from ._state import EmulatorError, PlatformState, RawJSON

__all__ = ["ROUTES", "RecordedRequest", "build_app"]

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


class _Api:
    def __init__(self, state: PlatformState) -> None:
        self.state = state

    async def _json(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise EmulatorError(400, f"request body is not valid JSON: {exc}") from exc

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

    async def ack_event(self, request: web.Request) -> web.Response:
        self.state.ack_event(request.match_info["event_id"])
        return _data({"success": True})

    async def list_secrets(self, request: web.Request) -> web.Response:
        return _data(self.state.list_secrets(request.query))


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
    ("POST", "/v1/events/{event_id}/ack", "events.ack", "ack_event"),
    ("GET", "/v1/secrets", "secrets.list", "list_secrets"),
]
ROUTES = tuple(name for _, _, name, _ in _TABLE)
"""Every route name the emulator serves, for :class:`flatjobs.emulator.Fault` ``routes``."""


async def _read_body(request: web.Request, timeout: float) -> web.Response | None:
    """Read the body now; an error answer when it is too large or never arrives."""
    if not request.can_read_body:
        return None
    try:
        await asyncio.wait_for(request.read(), timeout)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the request body is larger than {MAX_BODY} bytes")
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
BODY_TIMEOUT = 10.0
"""Seconds a request's body may take to arrive; a body that never comes is a 408."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (NaN and Infinity are not numbers)")


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
) -> web.Application:
    """The aiohttp application serving ``state``."""
    api = _Api(state)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name or "unknown"
        body: Any = None
        status: int | None = None
        try:
            # The body is read here, once, with a deadline and a size limit, whatever the
            # mode: a handler then reads it from aiohttp's cache.
            readable = request.can_read_body
            early = await _read_body(request, body_timeout)
            if early is None and record is not None and readable:
                body = _recorded(await request.read())
            response = early or await _serve(request, handler, route)
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
