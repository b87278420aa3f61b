"""The wire models of jobs, events, outcomes and secrets, and the enums they use."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any, ClassVar, Union

import attrs

from ._converter import converter, register_tagged_union
from ._converter import extra as _extra
from ._converter import model as _model

# --------------------------------------------------------------------------- enums


class JobStatus(enum.StrEnum):
    """Where a job is in its life (``canceled`` has one L, as on the wire)."""

    CREATED = "created"
    PLANNING = "planning"
    SCHEDULED = "scheduled"
    READY = "ready"
    EXECUTING = "executing"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELED = "canceled"
    WAITING = "waiting"

    @property
    def is_terminal(self) -> bool:
        """True for ``complete``, ``failed`` and ``canceled``."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[str] = frozenset(
    {JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELED}
)
"""The statuses a job never leaves (but by ``retry``); plain strings match them too."""


class JobMode(enum.StrEnum):
    """How the job shows in the UI."""

    FOREGROUND = "foreground"
    BACKGROUND = "background"
    TOOLBAR_BLOCKING = "toolbarBlocking"
    HIDDEN = "hidden"


class JobTrigger(enum.StrEnum):
    """When a created job becomes ``ready``: at once, or on ``POST /jobs/{id}/execute``."""

    MANUAL = "manual"
    IMMEDIATE = "immediate"


class JobPartExecution(enum.StrEnum):
    """Whether a split job's parts run one after another or together."""

    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


class JobType(enum.StrEnum):
    """The kinds of resource a job works on."""

    FILE = "file"
    WORKBOOK = "workbook"
    SHEET = "sheet"
    SPACE = "space"
    DOCUMENT = "document"
    APP = "app"


class EventDomain(enum.StrEnum):
    """The domains events come from; others are kept as text."""

    FILE = "file"
    SPACE = "space"
    WORKBOOK = "workbook"
    JOB = "job"
    DOCUMENT = "document"
    SHEET = "sheet"
    PROGRAM = "program"
    SECRET = "secret"
    CRON = "cron"
    ENVIRONMENT = "environment"
    DATA_CLIP = "data-clip"
    CANVAS = "canvas"


class OutcomeTriggerType(enum.StrEnum):
    """When an outcome is shown."""

    MANUAL = "manual"
    AUTOMATIC = "automatic"
    AUTOMATIC_SILENT = "automatic_silent"


class OutcomeAudience(enum.StrEnum):
    """Who sees a job's outcome."""

    ORIGINATOR = "originator"
    ALL = "all"


# --------------------------------------------------------------------------- ids

# A job's `source` is the id of what it works on; the id's kind says which context key
# names it in the job's events ("us_wb_..." is a workbook, "dev_sh_..." a sheet).
_SOURCE_KEYS: dict[str, str] = {
    "wb": "workbookId",
    "sh": "sheetId",
    "sp": "spaceId",
    "fl": "fileId",
    "dc": "documentId",
}


def source_context(source: str | None) -> dict[str, str]:
    """The event context entry naming a job's ``source``: ``{"workbookId": "us_wb_1"}``.

    >>> source_context("us_sh_42"), source_context("odd")
    ({'sheetId': 'us_sh_42'}, {})
    """
    if not source:
        return {}
    parts = source.split("_")
    key = _SOURCE_KEYS.get(parts[1]) if len(parts) > 2 else None
    return {key: source} if key else {}


# --------------------------------------------------------------------------- events


@_model
class Origin:
    """Where an event came from."""

    id: str | None = None
    slug: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class Context:
    """Where an event happened. Every id is optional; new keys land in ``extra``."""

    account_id: str | None = None
    environment_id: str | None = None
    space_id: str | None = None
    workbook_id: str | None = None
    sheet_id: str | None = None
    sheet_slug: str | None = None
    snapshot_id: str | None = None
    commit_id: str | None = None
    job_id: str | None = None
    program_id: str | None = None
    file_id: str | None = None
    document_id: str | None = None
    preceding_event_id: str | None = None
    actor_id: str | None = None
    app_id: str | None = None
    action_id: str | None = None
    action_name: str | None = None
    namespaces: list[str] | None = None
    slugs: dict[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class Event:
    """A Flatfile event as the API sends it. ``topic`` is kept as text: topics are open-ended."""

    id: str
    topic: str
    domain: EventDomain | str | None = None
    context: Context = attrs.field(factory=Context)
    payload: dict[str, Any] = attrs.field(factory=dict)
    attributes: dict[str, Any] | None = None
    created_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    callback_url: str | None = None
    data_url: str | None = None
    target: str | None = None
    origin: Origin | None = None
    namespaces: list[str] | None = None
    extra: Mapping[str, Any] = _extra()

    @property
    def job_payload(self) -> JobEventPayload:
        """The payload read as a job event's (``job:*`` topics)."""
        return converter.structure(self.payload, JobEventPayload)


@_model
class JobPartResult:
    """One part in the list form of ``job:parts-completed``."""

    part_id: str | None = None
    status: JobStatus | str | None = None
    completed_at: dt.datetime | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class JobPartsCounts:
    """The counts form of ``job:parts-completed`` (also what the list form reads as)."""

    total: int = 0
    completed: int = 0
    failed: int = 0
    canceled: int = 0
    extra: Mapping[str, Any] = _extra()


@_model
class JobEventPayload:
    """The payload of ``job:*`` events: ``job`` is ``"<domain>:<operation>"``."""

    job: str | None = None
    domain: str | None = None
    operation: str | None = None
    status: JobStatus | str | None = None
    info: str | None = None
    is_part: bool | None = None
    input: dict[str, Any] | None = None
    parts: JobPartsCounts | list[JobPartResult] | None = None
    extra: Mapping[str, Any] = _extra()

    def parts_counts(self) -> JobPartsCounts | None:
        """``parts`` as counts, whichever of its two wire shapes the platform sent."""
        parts = self.parts
        if parts is None or isinstance(parts, JobPartsCounts):
            return parts
        statuses = [p.status for p in parts]
        return JobPartsCounts(
            total=len(parts),
            completed=statuses.count(JobStatus.COMPLETE),
            failed=statuses.count(JobStatus.FAILED),
            canceled=statuses.count(JobStatus.CANCELED),
        )


# --------------------------------------------------------------------------- outcomes


@_model
class IdNext:
    """Navigate to a Flatfile entity by id."""

    TYPE: ClassVar[str] = "id"
    id: str
    label: str | None = None
    path: str | None = None
    query: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class UrlNext:
    """Open a URL."""

    TYPE: ClassVar[str] = "url"
    url: str
    label: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class DownloadNext:
    """Offer a file download."""

    TYPE: ClassVar[str] = "download"
    url: str
    label: str | None = None
    file_name: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class FileRef:
    """A Flatfile file in a ``files`` action."""

    file_id: str
    label: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class FilesNext:
    """Show Flatfile files."""

    TYPE: ClassVar[str] = "files"
    files: list[FileRef] = attrs.field(factory=list)
    label: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class WaitNext:
    """Keep the dialog open (optionally with a fade or confetti)."""

    TYPE: ClassVar[str] = "wait"
    fade: bool | None = None
    confetti: bool | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class SnapshotNext:
    """Open a snapshot of a sheet."""

    TYPE: ClassVar[str] = "snapshot"
    snapshot_id: str
    sheet_id: str
    label: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class RetryNext:
    """A button that retries the job."""

    TYPE: ClassVar[str] = "retry"
    label: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class ViewNext:
    """Open a sheet with some columns hidden."""

    TYPE: ClassVar[str] = "view"
    sheet_id: str
    hidden_columns: list[str] = attrs.field(factory=list)
    label: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class ClearFiltersNext:
    """Clear the filters of the given sheets."""

    TYPE: ClassVar[str] = "clearFilters"
    label: str | None = None
    sheet_ids: list[str] | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class UnknownNext:
    """A ``next`` action of a type flatjobs does not know yet, kept as it came."""

    type: str
    extra: Mapping[str, Any] = _extra()


AnyNext = Union[  # noqa: UP007 - a runtime union object the converter dispatches on
    IdNext,
    UrlNext,
    DownloadNext,
    FilesNext,
    WaitNext,
    SnapshotNext,
    RetryNext,
    ViewNext,
    ClearFiltersNext,
    UnknownNext,
]
_NEXT_BY_TYPE: dict[str, type[Any]] = {
    cls.TYPE: cls
    for cls in (
        IdNext,
        UrlNext,
        DownloadNext,
        FilesNext,
        WaitNext,
        SnapshotNext,
        RetryNext,
        ViewNext,
        ClearFiltersNext,
    )
}


class Next:
    """Builders for an outcome's ``next`` action, one per variant the platform knows.

    >>> Next.retry("Try again")
    RetryNext(label='Try again')
    >>> Next.download("https://example.com/export.csv", file_name="export.csv")
    DownloadNext(url='https://example.com/export.csv', file_name='export.csv')
    """

    @staticmethod
    def id(
        id: str, *, label: str | None = None, path: str | None = None, query: str | None = None
    ) -> IdNext:
        """Go to a Flatfile entity by id."""
        return IdNext(id=id, label=label, path=path, query=query)

    @staticmethod
    def url(url: str, *, label: str | None = None) -> UrlNext:
        """Open a URL."""
        return UrlNext(url=url, label=label)

    @staticmethod
    def download(
        url: str, *, label: str | None = None, file_name: str | None = None
    ) -> DownloadNext:
        """Download a file."""
        return DownloadNext(url=url, label=label, file_name=file_name)

    @staticmethod
    def files(file_ids: list[str], *, label: str | None = None) -> FilesNext:
        """Show Flatfile files."""
        return FilesNext(files=[FileRef(file_id=f) for f in file_ids], label=label)

    @staticmethod
    def wait(*, fade: bool | None = None, confetti: bool | None = None) -> WaitNext:
        """Keep the dialog open, optionally with a fade or confetti."""
        return WaitNext(fade=fade, confetti=confetti)

    @staticmethod
    def snapshot(snapshot_id: str, sheet_id: str, *, label: str | None = None) -> SnapshotNext:
        """Open a snapshot of a sheet."""
        return SnapshotNext(snapshot_id=snapshot_id, sheet_id=sheet_id, label=label)

    @staticmethod
    def retry(label: str | None = None) -> RetryNext:
        """Retry the job."""
        return RetryNext(label=label)

    @staticmethod
    def view(sheet_id: str, hidden_columns: list[str], *, label: str | None = None) -> ViewNext:
        """Open a sheet with columns hidden."""
        return ViewNext(sheet_id=sheet_id, hidden_columns=hidden_columns, label=label)

    @staticmethod
    def clear_filters(
        *, label: str | None = None, sheet_ids: list[str] | None = None
    ) -> ClearFiltersNext:
        """Clear filters on the given sheets."""
        return ClearFiltersNext(label=label, sheet_ids=sheet_ids)


@_model
class OutcomeTrigger:
    """When and to whom an outcome is shown."""

    type: OutcomeTriggerType | str
    audience: OutcomeAudience | str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class JobOutcome:
    """What the end user sees when a job ends: a message, a heading and a button."""

    acknowledge: bool | None = None
    trigger: OutcomeTrigger | OutcomeTriggerType | str | None = None
    button_text: str | None = None
    heading: str | None = None
    message: str | None = None
    hide_default_button: bool | None = None
    next: AnyNext | None = None
    extra: Mapping[str, Any] = _extra()


# --------------------------------------------------------------------------- jobs


@_model
class JobConfig:
    """The body of ``POST /jobs``: ``type``, ``operation`` and ``source`` are required."""

    type: JobType | str
    operation: str
    source: str
    destination: str | None = None
    config: dict[str, Any] | None = None
    trigger: JobTrigger | str | None = None
    status: JobStatus | str | None = None
    progress: int | float | None = None
    file_id: str | None = None
    mode: JobMode | str | None = None
    input: dict[str, Any] | None = None
    subject: dict[str, Any] | None = None
    outcome: JobOutcome | None = None
    info: str | None = None
    managed: bool | None = None
    environment_id: str | None = None
    part: int | None = None
    part_data: Any = None
    part_execution: JobPartExecution | str | None = None
    parent_id: str | None = None
    predecessor_ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class Job:
    """A job as the API returns it."""

    id: str
    type: JobType | str | None = None
    operation: str | None = None
    source: str | None = None
    destination: str | None = None
    config: dict[str, Any] | None = None
    trigger: JobTrigger | str | None = None
    status: JobStatus | str | None = None
    progress: int | float | None = None
    file_id: str | None = None
    mode: JobMode | str | None = None
    input: dict[str, Any] | None = None
    subject: dict[str, Any] | None = None
    outcome: JobOutcome | None = None
    info: str | None = None
    managed: bool | None = None
    environment_id: str | None = None
    part: int | None = None
    part_data: Any = None
    part_execution: JobPartExecution | str | None = None
    parent_id: str | None = None
    predecessor_ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    created_by: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    outcome_acknowledged_at: dt.datetime | None = None
    estimated_completion_at: dt.datetime | None = None
    space_id: str | None = None
    extra: Mapping[str, Any] = _extra()

    @property
    def job_name(self) -> str:
        """``"<type>:<operation>"``, the name job handlers match on."""
        return f"{self.type}:{self.operation}"


@_model
class JobAckDetails:
    """Body of ``POST /jobs/{id}/ack``; the only call that takes ``estimatedCompletionAt``."""

    info: str | None = None
    progress: int | float | None = None
    estimated_completion_at: dt.datetime | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class JobUpdate:
    """Body of ``PATCH /jobs/{id}``."""

    config: dict[str, Any] | None = None
    status: JobStatus | str | None = None
    progress: int | float | None = None
    outcome_acknowledged_at: dt.datetime | None = None
    info: str | None = None
    metadata: dict[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class JobCompleteDetails:
    """Body of ``POST /jobs/{id}/complete`` and ``/fail``."""

    info: str | None = None
    outcome: JobOutcome | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class JobCancelDetails:
    """Body of ``POST /jobs/{id}/cancel``."""

    info: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class JobSplitDetails:
    """Body of ``POST /jobs/{id}/split``: a number of parts, or one dict of data per part."""

    parts: int | list[dict[str, Any]]
    run_in_parallel: bool | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class Pagination:
    """Paging of a list answer."""

    current_page: int | None = None
    page_count: int | None = None
    total_count: int | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class Subscription:
    """Credentials for Flatfile's push channel of events (``GET /v1/subscription``): a
    PubNub subscribe key and a token good for ``ttl`` minutes."""

    subscribe_key: str
    token: str = attrs.field(repr=False)
    account_id: str | None = None
    ttl: float | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class Secret:
    """A secret; ``value`` is hidden from ``repr`` so it never reaches a log by accident."""

    name: str
    value: str = attrs.field(repr=False)
    id: str | None = None
    environment_id: str | None = None
    space_id: str | None = None
    actor_id: str | None = None
    extra: Mapping[str, Any] = _extra()


def _structure_next(value: Any) -> Any:
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise ValueError(f"a `next` action must be an object with a string `type`, got {value!r}")
    cls = _NEXT_BY_TYPE.get(value["type"], UnknownNext)
    return converter.structure(value, cls)


register_tagged_union(AnyNext, _structure_next)
