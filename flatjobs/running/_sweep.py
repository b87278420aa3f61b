"""The reconciliation sweep: jobs the event stream missed, and jobs a crash stranded.

Flatfile never times out a job left ``executing``, and events can be lost on the way (a
listener that was down, a push channel that dropped a message). The platform itself is
the record: a :class:`Reconciler` reads the environment's recent jobs (``GET /v1/jobs``,
newest first, within a look-back) at start and then every ``interval`` seconds, and for
each job the listener takes (:meth:`Listener.takes_job`: a ``Jobs`` handler, or a callback
whose filter names the job; a catch-all callback takes none):

* still ``ready`` longer than ``ready_grace`` seconds: it is delivered as a ``job:ready``
  event (replayed: it runs only while still ready). This heals lost events, and runs the
  jobs that became ready while no listener ran (catch-up after a restart or an outage);
* ``executing``, not running in this process, and silent for more than three heartbeats
  of its handler: an orphan (the worker running it stopped). It is failed with a message
  that says so and a Retry button, or, when its handler opted in
  (``@jobs.handle(..., on_orphan="rerun")``), delivered to run again.

It is an event source: the runner takes its deliveries through the same door as the
feed's. It needs no service beyond the platform: with one process, every job ends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs

from flatjobs._seconds import check_seconds
from flatjobs.client import FlatfileClient
from flatjobs.errors import FlatfileError
from flatjobs.events._event import Delivery, job_id_of
from flatjobs.events._topics import JOB_READY
from flatjobs.jobs._claims import running_jobs
from flatjobs.jobs._outcomes import ORPHAN_MESSAGE
from flatjobs.listener._listener import Listener
from flatjobs.log import get_logger
from flatjobs.models import TERMINAL_STATUSES, Job, JobStatus

from ._orphans import SWEPT_SILENCE, Orphans, job_event

__all__ = ["ORPHAN_MESSAGE", "Reconciler", "SweepReport", "job_event"]

_log = get_logger("flatjobs.reconcile")


@attrs.define
class SweepReport:
    """What one sweep found."""

    jobs: int = 0
    """Jobs read."""
    ready: int = 0
    """Ready jobs delivered to run."""
    orphans_failed: int = 0
    """Orphaned jobs failed with a Retry button."""
    orphans_rerun: int = 0
    """Orphaned jobs delivered to run again (their handler opted in)."""


class Reconciler:
    """The reconciliation sweep (see the module docstring); an event source for a runner.

    Args:
        listener: whose handlers decide which jobs are ours.
        client: the API client (by default the listener's).
        interval: seconds between sweeps (the first runs at once).
        lookback: how far back, by creation time, jobs are read.
        ready_grace: seconds a job may stay ready before the sweep runs it (its event may
            still be on its way).
        page_size, max_pages: how jobs are read, newest first.
        running: whether a job runs somewhere now, however that is known (the distributed
            mode asks its leases); by default, whether it runs in this process.
        space_id: read only this space's jobs (a listener scoped to one space).
    """

    def __init__(
        self,
        listener: Listener,
        *,
        client: FlatfileClient | None = None,
        interval: float = 60.0,
        lookback: float = 3600.0,
        ready_grace: float = 10.0,
        page_size: int = 100,
        max_pages: int = 10,
        running: Callable[[Job], Awaitable[bool]] | None = None,
        space_id: str | None = None,
    ) -> None:
        check_seconds("interval", interval, positive=True)
        check_seconds("lookback", lookback, positive=True)
        check_seconds("ready_grace", ready_grace)
        self.listener = listener
        self._client = client
        self.orphans = Orphans(listener, client)
        """The judgments on orphans, shared with the distributed mode."""
        self.interval = interval
        self.lookback = dt.timedelta(seconds=lookback)
        self.ready_grace = dt.timedelta(seconds=ready_grace)
        self.page_size = page_size
        self.max_pages = max_pages
        self._running = running
        self.space_id = space_id
        self.sweeps = 0
        self.last = SweepReport()
        self._closed = asyncio.Event()

    @property
    def client(self) -> FlatfileClient:
        """The client the sweep reads and fails jobs with."""
        return self._client or self.listener.client

    async def aclose(self) -> None:
        """Stop sweeping; the iteration ends."""
        self._closed.set()

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while not self._closed.is_set():
            try:
                deliveries = await self.sweep()
            except FlatfileError as err:
                _log.error(
                    "the reconciliation sweep failed; trying again later",
                    api=self.client.host,
                    error=str(err),
                )
            else:
                for delivery in deliveries:
                    yield delivery
            try:
                await asyncio.wait_for(self._closed.wait(), self.interval)
            except TimeoutError:
                continue

    async def sweep(self) -> list[Delivery]:
        """One sweep: the deliveries to run; orphans not to re-run are failed here.

        Raises:
            FlatfileError: the jobs could not be read.
        """
        report = SweepReport()
        candidates: list[tuple[Job, dt.datetime]] = []
        async for job, now in self._recent_jobs():
            report.jobs += 1
            if job.id in running_jobs() or (self._running is not None and await self._running(job)):
                continue
            if job.status == JobStatus.READY:
                if job.updated_at is None or now - job.updated_at >= self.ready_grace:
                    candidates.append((job, now))
            elif job.status == JobStatus.EXECUTING:
                candidates.append((job, now))
        events = await self._events_of([job for job, _ in candidates])
        out: list[Delivery] = []
        for job, now in candidates:
            event = events.get(job.id)
            if event is None:
                continue  # not one of ours
            if job.status == JobStatus.READY:
                report.ready += 1
                out.append(Delivery(event, replayed=True))
            else:
                delivery = await self._orphan(job, event, now, report)
                if delivery is not None:
                    out.append(delivery)
        self.sweeps += 1
        self.last = report
        if report.ready or report.orphans_failed or report.orphans_rerun:
            _log.info("reconciliation sweep", **attrs.asdict(report))
        return out

    async def _events_of(self, jobs: list[Job]) -> dict[str, dict[str, Any]]:
        """The ``job:ready`` event of each of ``jobs`` the listener takes, by job id.

        The event is rebuilt from the job; a job the rebuilt event does not make ours may
        still be, through context the job does not hold (``listener.namespace(...)``,
        ``actorId``, ``slugs``): for those, the platform's own event is looked up in the
        feed, in one read of ``job:ready`` events since the oldest of them.
        """
        ours: dict[str, dict[str, Any]] = {}
        unsure: list[Job] = []
        for job in jobs:
            event = job_event(job)
            if self.listener.takes_job(event):
                ours[job.id] = event
            else:
                unsure.append(job)
        if not unsure:
            return ours
        originals = await self._ready_events(unsure)
        for job in unsure:
            original = originals.get(job.id)
            if original is None:
                continue
            event = job_event(job)
            event["context"] = {**original["context"], **event["context"]}
            if self.listener.takes_job(event):
                ours[job.id] = event
        return ours

    async def _ready_events(self, jobs: list[Job]) -> dict[str, dict[str, Any]]:
        """The platform's ``job:ready`` events of ``jobs`` found in the feed, by job id."""
        wanted = {job.id for job in jobs}
        times = [job.created_at for job in jobs if job.created_at is not None]
        since = min(times) - dt.timedelta(seconds=1) if len(times) == len(jobs) else None
        found: dict[str, dict[str, Any]] = {}
        for number in range(1, self.max_pages + 1):
            page = await self.client.events.list_raw(
                space_id=self.space_id,
                topic=JOB_READY,
                since=since,
                page_size=self.page_size,
                page_number=number,
                include_acknowledged=True,
            )
            for raw in page.items:
                job_id = job_id_of(raw) if isinstance(raw, dict) else None
                if job_id in wanted and isinstance(raw.get("context"), dict):
                    found[job_id] = raw
            if not page.items or len(found) == len(wanted):
                break
        return found

    async def _orphan(
        self, job: Job, event: dict[str, Any], now: dt.datetime, report: SweepReport
    ) -> Delivery | None:
        heard = self.orphans.heard(job, event)
        if heard is None:
            return None  # no heartbeats: silence says nothing
        heartbeat, last = heard
        silence = dt.timedelta(seconds=SWEPT_SILENCE * heartbeat)
        if now - last <= silence or await self._parts_alive(job, now, silence):
            return None  # alive, somewhere
        why = f"silent for {now - last}"
        return await self.end_orphan(job, why=why, report=report, event=event)

    async def _parts_alive(self, job: Job, now: dt.datetime, silence: dt.timedelta) -> bool:
        """Whether ``job`` was split and waits for parts that still run: one not started
        yet, or one running that spoke within ``silence`` (a split parent sends no
        heartbeats of its own; it ends when its parts have completed)."""
        for number in range(1, self.max_pages + 1):
            page = await self.client.jobs.list(
                parent_id=job.id, page_size=self.page_size, page_number=number
            )
            if any(
                part.status not in TERMINAL_STATUSES
                and (
                    part.status != JobStatus.EXECUTING
                    or part.updated_at is None
                    or now - part.updated_at <= silence
                )
                for part in page
            ):
                return True
            count = page.pagination.page_count if page.pagination else None
            if len(page) < self.page_size or (count is not None and number >= count):
                return False
        return True  # more parts than a sweep reads: not judged silent on a partial view

    async def end_orphan(
        self,
        job: Job,
        *,
        why: str = "",
        report: SweepReport | None = None,
        event: dict[str, Any] | None = None,
    ) -> Delivery | None:
        """End ``job``, an orphan however it was found (``why``: a sweep's silence, the
        distributed mode's lapsed lease): it is failed with a Retry button, or, when its
        handler opted in to re-runs, the delivery that runs it again is returned
        (``event``: its ``job:ready`` event, by default rebuilt from the job)."""
        report = report if report is not None else SweepReport()
        delivery, ended = await self.orphans.end(job, why=why, event=event)
        if delivery is not None:
            report.orphans_rerun += 1
        elif ended:
            report.orphans_failed += 1
        return delivery

    def policy(self, event: dict[str, Any]) -> tuple[float | None, bool]:
        """The heartbeat (seconds, None: none) of the handler that takes ``event``, and
        whether it re-runs orphans (see :meth:`Orphans.policy`)."""
        return self.orphans.policy(event)

    async def _recent_jobs(self) -> AsyncIterator[tuple[Job, dt.datetime]]:
        """The environment's jobs created within the look-back, newest first, each with the
        server's clock when its page was read: its ``Date`` header, whole seconds rounded
        down, so a job is never judged older than it is (a live job is never an orphan)."""
        for number in range(1, self.max_pages + 1):
            page = await self.client.jobs.list(
                space_id=self.space_id,
                sort_direction="desc",
                page_size=self.page_size,
                page_number=number,
            )
            now = page.server_time or dt.datetime.now(dt.UTC)
            for job in page:
                if job.created_at is not None and now - job.created_at > self.lookback:
                    return
                yield job, now
            count = page.pagination.page_count if page.pagination else None
            if len(page) < self.page_size or (count is not None and number >= count):
                return
