"""Orphans: what becomes of a job left ``executing`` by a worker that stopped.

Flatfile never times out a job left executing, so flatjobs judges such jobs itself, in two
places: the reconciliation sweep (a job silent for :data:`SWEPT_SILENCE` heartbeats of its
handler) and the distributed mode (a job whose message came back, or was delivered too
often, while no worker holds its lease: silent for :data:`LAPSED_SILENCE` heartbeats).
Both ask :class:`Orphans` the same questions (whose handler takes the job, when it was last
heard from, how long until its silence makes it an orphan), and end an orphan the same way:
failed with a Retry button through :func:`~flatjobs.jobs._ending.end_job`, or, when its
handler opted in (``on_orphan="rerun"``), delivered to run again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from flatjobs.client import FlatfileClient
from flatjobs.errors import FlatfileError
from flatjobs.events._event import Delivery
from flatjobs.events._topics import JOB_READY
from flatjobs.jobs._ending import Ended, end_job
from flatjobs.jobs._options import DEFAULT_HEARTBEAT
from flatjobs.jobs._outcomes import ORPHAN_MESSAGE, retry_failure
from flatjobs.listener._listener import Listener
from flatjobs.log import get_logger
from flatjobs.models import Job, JobStatus, source_context, to_wire
from flatjobs.observe._instruments import INSTRUMENTS

__all__ = ["LAPSED_SILENCE", "SWEPT_SILENCE", "Orphans", "job_event"]

SWEPT_SILENCE: Final = 3.0
"""Heartbeats of silence that make a job the sweep finds executing, and running nowhere it
knows of, an orphan."""
LAPSED_SILENCE: Final = 1.5
"""Heartbeats of silence that make a job an orphan once its lease lapsed (its worker
stopped renewing it: the lapse is evidence too, so less silence is asked)."""
_log = get_logger("flatjobs.reconcile")


def job_event(job: Job, topic: str = JOB_READY) -> dict[str, Any]:
    """The ``job:*`` event the platform emits for ``job``, rebuilt from the job itself."""
    context: dict[str, Any] = {"environmentId": job.environment_id, "spaceId": job.space_id}
    context.update(source_context(job.source))
    context["jobId"] = job.id
    payload: dict[str, Any] = {
        "job": job.job_name,
        "domain": str(job.type),
        "operation": job.operation,
        "status": str(job.status),
        "isPart": job.parent_id is not None,
    }
    if job.input is not None:
        payload["input"] = job.input
    when = job.updated_at or job.created_at or dt.datetime.now(dt.UTC)
    return {
        "id": f"us_evt_sweep_{job.id}",
        "topic": topic,
        "domain": "job",
        "context": {k: v for k, v in context.items() if v is not None},
        "payload": payload,
        "createdAt": to_wire(when),
    }


class Orphans:
    """The judgments on jobs executing with no one known to run them, for ``listener``'s
    jobs, through ``client`` (by default the listener's)."""

    def __init__(self, listener: Listener, client: FlatfileClient | None = None) -> None:
        self.listener = listener
        self._client = client

    @property
    def client(self) -> FlatfileClient:
        """The client orphans are read and failed with."""
        return self._client or self.listener.client

    def policy(self, event: Mapping[str, Any]) -> tuple[float | None, bool]:
        """The heartbeat (seconds, None: none) of the handler that takes ``event``, and
        whether it re-runs orphans."""
        for router in self.listener.routers():
            select = getattr(router, "select", None)
            route = select(event) if select is not None else None
            if route is not None and route.handler is not None:
                return route.heartbeat, route.on_orphan == "rerun"
        return DEFAULT_HEARTBEAT, False  # a plain callback: the lifecycle's default

    def heard(
        self, job: Job, event: Mapping[str, Any] | None = None
    ) -> tuple[float, dt.datetime] | None:
        """The heartbeat (seconds) of the handler that takes ``job`` (``event``: its
        ``job:ready``, by default rebuilt from the job) and when the job was last heard
        from (its ``updatedAt``). None when its silence cannot be judged: its handler sends
        no heartbeats, or the job has no ``updatedAt``."""
        heartbeat, _ = self.policy(event if event is not None else job_event(job))
        if heartbeat is None or job.updated_at is None:
            return None
        return heartbeat, job.updated_at

    def silent_left(
        self, job: Job, heartbeats: float, now: dt.datetime | None = None
    ) -> float | None:
        """Seconds until ``job`` (executing) has been silent for ``heartbeats`` heartbeats of
        its handler: 0 or less when it has. None when its silence cannot be judged (see
        :meth:`heard`)."""
        heard = self.heard(job)
        if heard is None:
            return None
        heartbeat, last = heard
        silent = ((now or dt.datetime.now(dt.UTC)) - last).total_seconds()
        return heartbeats * heartbeat - silent

    async def end(
        self, job: Job, *, why: str, event: dict[str, Any] | None = None
    ) -> tuple[Delivery | None, bool]:
        """End ``job``, an orphan however it was found (``why``: a sweep's silence, a lapsed
        lease): failed with a Retry button, or, when its handler opted in to re-runs, the
        delivery that runs it again (``event``: its ``job:ready``, by default rebuilt from
        the job). Returns that delivery (None when failed) and whether the job ended."""
        event = event if event is not None else job_event(job)
        rerun = self.policy(event)[1]
        if INSTRUMENTS:
            INSTRUMENTS.job_orphaned(job.id, job.job_name, rerun)
        log = _log.bind(job_id=job.id, job=job.job_name)
        if rerun:
            log.warning("an orphaned job is run again", why=why)
            return Delivery(event, replayed=True, orphaned=True), False
        log.warning("an orphaned job is failed so the user can retry it", why=why)
        ending = await end_job(self.client, job.id, "fail", retry_failure(ORPHAN_MESSAGE), log=log)
        if ending.how is Ended.NOT_ENDED:
            log.error("could not fail an orphaned job", error=str(ending.error))
        return None, ending.how is not Ended.NOT_ENDED

    async def fail(self, job_id: str, message: str, *, heartbeats: float) -> None:
        """Fail ``job_id`` with ``message`` and a Retry button if it is executing and has
        been silent for ``heartbeats`` heartbeats, or its silence cannot be judged (a job
        whose messages kept being taken by workers that stopped: poison); a job still heard
        from, or ended, is left alone."""
        log = _log.bind(job_id=job_id)
        try:
            job = await self.client.jobs.get(job_id)
        except FlatfileError as err:
            log.error("could not read a job to fail it", error=str(err))
            return
        left = self.silent_left(job, heartbeats)
        if job.status != JobStatus.EXECUTING or (left is not None and left > 0):
            return
        ending = await end_job(self.client, job_id, "fail", retry_failure(message), log=log)
        if ending.how is Ended.NOT_ENDED:
            log.error("could not fail a job", error=str(ending.error))
