"""``PushSource``: events pushed on Flatfile's own channel, as ``flatfile develop`` gets them.

Flatfile publishes every event of an environment on a PubNub channel,
``environment.<environmentId>`` (or ``space.<spaceId>``). ``GET /v1/subscription`` gives a
subscribe key and a token good for ``ttl`` minutes; PubNub's subscribe call is an HTTP
long-poll: ``GET /v2/subscribe/<key>/<channel>/0?tt=<timetoken>&auth=<token>`` answers
with the messages published after that timetoken, and the next timetoken.

PubNub's delivery is at most once: it keeps a short buffer only, so a disconnect, a token
refresh or a restart can lose messages. This source therefore fills every gap from the
events feed (``GET /v1/events`` since the last event it saw, through a
:class:`~flatjobs.sources.PollingSource` that shares its memory of what was delivered):
after it starts, after any reconnection, after an answer it could not read, and after a
token refresh on access denied. A disconnect loses nothing; an event that came both ways
is delivered once.

The token is refreshed before it expires (at 80 % of ``ttl``) and whenever the channel
answers 403. Reconnections back off exponentially, with jitter.

A long-poll that gets no answer within ``hold`` is a gap too: PubNub holds a quiet one for
minutes, so the source cannot tell a quiet channel from a stalled one, and fills from the
feed either way. It then handshakes again, which tells them apart: a handshake answers at
once. The source says it is not connected (``/readyz`` answers 503) when the handshake after
a long-poll without an answer gets none either: within ``hold`` + 10 s of the channel going
silent, 40 s by default. A long-poll answered at once (in under 0.25 s) with no message, or
with a timetoken that did not move on, is a gap as well, and the next call waits, as after
a failure: a host that answers every call at once cannot spin the source; twice in a row,
and the source is not connected until a long-poll is answered as the protocol does.

At most ``max_answer_bytes`` of an answer are read: a larger one is an answer that cannot
be read (logged, naming the host and the size, and a gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Final, TypeVar

import aiohttp
import yarl

from flatjobs._seconds import backoff, check_seconds
from flatjobs.client import FlatfileClient
from flatjobs.client._transport import DEFAULT_MAX_ANSWER_BYTES, AnswerTooLarge, read_body
from flatjobs.errors import ConfigurationError, FlatfileError
from flatjobs.log import get_logger
from flatjobs.models import Subscription

from ._base import Delivery
from ._polling import PollingSource

__all__ = ["DEFAULT_PUSH_ORIGIN", "PushSource"]

DEFAULT_PUSH_ORIGIN: Final = "https://ps.pndsn.com"
"""PubNub's own host, which Flatfile's channel is on (``FLATFILE_PUSH_ORIGIN`` overrides)."""
_log = get_logger("flatjobs.sources")
_T = TypeVar("_T")
_FULL: Final = 100  # the most messages PubNub puts in one answer (and keeps per channel)
_HANDSHAKE: Final = 10.0  # seconds a handshake may take (it is answered at once)
_INSTANT: Final = 0.25  # a long-poll answered sooner, with nothing new, was not held
_NOT_READY_AFTER: Final = 2  # such answers in a row before the source says it is not connected


class _Denied(Exception):
    """The channel refused the token (403)."""


class _Unreadable(Exception):
    """A subscribe answer that is not what the protocol returns."""


class _Closed(Exception):
    """The source was closed while waiting."""


class _Failed(Exception):
    """The channel answered with an error status (not 403)."""


def push_origin(given: str | None = None) -> str:
    """The push host: ``given``, else ``FLATFILE_PUSH_ORIGIN``, else PubNub's own.

    Raises:
        ConfigurationError: the value is not an http(s) URL (not echoed: it may be a secret).
    """
    value = given or os.environ.get("FLATFILE_PUSH_ORIGIN") or DEFAULT_PUSH_ORIGIN
    try:
        url = yarl.URL(value)
    except ValueError:
        url = yarl.URL()
    if url.scheme not in ("http", "https") or not url.host or url.user or url.query_string:
        raise ConfigurationError(
            "the push origin (FLATFILE_PUSH_ORIGIN) must be a plain http(s) URL such as "
            "https://ps.pndsn.com (its value is not shown: it may be a secret)"
        )
    return str(url).rstrip("/")


class PushSource:
    """Events pushed on Flatfile's channel, with the feed filling every gap (see above).

    Args:
        client: the API client (its environment id is used unless one is given).
        space_id: listen on that space's channel instead of the environment's.
        origin: the push host (``FLATFILE_PUSH_ORIGIN``, else PubNub's own); the emulator
            serves one on its own port (``emulator.env()`` sets it).
        hold: seconds a long-poll may wait for an answer; as Flatfile's own driver, 30 s.
            Without one by then, the feed fills the gap and the source handshakes again,
            so a connection that died silently costs at most that (see above).
        max_backoff: the longest wait between reconnection attempts.
        overlap: as :class:`PollingSource`'s, for the feed that fills gaps.
        since: where the feed starts at the first gap (the start): by default ``overlap``
            seconds ago. Jobs that became ready before are run by the reconciliation sweep
            either way; to get every other event published while no listener ran, pass
            the time of the last event a previous run handled.
        max_answer_bytes: the most bytes read of one answer, of the channel or of the
            feed (after decompression; None: no limit); 16 MiB by default. A larger push
            answer is a gap the feed fills; see :class:`PollingSource` for the feed's.
    """

    def __init__(
        self,
        client: FlatfileClient,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        origin: str | None = None,
        hold: float = 30.0,
        max_backoff: float = 10.0,
        overlap: float = 5.0,
        since: dt.datetime | None = None,
        max_answer_bytes: int | None = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        check_seconds("hold", hold, positive=True)
        check_seconds("max_backoff", max_backoff)
        self.client = client
        self.environment_id = client.require_environment(environment_id)
        self.space_id = space_id
        self.origin = push_origin(origin)
        self.hold = hold
        self.max_backoff = max_backoff
        self.channel = f"space.{space_id}" if space_id else f"environment.{self.environment_id}"
        self.feed = PollingSource(
            client,
            environment_id=self.environment_id,
            space_id=space_id,
            overlap=overlap,
            since=since,
            max_answer_bytes=max_answer_bytes,
        )
        self.max_answer_bytes = max_answer_bytes
        self._closed = asyncio.Event()
        self._credentials: Subscription | None = None
        self._refresh_at = 0.0
        self.connected = False
        """Whether the channel answers now: its last handshake was answered and the gap
        before it filled, and its long-polls are held as the protocol does (not answered
        at once with nothing, twice in a row). ``/readyz`` reads it."""
        self.received = 0
        """Messages received on the channel."""
        self.backfilled = 0
        """Events the feed filled in after a gap."""
        self.refreshes = 0
        """Token refreshes (before expiry, or on access denied)."""
        self.reconnects = 0
        """Reconnections after a failure."""
        self.timeouts = 0
        """Long-polls that got no answer within ``hold`` (each a gap the feed filled)."""
        self.instant = 0
        """Long-polls answered at once with nothing new (each a gap, and a wait)."""

    @property
    def duplicates(self) -> int:
        """Events dropped because they came both ways, or twice."""
        return self.feed.duplicates

    async def aclose(self) -> None:
        """Stop listening; the iteration ends."""
        self._closed.set()

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        timeout = aiohttp.ClientTimeout(total=self.hold, connect=10.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            timetoken, region = "0", ""
            gap = True  # at start, the feed fills in what happened before we listened
            failures = 0  # in a row: the first of a kind is tried again at once, then back off
            unheld = 0  # long-polls in a row answered at once with nothing new
            while not self._closed.is_set():
                try:
                    if failures > 1 and await self._wait(self._backoff(failures)):
                        return
                    trouble: Exception | None = None
                    if timetoken == "0" or gap:
                        # Where the channel stands now, before the feed is read: what is
                        # published from here on comes by push. Whether or not the push
                        # host answers, the feed fills the gap.
                        try:
                            timetoken, region = await self._connect(session)
                        except (
                            _Denied,
                            _Unreadable,
                            _Failed,
                            aiohttp.ClientError,
                            TimeoutError,
                            FlatfileError,
                        ) as exc:
                            trouble, timetoken = exc, "0"
                            self.connected = False  # said now: the feed may take a while
                    if gap:
                        async for delivery in self._fill():
                            yield delivery
                        gap = False
                    if trouble is not None:
                        raise trouble
                    # The channel answered and the gap is filled: connected, unless its
                    # long-polls come back at once with nothing.
                    self.connected = unheld < _NOT_READY_AFTER
                    if time.monotonic() >= self._refresh_at:  # before the token expires
                        await self._unless_closed(self._refresh())
                    sent = time.monotonic()
                    try:
                        next_tt, next_region, messages = await self._subscribe(
                            session, timetoken, region
                        )
                    except TimeoutError as exc:
                        if isinstance(exc, aiohttp.ClientError):
                            raise  # no connection at all: reconnect, below
                        # No answer within `hold`: a quiet channel (PubNub holds a long-poll
                        # for minutes) or a stalled one. The feed fills what a stall may
                        # have lost, and the handshake that comes first tells which it was.
                        self.timeouts += 1
                        gap = True
                        _log.debug("no answer on the push channel within hold", hold=self.hold)
                        continue
                except _Closed:
                    return
                except _Denied:
                    _log.info("the push channel refused the token; refreshing it")
                    self.connected = False
                    self._credentials = None
                    failures, gap = failures + 1, True
                    continue
                except _Unreadable as exc:
                    # Start again from now, and let the feed bring what the answer held.
                    _log.warning(
                        "a push answer could not be read; subscribing again",
                        origin=self.origin,
                        error=str(exc),
                    )
                    self.connected = False
                    failures, gap, timetoken = failures + 1, True, "0"
                    continue
                except (aiohttp.ClientError, TimeoutError, FlatfileError, _Failed) as exc:
                    self.connected = False
                    self.reconnects += 1
                    failures, gap = max(failures, 1) + 1, True
                    _log.warning(
                        "the push channel failed; reconnecting",
                        origin=self.origin,
                        error=str(exc),
                        failures=failures - 1,
                    )
                    continue
                if time.monotonic() - sent < _INSTANT and (
                    not messages or int(next_tt) <= int(timetoken)
                ):
                    # Answered at once with nothing new: this host does not hold long-polls
                    # (or sends the timetoken back). Asking again at once would spin: wait
                    # as after a failure, and let the feed bring what the channel did not.
                    self.instant += 1
                    unheld, failures, gap = unheld + 1, failures + 1, True
                    self.connected = unheld < _NOT_READY_AFTER
                    if unheld == _NOT_READY_AFTER:
                        _log.warning(
                            "the push channel answers at once with nothing new; waiting "
                            "between calls, the feed filling in",
                            origin=self.origin,
                        )
                else:
                    timetoken, region = next_tt, next_region
                    failures = unheld = 0
                    self.connected = True
                if len(messages) >= _FULL:
                    # A full answer: the channel's buffer may have overflowed, and what it
                    # dropped is older than this answer. Fill from where we stood before
                    # taking the answer (its events come again, and are dropped as seen).
                    async for delivery in self._fill():
                        yield delivery
                for message in messages:
                    raw = _event_of(message)
                    self.received += 1
                    if self.feed.observe(raw):
                        yield Delivery(raw)

    def _backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` in a row: 0.5 s doubling to ``max_backoff``,
        with jitter."""
        return backoff(failures - 1, 0.5, self.max_backoff, 0.2)

    async def _connect(self, session: aiohttp.ClientSession) -> tuple[str, str]:
        """A token if needed, then the handshake: the channel's timetoken and region now."""
        if self._credentials is None or time.monotonic() >= self._refresh_at:
            await self._unless_closed(self._refresh())
        timeout = aiohttp.ClientTimeout(total=min(self.hold, _HANDSHAKE), connect=_HANDSHAKE)
        timetoken, region, _ = await self._subscribe(session, "0", "", timeout)
        return timetoken, region

    async def _fill(self) -> AsyncIterator[Delivery]:
        """What the feed holds that was not delivered: a full poll, and the polls that go
        on from where one stopped at its most pages, until it has caught up."""
        first = True
        while first or not self.feed.caught_up:
            batch = await self._unless_closed(
                self.feed.backfill() if first else self.feed.poll_once()
            )
            first = False
            for delivery in batch:
                self.backfilled += 1
                yield delivery

    async def _unless_closed(self, call: Coroutine[Any, Any, _T]) -> _T:
        """``call``'s result; :class:`_Closed` as soon as the source is closed (a long-poll
        held by the server does not hold the source up)."""
        task = asyncio.ensure_future(call)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            raise _Closed()
        return task.result()

    async def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless closed first; True when closed."""
        try:
            await asyncio.wait_for(self._closed.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _refresh(self) -> None:
        scope = self.space_id or self.environment_id
        self._credentials = await self.client.events.subscription(scope)
        self.refreshes += 1
        ttl = self._credentials.ttl or 15.0
        self._refresh_at = time.monotonic() + ttl * 60 * 0.8

    async def _subscribe(
        self,
        session: aiohttp.ClientSession,
        timetoken: str,
        region: str,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> tuple[str, str, list[Any]]:
        """One subscribe call (``timeout``: the session's, unless given): the next
        timetoken and region, and the messages."""
        assert self._credentials is not None
        credentials = self._credentials
        key = credentials.subscribe_key
        # Each a path segment: a space id with "/" or "?" names no other path or channel.
        url = yarl.URL(self.origin) / "v2" / "subscribe" / key / self.channel / "0"
        params = {
            "tt": timetoken,
            "uuid": credentials.account_id or "flatjobs",
            "auth": credentials.token,
        }
        if region:
            params["tr"] = region
        try:
            status, raw = await self._unless_closed(
                _get(session, url, params, timeout, self.max_answer_bytes)
            )
        except AnswerTooLarge as big:
            raise _Unreadable(f"the subscribe answer of {url.host}: {big}") from None
        if status == 403:
            raise _Denied()
        if status == 400:  # PubNub's answer to a timetoken or key it does not take
            raise _Unreadable("the channel refused the subscribe call (400)")
        if status != 200:
            # Not aiohttp's own error: its text holds the URL, and the URL holds the token.
            raise _Failed(f"the push channel answered {status}")
        try:
            answer = json.loads(raw)
            cursor = answer["t"]
            messages = answer["m"]
            next_timetoken, next_region = str(cursor["t"]), str(cursor.get("r") or "")
        except (ValueError, RecursionError, KeyError, TypeError, AttributeError) as exc:
            raise _Unreadable(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if not next_timetoken.isdigit() or len(next_timetoken) > 20:
            raise _Unreadable(f"the timetoken is not a count of 100 ns: {next_timetoken[:40]!r}")
        if not isinstance(messages, list):
            raise _Unreadable("`m` is not a list")
        return next_timetoken, next_region, messages


async def _get(
    session: aiohttp.ClientSession,
    url: yarl.URL,
    params: dict[str, str],
    timeout: aiohttp.ClientTimeout | None,
    limit: int | None,
) -> tuple[int, bytes]:
    async with session.get(url, params=params, timeout=timeout or session.timeout) as resp:
        try:
            return resp.status, await read_body(resp, limit)
        except AnswerTooLarge:
            resp.close()  # the rest is not read: the connection cannot be used again
            raise


def _event_of(message: Any) -> Any:
    """The event a message carries: its ``d``, an object or a JSON string of one (passed
    on as it is when it is neither: the runner's door logs and skips it)."""
    data = message.get("d") if isinstance(message, dict) else message
    if isinstance(data, str):
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            return data
    return data
