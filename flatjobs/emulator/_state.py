"""The emulator's in-memory platform: jobs and their state machine, and secrets, over the
event feed (``_feed.py``).

Pure logic, no HTTP: the routes (``_routes/``) turn requests into calls on
:class:`PlatformState` and :class:`EmulatorError` into Flatfile-like error bodies. Built on
the wire models only; it never touches the client.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import attrs

from flatjobs.models import (
    TERMINAL_STATUSES,
    Job,
    JobAckDetails,
    JobCompleteDetails,
    JobConfig,
    JobMode,
    JobStatus,
    JobTrigger,
    JobUpdate,
    evolve,
    from_wire,
    source_context,
    to_wire,
)

from ._errors import EmulatorError
from ._feed import EventFeed, utcnow

__all__ = ["PlatformState", "SecretRecord"]


NOT_STARTED = frozenset(
    {JobStatus.CREATED, JobStatus.PLANNING, JobStatus.SCHEDULED, JobStatus.WAITING}
)
# The statuses each call may start from, as on the platform.
LEGAL_FROM: dict[str, frozenset[str]] = {
    "ack": frozenset({JobStatus.READY, JobStatus.EXECUTING}),
    "complete": frozenset({JobStatus.EXECUTING}),
    "fail": frozenset({JobStatus.EXECUTING}),
    "cancel": frozenset(JobStatus) - TERMINAL_STATUSES,
    "retry": frozenset({JobStatus.FAILED, JobStatus.CANCELED}),
    "execute": NOT_STARTED,
    "split": frozenset({JobStatus.EXECUTING}),
}


@attrs.define
class SecretRecord:
    name: str
    value: str = attrs.field(repr=False)
    environment_id: str
    space_id: str | None = None
    actor_id: str | None = None
    id: str = ""


MAX_PARTS = 1000
"""The most parts one split may make (a split is refused past it)."""


def check_progress(value: Any) -> None:
    """Progress is a whole number from 0 to 100 (Flatfile's API reference)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise EmulatorError(
            400, f"progress must be a whole number from 0 to 100, got {value!r:.40}", key="progress"
        )


def _check_enum(body: Mapping[str, Any], key: str, enum: type[enum.StrEnum]) -> None:
    value = body.get(key)
    if value is not None and value not in {m.value for m in enum}:
        allowed = ", ".join(m.value for m in enum)
        raise EmulatorError(400, f"{key} must be one of {allowed}, got {value!r:.40}", key=key)


class PlatformState(EventFeed):
    """Jobs, events and secrets of one emulated environment."""

    def __init__(
        self,
        *,
        environment_id: str,
        account_id: str = "us_acc_emulator",
        space_id: str = "us_sp_emulator",
        parts_shape: Literal["counts", "list"] = "counts",
    ) -> None:
        super().__init__(environment_id=environment_id)
        self.account_id = account_id
        self.space_id = space_id
        self.parts_shape = parts_shape
        self.jobs: dict[str, Job] = {}
        self.secrets: list[SecretRecord] = []
        self._job_context: dict[str, dict[str, Any]] = {}
        self.locate: Callable[[str | None], Mapping[str, Any]] = lambda source: {}
        """The event context of a job's source (its space, workbook, sheet slug...), when
        the emulator holds that resource; the data store sets it."""

    # ----------------------------------------------------------- the events of jobs

    def _emit_job_event(self, topic: str, job: Job, **extra: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "job": job.job_name,
            "domain": str(job.type),
            "operation": job.operation,
            "status": str(job.status),
            "isPart": job.parent_id is not None,
        }
        if job.info is not None:
            payload["info"] = job.info
        if job.input is not None:
            payload["input"] = job.input
        payload.update(extra)
        return self.emit(topic, domain="job", context=self._context_for(job), payload=payload)

    def _context_for(self, job: Job) -> dict[str, Any]:
        context: dict[str, Any] = {
            "accountId": self.account_id,
            "environmentId": job.environment_id or self.environment_id,
            "spaceId": job.space_id or self.space_id,
        }
        context.update(source_context(job.source))
        if job.created_by:
            context["actorId"] = job.created_by
        context.update(self._job_context.get(job.id, {}))
        context["jobId"] = job.id
        return context

    # ----------------------------------------------------------- jobs

    def get_job(self, job_id: str) -> Job:
        """The job, or a 404 error."""
        job = self.jobs.get(job_id)
        if job is None:
            raise EmulatorError(404, f"job {job_id} not found", key="jobId")
        return job

    def _save(self, job: Job, **changes: Any) -> Job:
        job = evolve(job, updated_at=utcnow(), **changes)
        self.jobs[job.id] = job
        return job

    def _check(self, job: Job, call: str) -> None:
        if job.status not in LEGAL_FROM[call]:
            allowed = ", ".join(sorted(LEGAL_FROM[call]))
            raise EmulatorError(
                400,
                f"cannot {call} job {job.id}: it is {job.status} (allowed from: {allowed})",
                key="status",
            )

    def create_job(self, body: Any, *, context: Mapping[str, Any] | None = None) -> Job:
        """``POST /jobs``: created, then ready at once for an immediate trigger."""
        if isinstance(body, Mapping):
            for key, kind in (("status", JobStatus), ("mode", JobMode), ("trigger", JobTrigger)):
                _check_enum(body, key, kind)
            if body.get("progress") is not None:
                check_progress(body["progress"])
        try:
            config = from_wire(body, JobConfig)
        except ValueError as exc:
            raise EmulatorError(400, f"invalid JobConfig: {exc}") from exc
        now = utcnow()
        wire = to_wire(config)
        located = dict(self.locate(config.source))
        wire.update(
            id=self.new_id("us_jb_"),
            status=JobStatus.CREATED.value,
            createdAt=to_wire(now),
            updatedAt=to_wire(now),
            environmentId=config.environment_id or self.environment_id,
            spaceId=located.get("spaceId", self.space_id),
            createdBy="us_usr_emulator",
        )
        wire.setdefault("trigger", JobTrigger.MANUAL.value)
        wire.setdefault("progress", 0)
        job = from_wire(wire, Job)
        self.jobs[job.id] = job
        if context or located:
            self._job_context[job.id] = {**located, **(context or {})}
        self._emit_job_event("job:created", job)
        if job.trigger == JobTrigger.IMMEDIATE:
            job = self._make_ready(job)
        return job

    def _make_ready(self, job: Job) -> Job:
        job = self._save(job, status=JobStatus.READY)
        self._emit_job_event("job:ready", job)
        return job

    def execute(self, job_id: str) -> Job:
        """``POST /jobs/{id}/execute``: a job not started becomes ready."""
        job = self.get_job(job_id)
        self._check(job, "execute")
        return self._make_ready(job)

    def ack(self, job_id: str, body: Any) -> Job:
        """``POST /jobs/{id}/ack``: ready becomes executing; while executing, report progress."""
        if isinstance(body, Mapping) and body.get("progress") is not None:
            check_progress(body["progress"])
        details = self._parse(body, JobAckDetails)
        job = self.get_job(job_id)
        self._check(job, "ack")
        changes: dict[str, Any] = {"status": JobStatus.EXECUTING}
        if job.status == JobStatus.READY:
            changes["started_at"] = utcnow()
        if details.progress is not None:
            check_progress(details.progress)
            changes["progress"] = details.progress
        if details.info is not None:
            changes["info"] = details.info
        if details.estimated_completion_at is not None:
            changes["estimated_completion_at"] = details.estimated_completion_at
        job = self._save(job, **changes)
        self._emit_job_event("job:updated", job)
        return job

    def finish(self, job_id: str, body: Any, *, call: Literal["complete", "fail"]) -> Job:
        """``POST /jobs/{id}/complete`` or ``/fail``, from executing only."""
        details = self._parse(body, JobCompleteDetails)
        job = self.get_job(job_id)
        self._check(job, call)
        status = JobStatus.COMPLETE if call == "complete" else JobStatus.FAILED
        changes: dict[str, Any] = {"status": status, "finished_at": utcnow()}
        if call == "complete":
            changes["progress"] = 100
        if details.outcome is not None:
            changes["outcome"] = details.outcome
        if details.info is not None:
            changes["info"] = details.info
        job = self._save(job, **changes)
        self._emit_job_event("job:completed" if call == "complete" else "job:failed", job)
        self._after_part_ended(job)
        return job

    def cancel(self, job_id: str, body: Any) -> Job:
        """``POST /jobs/{id}/cancel``, from any status that has not ended."""
        info = body.get("info") if isinstance(body, Mapping) else None
        job = self.get_job(job_id)
        self._check(job, "cancel")
        job = self._save(
            job,
            status=JobStatus.CANCELED,
            finished_at=utcnow(),
            info=info if isinstance(info, str) else job.info,
        )
        self._emit_job_event("job:updated", job)
        self._after_part_ended(job)
        return job

    def retry(self, job_id: str) -> Job:
        """``POST /jobs/{id}/retry``: a failed or canceled job is ready again."""
        job = self.get_job(job_id)
        self._check(job, "retry")
        job = self._save(
            job, progress=0, outcome=None, finished_at=None, info=None, outcome_acknowledged_at=None
        )
        return self._make_ready(job)

    def ack_outcome(self, job_id: str) -> Job:
        """``POST /jobs/{id}/outcome/ack``, once, for a complete or failed job."""
        job = self.get_job(job_id)
        if job.status not in (JobStatus.COMPLETE, JobStatus.FAILED):
            raise EmulatorError(
                400,
                f"cannot acknowledge the outcome of job {job_id}: it is "
                f"{job.status}, not complete or failed",
                key="status",
            )
        if job.outcome_acknowledged_at is not None:
            raise EmulatorError(
                400,
                f"the outcome of job {job_id} was already acknowledged",
                key="outcomeAcknowledgedAt",
            )
        job = self._save(job, outcome_acknowledged_at=utcnow())
        self._emit_job_event("job:outcome-acknowledged", job)
        return job

    def update(self, job_id: str, body: Any) -> Job:
        """``PATCH /jobs/{id}`` with a JobUpdate (``estimatedCompletionAt`` is refused)."""
        if isinstance(body, Mapping) and "estimatedCompletionAt" in body:
            raise EmulatorError(
                400,
                "estimatedCompletionAt is not a JobUpdate field; send it "
                "with POST /jobs/{jobId}/ack",
                key="estimatedCompletionAt",
            )
        if isinstance(body, Mapping):
            _check_enum(body, "status", JobStatus)
            if body.get("progress") is not None:
                check_progress(body["progress"])
        update = self._parse(body, JobUpdate)
        job = self.get_job(job_id)
        changes = {
            name: value
            for name, value in attrs.asdict(update, recurse=False).items()
            if name not in ("extra", "status") and value is not None
        }
        if update.status is not None and update.status != job.status:
            # A status changes through the state machine, with its events and timestamps.
            job = self._transition(job, str(update.status))
        if changes:
            job = self._save(job, **changes)
            self._emit_job_event("job:updated", job)
        return job

    def _transition(self, job: Job, status: str) -> Job:
        if status == JobStatus.EXECUTING and job.status == JobStatus.READY:
            return self.ack(job.id, {})
        if status in (JobStatus.COMPLETE, JobStatus.FAILED):
            return self.finish(job.id, {}, call="complete" if status == "complete" else "fail")
        if status == JobStatus.CANCELED:
            return self.cancel(job.id, {})
        if status == JobStatus.READY and job.status in NOT_STARTED:
            return self.execute(job.id)
        if status == JobStatus.READY and job.status in (JobStatus.FAILED, JobStatus.CANCELED):
            return self.retry(job.id)
        raise EmulatorError(
            400, f"job {job.id} cannot go from {job.status} to {status} by PATCH", key="status"
        )

    def delete(self, job_id: str) -> None:
        """``DELETE /jobs/{id}``."""
        job = self.get_job(job_id)
        del self.jobs[job_id]
        self._emit_job_event("job:deleted", job)

    def split(self, job_id: str, body: Any) -> Job:
        """``POST /jobs/{id}/split``: create the parts, each ready with ``isPart``."""
        parts = body.get("parts") if isinstance(body, Mapping) else None
        if isinstance(parts, bool) or not (
            (isinstance(parts, int) and parts >= 1)
            or (isinstance(parts, list) and parts and all(isinstance(p, Mapping) for p in parts))
        ):
            raise EmulatorError(
                400,
                f"parts must be a positive integer or a non-empty list of objects, got {parts!r}",
                key="parts",
            )
        job = self.get_job(job_id)
        self._check(job, "split")
        total = parts if isinstance(parts, int) else len(parts)
        if total > MAX_PARTS:
            raise EmulatorError(
                400, f"a job splits into at most {MAX_PARTS} parts, got {total}", key="parts"
            )
        if job.part_execution is not None or any(j.parent_id == job.id for j in self.jobs.values()):
            raise EmulatorError(400, f"job {job.id} has already been split", key="parts")
        parallel = bool(body.get("runInParallel"))
        job = self._save(job, part_execution="parallel" if parallel else "sequential")
        for index in range(total):
            data = {"part": index, "total": total} if isinstance(parts, int) else dict(parts[index])
            wire = {
                "type": str(job.type),
                "operation": job.operation,
                "source": job.source,
                # Sequential parts are ready one at a time, in order: the first at once.
                "trigger": JobTrigger.IMMEDIATE.value
                if parallel or index == 0
                else JobTrigger.MANUAL.value,
                "mode": job.mode,
                "input": job.input,
                "part": index,
                "partData": data,
                "parentId": job.id,
            }
            self.create_job(
                {k: v for k, v in wire.items() if v is not None},
                context=self._job_context.get(job.id),
            )
        return job

    def _after_part_ended(self, job: Job) -> None:
        if job.parent_id is None or job.parent_id not in self.jobs:
            return
        parts = sorted(
            (j for j in self.jobs.values() if j.parent_id == job.parent_id),
            key=lambda p: p.part or 0,
        )
        waiting = [p for p in parts if p.status in NOT_STARTED]
        if waiting and not any(p.status in (JobStatus.READY, JobStatus.EXECUTING) for p in parts):
            self.execute(waiting[0].id)  # sequential: the next part's turn
            return
        if any(p.status not in TERMINAL_STATUSES for p in parts):
            return
        parent = self.jobs[job.parent_id]
        summary: Any
        if self.parts_shape == "counts":
            summary = {
                "total": len(parts),
                "completed": sum(p.status == JobStatus.COMPLETE for p in parts),
                "failed": sum(p.status == JobStatus.FAILED for p in parts),
                "canceled": sum(p.status == JobStatus.CANCELED for p in parts),
            }
        else:
            summary = [
                {"partId": p.id, "status": str(p.status), "completedAt": to_wire(p.finished_at)}
                for p in sorted(parts, key=lambda p: p.part or 0)
            ]
        self._emit_job_event("job:parts-completed", parent, parts=summary)

    def list_jobs(self, query: Mapping[str, str]) -> list[Job]:
        """``GET /jobs`` with its filters."""
        jobs: Iterable[Job] = self.jobs.values()
        filters: dict[str, Callable[[Job, str], bool]] = {
            "spaceId": lambda j, v: j.space_id == v,
            "environmentId": lambda j, v: j.environment_id == v,
            "fileId": lambda j, v: j.file_id == v,
            "parentId": lambda j, v: j.parent_id == v,
            "workbookId": lambda j, v: j.source == v,
        }
        for key, predicate in filters.items():
            if key in query:
                jobs = [j for j in jobs if predicate(j, query[key])]
        if query.get("excludeChildJobs") == "true":
            jobs = [j for j in jobs if j.parent_id is None]
        return sorted(jobs, key=lambda j: j.id, reverse=query.get("sortDirection") == "desc")

    @staticmethod
    def _parse(body: Any, cls: type[Any]) -> Any:
        try:
            return from_wire(body if body is not None else {}, cls)
        except ValueError as exc:
            raise EmulatorError(400, f"invalid {cls.__name__}: {exc}") from exc

    # ----------------------------------------------------------- secrets

    def add_secret(
        self,
        name: str,
        value: str,
        *,
        space_id: str | None = None,
        actor_id: str | None = None,
        environment_id: str | None = None,
    ) -> None:
        """Store a secret for the environment, a space or an actor."""
        self.secrets.append(
            SecretRecord(
                name=name,
                value=value,
                environment_id=environment_id or self.environment_id,
                space_id=space_id,
                actor_id=actor_id,
                id=self.new_id("us_sec_"),
            )
        )

    def list_secrets(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /secrets``: the most specific secret of each name."""
        env = query.get("environmentId")
        if not env:
            raise EmulatorError(400, "environmentId is required", key="environmentId")
        # The most specific scope wins for each name: actor, then space, then environment.
        chosen: dict[str, tuple[int, SecretRecord]] = {}
        for s in self.secrets:
            if s.environment_id != env:
                continue
            if s.space_id is not None and s.space_id != query.get("spaceId"):
                continue
            if s.actor_id is not None and s.actor_id != query.get("actorId"):
                continue
            rank = (s.space_id is not None) + 2 * (s.actor_id is not None)
            if s.name not in chosen or chosen[s.name][0] <= rank:
                chosen[s.name] = (rank, s)
        return [
            {
                k: v
                for k, v in {
                    "id": s.id,
                    "name": s.name,
                    "value": s.value,
                    "environmentId": s.environment_id,
                    "spaceId": s.space_id,
                    "actorId": s.actor_id,
                }.items()
                if v is not None
            }
            for _, s in chosen.values()
        ]

    # ----------------------------------------------------------- end user

    def user_action(
        self,
        job: str,
        *,
        source: str | None = None,
        input: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        mode: str = "foreground",
    ) -> Job:
        """Create a job as if a user clicked an action button for ``"<domain>:<operation>"``."""
        domain, sep, operation = job.partition(":")
        if not sep or not domain or not operation:
            raise ValueError(f"a job name is '<domain>:<operation>', got {job!r}")
        default_source = {
            "sheet": "us_sh_emulator",
            "file": "us_fl_emulator",
            "space": self.space_id,
            "document": "us_dc_emulator",
        }
        body: dict[str, Any] = {
            "type": domain,
            "operation": operation,
            "source": source or default_source.get(domain, "us_wb_emulator"),
            "trigger": JobTrigger.IMMEDIATE.value,
            "mode": mode,
        }
        if input is not None:
            body["input"] = dict(input)
        ctx = {"actorId": "us_usr_emulator", "actionName": job, **(context or {})}
        return self.create_job(body, context=ctx)
