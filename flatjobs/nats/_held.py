"""The messages a worker holds, from the moment it takes one until it is settled, and
:class:`WorkerStats`, what the worker did with them.

A job's message is held only with its job's lease; one whose job's lease another worker
holds is handed back until the lease lapses. While a message is held its AckWait is
extended, and its job's lease renewed, every third of the lease's TTL, and at once when
the job shows it is alive (the lifecycle's ``job_alive`` instrument call). Settling a
message releases its lease and then acknowledges it, hands it back or terminates it; a
holder whose lease was taken over (it stalled past the TTL) is fenced: it acknowledges
nothing of the job's, and leaves the message to the worker that holds the lease now
(JetStream would accept a late acknowledgement from a stale delivery: nats-server#4786).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Literal

import attrs
import nats.errors
from nats.aio.msg import Msg

from flatjobs._seconds import seconds
from flatjobs.instruments import Instrument, add_instrument
from flatjobs.log import get_logger

from ._broker import TRANSIENT, Broker
from ._lease import Lease, LeaseLost

__all__ = ["Held", "HeldMessages", "How", "WorkerStats"]

How = Literal["ack", "nak", "term"]
"""How a message is settled: acknowledged, handed back (for later), or terminated."""
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
class Held:
    """A message this worker holds, until it is settled: ``slot``, it holds one of the
    worker's job slots; ``lease``, its job's lease (a job's message)."""

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
        """The message's sequence in the stream."""
        return int(self.msg.metadata.sequence.stream)


class _Alive(Instrument):
    """The lifecycle's heartbeat renews the lease and the message of the job it is about."""

    def __init__(self, on_alive: Callable[[str], None]) -> None:
        self._on_alive = on_alive

    def job_alive(self, job_id: str) -> None:
        self._on_alive(job_id)


class HeldMessages:
    """The messages a worker holds (see the module docstring), through ``broker``; a job's
    message gives its slot back to ``slots`` when settled; what is done is counted in
    ``stats``."""

    def __init__(self, broker: Broker, stats: WorkerStats, slots: asyncio.Semaphore) -> None:
        self.broker = broker
        self.settings = broker.settings
        self.stats = stats
        self._slots = slots
        self._held: set[Held] = set()
        self._by_key: dict[str, Held] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._keeper: asyncio.Task[None] | None = None
        self._remove_alive: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._held)

    @property
    def started(self) -> bool:
        """True once :meth:`start` was called."""
        return self._keeper is not None

    def start(self) -> None:
        """Keep what is held alive: on a timer, and at each heartbeat of a held job."""
        self._keeper = asyncio.create_task(self.keep(), name="flatjobs-nats-keeper")
        self._remove_alive = add_instrument(_Alive(self._alive))

    async def stop(self) -> None:
        """Stop keeping messages alive; those still held (a body that ignored its
        cancellation) are left to AckWait."""
        if self._remove_alive is not None:
            self._remove_alive()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        for task in list(self._background):
            task.cancel()

    def register(self, held: Held, key: str | None = None) -> None:
        """Hold ``held`` (with the lease on ``key``) until it is settled."""
        held.extended = asyncio.get_running_loop().time()
        self._held.add(held)
        if key is not None:
            self._by_key[key] = held

    async def hold_job(self, held: Held) -> bool:
        """Hold ``held``, a job's message, with its job's lease. False when it is not this
        worker's to run now, and is settled here: delivered again while this worker runs
        it, or its job's lease held by another (handed back until the lease lapses)."""
        settings = self.settings
        key = "job." + held.msg.subject.rpartition(".")[2]
        mine = self._by_key.get(key)
        if mine is not None and mine.seq == held.seq:
            # Delivered again while this worker runs it (it stalled past AckWait): the
            # running one keeps it (its keeper takes a lapsed lease back) and settles it.
            self.free(held)
            return False
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
            await self.finish(held, "nak", delay=delay if delay is not None else 1.0)
            return False
        held.lease = lease
        self.register(held, key)
        return True

    # ----------------------------------------------------------- settling

    def free(self, held: Held) -> None:
        """Forget ``held`` (settled, or left to the one that holds it), and give its slot
        back."""
        held.settled = True
        self._held.discard(held)
        for key, mine in list(self._by_key.items()):
            if mine is held:
                del self._by_key[key]
        if held.slot:
            held.slot = False
            self._slots.release()
        held.finished.set()

    async def finish(self, held: Held, how: How, *, delay: float | None = None) -> None:
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
                self.free(held)

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

    async def _settle(self, msg: Msg, how: How, delay: float | None, *, sync: bool = True) -> None:
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

    async def keep(self) -> None:
        """Extend what is held, every half of the lease's renewal period, once it is due."""
        every = self.settings.renew_every
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every / 2)
            now = loop.time()
            due = [h for h in self._held if not h.settled and now - h.extended >= every]
            if due:
                await asyncio.gather(*(self._extend(h) for h in due))

    async def _extend(self, held: Held) -> None:
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

    async def _renew(self, held: Held, lease: Lease) -> None:
        try:
            await self.broker.leases.renew(lease, seq=held.seq)
        except LeaseLost:
            await self._take_back(held, lease)

    async def _take_back(self, held: Held, lease: Lease) -> None:
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
