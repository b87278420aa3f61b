"""The judgments on a message a worker took: poison, and a ``job:ready`` delivered again.

They are the reconciliation sweep's judgments on a job no one runs
(:class:`~flatjobs.running._orphans.Orphans`), made on the job a message names, with one
more piece of evidence: the job's lease lapsed (its worker stopped renewing it), and this
worker holds it now. A ``job:ready`` delivered again finds its job

* ended: nothing to do; the message is acknowledged;
* ``ready``: it runs, only while still ready (its first worker never started it);
* ``executing``, and heard from within :data:`~flatjobs.running._orphans.LAPSED_SILENCE`
  heartbeats of its handler: its worker lost the broker, not the platform, and still runs
  it; the message is looked at again once that silence would have passed;
* ``executing`` and silent (or its handler sends no heartbeats: the lapse says its worker
  stopped): an orphan, failed with a Retry button, or run again if its handler opted in.
  A job whose ``fail`` does not land keeps its message: it is judged again at the
  message's next delivery (until it is poison).

A message delivered more than ``max_deliver`` times is poison: it is terminated, and its
job (a ``job:ready`` taken with its lease), executing and silent, failed with
:data:`POISON_MESSAGE` and a Retry button: its workers kept stopping, so it is not run again.

The judgments settle nothing: each says what becomes of the message (:class:`Run` or
:class:`Settle`), and the worker does it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import attrs

from flatjobs.errors import FlatfileError
from flatjobs.events._event import job_id_of
from flatjobs.events._topics import JOB_READY
from flatjobs.log import get_logger, shorten
from flatjobs.models import TERMINAL_STATUSES, JobStatus
from flatjobs.running._orphans import LAPSED_SILENCE, Orphans

if TYPE_CHECKING:
    from flatjobs.listener._listener import Listener

    from ._held import How, WorkerStats
    from ._settings import NatsSettings

__all__ = ["POISON_MESSAGE", "Judge", "Run", "Settle"]

POISON_MESSAGE: Final = (
    "The workers running this job kept stopping before it finished, so it is not run again. "
    "Retry to run it once more."
)
_log = get_logger("flatjobs.nats")


@attrs.frozen
class Run:
    """The event goes to the runner: ``replayed``, its job runs only while still ready;
    ``orphaned``, it runs an orphan again."""

    replayed: bool
    orphaned: bool


@attrs.frozen
class Settle:
    """The message is settled unrun: ``how``, after ``delay`` seconds (a ``nak``)."""

    how: How
    delay: float | None = None


class Judge:
    """The judgments (see the module docstring) on the messages a worker takes for
    ``listener``'s jobs, with ``settings``; what they find is counted in ``stats``."""

    def __init__(self, listener: Listener, settings: NatsSettings, stats: WorkerStats) -> None:
        self.orphans = Orphans(listener)  # an orphan's fate: fail, or run again
        self.settings = settings
        self.stats = stats

    @property
    def _soon(self) -> float:
        """How long a message judged again soon is handed back for."""
        return min(5.0, self.settings.ack_wait)

    async def verdict(
        self,
        raw: dict[str, Any],
        delivered: int,
        *,
        leased: bool,
        replayed: bool,
        orphaned: bool,
    ) -> Run | Settle:
        """What becomes of a message carrying the event ``raw``, delivered ``delivered``
        times (``leased``: a job's message, taken with its job's lease), marked
        ``replayed`` and ``orphaned`` by whoever published it."""
        if delivered > self.settings.max_deliver:
            return await self._poison(raw, delivered, leased=leased)
        if leased and delivered > 1 and raw.get("topic") == JOB_READY and not orphaned:
            # Its first worker stopped (its lease lapsed: this one has it now).
            return await self._redelivered(raw, delivered)
        return Run(replayed, orphaned)

    async def _redelivered(self, raw: dict[str, Any], delivered: int) -> Run | Settle:
        """A ``job:ready`` delivered again, judged by its job: run as an orphan, run only
        while ready, or settled here."""
        job_id = job_id_of(raw)
        if job_id is None:
            return Run(replayed=True, orphaned=False)  # malformed: the runner's door says so
        try:
            job = await self.orphans.client.jobs.get(job_id)
        except FlatfileError as err:
            _log.warning(
                "could not read a redelivered job; handing it back", job_id=job_id, error=str(err)
            )
            return Settle("nak", self._soon)
        if job.status in TERMINAL_STATUSES:
            return Settle("ack")  # ended: nothing to do
        if job.status != JobStatus.EXECUTING:
            return Run(replayed=True, orphaned=False)  # ready: it runs while still ready
        left = self.orphans.silent_left(job, LAPSED_SILENCE)
        if left is not None and left > 0:
            # Its worker lost the broker, not the platform: it runs. Look again just after
            # the silence that would make it an orphan.
            wait = left + 0.2
            _log.info(
                "a redelivered job is executing and still heartbeating; looking again later",
                job_id=job_id,
                retry_in=round(wait, 1),
            )
            return Settle("nak", min(wait, self.settings.ack_wait))
        why = f"its worker stopped (the message's delivery {delivered}; no one held its lease)"
        rerun, ended = await self.orphans.end(job, why=why)
        if rerun is not None:
            self.stats.orphans_rerun += 1
            return Run(replayed=True, orphaned=True)
        if not ended:  # its fail did not land: judged again at the message's next delivery
            return Settle("nak", self._soon)
        self.stats.orphans_failed += 1
        return Settle("ack")

    async def _poison(self, raw: dict[str, Any], delivered: int, *, leased: bool) -> Settle:
        self.stats.poisoned += 1
        job_id = job_id_of(raw)
        _log.error(
            "a message was delivered too many times; it is terminated as poison",
            deliveries=delivered,
            max_deliver=self.settings.max_deliver,
            event_id=shorten(repr(raw.get("id")), 200),
            topic=shorten(repr(raw.get("topic")), 100),
            job_id=job_id,
        )
        if raw.get("topic") == JOB_READY and job_id is not None and leased:
            await self.orphans.fail(job_id, POISON_MESSAGE, heartbeats=LAPSED_SILENCE)
        return Settle("term")
