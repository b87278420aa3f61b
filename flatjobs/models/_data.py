"""The wire models of the data a job works on: records, sheets, workbooks, files, spaces,
documents, and the actions on them.

Lenient like every model here: a field type, cell shape, enum value or field flatjobs does
not know is kept (in ``extra``, or as text) and written back unchanged. Records as a
handler reads and edits them are :class:`flatjobs.Record` (kept as the raw JSON they came
as, so a page of 10,000 costs no model building); a cell, read on its own, is a
:class:`CellValue`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import attrs

from ._converter import extra as _extra
from ._converter import model as _model

__all__ = [
    "Action",
    "CellValue",
    "Commit",
    "Document",
    "DocumentConfig",
    "Field",
    "FieldConstraint",
    "FieldType",
    "File",
    "FileMode",
    "FileStatus",
    "MessageType",
    "RecordCounts",
    "Sheet",
    "SheetConfig",
    "Space",
    "SpaceConfig",
    "ValidationMessage",
    "Workbook",
    "WorkbookConfig",
    "WorkbookUpdate",
]


# --------------------------------------------------------------------------- enums


class MessageType(enum.StrEnum):
    """How bad a cell message is."""

    ERROR = "error"
    WARN = "warn"
    INFO = "info"


class FieldType(enum.StrEnum):
    """The kinds of field a sheet has; others are kept as text."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    ENUM = "enum"
    REFERENCE = "reference"
    REFERENCE_LIST = "reference-list"
    STRING_LIST = "string-list"
    ENUM_LIST = "enum-list"


class FileMode(enum.StrEnum):
    """Whether a file was uploaded to import or was produced by an export."""

    IMPORT = "import"
    EXPORT = "export"


class FileStatus(enum.StrEnum):
    """Where a file is in its processing."""

    PARTIAL = "partial"
    ANALYZING = "analyzing"
    ANALYZED = "analyzed"
    COMPLETE = "complete"
    ARCHIVED = "archived"
    PURGED = "purged"
    FAILED = "failed"


# --------------------------------------------------------------------------- records


@_model
class ValidationMessage:
    """A message on a cell: ``type`` error, warn or info; ``source`` says who wrote it
    (``custom-logic`` for a handler, ``required-constraint``...)."""

    message: str | None = None
    type: MessageType | str | None = None
    field: str | None = None
    source: str | None = None
    path: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class CellValue:
    """One cell: its ``value`` (text, number, boolean, a list of texts...), whether it is
    ``valid``, and its ``messages``."""

    value: Any = None
    valid: bool | None = None
    messages: list[ValidationMessage] | None = None
    updated_at: dt.datetime | None = None
    layer: str | None = None
    metadata: dict[str, Any] | None = None
    links: list[Any] | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class RecordCounts:
    """How many records a sheet (or a filter of it) holds, valid and with errors."""

    total: int = 0
    valid: int = 0
    error: int = 0
    errors_by_field: dict[str, int] | None = None
    by_field: dict[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()


# --------------------------------------------------------------------------- sheets


@_model
class FieldConstraint:
    """A constraint on a field: ``required``, ``unique``, ``computed``, ``external``..."""

    type: str
    config: dict[str, Any] | None = None
    validator: str | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class Field:
    """A field (a column) of a sheet. ``type`` is one of :class:`FieldType`, or any type
    the platform adds, kept as text; ``config`` is kept as sent (``options`` of an enum)."""

    key: str
    type: FieldType | str = FieldType.STRING
    label: str | None = None
    description: str | None = None
    constraints: list[FieldConstraint] | None = None
    readonly: bool | None = None
    config: dict[str, Any] | None = None
    appearance: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    treatments: list[str] | None = None
    alternative_names: list[str] | None = None
    is_array: bool | None = None
    multi: bool | None = None
    extra: Mapping[str, Any] = _extra()

    @property
    def required(self) -> bool:
        """Whether a ``required`` constraint is on the field."""
        return any(c.type == "required" for c in self.constraints or [])

    @property
    def options(self) -> list[Any]:
        """The values an enum field allows (``config.options[].value``)."""
        raw = (self.config or {}).get("options")
        return (
            [o.get("value") for o in raw if isinstance(o, Mapping)] if isinstance(raw, list) else []
        )


@_model
class Action:
    """A button on a workbook, a sheet or a file: clicking it creates the job
    ``<domain>:<operation>``."""

    label: str
    operation: str | None = None
    mode: str | None = None
    primary: bool | None = None
    confirm: bool | None = None
    description: str | None = None
    tooltip: str | None = None
    icon: str | None = None
    messages: list[dict[str, Any]] | None = None
    input_form: dict[str, Any] | None = None
    constraints: list[dict[str, Any]] | None = None
    mount: dict[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class SheetConfig:
    """What a sheet is: its name, slug, fields and actions."""

    name: str
    fields: list[Field] = attrs.field(factory=list)
    slug: str | None = None
    description: str | None = None
    readonly: bool | None = None
    allow_additional_fields: bool | None = None
    access: list[str] | None = None
    actions: list[Action] | None = None
    constraints: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()

    def field(self, key: str) -> Field | None:
        """The field ``key``, if the sheet has it."""
        return next((f for f in self.fields if f.key == key), None)


@_model
class Sheet:
    """A sheet of a workbook."""

    id: str
    workbook_id: str | None = None
    name: str | None = None
    slug: str | None = None
    config: SheetConfig | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    metadata: dict[str, Any] | None = None
    namespace: str | None = None
    locked_by: str | None = None
    locked_at: dt.datetime | None = None
    record_counts: RecordCounts | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class Commit:
    """A commit: one change to a sheet's records."""

    id: str
    sheet_id: str | None = None
    created_by: str | None = None
    created_at: dt.datetime | None = None
    completed_by: str | None = None
    completed_at: dt.datetime | None = None
    extra: Mapping[str, Any] = _extra()


# --------------------------------------------------------------------------- workbooks


@_model
class Workbook:
    """A workbook: sheets in a space."""

    id: str
    space_id: str | None = None
    environment_id: str | None = None
    name: str | None = None
    sheets: list[Sheet] | None = None
    labels: list[str] | None = None
    actions: list[Action] | None = None
    settings: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    namespace: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    extra: Mapping[str, Any] = _extra()

    def sheet(self, slug_or_id: str) -> Sheet | None:
        """The workbook's sheet with that slug or id, if it has one."""
        return next((s for s in self.sheets or [] if slug_or_id in (s.slug, s.id)), None)


@_model
class WorkbookConfig:
    """The body of ``POST /workbooks``: a name, and the sheets and actions to create."""

    name: str
    space_id: str | None = None
    environment_id: str | None = None
    labels: list[str] | None = None
    namespace: str | None = None
    sheets: list[SheetConfig] | None = None
    actions: list[Action] | None = None
    settings: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class WorkbookUpdate:
    """The body of ``PATCH /workbooks/{id}``: what changes."""

    name: str | None = None
    labels: list[str] | None = None
    namespace: str | None = None
    sheets: list[SheetConfig] | None = None
    actions: list[Action] | None = None
    settings: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()


# --------------------------------------------------------------------------- files


@_model
class File:
    """A file in a space: uploaded to import, or made by an export (``mode``)."""

    id: str
    name: str | None = None
    ext: str | None = None
    mimetype: str | None = None
    encoding: str | None = None
    status: FileStatus | str | None = None
    mode: FileMode | str | None = None
    size: int | None = None
    bytes_received: int | None = None
    space_id: str | None = None
    workbook_id: str | None = None
    sheet_id: str | None = None
    description: str | None = None
    actions: list[Action] | None = None
    origin: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    expired_at: dt.datetime | None = None
    extra: Mapping[str, Any] = _extra()


# --------------------------------------------------------------------------- spaces


@_model
class Space:
    """A space: where a user's workbooks, files and documents live."""

    id: str
    name: str | None = None
    environment_id: str | None = None
    primary_workbook_id: str | None = None
    workbooks_count: int | None = None
    files_count: int | None = None
    metadata: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    actions: list[Action] | None = None
    namespace: str | None = None
    labels: list[str] | None = None
    guest_authentication: list[str] | None = None
    archived_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class SpaceConfig:
    """The body of ``POST /spaces`` and ``PATCH /spaces/{id}``."""

    name: str | None = None
    environment_id: str | None = None
    primary_workbook_id: str | None = None
    metadata: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    actions: list[Action] | None = None
    namespace: str | None = None
    labels: list[str] | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class Document:
    """A document (a page of text with actions) in a space."""

    id: str
    title: str | None = None
    body: str | None = None
    space_id: str | None = None
    environment_id: str | None = None
    actions: list[Action] | None = None
    treatments: list[str] | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    extra: Mapping[str, Any] = _extra()


@_model
class DocumentConfig:
    """The body of ``POST``/``PATCH`` a document."""

    title: str
    body: str
    actions: list[Action] | None = None
    treatments: list[str] | None = None
    extra: Mapping[str, Any] = _extra()
