"""``end_job``: the one way a job is ended, whoever ends it.

The lifecycle completing or failing a job, the runner failing the job of a body that will
not stop, the sweep failing an orphan, the distributed mode failing a poisoned job: each
ends it here, with the same care:

* the call is retried by the client (408, 429, 5xx, no answer);
* an answer that is lost or odd is checked by reading the job: a call that landed counts;
* a job canceled or ended otherwise meanwhile is not ended again;
* a ``fail`` refused as too large or malformed is sent again, minimal; a ``fail`` of a job
  still ``ready`` (only an executing job can fail) acknowledges it with the reason first;
* the calls run shielded: cancelling the caller (a shutdown) cannot abandon them.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Coroutine, Mapping
from typing import Any, Literal, TypeVar

import attrs

from flatjobs.client import FlatfileClient
from flatjobs.errors import (
    FlatfileAPIError,
    FlatfileError,
    InvalidRequestError,
    UnexpectedResponseError,
)
from flatjobs.models import TERMINAL_STATUSES, JobCompleteDetails, JobStatus, to_wire

from ._outcomes import DEFAULT_COMPLETION, DEFAULT_COMPLETION_WIRE, bounded, minimal

__all__ = ["Ended", "Ending", "end_job", "read_status", "shielded"]

T = TypeVar("T")
FinalCall = Literal["complete", "fail"]
# Final calls run as tasks that outlive a second cancellation; keep them referenced.
_background: set[asyncio.Task[Any]] = set()


class Ended(enum.Enum):
    """How a final call came out."""

    DONE = "done"
    """The job ended as asked: this call landed (or an attempt of it whose answer was lost)."""
    ELSEWHERE = "elsewhere"
    """The job had already ended otherwise (complete or failed by someone else)."""
    CANCELED = "canceled"
    """The job was canceled on the platform: nothing more is sent."""
    NOT_ENDED = "not_ended"
    """The job could not be ended: :attr:`Ending.error` says why."""


@attrs.frozen
class Ending:
    """What :func:`end_job` did: how it came out, the job's status as last seen (None when
    it could not be read), and the error when the job could not be ended."""

    how: Ended
    status: str | None = None
    error: FlatfileError | None = None


def spawn(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """``coro`` as a task kept referenced until it is done (a final call in flight)."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


async def shielded(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` so that cancelling the caller does not abandon it."""
    return await asyncio.shield(spawn(coro))


async def read_status(client: FlatfileClient, job_id: str, log: Any) -> str | None:
    """The job's status as the API has it now; None (logged) when it cannot be read."""
    try:
        return await client.jobs.status(job_id)
    except FlatfileError as err:
        log.warning("could not read the job's status", error=str(err))
        return None


async def end_job(
    client: FlatfileClient,
    job_id: str,
    call: FinalCall,
    details: JobCompleteDetails,
    *,
    log: Any,
    status: str | None = None,
) -> Ending:
    """``complete`` or ``fail`` the job with ``details`` (see the module docstring); ``log``
    is the caller's logger, bound to the job; ``status``: the job's, when the caller just
    read it (a ``ready`` job to fail is acknowledged first, sparing a refused call). Never
    raises for an API failure: the :class:`Ending` says how it came out."""
    ender = _Ender(client, job_id, call, details, log)
    return await shielded(ender.run(status))


class _Ender:
    """One final call, sent until the job has ended or it is clear it cannot be."""

    def __init__(
        self,
        client: FlatfileClient,
        job_id: str,
        call: FinalCall,
        details: JobCompleteDetails,
        log: Any,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.call = call
        self.details = details
        self.log = log
        self.wanted = JobStatus.COMPLETE if call == "complete" else JobStatus.FAILED
        self.body: Mapping[str, Any] = (
            DEFAULT_COMPLETION_WIRE if details is DEFAULT_COMPLETION else to_wire(bounded(details))
        )
        self.minimal = False  # the body was cut to its least
        self.acknowledged = False  # a ready job was acknowledged so it can fail
        self.refused = False  # the last attempt was refused (not lost)

    async def run(self, status: str | None) -> Ending:
        if self.call == "fail" and status == JobStatus.READY:
            self.refused = True  # as the platform would refuse it: acknowledge first
            if not await self._try_again(status, None):
                return Ending(Ended.NOT_ENDED, status, None)
        while True:
            outcome = await self._attempt()
            if isinstance(outcome, Ending):
                return outcome
            status, failure = outcome
            if status == self.wanted:  # the answer was lost or odd, but the call landed
                return Ending(Ended.DONE, status)
            if status == JobStatus.CANCELED:
                self.log.info(f"job was canceled on the platform; not sent: {self.call}")
                return Ending(Ended.CANCELED, status)
            if status in TERMINAL_STATUSES:
                self.log.info(
                    f"job had already ended; not sent again: {self.call}", status=str(status)
                )
                return Ending(Ended.ELSEWHERE, status)
            if await self._try_again(status, failure):
                continue
            self.log.error(f"{self.call} did not end the job", error=str(failure))
            return Ending(Ended.NOT_ENDED, status, failure)

    async def _attempt(self) -> Ending | tuple[str | None, FlatfileError]:
        """Send the call once (with the client's retries): its Ending when that settles it,
        else the job's status as read after it and what went wrong."""
        try:
            status = await self.client.jobs.send(self.job_id, self.call, self.body)
        except FlatfileAPIError as err:
            # A refusal of a call sent once is an answer; after a retry, the first attempt
            # may have landed, and only the job's status tells.
            refused = 400 <= err.status < 500 and not isinstance(err, UnexpectedResponseError)
            if refused and self.call == "complete" and err.attempts == 1:
                self.log.error(f"could not {self.call} job", error=str(err))
                return Ending(Ended.NOT_ENDED, None, err)
            self.refused = refused
            return await read_status(self.client, self.job_id, self.log), err
        except InvalidRequestError as err:  # a body JSON cannot carry (NaN in an outcome)
            self.refused = True
            if self.call == "fail" and not self.minimal:
                return None, err  # sent again, minimal
            self.log.error(f"could not {self.call} job", error=str(err))
            return Ending(Ended.NOT_ENDED, None, err)
        except FlatfileError as err:  # no answer, after the client's retries
            self.refused = False
            return await read_status(self.client, self.job_id, self.log), err
        if status == self.wanted:
            return Ending(Ended.DONE, status)
        # A 2xx that does not show the job ended as asked: ask the job itself.
        self.refused = False
        failure = self.client.jobs.unexpected(
            self.job_id, self.call, f"the job is {status or 'unknown'} after {self.call}"
        )
        return await read_status(self.client, self.job_id, self.log), failure

    async def _try_again(self, status: str | None, failure: FlatfileError | None) -> bool:
        """Whether a ``fail`` that did not end the job is worth sending again: once
        minimal, when it was refused (too large, or malformed); once after acknowledging a
        job still ready with the reason (only an executing job can fail)."""
        if self.call != "fail" or not self.refused:
            return False
        if status == JobStatus.READY and not self.acknowledged:
            self.acknowledged = True
            ack = {"info": self.body.get("info") or "Failed", "progress": 0}
            try:
                await self.client.jobs.send(self.job_id, "ack", ack)
            except FlatfileError as err:
                self.log.error("a ready job could not be acknowledged to fail it", error=str(err))
                return False
            return True
        if not self.minimal:
            self.log.warning("fail was refused; sending it again, minimal", error=str(failure))
            self.body, self.minimal = minimal(self.details), True
            return True
        return False
