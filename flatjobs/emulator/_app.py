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
from ._state import EmulatorError, PlatformState

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


def _page(items: list[Any], query: Mapping[str, str], default_size: int = 50) -> web.Response:
    try:
        size = int(query.get("pageSize", default_size))
        number = int(query.get("pageNumber", 1))
    except ValueError as exc:
        raise EmulatorError(400, f"pageSize and pageNumber must be integers: {exc}") from exc
    if size < 1 or number < 1:
        raise EmulatorError(400, f"pageSize and pageNumber must be >= 1, got {size} and {number}")
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


class _Api:
    def __init__(self, state: PlatformState) -> None:
        self.state = state

    async def _json(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise EmulatorError(400, f"request body is not valid JSON: {exc}") from exc

    @staticmethod
    def _job(job: Job) -> web.Response:
        return _data(to_wire(job))

    async def list_jobs(self, request: web.Request) -> web.Response:
        jobs = [to_wire(j) for j in self.state.list_jobs(request.query)]
        return _page(jobs, request.query)

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
        return _page(self.state.list_events(request.query), request.query)

    async def create_event(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if not isinstance(body, Mapping):
            raise EmulatorError(400, "the body must be an event object")
        missing = [k for k in ("topic", "domain", "context", "payload") if k not in body]
        if missing:
            raise EmulatorError(400, f"missing required field(s): {', '.join(missing)}")
        if not isinstance(body["topic"], str) or not isinstance(body["context"], Mapping):
            raise EmulatorError(400, "topic must be a string and context an object")
        context = {"environmentId": self.state.environment_id, **body["context"]}
        event = self.state.emit(
            body["topic"],
            domain=str(body["domain"]),
            context=context,
            payload=body["payload"] if isinstance(body["payload"], Mapping) else {},
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


def _drop(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)


def build_app(
    state: PlatformState,
    *,
    token: str,
    faults: FaultInjector,
    record: Callable[[RecordedRequest], None] | None,
) -> web.Application:
    """The aiohttp application serving ``state``."""
    api = _Api(state)
    expected_auth = f"Bearer {token}"

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name or "unknown"
        body: Any = None
        status: int | None = None
        if record is not None and request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        try:
            response = await _serve(request, handler, route)
            status = None if response.status == 499 else response.status
            return response
        finally:
            if record is not None:
                query = dict(request.query)
                record(RecordedRequest(request.method, request.path, route, query, body, status))

    async def _serve(request: web.Request, handler: Handler, route: str) -> web.StreamResponse:
        if request.headers.get("Authorization") != expected_auth:
            return web.json_response(
                {"errors": [{"message": "Unauthorized: a valid bearer token is required"}]},
                status=401,
            )
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
            return web.json_response({"errors": [{"message": exc.reason}]}, status=exc.status)
        if plan.drop_after:
            return _drop(request)
        return response

    app = web.Application(middlewares=[middleware])
    for method, path, name, attr in _TABLE:
        app.router.add_route(method, path, getattr(api, attr), name=name)
    return app
