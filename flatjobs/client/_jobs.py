"""``client.jobs``: the ``/v1/jobs`` endpoints."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Mapping
from typing import Any, Final, Literal

from flatjobs.errors import UnexpectedResponseError
from flatjobs.models import (
    Job,
    JobCancelDetails,
    JobCompleteDetails,
    JobConfig,
    JobOutcome,
    JobSplitDetails,
    JobUpdate,
    ProgressUpdate,
    to_wire,
)

from ._transport import Answer, Caller, Endpoint, Page, data_object, envelope, page_of, success

__all__ = ["JobsAPI"]

LIST: Final = Endpoint("GET", "/jobs", "jobs.list")
CREATE: Final = Endpoint("POST", "/jobs", "jobs.create")
GET: Final = Endpoint("GET", "/jobs/{}", "jobs.get")
UPDATE: Final = Endpoint("PATCH", "/jobs/{}", "jobs.update")
DELETE: Final = Endpoint("DELETE", "/jobs/{}", "jobs.delete")
ACK: Final = Endpoint("POST", "/jobs/{}/ack", "jobs.ack")
COMPLETE: Final = Endpoint("POST", "/jobs/{}/complete", "jobs.complete")
FAIL: Final = Endpoint("POST", "/jobs/{}/fail", "jobs.fail")
CANCEL: Final = Endpoint("POST", "/jobs/{}/cancel", "jobs.cancel")
RETRY: Final = Endpoint("POST", "/jobs/{}/retry", "jobs.retry")
EXECUTE: Final = Endpoint("POST", "/jobs/{}/execute", "jobs.execute")
OUTCOME_ACK: Final = Endpoint("POST", "/jobs/{}/outcome/ack", "jobs.outcome_ack")
SPLIT: Final = Endpoint("POST", "/jobs/{}/split", "jobs.split")
_BY_ACTION: Final = {"ack": ACK, "complete": COMPLETE, "fail": FAIL}

_job = data_object(Job)
_jobs_page = page_of(Job)


def _status(answer: Answer) -> str:
    """The status of the job an answer holds, read without building a model."""
    data = envelope(answer)
    status = data.get("status") if isinstance(data, Mapping) else None
    if not isinstance(status, str) or not status:
        raise ValueError(f"expected a job with a status in `data`, got {str(data)[:200]!r}")
    return status


def _complete_body(
    details: JobCompleteDetails | None, outcome: JobOutcome | None, info: str | None
) -> dict[str, Any]:
    if details is not None and (outcome is not None or info is not None):
        raise TypeError("pass either a JobCompleteDetails or outcome=/info=, not both")
    body: dict[str, Any] = to_wire(details or JobCompleteDetails(outcome=outcome, info=info))
    return body


class JobsAPI:
    """``client.jobs``: the ``/v1/jobs`` endpoints."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    async def get(self, job_id: str) -> Job:
        """``GET /jobs/{id}``."""
        return await self._client.call(GET, job_id, decode=_job)

    async def status(self, job_id: str) -> str:
        """``GET /jobs/{id}``, reading only the job's status (no model is built): what the
        lifecycle asks before it acknowledges a job."""
        return await self._client.call(GET, job_id, decode=_status)

    async def list(
        self,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        workbook_id: str | None = None,
        file_id: str | None = None,
        parent_id: str | None = None,
        page_size: int | None = None,
        page_number: int | None = None,
        sort_direction: Literal["asc", "desc"] | None = None,
        exclude_child_jobs: bool | None = None,
    ) -> Page[Job]:
        """One page of ``GET /jobs`` (the environment defaults to the client's)."""
        params = {
            "environmentId": environment_id or self._client.environment_id,
            "spaceId": space_id,
            "workbookId": workbook_id,
            "fileId": file_id,
            "parentId": parent_id,
            "pageSize": page_size,
            "pageNumber": page_number,
            "sortDirection": sort_direction,
            "excludeChildJobs": exclude_child_jobs,
        }
        return await self._client.call(LIST, params=params, decode=_jobs_page)

    async def create(self, config: JobConfig) -> Job:
        """``POST /jobs`` with a :class:`JobConfig` (type, operation and source required)."""
        return await self._client.call(CREATE, body=to_wire(config), decode=_job)

    async def update(self, job_id: str, update: JobUpdate) -> Job:
        """``PATCH /jobs/{id}`` with a :class:`JobUpdate`."""
        return await self._client.call(UPDATE, job_id, body=to_wire(update), decode=_job)

    async def delete(self, job_id: str) -> None:
        """``DELETE /jobs/{id}``."""
        await self._client.call(DELETE, job_id, decode=success)

    async def ack(
        self,
        job_id: str,
        *,
        info: str | None = None,
        progress: float | None = None,
        estimated_completion_at: dt.datetime | None = None,
    ) -> Job:
        """Acknowledge a ready job, or report progress on an executing one.

        ``progress`` (0..100) is sent as a whole number, rounded down.
        """
        body: dict[str, Any] = {}
        if info is not None:
            body["info"] = info
        if progress is not None:
            body["progress"] = ProgressUpdate.whole(progress)
        if estimated_completion_at is not None:
            body["estimatedCompletionAt"] = to_wire(estimated_completion_at)
        return await self._client.call(ACK, job_id, body=body, decode=_job)

    async def report_progress(
        self,
        job_id: str,
        progress: float,
        *,
        info: str | None = None,
        estimated_completion_at: dt.datetime | None = None,
    ) -> Job:
        """Report progress on an executing job: ``POST /jobs/{id}/ack`` with
        ``{"progress": p, "info"?, "estimatedCompletionAt"?}``, in the order Flatfile's
        job handler sends them; ``progress`` is sent as a whole number, rounded down."""
        update = ProgressUpdate(progress, info, estimated_completion_at)
        return await self.send_progress(job_id, update)

    async def send_progress(self, job_id: str, update: ProgressUpdate) -> Job:
        """Report an update checked already: ``POST /jobs/{id}/ack`` with its wire form,
        as it is (a job's tick checks what a handler reports once, and passes it here)."""
        return await self._client.call(ACK, job_id, body=update.to_wire(), decode=_job)

    async def send(
        self, job_id: str, action: Literal["ack", "complete", "fail"], body: Mapping[str, Any]
    ) -> str:
        """Low level: ``POST /jobs/{id}/<action>`` with ``body`` as given; returns the status
        the answer reports for the job, without reading the rest of it.

        The job lifecycle's calls go through here: it needs only the status to know whether
        a call landed.

        Raises:
            UnexpectedResponseError: the answer holds no job status (after retries).
        """
        return await self._client.call(_BY_ACTION[action], job_id, body=body, decode=_status)

    @staticmethod
    def unexpected(
        job_id: str, action: Literal["ack", "complete", "fail"], reason: str
    ) -> UnexpectedResponseError:
        """The error for an answer to ``action`` that came back 2xx but did not show the
        job as the call asked (``reason``: how it showed it), naming the call's path."""
        endpoint = _BY_ACTION[action]
        return UnexpectedResponseError(
            200, endpoint.method, "/v1" + endpoint.path(job_id), None, reason
        )

    async def complete(
        self,
        job_id: str,
        details: JobCompleteDetails | None = None,
        *,
        outcome: JobOutcome | None = None,
        info: str | None = None,
    ) -> Job:
        """``POST /jobs/{id}/complete`` with a :class:`JobCompleteDetails` or ``outcome``/``info``."""
        body = _complete_body(details, outcome, info)
        return await self._client.call(COMPLETE, job_id, body=body, decode=_job)

    async def fail(
        self,
        job_id: str,
        details: JobCompleteDetails | None = None,
        *,
        outcome: JobOutcome | None = None,
        info: str | None = None,
    ) -> Job:
        """``POST /jobs/{id}/fail`` with a :class:`JobCompleteDetails` or ``outcome``/``info``."""
        body = _complete_body(details, outcome, info)
        return await self._client.call(FAIL, job_id, body=body, decode=_job)

    async def cancel(self, job_id: str, *, info: str | None = None) -> Job:
        """``POST /jobs/{id}/cancel``."""
        body = to_wire(JobCancelDetails(info=info))
        return await self._client.call(CANCEL, job_id, body=body, decode=_job)

    async def retry(self, job_id: str) -> Job:
        """``POST /jobs/{id}/retry``: run a failed job again."""
        return await self._client.call(RETRY, job_id, decode=_job)

    async def execute(self, job_id: str) -> None:
        """``POST /jobs/{id}/execute``: make a manual job ready."""
        await self._client.call(EXECUTE, job_id, decode=success)

    async def ack_outcome(self, job_id: str) -> Job:
        """``POST /jobs/{id}/outcome/ack``: as the user dismissing the outcome."""
        return await self._client.call(OUTCOME_ACK, job_id, decode=_job)

    async def split(
        self,
        job_id: str,
        parts: int | builtins.list[dict[str, Any]],
        *,
        run_in_parallel: bool | None = None,
    ) -> Job:
        """Split a job into parts: a count, or one dict of ``partData`` per part."""
        body = to_wire(JobSplitDetails(parts=parts, run_in_parallel=run_in_parallel))
        return await self._client.call(SPLIT, job_id, body=body, decode=_job)
