"""``WorkerSource``: what a worker takes from the broker, as an event source for a runner.

A worker runs the ordinary :class:`flatjobs.Runner` (the same door, the same lifecycle);
only its source is the broker. The source pulls from two kinds of consumers:

* **jobs** (``job:ready``, ``job:parts-completed``): one shared consumer, any worker. A
  message is taken only with its job's lease; a message whose job's lease another worker
  holds is handed back for later. A redelivered ``job:ready`` (its first worker stopped,
  so its lease lapsed) finds its job still ``ready`` (run it), ended (nothing to do), or
  ``executing``: an orphan, failed with a Retry button or run again if its handler opted
  in, exactly as the reconciliation sweep would.
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
(it stalled past the TTL) is fenced: it acknowledges nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self

import attrs
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as jse

from flatjobs._seconds import check_seconds, seconds
from flatjobs.errors import FlatfileError
from flatjobs.events._event import Delivery, is_valid_id, job_id_of
from flatjobs.events._topics import JOB_READY
from flatjobs.instruments import INSTRUMENTS, Instrument, add_instrument
from flatjobs.log import get_logger, shorten
from flatjobs.models import TERMINAL_STATUSES, Job, JobStatus
from flatjobs.running._orphans import Orphans

from ._broker import RUN_CONSUMER, TRANSIENT, Broker, _reason
from ._lease import Lease, LeaseLost

if TYPE_CHECKING:
    from flatjobs.listener._listener import Listener

__all__ = [
    "HEADER_FETCH",
    "HEADER_ORPHANED",
    "HEADER_REPLAYED",
    "POISON_MESSAGE",
    "WorkerSource",
    "WorkerStats",
]

HEADER_REPLAYED: Final = "Flatjobs-Replayed"
"""Set on an event from before its ingress started: its job runs only while still ready."""
HEADER_ORPHANED: Final = "Flatjobs-Orphaned"
"""Set on a sweep's delivery that re-runs an orphaned job (its handler opted in)."""
HEADER_FETCH: Final = "Flatjobs-Fetch"
"""Set on the stub of an event too large for the broker: the worker reads it from the API."""
POISON_MESSAGE: Final = (
    "The workers running this job kept stopping before it finished, so it is not run again. "
    "Retry to run it once more."
)
_REFETCH: Final = "flatjobs: reconnected, pull again"
_log = get_logger("flatjobs.nats")


@attrs.define
class WorkerStats:
    """What a worker's source did."""

    taken: int = 0
    """Messages handed to the runner."""
    busy: int = 0
    """Job messages handed back because another worker held the job's lease."""
    orphans_failed: int = 0
    """Redelivered jobs found executing with no holder, failed with a Retry button."""
    orphans_rerun: int = 0
    """Redelivered jobs found executing with no holder, run again (their handler opted in)."""
    poisoned: int = 0
    """Messages delivered more than ``max_deliver`` times, terminated."""
    malformed: int = 0
    """Messages that were not an event, terminated."""
    fetched: int = 0
    """Events too large for the broker, read from the API."""
    fenced: int = 0
    """Leases another worker took over while this one held them."""
    acked: int = 0
    """Messages acknowledged."""
    duplicates: int = 0
    """Messages of an event already dispatched (stored again after the stream forgot its
    id), acknowledged unrun."""


@attrs.define(eq=False)
class _Held:
    """A message this worker holds, until it is settled."""

    msg: Msg
    slot: bool = False
    lease: Lease | None = None
    extended: float = 0.0
    fenced: bool = False
    settled: bool = False
    lock: asyncio.Lock = attrs.Factory(asyncio.Lock)
    finished: asyncio.Event = attrs.Factory(asyncio.Event)

    @property
    def seq(self) -> int:
        return int(self.msg.metadata.sequence.stream)


class _Alive(Instrument):
    """The lifecycle's heartbeat renews the lease and the message of the job it is about."""

    def __init__(self, on_alive: Callable[[str], None]) -> None:
        self._on_alive = on_alive

    def job_alive(self, job_id: str) -> None:
        self._on_alive(job_id)


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
        self._orphans = Orphans(listener)  # an orphan's fate: fail, or run again
        self._slots = asyncio.Semaphore(concurrency)
        self._queue: asyncio.Queue[tuple[Delivery, _Held] | None] = asyncio.Queue()
        self._held: set[_Held] = set()
        self._by_key: dict[str, _Held] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._fetching: set[asyncio.Task[Any]] = set()
        self._subs: list[JetStreamContext.PullSubscription] = []
        self._background: set[asyncio.Task[None]] = set()
        self._keeper: asyncio.Task[None] | None = None
        self._removers: list[Callable[[], None]] = []
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
        return len(self._held)

    # ----------------------------------------------------------- life

    async def start(self) -> None:
        """Bind to the consumers and start pulling (``async with`` does it)."""
        if self._keeper is not None:
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
        self._keeper = asyncio.create_task(self._keep(), name="flatjobs-nats-keeper")
        self._removers = [
            add_instrument(_Alive(self._alive)),
            self.broker.on_reconnect(self._refetch),
        ]

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
                await self._finish(item[1], "nak")
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
        for remove in self._removers:
            remove()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        for task in list(self._background):
            task.cancel()
        # Messages still held (a body that ignored its cancellation) are left to AckWait.

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        if self._keeper is None:
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
                if held is not None:  # the partition's next waits for this one anyway
                    await held.finished.wait()

    # ----------------------------------------------------------- taking

    def _register(self, held: _Held, key: str | None = None) -> None:
        held.extended = asyncio.get_running_loop().time()
        self._held.add(held)
        if key is not None:
            self._by_key[key] = held

    @contextlib.asynccontextmanager
    async def _or_hand_back(self, held: _Held, what: str) -> AsyncIterator[None]:
        """Take ``held`` inside; stopping meanwhile hands it back at once, an error after a
        second (logged, naming ``what``)."""
        try:
            yield
        except asyncio.CancelledError:
            await asyncio.shield(self._finish(held, "nak"))
            raise
        except Exception as exc:
            _log.exception(
                f"could not take {what}; handing it back",
                subject=shorten(held.msg.subject, 200),
                error=_reason(exc),
            )
            await self._finish(held, "nak", delay=1.0)

    async def _take_job(self, msg: Msg) -> None:
        held = _Held(msg, slot=True)
        async with self._or_hand_back(held, "a job's message"):
            await self._take_job_held(held)

    async def _take_job_held(self, held: _Held) -> None:
        msg, settings = held.msg, self.settings
        key = "job." + msg.subject.rpartition(".")[2]
        mine = self._by_key.get(key)
        if mine is not None and mine.seq == held.seq:
            # Delivered again while this worker runs it (it stalled past AckWait): the
            # running one keeps it (its keeper takes a lapsed lease back) and settles it.
            self._free(held)
            return
        lease = None
        if mine is None:
            lease = await self.broker.leases.acquire(key, settings.lease_ttl, seq=held.seq)
        if lease is None:  # another event of a job running here or elsewhere: later
            holder = await self.broker.leases.holder(key)
            until = holder.get("until") if holder else None
            wait = until - time.time() + 0.2 if isinstance(until, int | float) else 1.0
            # Read back as JSON, a lease's expiry may be NaN: then as if it were unknown.
            delay = seconds(min(max(wait, 0.2), settings.ack_wait))
            self.stats.busy += 1
            await self._finish(held, "nak", delay=delay if delay is not None else 1.0)
            return
        held.lease = lease
        self._register(held, key)
        raw, replayed, orphaned = await self._read(held)
        if raw is None or not await self._first(held, raw):
            return
        delivered = int(msg.metadata.num_delivered)
        if delivered > settings.max_deliver:
            await self._poison(held, raw)
            return
        if delivered > 1 and raw.get("topic") == JOB_READY and not orphaned:
            # Its first worker stopped (its lease lapsed: this one has it now).
            fate = await self._redelivered(held, raw, delivered)
            if fate is None:
                return
            replayed, orphaned = True, fate
        self._hand(held, raw, replayed=replayed, orphaned=orphaned)

    async def _take_event(self, msg: Msg) -> _Held | None:
        held = _Held(msg)
        async with self._or_hand_back(held, "an event's message"):
            self._register(held)
            raw, replayed, _ = await self._read(held)
            if raw is None or not await self._first(held, raw):
                return held
            if int(msg.metadata.num_delivered) > self.settings.max_deliver:
                await self._poison(held, raw)
                return held
            self._hand(held, raw, replayed=replayed, orphaned=False)
        return held

    def _hand(self, held: _Held, raw: dict[str, Any], *, replayed: bool, orphaned: bool) -> None:
        done = functools.partial(self._finish, held, "ack")
        headers = dict(held.msg.headers or {}) if INSTRUMENTS else None  # trace context
        delivery = Delivery(raw, replayed=replayed, orphaned=orphaned, done=done, headers=headers)
        self._queue.put_nowait((delivery, held))

    async def _read(self, held: _Held) -> tuple[dict[str, Any] | None, bool, bool]:
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
            await self._finish(held, "term")
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
                await self._finish(held, "nak", delay=min(5.0, self.settings.ack_wait))
                return None, False, False
        return raw, bool(headers.get(HEADER_REPLAYED)), bool(headers.get(HEADER_ORPHANED))

    async def _first(self, held: _Held, raw: dict[str, Any]) -> bool:
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
        await self._finish(held, "ack")
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

    async def _redelivered(self, held: _Held, raw: dict[str, Any], delivered: int) -> bool | None:
        """A ``job:ready`` delivered again: whether its job runs as an orphan (True), runs
        only while ready (False), or not at all (None: the message is settled here)."""
        job_id = job_id_of(raw)
        if job_id is None:
            return False  # malformed: the runner's door says so
        try:
            job = await self.listener.client.jobs.get(job_id)
        except FlatfileError as err:
            _log.warning(
                "could not read a redelivered job; handing it back", job_id=job_id, error=str(err)
            )
            await self._finish(held, "nak", delay=min(5.0, self.settings.ack_wait))
            return None
        if job.status in TERMINAL_STATUSES:
            await self._finish(held, "ack")
            return None
        if job.status != JobStatus.EXECUTING:
            return False
        wait = self._still_beating(job)
        if wait is not None:
            # Its worker lost the broker, not the platform: it runs. Look again later.
            _log.info(
                "a redelivered job is executing and still heartbeating; looking again later",
                job_id=job_id,
                retry_in=round(wait, 1),
            )
            await self._finish(held, "nak", delay=min(wait, self.settings.ack_wait))
            return None
        why = f"its worker stopped (the message's delivery {delivered}; no one held its lease)"
        rerun, _ = await self._orphans.end(job, why=why)
        if rerun is None:
            self.stats.orphans_failed += 1
            await self._finish(held, "ack")
            return None
        self.stats.orphans_rerun += 1
        return True

    def _still_beating(self, job: Job) -> float | None:
        """Seconds until ``job`` (executing) has been silent for 1.5 heartbeats of its
        handler, or None if it has (or its handler sends none: its lease lapsed, and
        silence cannot say it is alive)."""
        left = self._orphans.silent_left(job, 1.5)
        return left + 0.2 if left is not None and left > 0 else None

    async def _poison(self, held: _Held, raw: dict[str, Any]) -> None:
        self.stats.poisoned += 1
        delivered = int(held.msg.metadata.num_delivered)
        job_id = job_id_of(raw)
        _log.error(
            "a message was delivered too many times; it is terminated as poison",
            deliveries=delivered,
            max_deliver=self.settings.max_deliver,
            event_id=shorten(repr(raw.get("id")), 200),
            topic=shorten(repr(raw.get("topic")), 100),
            job_id=job_id,
        )
        if raw.get("topic") == JOB_READY and job_id is not None and held.lease is not None:
            await self._orphans.fail(job_id, POISON_MESSAGE, heartbeats=1.5)
        await self._finish(held, "term")

    # ----------------------------------------------------------- settling

    def _free(self, held: _Held) -> None:
        held.settled = True
        self._held.discard(held)
        for key, mine in list(self._by_key.items()):
            if mine is held:
                del self._by_key[key]
        if held.slot:
            held.slot = False
            self._slots.release()
        held.finished.set()

    async def _finish(
        self,
        held: _Held,
        how: Literal["ack", "nak", "term"],
        *,
        delay: float | None = None,
    ) -> None:
        """Settle ``held``: release its lease (a fenced holder stops there), then ``how``."""
        async with held.lock:
            if held.settled:
                return
            try:
                if held.fenced and held.lease is not None:
                    await self._take_back(held, held.lease)  # free again meanwhile?
                if held.lease is not None and not held.fenced:
                    held.fenced = not await self._release(held.lease)
                if held.fenced:
                    _log.error(
                        "this worker's lease on a job was taken over while it ran; its "
                        "message is left to the worker that holds it now",
                        lease=held.lease.key if held.lease else None,
                    )
                    return
                await self._settle(held.msg, how, delay, sync=held.lease is None)
            finally:
                self._free(held)

    async def _release(self, lease: Lease) -> bool:
        """Release ``lease``; False when another worker holds it now (fenced)."""
        while True:
            try:
                if await self.broker.leases.release(lease):
                    return True
                # Lapsed: fenced only if someone took it since.
                holder = await self.broker.leases.holder(lease.key)
            except TRANSIENT:
                if self.broker.closing:
                    return True
                await asyncio.sleep(0.2)
                continue
            if holder is not None and holder.get("owner") != self.broker.owner:
                self.stats.fenced += 1
                return False
            return True

    async def _settle(
        self,
        msg: Msg,
        how: Literal["ack", "nak", "term"],
        delay: float | None,
        *,
        sync: bool = True,
    ) -> None:
        """``ack`` (with ``sync``, waiting for the server's word, tried again while the
        broker is away), ``nak`` (with ``delay``) or ``term`` the message.

        A job's message is acknowledged without waiting: should that be lost, the message
        comes back to a worker that finds the job ended, and acknowledges it. Another
        event's waits: lost, its callbacks would run again."""
        wait = 0.1
        while True:
            try:
                if how == "ack":
                    if sync:
                        await msg.ack_sync(timeout=2.0)
                    else:
                        await msg.ack()
                    self.stats.acked += 1
                elif how == "nak":
                    await msg.nak(delay=delay)
                else:
                    await msg.term()
                return
            except nats.errors.MsgAlreadyAckdError:
                return
            except (*TRANSIENT, nats.errors.ConnectionClosedError) as err:
                if self.broker.closing or isinstance(err, nats.errors.ConnectionClosedError):
                    _log.warning(
                        "a message could not be settled before the connection "
                        "closed; it will be delivered again",
                        how=how,
                    )
                    return
            await asyncio.sleep(wait)
            wait = min(wait * 2, 2.0)

    # ----------------------------------------------------------- keeping alive

    def _alive(self, job_id: str) -> None:
        held = self._by_key.get(self.broker.job_key(job_id))
        if held is None or held.settled:
            return
        if asyncio.get_running_loop().time() - held.extended >= self.settings.renew_every / 2:
            task = asyncio.ensure_future(self._extend(held))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _keep(self) -> None:
        every = self.settings.renew_every
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every / 2)
            now = loop.time()
            due = [h for h in self._held if not h.settled and now - h.extended >= every]
            if due:
                await asyncio.gather(*(self._extend(h) for h in due))

    async def _extend(self, held: _Held) -> None:
        """Extend ``held``'s AckWait and renew its lease (taking a lapsed one back when no
        one else took it)."""
        loop = asyncio.get_running_loop()
        async with held.lock:
            if held.settled:
                return
            if loop.time() - held.extended < self.settings.renew_every / 2:
                return  # another call just did
            try:
                if held.fenced and held.lease is not None:
                    await self._take_back(held, held.lease)
                if held.fenced:
                    return
                await held.msg.in_progress()
                if held.lease is not None:
                    await self._renew(held, held.lease)
                held.extended = loop.time()
            except (*TRANSIENT, nats.errors.ConnectionClosedError):
                pass  # the broker is away: the connection says so; tried again next round

    async def _renew(self, held: _Held, lease: Lease) -> None:
        try:
            await self.broker.leases.renew(lease, seq=held.seq)
        except LeaseLost:
            await self._take_back(held, lease)

    async def _take_back(self, held: _Held, lease: Lease) -> None:
        """``lease`` lapsed (this worker, or the broker, stalled): take it again if no one
        else holds it; else this worker is fenced (until it is free again)."""
        again = await self.broker.leases.acquire(lease.key, lease.ttl, seq=held.seq)
        if again is not None:
            held.lease = again
            if held.fenced:
                held.fenced = False
                _log.info("a job's lease is this worker's again", lease=lease.key)
            else:
                _log.warning(
                    "a job's lease lapsed (the worker or the broker stalled) and was taken back",
                    lease=lease.key,
                )
            return
        if not held.fenced:
            held.fenced = True
            self.stats.fenced += 1
            _log.error(
                "a job's lease lapsed and another worker holds it: this worker is "
                "fenced, and acknowledges nothing of the job's",
                lease=lease.key,
            )
