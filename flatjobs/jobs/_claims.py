"""Job claims: the one guard against running a job twice at once in this process.

Whatever takes an event in claims its job once (the runner at its door; ``Jobs`` or
``job_lifecycle`` when called directly) and hands the :class:`JobClaim` on explicitly:
the runner sets it on the event (:attr:`flatjobs.FlatfileEvent.claim`), the lifecycle
takes it from there. A job already claimed is busy: :meth:`JobClaims.claim` says so by
returning None, never by raising. Whoever made a claim releases it.
"""

from __future__ import annotations

import asyncio
import weakref

__all__ = ["JobClaim", "JobClaims", "claims", "running_jobs"]


class JobClaim:
    """A job claimed as running in this process, until :meth:`release`."""

    __slots__ = ("_claims", "job_id")

    def __init__(self, claims: JobClaims, job_id: str) -> None:
        self._claims = claims
        self.job_id = job_id

    def __repr__(self) -> str:
        return f"JobClaim({self.job_id!r})"

    def release(self) -> None:
        """The job no longer runs here (releasing twice is harmless)."""
        self._claims._running.discard(self.job_id)


class JobClaims:
    """The jobs claimed in one event loop."""

    def __init__(self) -> None:
        self._running: set[str] = set()

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._running

    def claim(self, job_id: str) -> JobClaim | None:
        """Claim ``job_id``; None when it is claimed already (it runs here now)."""
        if job_id in self._running:
            return None
        self._running.add(job_id)
        return JobClaim(self, job_id)

    def running(self) -> frozenset[str]:
        """The ids of the jobs claimed now."""
        return frozenset(self._running)


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, JobClaims] = (
    weakref.WeakKeyDictionary()
)


def claims() -> JobClaims:
    """The claims of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _per_loop.get(loop)
    if found is None:
        found = _per_loop[loop] = JobClaims()
    return found


def running_jobs() -> frozenset[str]:
    """Ids of the jobs running in this process (this event loop) now."""
    return claims().running()
