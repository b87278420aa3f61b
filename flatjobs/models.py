"""Wire models of Flatfile's Jobs and Events API, and the one converter that reads and writes them.

Every model is an immutable attrs class with snake_case attributes; :data:`converter` maps
them to and from the camelCase JSON the API speaks (SPEC §2). Parsing is lenient, because
Flatfile adds topics, statuses and fields over time:

* an enum value flatjobs does not know is kept as a plain ``str`` (``JobStatus`` members are
  ``str`` too, so ``job.status == "complete"`` works either way);
* a field flatjobs does not know is kept in the model's ``extra`` mapping and written back
  unchanged;
* an optional field that is ``None`` is omitted on the wire, never sent as ``null`` (a
  ``null`` received is read as absent).

>>> from flatjobs.models import JobOutcome, Next, to_wire
>>> to_wire(JobOutcome(message="Done", next=Next.retry(label="Again")))
{'message': 'Done', 'next': {'type': 'retry', 'label': 'Again'}}

This module imports nothing else of flatjobs.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar, Union, cast, dataclass_transform

import attrs
import cattrs

__all__ = [
    "TERMINAL_STATUSES",
    "AnyNext",
    "ClearFiltersNext",
    "Context",
    "DownloadNext",
    "Event",
    "EventDomain",
    "FileRef",
    "FilesNext",
    "IdNext",
    "Job",
    "JobAckDetails",
    "JobCancelDetails",
    "JobCompleteDetails",
    "JobConfig",
    "JobEventPayload",
    "JobMode",
    "JobOutcome",
    "JobPartExecution",
    "JobPartResult",
    "JobPartsCounts",
    "JobSplitDetails",
    "JobStatus",
    "JobTrigger",
    "JobType",
    "JobUpdate",
    "Next",
    "Origin",
    "OutcomeAudience",
    "OutcomeTrigger",
    "OutcomeTriggerType",
    "Pagination",
    "RetryNext",
    "Secret",
    "SnapshotNext",
    "UnknownNext",
    "UrlNext",
    "ViewNext",
    "WaitNext",
    "converter",
    "evolve",
    "from_wire",
    "source_context",
    "to_wire",
]

T = TypeVar("T")


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


# --------------------------------------------------------------------------- helpers

_MODELS: set[type] = set()
_C = TypeVar("_C", bound=type)


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(attrs.field,))
def _model(cls: _C) -> _C:
    """Make ``cls`` a frozen, keyword-only attrs class that the converter treats as wire data."""
    out = attrs.frozen(kw_only=True, repr=False)(cls)
    out.__repr__ = _repr  # type: ignore[method-assign,assignment]
    _MODELS.add(out)
    return out


def _repr(self: Any) -> str:
    """Only the fields that are set: a Job has thirty, most of them usually empty."""
    shown = ", ".join(
        f"{f.name}={getattr(self, f.name)!r}"
        for f in attrs.fields(type(self))
        if f.repr and f.name != "extra" and getattr(self, f.name) is not None
    )
    return f"{type(self).__name__}({shown})"


def _extra() -> Any:
    """The ``extra`` field: fields the platform sent that flatjobs does not model."""
    return attrs.field(factory=dict, repr=False)


def _wire(name: str) -> dict[str, str]:
    return {"wire": name}


def camel(name: str) -> str:
    """``outcome_acknowledged_at`` -> ``outcomeAcknowledgedAt``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


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
    """Builders for an outcome's ``next`` action, one per variant of SPEC §2.

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
class Secret:
    """A secret; ``value`` is hidden from ``repr`` so it never reaches a log by accident."""

    name: str
    value: str = attrs.field(repr=False)
    id: str | None = None
    environment_id: str | None = None
    space_id: str | None = None
    actor_id: str | None = None
    extra: Mapping[str, Any] = _extra()


# --------------------------------------------------------------------------- converter

converter = cattrs.Converter()
"""The converter that owns every wire model (camelCase, leniency, ``extra``)."""


def _format_datetime(value: dt.datetime) -> str:
    if value.tzinfo is not None and value.utcoffset() == dt.timedelta(0):
        value = value.replace(tzinfo=None)
        suffix = "Z"
    else:
        suffix = ""
    spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    return value.isoformat(timespec=spec) + suffix


def _parse_datetime(value: Any, _: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}")
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


converter.register_structure_hook(dt.datetime, _parse_datetime)
converter.register_unstructure_hook(dt.datetime, _format_datetime)


def _union_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return tuple(a for a in typing.get_args(tp) if a is not type(None))
    return ()


def _without_none(tp: Any) -> Any:
    """``X | None`` -> ``X``: a null is read as absent before a value is structured."""
    args = _union_args(tp)
    return args[0] if len(args) == 1 and type(None) in typing.get_args(tp) else tp


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {type(value).__name__} {value!r:.80}")


converter.register_structure_hook(str, _structure_str)


def _lenient_enum_of(tp: Any) -> type[enum.StrEnum] | None:
    args = _union_args(tp)
    enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.StrEnum)]
    return enums[0] if enums and str in args else None


def _lenient_enum(value: Any, enum_cls: type[enum.StrEnum]) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"expected a string for {enum_cls.__name__}, got {value!r}")
    try:
        return enum_cls(value)
    except ValueError:
        return value  # a value the platform added after this release: kept as text


def _make_union_structure(tp: Any) -> Callable[[Any, Any], Any]:
    """A structuring function for one union type, with its dispatch worked out once."""
    args = _union_args(tp)
    if args == _union_args(AnyNext):
        return lambda value, _: _structure_next(value)
    models = [a for a in args if a in _MODELS]
    lists = [a for a in args if typing.get_origin(a) is list]
    enum_cls = _lenient_enum_of(tp)
    numbers = int in args
    name = _type_name(tp)

    def structure(value: Any, _: Any) -> Any:
        if models and isinstance(value, Mapping):
            return converter.structure(value, models[0])
        if lists and isinstance(value, list):
            return converter.structure(value, lists[0])
        if enum_cls is not None:
            return _lenient_enum(value, enum_cls)
        if numbers and isinstance(value, int | float) and not isinstance(value, bool):
            return value  # int | float: keep the number exactly as sent
        raise ValueError(f"{value!r:.80} is not a valid {name}")

    return structure


def _type_name(tp: Any) -> str:
    return " | ".join(getattr(a, "__name__", str(a)) for a in _union_args(tp)) or str(tp)


def _structure_next(value: Any) -> Any:
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise ValueError(f"a `next` action must be an object with a string `type`, got {value!r}")
    cls = _NEXT_BY_TYPE.get(value["type"], UnknownNext)
    return converter.structure(value, cls)


converter.register_structure_hook_factory(
    lambda tp: len(_union_args(tp)) > 1, _make_union_structure
)


def _make_structure(model: type[T]) -> Callable[[Any, Any], T]:
    cls: Any = model
    attrs.resolve_types(cls, globalns=globals())
    tag = getattr(cls, "TYPE", None)
    by_wire: dict[str, tuple[str, Any, Callable[[Any, Any], Any]]] = {}
    required: list[str] = []
    for f in attrs.fields(cls):
        if f.name == "extra":
            continue
        tp = _without_none(f.type)
        by_wire[f.metadata.get("wire", camel(f.name))] = (f.name, tp, _field_hook(tp))
        if f.default is attrs.NOTHING:
            required.append(f.name)

    def structure(data: Any, _: Any) -> T:
        if isinstance(data, model):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            spec = by_wire.get(key)
            if spec is None:
                if not (tag is not None and key == "type"):
                    extra[key] = value
            elif value is not None:
                name, tp, hook = spec
                try:
                    kwargs[name] = hook(value, tp)
                except Exception as exc:  # re-raised with the field's wire name
                    raise ValueError(f"{cls.__name__}.{key}: {exc}") from exc
        missing = [camel(n) for n in required if n not in kwargs]
        if missing:
            raise ValueError(f"{cls.__name__} is missing required field(s): {', '.join(missing)}")
        if extra:
            kwargs["extra"] = extra
        built: T = cls(**kwargs)
        return built

    return structure


def _field_hook(tp: Any) -> Callable[[Any, Any], Any]:
    """How to structure one field's value, resolved once when the class is first used."""
    if tp is Any:
        return lambda value, _: value
    if typing.get_origin(tp) is dict and typing.get_args(tp)[1:] == (Any,):
        return _structure_json_object
    if typing.get_origin(tp) is list and typing.get_args(tp) == (Any,):
        return _structure_json_list
    # Models' own hooks are built lazily: a model may refer to one defined after it.
    if tp in _MODELS:
        return lambda value, t: converter.structure(value, t)
    return converter.get_structure_hook(tp)


def _structure_json_object(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _structure_json_list(value: Any, _: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON array, got {type(value).__name__}")
    return value


def _make_unstructure(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    attrs.resolve_types(cls, globalns=globals())
    tag = getattr(cls, "TYPE", None)
    specs = [
        (f.name, f.metadata.get("wire", camel(f.name)))
        for f in attrs.fields(cls)
        if f.name != "extra"
    ]

    def unstructure(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"type": tag} if tag is not None else {}
        for name, wire in specs:
            value = getattr(obj, name)
            if value is not None:
                out[wire] = converter.unstructure(value)
        for key, value in obj.extra.items():
            out.setdefault(key, value)
        return out

    return unstructure


converter.register_structure_hook_factory(lambda tp: tp in _MODELS, _make_structure)
converter.register_unstructure_hook_factory(lambda tp: tp in _MODELS, _make_unstructure)


def evolve(obj: T, **changes: Any) -> T:
    """A copy of the model ``obj`` with ``changes`` applied (models are immutable)."""
    changed: T = attrs.evolve(cast(Any, obj), **changes)
    return changed


def to_wire(obj: Any) -> Any:
    """A model (or a list of them) as the JSON-ready structure the API expects."""
    return converter.unstructure(obj)


def from_wire(data: Any, cls: type[T]) -> T:
    """Read API JSON into ``cls``; raises ``ValueError`` naming the bad field."""
    return converter.structure(data, cls)
