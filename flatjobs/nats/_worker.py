"""``WorkerSource``: what a worker takes from the broker, as an event source for a runner.

A worker runs the ordinary :class:`flatjobs.Runner` (the same door, the same lifecycle);
only its source is the broker. The source pulls from two kinds of consumers:

* **jobs** (``job:ready``, ``job:parts-completed``): one shared consumer, any worker. A
  message is taken only with its job's lease; a message whose job's lease another worker
  holds is handed back for later. A redelivered ``job:ready`` (its first worker stopped,
  so its lease lapsed) finds its job still ``ready`` (run it), ended (nothing to do), or
  ``executing``: an orphan, failed with a Retry button or run again if its handler opted
  in, exactly as the reconciliation sweep would (the judgments, poison's too, are
  :class:`~flatjobs.nats._judging.Judge`'s).
* **other events**: one consumer per partition, each handing out one message at a time,
  so the events of one job (or sheet, workbook, space) are dispatched in order.

Before a message is dispatched its event id (the message id) is claimed in the events
bucket, with the message's stream sequence, for the duplicate window: a redelivery of the
same message goes through, a second copy of the event is acknowledged unrun. The stream
drops most copies itself, but not all: an acknowledged message is deleted, and a restarted
server remembers only the ids of the messages it still holds.

While a message is held its AckWait is extended, and its lease renewed, every third of the
lease's TTL, and at once when the job shows it is alive (the lifecycle's ``job_alive``
instrument call). When the runner is through with the event (``Delivery.done``), the
lease is released and then the message acknowledged; a holder whose lease was taken over
(it stalled past the TTL) is fenced: it acknowledges nothing (see
:class:`~flatjobs.nats._held.HeldMessages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as jse

from flatjobs._seconds import check_seconds
from flatjobs.errors import FlatfileError
from flatjobs.events._event import Delivery, is_valid_id
from flatjobs.instruments import INSTRUMENTS
from flatjobs.log import get_logger, shorten

from ._broker import RUN_CONSUMER, TRANSIENT, Broker, _reason
from ._held import Held, HeldMessages, WorkerStats
from ._judging import Judge, Run, Settle

if TYPE_CHECKING:
    from flatjobs.listener._listener import Listener

__all__ = ["HEADER_FETCH", "HEADER_ORPHANED", "HEADER_REPLAYED", "WorkerSource"]

HEADER_REPLAYED: Final = "Flatjobs-Replayed"
"""Set on an event from before its ingress started: its job runs only while still ready."""
HEADER_ORPHANED: Final = "Flatjobs-Orphaned"
"""Set on a sweep's delivery that re-runs an orphaned job (its handler opted in)."""
HEADER_FETCH: Final = "Flatjobs-Fetch"
"""Set on the stub of an event too large for the broker: the worker reads it from the API."""
_REFETCH: Final = "flatjobs: reconnected, pull again"
_log = get_logger("flatjobs.nats")


class WorkerSource:
    """The events a worker takes from the broker (see the module docstring): an event
    source for :class:`flatjobs.Runner`, used inside ``async with``, which keeps leases and
    messages alive until every event taken is settled.

    Args:
        broker: the connection (see :func:`flatjobs.nats.connect`).
        listener: the listener the runner dispatches to (whose handlers decide what an
            orphan becomes, and whose client reads and ends jobs).
        concurrency: jobs run at once by this worker; events that run no job have one
            more slot per partition (give the runner :attr:`runner_concurrency`).
        fetch_timeout: seconds a pull waits for messages before asking again.
    """

    def __init__(
        self,
        broker: Broker,
        listener: Listener,
        *,
        concurrency: int = 50,
        fetch_timeout: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        check_seconds("fetch_timeout", fetch_timeout, positive=True)
        self.broker = broker
        self.settings = broker.settings
        self.listener = listener
        self.concurrency = concurrency
        self.fetch_timeout = fetch_timeout
        self.stats = WorkerStats()
        self._slots = asyncio.Semaphore(concurrency)
        self._messages = HeldMessages(broker, self.stats, self._slots)
        self._judge = Judge(listener, self.settings, self.stats)
        self._queue: asyncio.Queue[tuple[Delivery, Held] | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._fetching: set[asyncio.Task[Any]] = set()
        self._subs: list[JetStreamContext.PullSubscription] = []
        self._remove_refetch: Callable[[], None] | None = None
        self._closed = asyncio.Event()

    @property
    def runner_concurrency(self) -> int:
        """What the runner's concurrency must be: the jobs, plus one event per partition."""
        return self.concurrency + self.settings.partitions

    @property
    def connected(self) -> bool:
        """True while the broker's connection is up: what ``/readyz`` reads."""
        return self.broker.connected

    @property
    def held(self) -> int:
        """Messages held now (taken and not yet settled)."""
        return len(self._messages)

    # ----------------------------------------------------------- life

    async def start(self) -> None:
        """Bind to the consumers and start pulling (``async with`` does it)."""
        if self._messages.started:
            return
        js: JetStreamContext = self.broker.js
        stream = self.settings.stream
        runs = await js.pull_subscribe_bind(durable=RUN_CONSUMER, stream=stream)
        self._subs.append(runs)
        self._tasks.append(asyncio.create_task(self._pull_runs(runs), name="flatjobs-nats-runs"))
        for p in range(self.settings.partitions):
            sub = await js.pull_subscribe_bind(durable=f"flatjobs-ev-{p}", stream=stream)
            self._subs.append(sub)
            task = asyncio.create_task(self._pull_events(sub), name=f"flatjobs-nats-ev-{p}")
            self._tasks.append(task)
        self._messages.start()
        self._remove_refetch = self.broker.on_reconnect(self._refetch)

    async def aclose(self) -> None:
        """Stop taking messages (the runner calls it when it stops); what was taken and
        not yet handed to the runner is handed back at once. Messages of events in flight
        stay held until they are settled."""
        if self._closed.is_set():
            return
        self._closed.set()
        # Cancelled again until they stop: asyncio.wait_for (in nats-py's pulls) can swallow
        # a cancellation that meets a message on its way in (Python 3.11).
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        for sub in self._subs:
            # A pull still open at the server would take messages no one reads (until their
            # AckWait): what arrived is handed back, and the interest withdrawn.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                if sub.pending_msgs:
                    for msg in await sub.fetch(sub.pending_msgs, timeout=0.2):
                        await msg.nak()
                await sub.unsubscribe()
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                await self._messages.finish(item[1], "nak")
        self._queue.put_nowait(None)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        if self._remove_refetch is not None:
            self._remove_refetch()
        await self._messages.stop()

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        if not self._messages.started:
            raise RuntimeError("use the WorkerSource inside `async with`")
        while True:
            item = await self._queue.get()
            if item is None:
                self._queue.put_nowait(None)  # for any other reader
                return
            self.stats.taken += 1
            yield item[0]

    # ----------------------------------------------------------- pulling

    async def _fetch(self, sub: JetStreamContext.PullSubscription, batch: int) -> list[Msg]:
        """Up to ``batch`` messages, or none after ``fetch_timeout`` (or a reconnection:
        a pull made before a server restart is unknown to the new server)."""
        task = asyncio.current_task()
        assert task is not None
        self._fetching.add(task)
        try:
            return await sub.fetch(batch, timeout=self.fetch_timeout)
        except asyncio.CancelledError as cancel:
            if cancel.args != (_REFETCH,) or self._closed.is_set():
                raise
            task.uncancel()
            return []
        except nats.errors.TimeoutError:
            return []
        except Exception as error:
            if not isinstance(error, TRANSIENT):
                _log.error("pulling messages failed; trying again", error=_reason(error))
            await asyncio.sleep(0.5)
            return []
        finally:
            self._fetching.discard(task)

    def _refetch(self) -> None:
        for task in self._fetching:
            task.cancel(_REFETCH)

    async def _pull_runs(self, sub: JetStreamContext.PullSubscription) -> None:
        # While messages wait, pull a batch (a free slot each); when none did, wait with a
        # pull of one (nats-py asks for a batch in two round trips: probe, then wait).
        batch, waiting = self.settings.fetch_batch, 0
        while not self._closed.is_set():
            await self._slots.acquire()
            wanted = 1
            while waiting and wanted < batch and not self._slots.locked():
                await self._slots.acquire()
                wanted += 1
            msgs: list[Msg] = []
            try:
                msgs = await self._fetch(sub, wanted)
            finally:  # the slots of what did not come (all of them, when cancelled)
                for _ in range(wanted - len(msgs)):
                    self._slots.release()
            waiting = int(msgs[-1].metadata.num_pending) if msgs else 0
            if len(msgs) == 1:
                await self._take_job(msgs[0])
            elif msgs:
                await asyncio.gather(*(self._take_job(m) for m in msgs))

    async def _pull_events(self, sub: JetStreamContext.PullSubscription) -> None:
        while not self._closed.is_set():
            for msg in await self._fetch(sub, 1):
                held = await self._take_event(msg)
                await held.finished.wait()  # the partition's next waits for this one

    # ----------------------------------------------------------- taking

    @contextlib.asynccontextmanager
    async def _or_hand_back(self, held: Held, what: str) -> AsyncIterator[None]:
        """Take ``held`` inside; stopping meanwhile hands it back at once, an error after a
        second (logged, naming ``what``)."""
        try:
            yield
        except asyncio.CancelledError:
            await asyncio.shield(self._messages.finish(held, "nak"))
            raise
        except Exception as exc:
            _log.exception(
                f"could not take {what}; handing it back",
                subject=shorten(held.msg.subject, 200),
                error=_reason(exc),
            )
            await self._messages.finish(held, "nak", delay=1.0)

    async def _take_job(self, msg: Msg) -> None:
        held = Held(msg, slot=True)
        async with self._or_hand_back(held, "a job's message"):
            if await self._messages.hold_job(held):
                await self._dispatch(held)

    async def _take_event(self, msg: Msg) -> Held:
        held = Held(msg)
        async with self._or_hand_back(held, "an event's message"):
            self._messages.register(held)
            await self._dispatch(held)
        return held

    async def _dispatch(self, held: Held) -> None:
        """Hand ``held``'s event to the runner, unless it is settled here: not an event, a
        second copy of one, or judged so (poison, a redelivered job's: :class:`Judge`)."""
        raw, replayed, orphaned = await self._read(held)
        if raw is None or not await self._first(held, raw):
            return
        leased = held.lease is not None  # a job's message (only a job's re-runs an orphan)
        verdict = await self._judge.verdict(
            raw,
            int(held.msg.metadata.num_delivered),
            leased=leased,
            replayed=replayed,
            orphaned=orphaned and leased,
        )
        if isinstance(verdict, Settle):
            await self._messages.finish(held, verdict.how, delay=verdict.delay)
        else:
            self._hand(held, raw, verdict)

    def _hand(self, held: Held, raw: dict[str, Any], run: Run) -> None:
        done = functools.partial(self._messages.finish, held, "ack")
        headers = dict(held.msg.headers or {}) if INSTRUMENTS else None  # trace context
        delivery = Delivery(
            raw, replayed=run.replayed, orphaned=run.orphaned, done=done, headers=headers
        )
        self._queue.put_nowait((delivery, held))

    async def _read(self, held: Held) -> tuple[dict[str, Any] | None, bool, bool]:
        """The event a message carries, and its flags; None when it is not an event (the
        message is terminated) or cannot be had now (handed back)."""
        msg = held.msg
        headers = msg.headers or {}
        try:
            raw = json.loads(msg.data)
        except (ValueError, RecursionError):
            raw = None
        if not isinstance(raw, dict):
            self.stats.malformed += 1
            _log.error(
                "a message that is not an event was terminated",
                subject=shorten(msg.subject, 200),
                size=len(msg.data),
            )
            await self._messages.finish(held, "term")
            return None, False, False
        if headers.get(HEADER_FETCH):
            try:
                raw = await self._full_event(raw)
            except (FlatfileError, ValueError) as err:
                shown = shorten(repr(raw.get("id")), 200)
                _log.warning(
                    "could not read a large event from the API; handing it back",
                    event_id=shown,
                    error=str(err),
                )
                await self._messages.finish(held, "nak", delay=min(5.0, self.settings.ack_wait))
                return None, False, False
        return raw, bool(headers.get(HEADER_REPLAYED)), bool(headers.get(HEADER_ORPHANED))

    async def _first(self, held: Held, raw: dict[str, Any]) -> bool:
        """Whether ``held`` is its event's message to dispatch (:meth:`Broker.claim`); a
        second copy of an event already dispatched is acknowledged here."""
        msg_id = (held.msg.headers or {}).get("Nats-Msg-Id")
        if not msg_id:
            return True  # not published by an ingress: nothing to claim it by
        try:
            first = await self.broker.claim(msg_id, held.seq)
        except (nats.errors.Error, jse.APIError) as err:
            # Dispatched unclaimed: the claim only guards against an event stored twice,
            # which is rare; a job's lease still keeps it from running twice. Stalling
            # every message on a broken bucket would strand them all.
            _log.warning(
                "could not claim an event id; dispatching it unclaimed",
                seq=held.seq,
                error=_reason(err),
            )
            return True
        if first is None:
            return True
        self.stats.duplicates += 1
        event_id = shorten(repr(raw.get("id")), 200)
        _log.debug(
            "an event already dispatched was stored again; acknowledged unrun",
            event_id=event_id,
            seq=held.seq,
            first_seq=first,
        )
        await self._messages.finish(held, "ack")
        return False

    async def _full_event(self, stub: dict[str, Any]) -> dict[str, Any]:
        event_id = stub.get("id")
        if not isinstance(event_id, str) or not is_valid_id(event_id):
            raise ValueError("the large event's id is not a well-formed id")
        data = await self.listener.client.events.get_raw(event_id)
        if data.get("id") != event_id:
            raise ValueError(f"GET /events/{event_id} did not answer with the event")
        self.stats.fetched += 1
        return data
