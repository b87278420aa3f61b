"""Event sources: where a runner's events come from.

An :class:`EventSource` is anything that can be iterated with ``async for`` and yields raw
events (wire JSON, possibly malformed: the runner validates them). Its optional ``aclose()``
is awaited when the runner stops. Two ship with flatjobs:

* :class:`PollingSource` polls ``GET /v1/events`` of an environment, as Flatfile's older
  driver did: with an overlap window so nothing between polls is missed, following pages,
  de-duplicating by event id with bounded memory, backing off while idle and on errors.
* :class:`MemorySource` yields what a test puts in it.

Flatfile's own push channel is PubNub (SPEC §2): ``GET /v1/subscription`` gives
credentials for the channel ``environment.<environmentId>``. A PubNub source would
subscribe there, parse each message (sometimes a JSON string), de-duplicate by id as
this one does, and refresh its token on access-denied; it needs the PubNub SDK and the
real platform, so it is not built yet.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol, runtime_checkable

from .client import FlatfileClient
from .errors import FlatfileError
from .log import get_logger
from .models import from_wire

__all__ = ["EventSource", "MemorySource", "PollingSource", "SeenIds"]

_log = get_logger("flatjobs.sources")


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
    try:
        text = json.dumps(raw, sort_keys=True, default=str)
    except (ValueError, RecursionError):
        text = repr(type(raw))
    if isinstance(raw, bytes | str):
        text = repr(raw)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


class MemorySource:
    """An in-memory source for tests: ``put()`` events, ``close()`` to end the stream.

    Like every source it delivers an event id once: a redelivered event is dropped and
    counted in :attr:`duplicates` (``dedupe=False`` delivers everything put).
    """

    def __init__(
        self, events: Iterable[Any] = (), *, dedupe: bool = True, dedupe_size: int = 10_000
    ) -> None:
        self._queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
        self._seen = SeenIds(dedupe_size) if dedupe else None
        self.duplicates = 0
        """Events dropped because their id was delivered already."""
        for event in events:
            self.put(event)

    def put(self, event: Any) -> None:
        """Add an event to the stream."""
        self._queue.put_nowait((False, event))

    def close(self) -> None:
        """End the stream once the events already put have been taken."""
        self._queue.put_nowait((True, None))

    async def aclose(self) -> None:
        """End the stream (as :meth:`close`)."""
        self.close()

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            done, event = await self._queue.get()
            if done:
                return
            if self._seen is not None and not self._seen.add(event_key(event)):
                self.duplicates += 1
                continue
            yield event


class PollingSource:
    """Polls ``GET /v1/events`` for an environment (and optionally a space).

    Args:
        client: the API client (its environment id is used unless one is given).
        interval: seconds between polls while events are flowing.
        max_interval: the longest wait, reached by doubling while idle or failing; it
            bounds how long the first event after a quiet spell waits.
        overlap: seconds each poll reaches back before the newest event seen, so events
            stored late or out of order are not missed; duplicates are dropped by id.
        page_size: events per page; further pages are followed.
        dedupe_size: how many event ids are remembered.
        since: where to start; by default ``overlap`` seconds before now.
        include_acknowledged: also take events another consumer has acknowledged.
    """

    def __init__(
        self,
        client: FlatfileClient,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        interval: float = 0.5,
        max_interval: float = 2.0,
        overlap: float = 5.0,
        page_size: int = 100,
        dedupe_size: int = 10_000,
        since: dt.datetime | None = None,
        include_acknowledged: bool = True,
    ) -> None:
        if not 0 < interval <= max_interval:
            raise ValueError(
                f"need 0 < interval <= max_interval, got {interval} and {max_interval}"
            )
        self.client = client
        self.environment_id = client.require_environment(environment_id)
        self.space_id = space_id
        self.interval = interval
        self.max_interval = max_interval
        self.overlap = dt.timedelta(seconds=overlap)
        self.page_size = page_size
        self.include_acknowledged = include_acknowledged
        self.seen = SeenIds(dedupe_size)
        self._cursor = since or dt.datetime.now(dt.UTC) - self.overlap
        self._closed = asyncio.Event()
        self.polls = 0
        self.errors = 0
        self.duplicates = 0

    async def aclose(self) -> None:
        """Stop polling; the iteration ends."""
        self._closed.set()

    async def poll_once(self) -> list[Any]:
        """One poll: every page of events since the cursor minus the overlap, new ones only."""
        since = self._cursor - self.overlap
        fresh: list[Any] = []
        page_number = 1
        while True:
            page = await self.client.events.list_raw(
                environment_id=self.environment_id,
                space_id=self.space_id,
                since=since,
                page_size=self.page_size,
                page_number=page_number,
                include_acknowledged=self.include_acknowledged,
            )
            for raw in page.items:
                if self.seen.add(event_key(raw)):
                    fresh.append(raw)
                    self._advance(raw)
                else:
                    self.duplicates += 1
            count = page.pagination.page_count if page.pagination else None
            if not page.items or (count is not None and page_number >= count):
                break
            if count is None and len(page.items) < self.page_size:
                break
            page_number += 1
        self.polls += 1
        return fresh

    def _advance(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            return
        try:
            created = from_wire(raw.get("createdAt"), dt.datetime)
        except (ValueError, TypeError):
            return
        self._cursor = max(self._cursor, created)

    async def __aiter__(self) -> AsyncIterator[Any]:
        wait = self.interval
        while not self._closed.is_set():
            try:
                fresh = await self.poll_once()
            except FlatfileError as exc:
                self.errors += 1
                wait = min(wait * 2, self.max_interval)
                _log.error("polling for events failed; backing off", error=str(exc),
                           retry_in=round(wait, 2))  # fmt: skip
            else:
                wait = self.interval if fresh else min(wait * 2, self.max_interval)
                for raw in fresh:
                    yield raw
                    if self._closed.is_set():
                        return
            try:
                await asyncio.wait_for(self._closed.wait(), wait)
            except TimeoutError:
                continue
