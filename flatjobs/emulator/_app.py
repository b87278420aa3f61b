"""The emulator's aiohttp application: auth, faults and the request recording around the
routes under ``/v1``.

The routes are served resource by resource (``_routes/``): jobs, events and secrets from
:class:`PlatformState`; spaces, workbooks, sheets, records, commits, files and documents
from :class:`DataStore`. Each route has a name (``jobs.ack``, ``records.list``...) that
fault rules select on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from aiohttp import web

from ._data import DataStore, paused_gc
from ._errors import EmulatorError
from ._faults import FaultInjector
from ._http import INFLATED as _INFLATED
from ._http import PARSED as _PARSED
from ._http import Handler, inflate
from ._http import parse_json as _parse
from ._pubnub import PushServer
from ._routes import ROUTES, add_routes
from ._state import PlatformState

__all__ = ["PANEL_ROUTES", "ROUTES", "RecordedRequest", "build_app"]


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


PANEL_ROUTES = "panel."
"""The prefix of the jobs panel's route names (``_panel.py``): the middleware serves them
as they are, without the bearer token, faults or the request recording."""


async def _read_body(
    request: web.Request, timeout: float, limit: int
) -> tuple[web.Response | None, bytes | None]:
    """Read the body now: (an error answer when it is too large, cannot be read or never
    arrives; the body inflated, when it came with a ``Content-Encoding``).

    The server does not inflate bodies itself (``auto_decompress=False``): aiohttp would
    inflate a whole compressed body into memory before the size limit applies; here it is
    inflated a part at a time, within the same limit."""
    if not request.can_read_body:
        return None, None
    try:
        raw = await asyncio.wait_for(request.read(), timeout)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the request body is larger than {limit} bytes"), None
    except web.RequestPayloadError as exc:  # a chunked body cut short, say
        return _error(400, f"the request body could not be read: {exc}".strip()), None
    except TimeoutError:
        return _error(408, f"the request body did not arrive within {timeout:g} seconds"), None
    encoding = request.headers.get("Content-Encoding")
    if encoding is None:
        return None, None
    try:
        with paused_gc():
            return None, inflate(raw, encoding, limit)
    except EmulatorError as exc:
        return _error(exc.status, exc.message), None


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
    and the credentials of ``push``'s channel. Serve it with ``auto_decompress=False`` (as
    :class:`~flatjobs.emulator.Emulator` does): it inflates compressed bodies itself,
    bounded."""
    data = data if data is not None else DataStore(state)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name or "unknown"
        if route.startswith(PANEL_ROUTES):
            return await handler(request)
        body: Any = None
        status: int | None = None
        try:
            if not _authorized(request.headers.get("Authorization"), token):
                # Before the body: a caller without the token gets nothing read into memory
                # (aiohttp discards the rest), and may not reuse the connection mid-body.
                refused = _error(401, "Unauthorized: a valid bearer token is required")
                if request.can_read_body:
                    refused.force_close()
                status = refused.status
                return refused
            # The body is read here, once, with a deadline and a size limit, whatever the
            # mode: a handler then reads it from aiohttp's cache.
            readable = request.can_read_body
            limit = MAX_DATA_BODY if route in _DATA_ROUTES else MAX_BODY
            if limit != MAX_BODY:
                request = request.clone(client_max_size=limit)
            early, inflated = await _read_body(request, body_timeout, limit)
            parsed: tuple[Any] | None = None
            if early is None and record is not None and readable:
                raw = inflated if inflated is not None else await request.read()
                try:  # parsed once: the handler takes this parse
                    with paused_gc():
                        body = _parse(raw)
                    parsed = (body,)
                except EmulatorError:
                    body = _recorded(raw)
            reset = _PARSED.set(parsed)
            reset_inflated = _INFLATED.set(inflated)
            try:
                response = early or await _serve(request, handler, route)
            finally:
                _INFLATED.reset(reset_inflated)
                _PARSED.reset(reset)
            status = None if response.status == 499 else response.status
            return response
        finally:
            if record is not None:
                query = dict(request.query)
                record(RecordedRequest(request.method, request.path, route, query, body, status))

    async def _serve(request: web.Request, handler: Handler, route: str) -> web.StreamResponse:
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
    add_routes(app, state, data, push)
    return app
