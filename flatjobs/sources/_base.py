"""What every event source shares: the protocol, and de-duplication by event id.

Sources own de-duplication: each delivers an event id once (within what it remembers), so
the runner behind it never has to. Only an event the runner would take is remembered by its
id (:func:`dedupe_key`): a malformed message carrying a real event's id cannot make the
real event look delivered.
"""

from __future__ import annotations

import collections
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from flatjobs.errors import InvalidEventError
from flatjobs.events._event import Delivery, FlatfileEvent

__all__ = ["Delivery", "EventSource", "SeenIds", "content_key", "dedupe_key", "event_key"]


@runtime_checkable
class EventSource(Protocol):
    """Yields raw events: ``async for raw in source``. May define ``async aclose()``."""

    def __aiter__(self) -> AsyncIterator[Any]: ...


class SeenIds:
    """A bounded set of recently seen ids: the oldest are forgotten first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"the dedupe size must be at least 1, got {size}")
        self.size = size
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()

    def add(self, key: str) -> bool:
        """Remember ``key``; False if it was already there."""
        if key in self._ids:
            self._ids.move_to_end(key)
            return False
        self._ids[key] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)


def event_key(raw: Any) -> str:
    """An event's id, or a digest of its content when it has none (or it is unreadable)."""
    if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"]:
        return str(raw["id"])
    return content_key(raw)


def dedupe_key(raw: Any) -> str:
    """The key a source remembers a delivered event by: its :func:`event_key` when the
    runner would take it (it passes :meth:`FlatfileEvent.parse <flatjobs.FlatfileEvent.parse>`,
    the check where events enter), else a digest of its content. A malformed message is
    then passed on once (the runner logs and skips it) without taking the id it carries:
    the real event with that id, coming after it, is still delivered."""
    try:
        FlatfileEvent.parse(raw)
    except InvalidEventError:
        return content_key(raw)
    return event_key(raw)


def content_key(raw: Any) -> str:
    """A digest of an event's content (whatever it is: an object, text, bytes)."""
    try:
        text = json.dumps(raw, sort_keys=True, default=str)
    except (ValueError, RecursionError):
        text = repr(type(raw))
    if isinstance(raw, bytes | str):
        text = repr(raw)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
