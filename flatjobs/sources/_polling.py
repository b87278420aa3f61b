"""``PollingSource``: events from ``GET /v1/events``, as Flatfile's older driver took them."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from flatjobs.client import FlatfileClient
from flatjobs.errors import FlatfileError
from flatjobs.log import get_logger
from flatjobs.models import from_wire

from ._base import SeenIds, event_key

__all__ = ["PollingSource"]

_log = get_logger("flatjobs.sources")


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
                _log.error(
                    "polling for events failed; backing off",
                    error=str(exc),
                    retry_in=round(wait, 2),
                )
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
