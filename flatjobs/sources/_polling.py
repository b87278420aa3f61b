"""``PollingSource``: events from ``GET /v1/events``, as Flatfile's older driver took them.

What it guarantees, and how:

* **A poll commits only when it all succeeded.** Pages are read first; only when every page
  was read are the events delivered, marked seen and the cursor moved. A failed page means
  the whole poll is tried again later: nothing is lost.
* **The cursor trusts no event's clock beyond the server's.** It moves to the newest
  ``createdAt`` read, but never past the server's own clock (its ``Date`` header, else
  ours): an event from the year 2999, or from a clock five minutes fast, cannot make later
  events look old.
* **A page that cannot be decoded is narrowed down.** It is read again as two halves, and
  so on, down to the one event that cannot be read; once that event has failed the same
  way in three polls (so a garbled answer on a bad network never costs an event), it is
  logged and skipped, and polling goes on.
* **De-duplication holds for any volume.** Ids are remembered for as long as a poll can
  read them again (the overlap window), however many there are.
* **Cheap when idle.** A poll reads what is newer than the cursor; every ``overlap / 2``
  seconds one reads the whole overlap window again, to find events stored late (up to
  ``overlap / 2`` seconds late, always).
* **Bounded.** A poll reads at most ``max_pages`` pages, and stops when the server answers
  the same page twice (a server that ignores ``pageNumber``). At most ``max_answer_bytes``
  of an answer are read (16 MiB by default): a page larger than that is narrowed down as
  one that cannot be decoded, so one event larger than that is, in the end, skipped.
* **Any page size, with or without ``pagination``** (Flatfile's events list has none): a
  poll reads pages until one is empty (or the last by ``pagination``), so a server that
  applies a smaller page size than asked loses nothing.

Events from before its first poll (by the server's clock) are delivered as *replayed*
(:class:`~flatjobs.sources.Delivery`): a previous run may have started their jobs, which
are then run only while still ``ready``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import AsyncIterator
from typing import Any, Final

from flatjobs._seconds import check_seconds
from flatjobs.client import FlatfileClient, Page, RetryPolicy
from flatjobs.client._transport import DEFAULT_MAX_ANSWER_BYTES
from flatjobs.errors import FlatfileError, UnexpectedResponseError
from flatjobs.log import get_logger, shorten
from flatjobs.models import from_wire
from flatjobs.observe._instruments import INSTRUMENTS

from ._base import Delivery, content_key, dedupe_key, event_key

__all__ = ["PollingSource"]

_log = get_logger("flatjobs.sources")
_ONCE = RetryPolicy(attempts=1)  # narrowing reads: a refused page is narrowed, not retried
_SKIP_AFTER = 3  # polls in which one event fails alike before it is skipped
_TICK = dt.timedelta(milliseconds=1)  # the resolution of the platform's timestamps
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SECOND: Final = dt.timedelta(seconds=1)
_PRUNE_AT = 1024  # remembered ids before the first pruning


# The latest date reckoned with: what a poll adds to a date before it (the overlap window,
# a second) stays a date. An event dated later, or further out than a datetime can hold in
# UTC (`9999-12-31T23:59:59-12:00`), is logged and skipped.
_LATEST: Final = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
_FOREVER: Final = dt.datetime.max.replace(tzinfo=dt.UTC)


class _OutOfRange(Exception):
    """An event's ``createdAt`` is a date too far out to reckon with."""


def _created_at(raw: Any) -> dt.datetime | None:
    """An event's ``createdAt`` in UTC; None when it has none, or it is no date.

    Raises:
        _OutOfRange: a date no datetime holds in UTC, or one from the year 9999.
    """
    value = raw.get("createdAt") if isinstance(raw, dict) else None
    if value is None:
        return None
    try:
        when = from_wire(value, dt.datetime).astimezone(dt.UTC)
    except (ValueError, TypeError):
        return None
    except OverflowError:
        raise _OutOfRange() from None
    if when >= _LATEST:
        raise _OutOfRange()
    return when


class PollingSource:
    """Polls ``GET /v1/events`` for an environment (and optionally a space).

    Args:
        client: the API client (its environment id is used unless one is given).
        interval: seconds between polls while events are flowing.
        max_interval: the longest wait, reached by doubling while idle or failing; it
            bounds how long the first event after a quiet spell waits.
        overlap: seconds each full poll reaches back before the newest event seen, so
            events stored late or out of order are found; duplicates are dropped by id.
        page_size: events asked per page (rounded down to a power of two, so a page can
            be narrowed into halves); the server may apply its own.
        max_pages: the most pages one poll reads; the rest waits for the next poll.
        since: where to start; by default ``overlap`` seconds before now.
        include_acknowledged: also take events another consumer has acknowledged.
        max_answer_bytes: the most bytes read of one answer of the feed (after
            decompression; None: no limit). A larger page is read again in halves; an
            event larger than this alone is logged and skipped.
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
        page_size: int = 128,
        max_pages: int = 200,
        since: dt.datetime | None = None,
        include_acknowledged: bool = True,
        max_answer_bytes: int | None = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        check_seconds("interval", interval, positive=True)
        check_seconds("max_interval", max_interval, positive=True)
        check_seconds("overlap", overlap, positive=True)
        if not interval <= max_interval:
            raise ValueError(
                f"need 0 < interval <= max_interval, got {interval} and {max_interval}"
            )
        if page_size < 1 or max_pages < 1:
            raise ValueError(f"page_size and max_pages must be >= 1, got {page_size}, {max_pages}")
        if max_answer_bytes is not None and max_answer_bytes < 1:
            raise ValueError(f"max_answer_bytes must be >= 1 (or None), got {max_answer_bytes}")
        self.client = client
        self.environment_id = client.require_environment(environment_id)
        self.space_id = space_id
        self.interval = interval
        self.max_interval = max_interval
        self.overlap = dt.timedelta(seconds=overlap)
        self.page_size = 2 ** int(math.log2(page_size))
        self.max_pages = max_pages
        self.include_acknowledged = include_acknowledged
        self.max_answer_bytes = max_answer_bytes
        self._cursor = dt.datetime.now(dt.UTC) - self.overlap
        if since is not None:
            self.cursor = since
        self._seen: dict[str, dt.datetime] = {}  # id -> when it can no longer be read again
        self._prune_at = _PRUNE_AT
        self._unreadable: dict[int, int] = {}  # a lone event's answer -> polls it failed in
        self._started: dt.datetime | None = None  # the server's clock at the first poll
        self._resume: tuple[dt.datetime, int] | None = None  # (since, page) to go on from
        self._last_full = -math.inf
        self._closed = asyncio.Event()
        self.polls = 0
        """Polls that succeeded."""
        self.errors = 0
        """Polls that failed (and were tried again)."""
        self.duplicates = 0
        """Events read again and dropped: their id was delivered already."""
        self.skipped = 0
        """Events that could not be read even alone, or whose ``createdAt`` is a date out
        of range (no datetime holds it), logged and skipped."""
        self.connected = False
        """Whether the feed answers: True once a poll succeeded, False again after a poll
        of :meth:`__aiter__` failed (a readiness probe reads it)."""

    async def aclose(self) -> None:
        """Stop polling; the iteration ends."""
        self._closed.set()

    @property
    def cursor(self) -> dt.datetime:
        """Where polling stands: the newest event time read, never past the server's clock.
        A poll reads what is newer; a full poll from ``overlap`` before it. Set it before
        the first poll to resume where an earlier run stopped (as ``since=`` does)."""
        return self._cursor

    @cursor.setter
    def cursor(self, when: dt.datetime) -> None:
        if when.tzinfo is None:
            raise ValueError(
                f"since/cursor must be a timezone-aware datetime, got {when.isoformat()}"
            )
        # Before the epoch there are no events; and `when - overlap` must stay a date.
        self._cursor = max(when, _EPOCH)

    def observe(self, raw: Any) -> bool:
        """Note an event another path delivered (a push channel): it is not delivered again,
        and the cursor moves past it. Returns False when it was delivered already."""
        now = dt.datetime.now(dt.UTC)
        fresh, created = self._take(raw, now)
        if not fresh:
            return False
        if created is not None:
            self._cursor = max(self._cursor, min(created, now))
        self._forget(now)  # a push channel may be the only path for days
        return True

    def _take(self, raw: Any, now: dt.datetime) -> tuple[bool, dt.datetime | None]:
        """Whether ``raw`` is to be delivered (it was not already, and its date can be
        reckoned with), and its ``createdAt``; it is remembered either way."""
        try:
            created = _created_at(raw)
        except _OutOfRange:
            # Remembered by its content, not by the id it carries: the feed answers it in
            # every poll (no cursor passes it), and it is logged once.
            key = content_key(raw)
            if key in self._seen:
                self._duplicate()
                return False, None
            self._seen[key] = _FOREVER
            self.skipped += 1
            _log.error(
                "an event's createdAt is out of range (no date a datetime can hold); the "
                "event is skipped",
                event_id=shorten(str(raw.get("id")), 80),
                created_at=shorten(str(raw.get("createdAt")), 80),
            )
            return False, None
        key = dedupe_key(raw)
        if key in self._seen:
            self._duplicate()
            return False, None
        # Remembered while a full poll may read it again: until the cursor is an overlap
        # past it (an event from the future, until the cursor gets there).
        self._seen[key] = (created or now) + self.overlap
        return True, created

    def _duplicate(self) -> None:
        self.duplicates += 1
        if INSTRUMENTS:
            INSTRUMENTS.event_duplicate()

    async def backfill(self) -> list[Delivery]:
        """A full poll now (the whole overlap window before the newest event seen, and all
        after it): what a gap in another path (a push channel) may have missed."""
        self._last_full = -math.inf
        return await self.poll_once()

    # ----------------------------------------------------------- one poll

    async def poll_once(self) -> list[Delivery]:
        """One poll (see the module docstring); returns the new events, in feed order.

        Raises:
            FlatfileError: the poll failed; nothing was committed.
        """
        loop = asyncio.get_running_loop()
        full = loop.time() - self._last_full >= self.overlap.total_seconds() / 2
        # A tail poll reads what is newer than the newest event seen; what shares its
        # millisecond, or was stored late, the next full poll finds. A poll that stopped at
        # its most pages is continued where it stopped.
        since, first = self._resume or (
            (self._cursor - self.overlap, 1) if full else (self._cursor + _TICK, 1)
        )
        items, server_now, more = await self._read(since, first)
        if server_now is not None and server_now >= _LATEST:
            server_now = None  # a clock from the year 9999 is no clock to reckon with
        self._resume = (since, first + self.max_pages) if more else None
        # Everything was read: commit.
        if self._started is None:
            # The Date header counts whole seconds, rounded down: an event stored in the
            # same second, before this process started, must still count as replayed (a
            # job it brought may be running in a process that just died).
            self._started = (
                server_now + dt.timedelta(seconds=1) if server_now else dt.datetime.now(dt.UTC)
            )
        if full:
            self._last_full = loop.time()
        now = server_now or dt.datetime.now(dt.UTC)
        fresh: list[Delivery] = []
        newest = self._cursor
        for raw in items:
            fresh_one, created = self._take(raw, now)
            if not fresh_one:
                continue
            if created is not None:
                newest = max(newest, min(created, now))  # never past the server's clock
            replayed = created is None or created < self._started
            fresh.append(Delivery(raw, replayed=replayed))
        # A cursor ahead of the server's clock (a `since` in its future) is pulled back to
        # it; one within the clock's second (the Date header rounds down) stays.
        self._cursor = now if newest > now + _SECOND else newest
        self._forget(now, force=not self.polls % 50)
        # A lone event that failed in an earlier poll, and now did not: the network's fault.
        self._unreadable = {k: n for k, n in self._unreadable.items() if n >= _SKIP_AFTER}
        self.polls += 1
        self.connected = True
        return fresh

    def _forget(self, now: dt.datetime, *, force: bool = False) -> None:
        """Forget the ids no poll can read again. Pruning runs when the memory has doubled
        since the last (or when ``force``d), so it costs O(1) an event, storms included."""
        if force or len(self._seen) >= self._prune_at:
            horizon = min(now, self._cursor) - dt.timedelta(seconds=1)
            self._seen = {k: v for k, v in self._seen.items() if v >= horizon}
            self._prune_at = max(_PRUNE_AT, 2 * len(self._seen))

    @property
    def caught_up(self) -> bool:
        """False while the last poll stopped at its most pages, with more to read."""
        return self._resume is None

    @property
    def remembered(self) -> int:
        """How many event ids are remembered now, to drop what is read again."""
        return len(self._seen)

    async def _read(
        self, since: dt.datetime, first: int
    ) -> tuple[list[Any], dt.datetime | None, bool]:
        """Up to ``max_pages`` pages from page ``first`` of the events since ``since``: the
        events, the server's clock, and whether pages are left."""
        out: list[Any] = []
        server_now: dt.datetime | None = None
        previous: list[str] | None = None
        for number in range(first, first + self.max_pages):
            page = await self._page(since, number, self.page_size)
            server_now = page.server_time or server_now
            items = page.items  # holes (None) stand for events skipped as unreadable
            if not items:
                break
            keys = [event_key(raw) for raw in items]
            if keys == previous:
                _log.warning(
                    "the events feed answered the same page twice; this poll stops "
                    "there (does the server ignore pageNumber?)",
                    page=number,
                )
                break
            previous = keys
            out.extend(raw for raw in items if raw is not None)
            count = page.pagination.page_count if page.pagination else None
            if count is not None and number >= count:
                break
            # Without `pagination`, only an empty page says the feed ends here: a short one
            # may be the server's own page size.
        else:
            _log.info(
                "a poll read its most pages; the next poll goes on from there",
                max_pages=self.max_pages,
            )
            return out, server_now, True
        return out, server_now, False

    async def _page(
        self, since: dt.datetime, number: int, size: int, retry: RetryPolicy | None = None
    ) -> Page[Any]:
        """Page ``number`` of ``size``; one that cannot be read is read again as halves."""
        try:
            return await self._list(since, number, size, retry=retry)
        except UnexpectedResponseError as err:
            if size == 1:
                return self._unreadable_event(err)
            _log.warning(
                "a page of events cannot be read; reading it in halves",
                page=number,
                size=size,
                error=err.reason,
            )
        half = size // 2
        first = await self._page(since, 2 * number - 1, half, _ONCE)
        second = await self._page(since, 2 * number, half, _ONCE)
        return Page([*first.items, *second.items], None, second.server_time or first.server_time)

    def _unreadable_event(self, err: UnexpectedResponseError) -> Page[Any]:
        """One event cannot be read. The first times, the poll fails (the answer may have
        been garbled on the way); once it failed alike in three polls, it is skipped. An
        answer that is not even the start of a list of events (an HTML page, garbage) is
        the network's doing, never the event's: the poll fails, and is tried again."""
        if not isinstance(err.body, str) or not err.body.startswith('{"data":['):
            raise err
        key = hash(err.body)
        failed = self._unreadable[key] = self._unreadable.get(key, 0) + 1
        if failed < _SKIP_AFTER:
            raise err
        if failed == _SKIP_AFTER:
            self.skipped += 1
            _log.error(
                "an event in the feed cannot be read; it is skipped",
                error=err.reason,
                answer=str(err.body)[:200],
            )
        return Page([None])  # a hole: not the end of the feed

    async def _list(
        self, since: dt.datetime, number: int, size: int, *, retry: RetryPolicy | None
    ) -> Page[Any]:
        return await self.client.events.list_raw(
            environment_id=self.environment_id,
            space_id=self.space_id,
            since=since,
            page_size=size,
            page_number=number,
            include_acknowledged=self.include_acknowledged,
            retry=retry,
            max_bytes=self.max_answer_bytes,
        )

    # ----------------------------------------------------------- the stream

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        wait = self.interval
        while not self._closed.is_set():
            try:
                fresh = await self.poll_once()
            except FlatfileError as exc:
                self.errors += 1
                self.connected = False
                wait = min(wait * 2, self.max_interval)
                _log.error(
                    "polling for events failed; trying again",
                    api=self.client.host,
                    error=str(exc),
                    retry_in=round(wait, 2),
                )
            else:
                wait = self.interval if fresh else min(wait * 2, self.max_interval)
                for delivery in fresh:
                    yield delivery
                    if self._closed.is_set():
                        return
            try:
                await asyncio.wait_for(self._closed.wait(), wait)
            except TimeoutError:
                continue
