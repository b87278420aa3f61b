"""``Ingress``: events from the platform into the stream, each dispatched once.

An ingress takes events from an event source (push or polling), checks each at the door
as a runner would, drops what none of the listener's callbacks takes, and publishes the
rest with the event id as the message id, so any number of ingress processes can read the
same feed. Within the stream's duplicate window an event published again is dispatched
once: the stream drops the copy while the server remembers the id (after a restart, only
the ids of the messages it still stores: an acknowledged message is deleted), and a
worker that takes a copy the stream stored anyway finds the event id claimed and
acknowledges it unrun (see ``WorkerSource``). Published again after the window, an event
is dispatched again (its job does not run twice: it is no longer ready).

* Events that run a job go to ``<prefix>.run.<job id>``; the others to
  ``<prefix>.ev.<key>``, where the key is the event's job, else its sheet, workbook or
  space: the stream spreads those keys over ordered partitions.
* The feed's cursor (the newest event published) is kept in the bucket, so a restarted
  ingress goes on from where the last one stopped (at most a day back); events from before
  it started are marked replayed, and their jobs run only while still ready.
* The reconciliation sweep runs in one ingress at a time (the holder of the ``sweeper``
  lease); what it finds goes into the stream like any event.
* An event too large for the broker is published as a stub the worker completes from the
  API; one that cannot be published at all is logged and skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from typing import TYPE_CHECKING, Any, Final

import attrs
import nats.errors
import nats.js.errors as jse

from flatjobs._seconds import check_seconds
from flatjobs.errors import FlatfileError, InvalidEventError
from flatjobs.events._event import FlatfileEvent, is_valid_id
from flatjobs.instruments import forward
from flatjobs.log import get_logger, shorten
from flatjobs.running._sweep import Reconciler
from flatjobs.sources import Delivery, EventSource, PollingSource, event_key

from ._broker import TRANSIENT, Broker, _reason
from ._lease import Lease, LeaseLost
from ._settings import RUN_TOPICS, token
from ._worker import HEADER_FETCH, HEADER_ORPHANED, HEADER_REPLAYED

if TYPE_CHECKING:
    from flatjobs.listener._listener import Listener

__all__ = ["Ingress", "IngressStats", "order_key"]

_log = get_logger("flatjobs.nats")
_HEADROOM: Final = 1024  # bytes kept for headers under the server's max payload
_MAX_CATCH_UP: Final = dt.timedelta(days=1)
_ORDER_KEYS: Final = ("sheetId", "workbookId", "spaceId", "environmentId")


@attrs.define
class IngressStats:
    """What an ingress did."""

    received: int = 0
    published: int = 0
    """Events stored in the stream."""
    duplicates: int = 0
    """Events the stream had already (another ingress, or a feed read again)."""
    unmatched: int = 0
    """Events no callback of the listener takes: not published."""
    invalid: int = 0
    """Malformed events, logged and skipped."""
    too_large: int = 0
    """Events too large for the broker, published as a stub the worker completes."""
    dropped: int = 0
    """Events that could not be published at all, logged and skipped."""
    sweeps: int = 0
    """Reconciliation sweeps this ingress ran (as the one holding the ``sweeper`` lease)."""


def order_key(event: FlatfileEvent) -> str:
    """What orders ``event`` among others: its job, else its sheet, workbook, space or
    environment (the first it names)."""
    if event.job_id is not None:
        return event.job_id
    context = event.raw.get("context")
    for name in _ORDER_KEYS:
        value = context.get(name) if isinstance(context, dict) else None
        if isinstance(value, str) and value:
            return value
    return "-"


def _feed_of(source: EventSource | None) -> PollingSource | None:
    """The polling source whose cursor says where ``source`` stands (a push source's
    feed fills its gaps from there)."""
    if isinstance(source, PollingSource):
        return source
    feed = getattr(source, "feed", None)
    return feed if isinstance(feed, PollingSource) else None


def _created_at(raw: Any) -> dt.datetime | None:
    value = raw.get("createdAt") if isinstance(raw, dict) else None
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


class Ingress:
    """Publishes what ``source`` delivers (and what ``sweep`` finds) into the stream; see
    the module docstring. :meth:`run` until :meth:`stop`.

    Args:
        broker: the connection (see :func:`flatjobs.nats.connect`).
        listener: the listener the workers run: only events it takes are published.
        source: where events come from (``PushSource`` or ``PollingSource``).
        sweep: the reconciliation sweep (give it ``running=broker.job_running``).
        cursor_every: seconds between saves of the feed's cursor.
    """

    def __init__(
        self,
        broker: Broker,
        listener: Listener,
        source: EventSource,
        *,
        sweep: Reconciler | None = None,
        cursor_every: float = 1.0,
    ) -> None:
        check_seconds("cursor_every", cursor_every, positive=True)
        self.broker = broker
        self.listener = listener
        self.source = source
        self.sweep = sweep
        self.cursor_every = cursor_every
        self.stats = IngressStats()
        self._feed = _feed_of(source)
        self._through: dt.datetime | None = None  # the newest event published
        self._saved: dt.datetime | None = None
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Stop taking events (safe from a signal handler)."""
        self._stop.set()

    @property
    def connected(self) -> bool:
        """True while the broker's connection is up and the source is connected (a source
        without a ``connected`` attribute counts as connected): what ``/readyz`` reads."""
        return self.broker.connected and getattr(self.source, "connected", None) is not False

    @property
    def cursor_key(self) -> str | None:
        """The bucket key of this feed's cursor (None: the source has no cursor)."""
        feed = self._feed
        if feed is None:
            return None
        key = f"cursor.{token(feed.environment_id)}"
        return f"{key}.{token(feed.space_id)}" if feed.space_id else key

    async def run(self) -> IngressStats:
        """Publish until :meth:`stop` (or until the source ends); returns the stats.

        Raises:
            Exception: what the source raised, if it failed.
        """
        await self._restore()
        consume = asyncio.create_task(self._consume(), name="flatjobs-ingress")
        helpers = [asyncio.create_task(self._save_cursor_every(), name="flatjobs-cursor")]
        if self.sweep is not None:
            helpers.append(asyncio.create_task(self._sweeping(self.sweep), name="flatjobs-sweep"))
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({consume, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (consume, stopper, *helpers):
                task.cancel()
            await asyncio.gather(consume, stopper, *helpers, return_exceptions=True)
            aclose = getattr(self.source, "aclose", None)
            if aclose is not None:
                await aclose()
            try:
                await asyncio.wait_for(self._save_cursor(), 5.0)
            except (*TRANSIENT, nats.errors.Error, jse.APIError, TimeoutError) as exc:
                # The broker is away: the next ingress starts from the last cursor saved
                # (and re-reads a little more, dispatched once by the workers' claims).
                _log.warning("could not save the feed's cursor at stop", error=_reason(exc))
        if not consume.cancelled() and consume.exception() is not None:
            raise consume.exception()  # type: ignore[misc]
        return self.stats

    # ----------------------------------------------------------- publishing

    async def _consume(self) -> None:
        async for item in self.source:
            delivery = item if isinstance(item, Delivery) else Delivery(item)
            await self.publish(delivery)
            # Done with it, published or not: the cursor may move past it.
            created = _created_at(delivery.raw)
            if created is not None:
                created = min(created, dt.datetime.now(dt.UTC))
                if self._through is None or created > self._through:
                    self._through = created
            if self._stop.is_set():
                return

    async def publish(self, delivery: Delivery, *, swept: bool = False) -> None:
        """Check one event and publish it if a callback takes it (retrying while the
        broker is away; the message id makes a retry harmless)."""
        self.stats.received += 1
        try:
            event = FlatfileEvent.parse(delivery.raw)
        except InvalidEventError as exc:
            self.stats.invalid += 1
            raw = delivery.raw
            event_id = raw.get("id") if isinstance(raw, dict) else None
            _log.error(
                "malformed event skipped", problem=str(exc), event_id=shorten(repr(event_id), 200)
            )
            return
        if not self.listener.match(event):
            self.stats.unmatched += 1
            return
        raw = event.raw
        prefix = self.broker.settings.prefix
        if event.topic in RUN_TOPICS and event.job_id is not None:
            subject = f"{prefix}.run.{token(event.job_id)}"
        else:
            subject = f"{prefix}.ev.{token(order_key(event))}"
        ident = event_key(raw)
        if swept:  # a sweep's event has one id per job: its time says which state it saw
            ident = f"{ident}@{raw.get('createdAt')}{'~orphaned' if delivery.orphaned else ''}"
        headers = {**forward(raw), "Nats-Msg-Id": token(ident)}  # trace context, if traced
        if delivery.replayed:
            headers[HEADER_REPLAYED] = "1"
        if delivery.orphaned:
            headers[HEADER_ORPHANED] = "1"
        payload = self._payload(raw, headers)
        if payload is None:
            return
        try:
            ack = await self.broker.publish(subject, payload, headers)
        except jse.APIError as err:  # refused: this event only, never the ingress
            self.stats.dropped += 1
            _log.error(
                "the stream refused an event; skipped",
                event_id=shorten(repr(raw.get("id")), 200),
                error=_reason(err),
            )
            return
        if ack.duplicate:
            self.stats.duplicates += 1
        else:
            self.stats.published += 1

    def _payload(self, raw: Any, headers: dict[str, str]) -> bytes | None:
        """The message body: the event, or a stub when it is too large for the broker."""
        event_id = raw.get("id")
        try:
            payload = json.dumps(raw, separators=(",", ":")).encode()
        except (ValueError, TypeError, RecursionError) as exc:
            self.stats.dropped += 1
            _log.error(
                "an event cannot be encoded for the broker; skipped",
                event_id=shorten(repr(event_id), 200),
                error=str(exc),
            )
            return None
        limit = self.broker.max_payload - _HEADROOM
        if len(payload) <= limit:
            return payload
        stub = {k: raw[k] for k in ("id", "topic", "domain", "context", "createdAt") if k in raw}
        small = json.dumps(stub, separators=(",", ":")).encode()
        if not is_valid_id(event_id) or len(small) > limit:
            self.stats.dropped += 1
            _log.error(
                "an event is too large for the broker and cannot be read again by its id; skipped",
                event_id=shorten(repr(event_id), 200),
                size=len(payload),
                max_payload=self.broker.max_payload,
            )
            return None
        self.stats.too_large += 1
        _log.warning(
            "an event is too large for the broker; workers read it from the API",
            event_id=event_id,
            size=len(payload),
        )
        headers[HEADER_FETCH] = "1"
        return small

    # ----------------------------------------------------------- the cursor

    async def _restore(self) -> None:
        key, feed = self.cursor_key, self._feed
        if key is None or feed is None:
            return
        try:
            entry = await self.broker.kv.get(key)
            saved = dt.datetime.fromisoformat(json.loads(entry.value or b"{}")["cursor"])
        except jse.KeyNotFoundError:
            _log.info("no cursor saved for this feed yet; starting from now", key=key)
            return
        except (*TRANSIENT, jse.APIError) as exc:
            _log.warning(
                "the saved cursor cannot be read; starting from now", key=key, error=_reason(exc)
            )
            return
        except (ValueError, KeyError, TypeError) as exc:
            _log.warning(
                "the saved cursor cannot be read; starting from now", key=key, error=str(exc)
            )
            return
        oldest = dt.datetime.now(dt.UTC) - _MAX_CATCH_UP
        if saved < oldest:
            _log.warning(
                "the saved cursor is more than a day old; catching up from a day ago",
                saved=saved.isoformat(),
            )
            saved = oldest
        feed.cursor = saved
        self._saved = self._through = saved
        _log.info("resuming the feed where the last ingress stopped", cursor=saved.isoformat())

    async def _save_cursor_every(self) -> None:
        while True:
            await asyncio.sleep(self.cursor_every)
            try:
                await self._save_cursor()
            except (*TRANSIENT, jse.APIError) as exc:
                _log.debug("could not save the feed's cursor; trying again", error=_reason(exc))

    async def _save_cursor(self) -> None:
        """Move the saved cursor forward to what was published (never back: several
        ingress processes each move it to what they published)."""
        key, through = self.cursor_key, self._through
        if key is None or through is None or (self._saved is not None and through <= self._saved):
            return
        kv = self.broker.kv
        value = json.dumps({"cursor": through.isoformat(), "by": self.broker.owner}).encode()
        for _ in range(5):
            try:
                entry = await kv.get(key)
                saved = dt.datetime.fromisoformat(json.loads(entry.value or b"{}")["cursor"])
                last = entry.revision or 0
            except jse.KeyNotFoundError as gone:
                saved, last = None, (gone.entry.revision or 0) if gone.entry else 0
            except (ValueError, KeyError, TypeError):
                saved, last = None, None
            if saved is not None and saved >= through:
                self._saved = through
                return
            try:
                if last is None:
                    await kv.put(key, value)
                else:
                    await kv.update(key, value, last=last)
            except jse.KeyWrongLastSequenceError:
                continue  # another ingress moved it: read again
            except jse.BadRequestError as err:
                if err.err_code != 10071:
                    raise
                continue
            self._saved = through
            return

    # ----------------------------------------------------------- the sweep

    async def _sweeping(self, sweep: Reconciler) -> None:
        ttl = max(2, math.ceil(sweep.interval * 2 + 1))
        lease: Lease | None = None
        while True:
            lease = await self._lead(lease, ttl)
            if lease is not None:
                try:
                    deliveries = await sweep.sweep()
                except FlatfileError as err:
                    _log.error(
                        "the reconciliation sweep failed; trying again later", error=str(err)
                    )
                else:
                    self.stats.sweeps += 1
                    for delivery in deliveries:
                        await self.publish(delivery, swept=True)
            await asyncio.sleep(sweep.interval)

    async def _lead(self, lease: Lease | None, ttl: int) -> Lease | None:
        """The ``sweeper`` lease, kept or taken; None while another ingress holds it."""
        leases = self.broker.leases
        try:
            if lease is not None:
                try:
                    await leases.renew(lease, role="sweeper")
                    return lease
                except LeaseLost:
                    pass
            return await leases.acquire("sweeper", ttl, role="sweeper")
        except (*TRANSIENT, jse.APIError) as exc:
            _log.warning(
                "could not take the sweeper's lease; not sweeping this round", error=_reason(exc)
            )
            return None
