"""``run_distributed``: one process's part of a distributed deployment (what
``flatjobs run --nats`` runs)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import attrs

from flatjobs.log import get_logger
from flatjobs.running._runner import Runner, RunStats, signals_stop
from flatjobs.running._sweep import Reconciler
from flatjobs.sources import EventSource

from ._broker import Broker
from ._held import WorkerStats
from ._ingress import Ingress, IngressStats
from ._worker import WorkerSource

if TYPE_CHECKING:
    from flatjobs.listener._listener import Listener

__all__ = [
    "ROLES",
    "Connectivity",
    "DistributedRunner",
    "DistributedStats",
    "Role",
    "run_distributed",
]

Role = Literal["ingress", "worker", "all"]
ROLES: tuple[Role, ...] = ("ingress", "worker", "all")
_log = get_logger("flatjobs.nats")


@attrs.define
class DistributedStats:
    """What one process of a distributed deployment did, by role."""

    ingress: IngressStats | None = None
    worker: WorkerStats | None = None
    runner: RunStats | None = None

    @property
    def abandoned(self) -> int:
        """Job bodies that ignored their cancellation at shutdown (see ``RunStats``)."""
        return self.runner.abandoned if self.runner is not None else 0


@attrs.frozen
class Connectivity:
    """Whether one process of a distributed deployment is connected, for ``/readyz``:
    its broker's connection, and (an ingress) its event source. What ``flatjobs run
    --nats --metrics-port`` serves; in your own program::

        async with serve_health(9108, source=Connectivity(broker, source)):
            await run_distributed(listener, broker, role="all", source=source)
    """

    broker: Broker
    source: EventSource | None = None

    @property
    def connected(self) -> bool:
        """True while the broker's connection is up and the source (if any) is connected
        (a source without a ``connected`` attribute counts as connected)."""
        return self.broker.connected and getattr(self.source, "connected", None) is not False


class DistributedRunner:
    """One process's part of a distributed deployment: ``role`` until :meth:`stop`.

    * ``ingress`` publishes what ``source`` delivers, and what ``sweep`` finds, into the
      stream (:class:`Ingress`);
    * ``worker`` runs a :class:`flatjobs.Runner` over the stream (:class:`WorkerSource`),
      ``concurrency`` jobs at once;
    * ``all`` does both in one process.

    Raises:
        ValueError: an unknown role, or an ingress without a source.
    """

    def __init__(
        self,
        listener: Listener,
        broker: Broker,
        *,
        role: Role = "all",
        source: EventSource | None = None,
        sweep: Reconciler | None = None,
        concurrency: int = 50,
        grace_period: float = 30.0,
        cancel_grace: float = 5.0,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        self.role = role
        self.broker = broker
        self.stats = DistributedStats()
        self.ingress: Ingress | None = None
        if role in ("ingress", "all"):
            if source is None:
                raise ValueError(f"the {role} role needs an event source")
            self.ingress = Ingress(broker, listener, source, sweep=sweep)
            self.stats.ingress = self.ingress.stats
        self.worker: WorkerSource | None = None
        self.runner: Runner | None = None
        if role in ("worker", "all"):
            self.worker = WorkerSource(broker, listener, concurrency=concurrency)
            self.stats.worker = self.worker.stats
            self.runner = Runner(
                listener,
                self.worker,
                concurrency=self.worker.runner_concurrency,
                grace_period=grace_period,
                cancel_grace=cancel_grace,
            )

    def stopping_notice(self) -> str:
        """What a :meth:`stop` called now does, in a sentence for whoever pressed Ctrl-C."""
        if self.runner is not None:
            return self.runner.stopping_notice()
        return "stopping: no new events are taken"

    def stop(self) -> None:
        """Stop taking events and drain (safe from a signal handler); a second call
        cancels the jobs in flight at once (they are failed with a Retry button)."""
        if self.ingress is not None:
            self.ingress.stop()
        if self.runner is not None:
            self.runner.stop()

    async def run(self) -> DistributedStats:
        """Run until :meth:`stop` (or, for an ingress alone, until its source ends).

        Raises:
            Exception: what a role failed with (the other role is stopped first).
        """
        broker = self.broker
        _log.info(
            "distributed mode",
            role=self.role,
            server=broker.url,
            stream=broker.settings.stream,
            worker=broker.owner,
        )
        async with contextlib.AsyncExitStack() as stack:
            if self.worker is not None:
                await stack.enter_async_context(self.worker)
            tasks: list[asyncio.Task[object]] = []
            if self.ingress is not None:
                tasks.append(asyncio.create_task(self.ingress.run(), name="flatjobs-ingress"))
            if self.runner is not None:
                tasks.append(asyncio.create_task(self.runner.run(), name="flatjobs-worker"))
            try:
                pending = set(tasks)
                while pending:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    if any(not t.cancelled() and t.exception() is not None for t in done):
                        self.stop()  # one role failed: the other stops too
            finally:
                for task in tasks:
                    if not task.done():
                        task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in tasks:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error
            if self.runner is not None:
                self.stats.runner = self.runner.stats
        return self.stats


async def run_distributed(
    listener: Listener,
    broker: Broker,
    *,
    role: Role = "all",
    source: EventSource | None = None,
    sweep: Reconciler | None = None,
    concurrency: int = 50,
    grace_period: float = 30.0,
    cancel_grace: float = 5.0,
    handle_signals: bool = True,
    on_signal: Callable[[str], None] | None = None,
) -> DistributedStats:
    """Run ``role`` (see :class:`DistributedRunner`) until SIGINT or SIGTERM (with
    ``handle_signals``): a first signal stops taking events and lets in-flight jobs finish
    within ``grace_period``; a second cancels them at once, as :func:`flatjobs.run` does
    (and ``on_signal`` is told what stopping does).
    """
    runner = DistributedRunner(
        listener,
        broker,
        role=role,
        source=source,
        sweep=sweep,
        concurrency=concurrency,
        grace_period=grace_period,
        cancel_grace=cancel_grace,
    )
    with signals_stop(runner, on_signal, enabled=handle_signals):
        return await runner.run()
