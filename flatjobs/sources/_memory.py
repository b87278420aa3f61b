"""``MemorySource``: the events a test puts in it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

from flatjobs.observe._instruments import INSTRUMENTS

from ._base import Delivery, SeenIds, dedupe_key

__all__ = ["MemorySource"]


class MemorySource:
    """An in-memory source for tests: ``put()`` events, ``close()`` to end the stream.

    Like every source it delivers an event id once: a redelivered event is dropped and
    counted in :attr:`duplicates` (``dedupe=False`` delivers everything put). A malformed
    event is passed on once, for the runner to log and skip, without taking its id.
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
            raw = event.raw if isinstance(event, Delivery) else event
            if self._seen is not None and not self._seen.add(dedupe_key(raw)):
                self.duplicates += 1
                if INSTRUMENTS:
                    INSTRUMENTS.event_duplicate()
                continue
            yield event
