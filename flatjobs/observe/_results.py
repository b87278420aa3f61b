"""What observers are told happened: how a job handled here ended, what a dispatch ran."""

from __future__ import annotations

from typing import Literal

import attrs

from flatjobs.errors import JobError

__all__ = ["CallbackFailure", "DispatchResult", "JobResult", "JobStatusEnded"]

JobStatusEnded = Literal["complete", "failed", "canceled", "split", "skipped"]
"""How a job handled in this process ended (see :class:`JobResult`)."""


@attrs.frozen
class JobResult:
    """How a job handled in this process ended, as :func:`flatjobs.observe_jobs` reports it."""

    job_id: str
    status: JobStatusEnded
    """``split``: waiting for its parts; ``skipped``: it was not run (ended already, or
    not ready)."""
    error: BaseException | None = None

    @property
    def expected(self) -> bool:
        """False for a failure the handler did not choose: a crash, a timeout, a stop or
        an API failure. A :class:`JobError` is an expected, user-facing failure."""
        return self.status != "failed" or isinstance(self.error, JobError)


@attrs.frozen
class CallbackFailure:
    """A callback that raised while handling an event."""

    callback: str
    error: BaseException


@attrs.frozen
class DispatchResult:
    """What :meth:`flatjobs.Listener.dispatch` ran for one event."""

    event_id: str | None
    topic: str
    ran: tuple[str, ...]
    """Names of the callbacks that ran to completion, in order (after_all ones included)."""
    failed: tuple[CallbackFailure, ...]

    @property
    def ok(self) -> bool:
        """True when no callback raised."""
        return not self.failed

    @property
    def matched(self) -> int:
        """How many callbacks matched the event (ran or failed)."""
        return len(self.ran) + len(self.failed)
