"""The event feed of one emulated environment, and the ids and clock every part shares.

Events are kept in time order: those the emulator emits are appended as they happen; one
stored as a platform might hold it (late, from a skewed clock, malformed: see
:meth:`EventFeed.store_event`) is placed by its ``createdAt``. Listing is a binary search
for ``since``, then a slice when every event matches.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from flatjobs.models import from_wire, to_wire

from ._errors import EmulatorError

__all__ = ["EventFeed", "RawJSON", "utcnow"]


def utcnow() -> dt.datetime:
    """Now, to the millisecond, as the platform writes its timestamps."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class RawJSON:
    """An event stored as the JSON text it came as (one nested too deeply to build from
    Python values), served verbatim."""

    __slots__ = ("created_at", "text")

    def __init__(self, text: str, created_at: dt.datetime | None) -> None:
        self.text = text
        self.created_at = created_at


def _created_at(event: Any) -> dt.datetime:
    if isinstance(event, RawJSON):
        if event.created_at is None:
            raise ValueError("no createdAt")
        return event.created_at
    return from_wire(event["createdAt"], dt.datetime)


_MIN = dt.datetime.min.replace(tzinfo=dt.UTC)


def _created_at_or_min(event: Any) -> dt.datetime:
    """Where a stored event sorts in the feed: an unreadable one sorts first."""
    try:
        return _created_at(event)
    except (ValueError, TypeError, KeyError, AttributeError):
        return _MIN


class EventFeed:
    """The events of one environment, in time order, and the callbacks told of each."""

    def __init__(self, *, environment_id: str) -> None:
        self.environment_id = environment_id
        self.events: list[dict[str, Any]] = []
        self._events_by_id: dict[str, dict[str, Any]] = {}
        self._mixed_feed = False  # events of other environments, or stored as they came
        self._seq = 0
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def new_id(self, prefix: str) -> str:
        """A new id with ``prefix`` (``us_rc_``...), unique across the emulator."""
        self._seq += 1
        return f"{prefix}{self._seq:07d}"

    def on_event(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback(raw_event)`` synchronously for every event emitted."""
        self._listeners.append(callback)

    def off_event(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Stop calling ``callback``; a callback never added is ignored."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def store_event(self, raw: Any) -> None:
        """Put ``raw`` (a value, or :class:`RawJSON`) in the feed in ``createdAt`` order
        (first, when it has none)."""
        when = _created_at_or_min(raw)
        index = bisect.bisect_right(self.events, when, key=_created_at_or_min)
        self.events.insert(index, raw)
        self._mixed_feed = True
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
            self._events_by_id[raw["id"]] = dict(raw)

    def emit(
        self,
        topic: str,
        *,
        domain: str,
        context: Mapping[str, Any],
        payload: Mapping[str, Any],
        attributes: Mapping[str, Any] | None = None,
        event_id: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append an event to the feed and tell the ``on_event`` callbacks.

        ``event_id``: an id taken beforehand with :meth:`new_id` (for an event that names
        itself, as a ``commit:created`` whose ``dataUrl`` holds its own id); ``fields``:
        more top-level fields (``dataUrl``)."""
        event: dict[str, Any] = {
            "id": event_id if event_id is not None else self.new_id("us_evt_"),
            "topic": topic,
            "domain": domain,
            "context": dict(context),
            "payload": dict(payload),
            "createdAt": to_wire(utcnow()),
        }
        if attributes is not None:
            event["attributes"] = dict(attributes)
        if fields is not None:
            event.update(fields)
        if context.get("environmentId") != self.environment_id:
            self._mixed_feed = True
        self.events.append(event)
        self._events_by_id[event["id"]] = event
        for callback in self._listeners:
            callback(event)
        return event

    def get_event(self, event_id: str) -> dict[str, Any]:
        """``GET /events/{id}``."""
        event = self._events_by_id.get(event_id)
        if event is None:
            raise EmulatorError(404, f"event {event_id} not found", key="eventId")
        return event

    def ack_event(self, event_id: str, actor: str = "us_usr_emulator") -> None:
        """``POST /events/{id}/ack``."""
        event = self.get_event(event_id)
        event["acknowledgedAt"] = to_wire(utcnow())
        event["acknowledgedBy"] = actor

    def list_events(
        self, query: Mapping[str, str], *, size: int | None = None, number: int = 1
    ) -> list[Any]:
        """``GET /events`` with since, topic, domain, space and acknowledged filters: page
        ``number`` of ``size`` (all of them when ``size`` is None), in time order."""
        if not query.get("environmentId"):
            raise EmulatorError(400, "environmentId is required", key="environmentId")
        if query["environmentId"] != self.environment_id:
            # As the platform: a feed is an environment's, and a mistyped id is no empty one.
            raise EmulatorError(
                404,
                f"environment {query['environmentId']!r} not found (this emulator's is "
                f"{self.environment_id})",
                key="environmentId",
            )
        since: dt.datetime | None = None
        if "since" in query:
            try:
                since = from_wire(query["since"], dt.datetime)
            except ValueError as exc:
                raise EmulatorError(
                    400, f"since must be an ISO 8601 timestamp: {exc}", key="since"
                ) from exc
        include_acked = query.get("includeAcknowledged") == "true"
        # The feed is in time order: `since` is a binary search, not a parse of every event.
        start = (
            0 if since is None else bisect.bisect_left(self.events, since, key=_created_at_or_min)
        )
        skip = (number - 1) * size if size is not None else 0
        filtered = (
            self._mixed_feed
            or not include_acked
            or any(k in query for k in ("spaceId", "domain", "topic"))
        )
        if not filtered:  # every event matches: a page is a slice, however big the feed
            first = start + skip
            return self.events[first : first + size if size is not None else None]
        out: list[Any] = []
        for event in itertools.islice(self.events, start, None):
            if not self._listed(event, query, include_acked):
                continue
            if skip:
                skip -= 1
                continue
            out.append(event)
            if size is not None and len(out) >= size:
                break
        return out

    @staticmethod
    def _listed(event: Any, query: Mapping[str, str], include_acked: bool) -> bool:
        context = event.get("context") if isinstance(event, Mapping) else None
        if not isinstance(context, Mapping):
            return True  # stored as hostile as it came: served as it is
        return (
            context.get("environmentId") == query["environmentId"]
            and ("spaceId" not in query or context.get("spaceId") == query["spaceId"])
            and ("domain" not in query or event.get("domain") == query["domain"])
            and ("topic" not in query or event.get("topic") == query["topic"])
            and (include_acked or "acknowledgedAt" not in event)
        )
