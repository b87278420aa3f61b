"""``/events``, ``/subscription`` and ``/secrets``: what a listener reads beside its jobs."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from flatjobs.emulator._errors import EmulatorError
from flatjobs.emulator._http import answer, json_body, paging, raw_list

from ._resource import Resource

__all__ = ["EventRoutes", "SecretRoutes"]

EVENTS_PAGE_SIZE = 10
"""``GET /events``'s default page size (Flatfile's documented default)."""


class EventRoutes(Resource):
    """``/events``: the feed, read, written and acknowledged; ``/subscription``: the push
    channel's credentials."""

    routes = (
        ("GET", "/v1/events", "events.list", "list_events"),
        ("POST", "/v1/events", "events.create", "create_event"),
        ("GET", "/v1/events/{event_id}", "events.get", "get_event"),
        ("GET", "/v1/subscription", "events.subscription", "subscription"),
        ("POST", "/v1/events/{event_id}/ack", "events.ack", "ack_event"),
    )

    async def list_events(self, request: web.Request) -> web.Response:
        size, number = paging(request.query, EVENTS_PAGE_SIZE)
        return raw_list(self.state.list_events(request.query, size=size, number=number))

    async def create_event(self, request: web.Request) -> web.Response:
        body = await json_body(request)
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
        return answer(event)

    async def get_event(self, request: web.Request) -> web.Response:
        return answer(self.state.get_event(request.match_info["event_id"]))

    async def subscription(self, request: web.Request) -> web.Response:
        scope = request.query.get("scope", "")
        if not scope:
            raise EmulatorError(400, "scope is required: an environment or space id", key="scope")
        if self.push is None:
            raise EmulatorError(404, "this emulator serves no push channel")
        ttl = self.push.ttl
        return answer(
            {
                "accountId": self.state.account_id,
                "subscribeKey": self.push.subscribe_key,
                "ttl": int(ttl) if ttl == int(ttl) else ttl,
                "token": self.push.issue_token(),
            }
        )

    async def ack_event(self, request: web.Request) -> web.Response:
        self.state.ack_event(request.match_info["event_id"])
        return answer({"success": True})


class SecretRoutes(Resource):
    """``/secrets``: the most specific secret of each name."""

    routes = (("GET", "/v1/secrets", "secrets.list", "list_secrets"),)

    async def list_secrets(self, request: web.Request) -> web.Response:
        return answer(self.state.list_secrets(request.query))
