"""What the emulator holds: spaces, documents, workbooks, sheets, commits and files.

Plain records of the state, each with its wire form and its event context; they import
nothing of the resources. The tables of :class:`~flatjobs.emulator._data._store.Store` hold
them, and the resource modules (``_spaces.py``, ``_workbooks.py``, ``_sheets.py``...) change
them.

A sheet holds its rows in insertion order in a list, so the common read (every record, in
order, page by page) is a slice; its counts are kept as rows change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from flatjobs.emulator._feed import utcnow
from flatjobs.models import to_wire

from ._rows import Row, Validator, error_fields

__all__ = ["ACTOR", "Commit", "Document", "File", "Sheet", "Space", "Workbook", "now"]

ACTOR = "us_usr_emulator"
"""Who makes every change: the emulator has one user."""


def now() -> str:
    """Now, as the platform writes a resource's timestamps."""
    return str(to_wire(utcnow()))


class Space:
    """A space: its fields as the API shows them (name, metadata, actions...)."""

    __slots__ = ("created_at", "environment_id", "fields", "id", "updated_at")
    domain = "space"

    def __init__(self, id: str, environment_id: str, fields: dict[str, Any]) -> None:
        self.id = id
        self.environment_id = environment_id
        self.fields = fields
        self.created_at = self.updated_at = now()

    @property
    def name(self) -> str:
        return str(self.fields.get("name", ""))

    def context(self) -> dict[str, Any]:
        return {"spaceId": self.id}

    def actions(self) -> list[dict[str, Any]]:
        return list(self.fields.get("actions") or [])


class Document:
    """A document of a space: its fields as the API shows them (title, body...)."""

    __slots__ = ("created_at", "fields", "id", "space", "updated_at")
    domain = "document"

    def __init__(self, id: str, space: Space, fields: dict[str, Any]) -> None:
        self.id = id
        self.space = space
        self.fields = fields
        self.created_at = self.updated_at = now()

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spaceId": self.space.id,
            "environmentId": self.space.environment_id,
            **self.fields,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    def context(self) -> dict[str, Any]:
        return {"spaceId": self.space.id, "documentId": self.id}

    def actions(self) -> list[dict[str, Any]]:
        return list(self.fields.get("actions") or [])


class Workbook:
    """A workbook: its fields as the API shows them (name, labels, settings...), its space
    and its sheets in order."""

    __slots__ = ("created_at", "fields", "id", "sheets", "space", "updated_at")
    domain = "workbook"

    def __init__(self, id: str, space: Space, fields: dict[str, Any]) -> None:
        self.id = id
        self.space = space
        self.fields = fields  # name, labels, namespace, settings, metadata...
        self.sheets: list[Sheet] = []
        self.created_at = self.updated_at = now()

    @property
    def name(self) -> str:
        return str(self.fields.get("name", ""))

    @property
    def track_changes(self) -> bool:
        return bool((self.fields.get("settings") or {}).get("trackChanges"))

    def wire(self, sheets: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "spaceId": self.space.id,
            "environmentId": self.space.environment_id,
            **{k: v for k, v in self.fields.items() if k not in ("spaceId", "environmentId")},
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if sheets:
            out["sheets"] = [s.wire() for s in self.sheets]
        return out

    def context(self) -> dict[str, Any]:
        return {"spaceId": self.space.id, "workbookId": self.id}

    def actions(self) -> list[dict[str, Any]]:
        return list(self.fields.get("actions") or [])


class Sheet:
    """A sheet: its config, its rows in insertion order, its counts, commits and cache of
    filtered or sorted reads (cleared whenever a row changes)."""

    __slots__ = (
        "by_field",
        "by_id",
        "cache",
        "commits",
        "config",
        "created_at",
        "error",
        "extra_keys",
        "head",
        "id",
        "keys",
        "metadata",
        "next_pos",
        "next_seq",
        "rows",
        "seqs",
        "updated_at",
        "validator",
        "workbook",
    )
    domain = "sheet"

    def __init__(self, id: str, workbook: Workbook, config: dict[str, Any], head: tuple[str, str]):
        self.id = id
        self.workbook = workbook
        self.config = config
        self.keys: list[str] = []
        self.validator = Validator([])
        self.metadata: dict[str, Any] | None = config.get("metadata")
        self.rows: list[Row] = []
        self.by_id: dict[str, Row] = {}
        self.error = 0  # records with an error message
        self.by_field: Counter[str] = Counter()  # records with an error message, per field
        self.extra_keys: set[str] = set()  # values kept for fields the config does not name
        self.commits: list[Commit] = []
        # The sheet's version before any commit: what a PUT that changes nothing answers.
        self.head = head
        self.seqs: dict[str, int] = {head[0]: 0, head[1]: 0}  # commit or version id -> seq
        self.next_seq = 1
        self.next_pos = 0
        self.cache: dict[tuple[Any, ...], list[Row]] = {}
        self.created_at = self.updated_at = now()

    @property
    def slug(self) -> str:
        return str(self.config["slug"])

    @property
    def allow_extra(self) -> bool:
        return bool(self.config.get("allowAdditionalFields"))

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config
        self.keys = [f["key"] for f in config["fields"]]
        self.validator = Validator(config["fields"])

    def counts(self) -> dict[str, Any]:
        total = len(self.rows)
        return {"total": total, "valid": total - self.error, "error": self.error}

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "workbookId": self.workbook.id,
            "name": self.config["name"],
            "slug": self.slug,
            "config": self.config,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "recordCounts": self.counts(),
        }
        if self.metadata is not None:
            out["metadata"] = self.metadata
        return out

    def context(self) -> dict[str, Any]:
        return {
            "spaceId": self.workbook.space.id,
            "workbookId": self.workbook.id,
            "sheetId": self.id,
            "sheetSlug": self.slug,
        }

    def actions(self) -> list[dict[str, Any]]:
        return list(self.config.get("actions") or [])

    # ----------------------------------------------------------- rows

    def account(self, row: Row, sign: int) -> None:
        """Add (``+1``) or remove (``-1``) a row's errors from the sheet's counts."""
        if row.errors:
            self.error += sign
            for key in row.errors:
                self.by_field[key] += sign

    def validate(self, row: Row) -> None:
        row.platform = self.validator.messages(row.values) if self.validator.checks else None
        row.errors = error_fields(row.platform, row.custom)

    def changed(self) -> None:
        self.cache.clear()
        self.updated_at = now()

    def wire_row(self, row: Row, keys: Sequence[str] | None, messages: bool) -> dict[str, Any]:
        """A record as ``GET /records`` writes it: ``{id, values, valid, metadata,
        config}``, every field of the sheet (or of ``fields``) as a cell ``{value, valid,
        updatedAt, messages?}``, an empty one with ``"value": null``; ``metadata`` and
        ``config`` are ``{}`` when the record has none. Flatfile's record hook counts a
        missing key as a change: this is the shape in which a hook that changes nothing
        sends nothing back."""
        values = row.values
        errors = row.errors
        created = row.created
        times = row.times
        platform = row.platform
        custom = row.custom
        if keys is None:
            keys = self.keys
            if self.extra_keys and self.allow_extra:
                keys = keys + [k for k in values if k not in self.keys]
        get = values.get
        cells: dict[str, Any]
        if not errors and not times and not platform and not custom:
            # The common record: every cell valid, unchanged since made, no message.
            if messages:
                cells = {
                    k: {"value": get(k), "valid": True, "updatedAt": created, "messages": []}
                    for k in keys
                }
            else:
                cells = {k: {"value": get(k), "valid": True, "updatedAt": created} for k in keys}
            return {
                "id": row.id,
                "values": cells,
                "valid": True,
                "metadata": row.metadata or {},
                "config": row.config or {},
            }
        cells = {}
        for key in keys:
            cell = {
                "value": values.get(key),
                "valid": key not in errors,
                "updatedAt": times.get(key, created) if times else created,
            }
            if messages:
                found: list[dict[str, Any]] = []
                if platform and key in platform:
                    found += platform[key]
                if custom and key in custom:
                    found += custom[key]
                cell["messages"] = found
            cells[key] = cell
        return {
            "id": row.id,
            "values": cells,
            "valid": not errors,
            "metadata": row.metadata if row.metadata is not None else {},
            "config": row.config if row.config is not None else {},
        }


class Commit:
    """One change of a sheet's records: its ids (the commit's and the version's), its
    place in the sheet's history (``seq``), whether it is complete, whether it started the
    record hooks (``hooks``), and the records it changed (``rows``, in sheet order)."""

    __slots__ = (
        "completed_at",
        "completed_by",
        "created_at",
        "event_id",
        "hooks",
        "id",
        "rows",
        "seq",
        "sheet_id",
        "version_id",
    )

    def __init__(
        self, id: str, version_id: str, sheet_id: str, seq: int, created_at: str, hooks: bool
    ) -> None:
        self.id = id
        self.version_id = version_id
        self.sheet_id = sheet_id
        self.seq = seq
        self.created_at = created_at
        self.hooks = hooks
        self.rows: list[Row] = []
        self.event_id: str | None = None  # its commit:created, once emitted
        self.completed_at: str | None = None
        self.completed_by: str | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "sheetId": self.sheet_id,
            "createdBy": ACTOR,
            "createdAt": self.created_at,
            "versionId": self.version_id,
        }
        if self.completed_at is not None:
            out["completedAt"] = self.completed_at
            out["completedBy"] = self.completed_by
        return out


class File:
    """A file: its fields as the API shows them, and its bytes."""

    __slots__ = ("content", "created_at", "fields", "id", "space", "updated_at")
    domain = "file"

    def __init__(self, id: str, space: Space, fields: dict[str, Any], content: bytes) -> None:
        self.id = id
        self.space = space
        self.fields = fields
        self.content = content
        self.created_at = self.updated_at = now()

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spaceId": self.space.id,
            "environmentId": self.space.environment_id,
            **self.fields,
            "size": len(self.content),
            "bytesReceived": len(self.content),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    def context(self) -> dict[str, Any]:
        out = {"spaceId": self.space.id, "fileId": self.id}
        if isinstance(self.fields.get("workbookId"), str):
            out["workbookId"] = self.fields["workbookId"]
        return out

    def actions(self) -> list[dict[str, Any]]:
        return list(self.fields.get("actions") or [])
