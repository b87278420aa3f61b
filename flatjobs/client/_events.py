"""``client.events``: the ``/v1/events`` endpoints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from flatjobs.models import Event, Subscription, from_wire

from ._transport import (
    Answer,
    Caller,
    Decoder,
    Endpoint,
    Page,
    RetryPolicy,
    data_object,
    envelope,
    page_of,
    secret_fields,
    success,
)

__all__ = ["EventsAPI"]

LIST: Final = Endpoint("GET", "/events", "events.list")
CREATE: Final = Endpoint("POST", "/events", "events.create")
GET: Final = Endpoint("GET", "/events/{}", "events.get")
ACK: Final = Endpoint("POST", "/events/{}/ack", "events.ack")
SUBSCRIPTION: Final = Endpoint("GET", "/subscription", "events.subscription")

_event = data_object(Event)
_subscription = secret_fields("token", data_object(Subscription))  # redacted once read
_raw_page: Decoder[Page[Any]] = page_of(None)


def _raw_event(answer: Answer) -> dict[str, Any]:
    data = envelope(answer)
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
        raise ValueError("expected `data` to be an event object with an id")
    return dict(data)


class EventsAPI:
    """``client.events``: the ``/v1/events`` endpoints."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    async def list_raw(
        self,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        domain: str | None = None,
        topic: str | None = None,
        since: dt.datetime | None = None,
        page_size: int | None = None,
        page_number: int | None = None,
        include_acknowledged: bool | None = None,
        retry: RetryPolicy | None = None,
        max_bytes: int | None = None,
    ) -> Page[Any]:
        """One page of events as raw JSON values, for sources that must survive bad ones
        (``retry``: a policy for this call only).

        Args:
            max_bytes: the most bytes of the answer read (after decompression): a server
                may answer more than the page asked. None reads it whole.

        Raises:
            UnexpectedResponseError: also for an answer longer than ``max_bytes``, naming
                the limit and the size (not retried).
        """
        params = {
            "environmentId": self._client.require_environment(environment_id),
            "spaceId": space_id,
            "domain": domain,
            "topic": topic,
            "since": since,
            "pageSize": page_size,
            "pageNumber": page_number,
            "includeAcknowledged": include_acknowledged,
        }
        return await self._client.call(
            LIST, params=params, decode=_raw_page, retry=retry, max_bytes=max_bytes
        )

    async def list(
        self,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        domain: str | None = None,
        topic: str | None = None,
        since: dt.datetime | None = None,
        page_size: int | None = None,
        page_number: int | None = None,
        include_acknowledged: bool | None = None,
    ) -> Page[Event]:
        """One page of events, read into :class:`flatjobs.models.Event` models."""
        page = await self.list_raw(
            environment_id=environment_id,
            space_id=space_id,
            domain=domain,
            topic=topic,
            since=since,
            page_size=page_size,
            page_number=page_number,
            include_acknowledged=include_acknowledged,
        )
        return Page([from_wire(e, Event) for e in page.items], page.pagination)

    async def subscription(self, scope: str | None = None) -> Subscription:
        """``GET /subscription``: credentials for the push channel of events of ``scope``
        (an environment id, by default the client's, or a space id)."""
        params = {"scope": scope or self._client.require_environment(None)}
        return await self._client.call(SUBSCRIPTION, params=params, decode=_subscription)

    async def get(self, event_id: str) -> Event:
        """``GET /events/{id}``."""
        return await self._client.call(GET, event_id, decode=_event)

    async def get_raw(self, event_id: str) -> dict[str, Any]:
        """``GET /events/{id}`` as raw JSON, for callers that check events themselves (the
        answer must be an event object with an id)."""
        return await self._client.call(GET, event_id, decode=_raw_event)

    async def ack(self, event_id: str) -> None:
        """``POST /events/{id}/ack``: mark the event acknowledged."""
        await self._client.call(ACK, event_id, decode=success)

    async def create(
        self,
        topic: str,
        *,
        domain: str,
        context: Mapping[str, Any],
        payload: Mapping[str, Any],
        attributes: Mapping[str, Any] | None = None,
    ) -> Event:
        """``POST /events``: emit a custom event."""
        body: dict[str, Any] = {
            "topic": topic,
            "domain": domain,
            "context": dict(context),
            "payload": dict(payload),
        }
        if attributes is not None:
            body["attributes"] = dict(attributes)
        return await self._client.call(CREATE, body=body, decode=_event)
