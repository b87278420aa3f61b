"""The emulator's data: spaces, workbooks, sheets and their records, commits, files, documents.

Pure logic, no HTTP, beside :class:`~flatjobs.emulator.PlatformState` (whose ids, clock and
event feed it shares). Every method that serves an endpoint takes the request's body or
query and returns what goes in the answer's ``data``; a request the platform would refuse
raises :class:`~flatjobs.emulator.EmulatorError`.

Records are kept for speed: a sheet holds its rows in insertion order in a list, so the
common read (every record, in order, page by page) is a slice; a filtered or sorted read is
worked out once and cached until the sheet next changes. A row keeps its values and
messages compactly and is written as wire JSON only when read.

Where the platform's behaviour is not documented, the emulator's choice is stated on the
method that makes it.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from flatjobs.models import to_wire

from . import _checks as ck
from ._checks import Check, Params
from ._state import EmulatorError, PlatformState, utcnow

__all__ = ["DataStore", "paused_gc"]

RECORDS_PAGE_SIZE = 10_000
"""``GET /sheets/{id}/records``'s default page size (Flatfile's documented default)."""
MAX_IDS = 100
"""The most record ids one request may name ("Maximum of 100 allowed")."""
FILES_PAGE_SIZE = 20
SPACES_PAGE_SIZE = 10
ACTOR = "us_usr_emulator"
"""Who makes every change: the emulator has one user."""

# The platform's own validation writes messages with these sources; a handler's PUT never
# writes them (they are recomputed on every change).
PLATFORM_SOURCES = frozenset({"required-constraint", "invalid-option"})
FILTERS = ("valid", "error", "all", "none")
FILE_STATUSES = ("partial", "analyzing", "analyzed", "complete", "archived", "purged", "failed")
FILE_MODES = ("import", "export")
_ID = re.compile(r"[A-Za-z0-9_-]+")


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a block of synchronous work on many
    records (never across an ``await``).

    A batch of 10,000 records is some 150,000 short-lived dicts (the parsed body, the
    answer) alive for the whole call: the collector, triggered by their allocation, moves
    them to its oldest generation and then walks every stored row of every sheet, again and
    again. Paused, they are freed by reference counting before it runs: half the time of a
    200,000-record load, and a third of a page's. Nothing here makes reference cycles."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _now() -> str:
    return str(to_wire(utcnow()))


_T = TypeVar("_T")


def _found(table: Mapping[str, _T], ident: str, kind: str, key: str) -> _T:
    found = table.get(ident)
    if found is None:
        raise _not_found(kind, ident, key)
    return found


def _not_found(what: str, ident: str, key: str) -> EmulatorError:
    return EmulatorError(404, f"{what} {ident!r:.80} not found", key=key)


# --------------------------------------------------------------------------- schemas

_FIELD: dict[str, Check] = {
    "key": ck.string,
    "type": ck.string,
    "label": ck.string,
    "description": ck.string,
    "constraints": ck.list_of(
        ck.model(
            {
                "type": ck.string,
                "config": ck.json_object,
                "validator": ck.string,
                "description": ck.string,
                "label": ck.string,
                "version": ck.integer,
            },
            required=("type",),
        ),
        "an array of constraints",
    ),
    "readonly": ck.boolean,
    "appearance": ck.json_object,
    "actions": ck.action_list,
    "metadata": ck.json_object,
    "treatments": ck.string_list,
    "alternativeNames": ck.string_list,
    "config": ck.json_object,
    "isArray": ck.boolean,
    "multi": ck.boolean,
}
_SHEET: dict[str, Check] = {
    "name": ck.string,
    "slug": ck.string,
    "description": ck.string,
    "readonly": ck.boolean,
    "allowAdditionalFields": ck.boolean,
    "mappingConfidenceThreshold": ck.number,
    "access": ck.string_list,
    "actions": ck.action_list,
    "metadata": ck.json_object,
    "constraints": ck.object_list,
    "treatments": ck.string_list,
    "collection": ck.string,
    "fields": ck.list_of(ck.model(_FIELD, required=("key", "type")), "an array of fields"),
}
_WORKBOOK: dict[str, Check] = {
    "name": ck.string,
    "labels": ck.string_list,
    "spaceId": ck.string,
    "environmentId": ck.string,
    "namespace": ck.string,
    "sheets": ck.list_of(ck.model(_SHEET, required=("name", "fields")), "an array of sheets"),
    "actions": ck.action_list,
    "settings": ck.json_object,
    "metadata": ck.json_object,
    "treatments": ck.string_list,
    "storageStrategy": ck.string,
    "folder": ck.string,
}
# WorkbookUpdate: the same, its sheets found by slug (new slugs are added).
_WORKBOOK_UPDATE = {
    **_WORKBOOK,
    "sheets": ck.list_of(
        ck.model(_SHEET, required=("name", "slug", "fields")), "an array of sheets"
    ),
}
_SHEET_UPDATE: dict[str, Check] = {
    "name": ck.string,
    "slug": ck.string,
    "metadata": ck.json_object,
}
_SPACE: dict[str, Check] = {
    "name": ck.string,
    "displayOrder": ck.integer,
    "guestAuthentication": ck.string_list,
    "spaceConfigId": ck.string,
    "environmentId": ck.string,
    "primaryWorkbookId": ck.string,
    "metadata": ck.json_object,
    "settings": ck.json_object,
    "actions": ck.action_list,
    "access": ck.string_list,
    "autoConfigure": ck.boolean,
    "namespace": ck.string,
    "labels": ck.string_list,
    "translationsPath": ck.string,
    "languageOverride": ck.string,
    "appId": ck.string,
    "isAppTemplate": ck.boolean,
}
_DOCUMENT: dict[str, Check] = {
    "title": ck.string,
    "body": ck.string,
    "treatments": ck.string_list,
    "actions": ck.action_list,
}
_FILE_UPDATE: dict[str, Check] = {
    "workbookId": ck.string,
    "sheetId": ck.string,
    "name": ck.string,
    "description": ck.string,
    "mode": ck.string,
    "status": ck.string,
    "actions": ck.action_list,
}


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "sheet"


# --------------------------------------------------------------------------- validation


_SCALARS = (str, int, float)  # a tuple: isinstance with `str | int` is several times slower


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: ``1``, ``1.0`` and ``true`` are three different values."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    return bool(a == b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Validator:
    """A sheet's own validation: ``required`` constraints and enum options."""

    __slots__ = ("checks",)

    def __init__(self, fields: Sequence[Mapping[str, Any]]) -> None:
        checks: list[tuple[str, str, dict[str, str] | None, frozenset[Any] | None]] = []
        for field in fields:
            key = field["key"]
            label = field.get("label") or key
            required: dict[str, str] | None = None
            for constraint in field.get("constraints") or ():
                if constraint.get("type") == "required":
                    config = constraint.get("config") or {}
                    level = config.get("level")
                    required = {
                        "type": level if level in ("error", "warn", "info") else "error",
                        "source": "required-constraint",
                        "message": str(config["message"])
                        if isinstance(config.get("message"), str)
                        else f"{label} is required",
                    }
            options: frozenset[Any] | None = None
            config = field.get("config") or {}
            if field["type"] in ("enum", "enum-list") and not config.get("allowCustom"):
                options = frozenset(
                    o.get("value")
                    for o in config.get("options") or ()
                    if isinstance(o.get("value"), str | int | float)
                )
            if required is not None or options is not None:
                checks.append((key, label, required, options))
        self.checks = checks

    def messages(self, values: Mapping[str, Any]) -> dict[str, list[dict[str, str]]] | None:
        """The platform's messages for a row's values, by field (``None``: none)."""
        out: dict[str, list[dict[str, str]]] | None = None
        for key, label, required, options in self.checks:
            value = values.get(key)
            if value is None or value == "" or value == []:
                if required is not None:
                    out = out if out is not None else {}
                    out[key] = [required]
                continue
            if options is None:
                continue
            items = value if isinstance(value, list) else (value,)
            bad = [x for x in items if not isinstance(x, _SCALARS) or x not in options]
            if bad:
                out = out if out is not None else {}
                out[key] = [
                    {
                        "type": "error",
                        "source": "invalid-option",
                        "message": f"{_short(x)} is not a valid option for {label}",
                    }
                    for x in bad
                ]
        return out


def _error_fields(*sources: dict[str, list[dict[str, Any]]] | None) -> tuple[str, ...]:
    keys: list[str] = []
    for source in sources:
        if source:
            for key, messages in source.items():
                if key not in keys and any(m.get("type") == "error" for m in messages):
                    keys.append(key)
    return tuple(keys)


# --------------------------------------------------------------------------- entities


class _Row:
    """One record. ``values`` holds the non-empty values; ``platform`` and ``custom`` the
    messages of each field (the platform's own, and those written by handlers); ``errors``
    the fields with an error message (none: the record is valid)."""

    __slots__ = (
        "commit_id",
        "config",
        "created",
        "custom",
        "errors",
        "id",
        "metadata",
        "platform",
        "pos",
        "seq",
        "times",
        "values",
        "version_id",
    )

    def __init__(
        self,
        id: str,
        pos: int,
        values: dict[str, Any],
        custom: dict[str, list[dict[str, Any]]] | None,
        created: str,
    ) -> None:
        self.id = id
        self.pos = pos
        self.values = values
        self.custom = custom
        self.platform: dict[str, list[dict[str, Any]]] | None = None
        self.errors: tuple[str, ...] = ()
        self.metadata: dict[str, Any] | None = None
        self.config: dict[str, Any] | None = None
        self.created = created
        self.times: dict[str, str] | None = None  # cells changed since the record was made
        self.seq = 0
        self.commit_id = ""
        self.version_id = ""


class _Commit:
    __slots__ = (
        "completed_at",
        "completed_by",
        "created_at",
        "id",
        "seq",
        "sheet_id",
        "version_id",
    )

    def __init__(self, id: str, version_id: str, sheet_id: str, seq: int, now: str) -> None:
        self.id = id
        self.version_id = version_id
        self.sheet_id = sheet_id
        self.seq = seq
        self.created_at = now
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


class _Query:
    """What a records read selects (everything but paging and the shape of the answer)."""

    __slots__ = (
        "commit_seq",
        "filter",
        "filter_field",
        "ids",
        "ids_excluded",
        "search_field",
        "search_value",
        "since_seq",
        "sort_desc",
        "sort_field",
    )

    def __init__(self) -> None:
        self.filter: str | None = None
        self.filter_field: str | None = None
        self.search_value: str | None = None
        self.search_field: str | None = None
        self.ids: tuple[str, ...] = ()
        self.ids_excluded = False
        self.sort_field: str | None = None
        self.sort_desc = False
        self.since_seq: int | None = None
        self.commit_seq: int | None = None

    def key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    @property
    def trivial(self) -> bool:
        """Every record, in insertion order: the list itself."""
        return (
            self.filter is None
            and self.search_value is None
            and not self.ids
            and self.sort_field is None
            and self.since_seq is None
            and self.commit_seq is None
        )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def _sort_key(value: Any) -> tuple[int, Any, str]:
    if isinstance(value, bool):
        return (0, int(value), "")
    if isinstance(value, int | float):
        return (0, value, "")
    return (1, 0, _text(value).casefold())


class _Sheet:
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

    def __init__(self, id: str, workbook: _Workbook, config: dict[str, Any], head: tuple[str, str]):
        self.id = id
        self.workbook = workbook
        self.config = config
        self.keys: list[str] = []
        self.validator = _Validator([])
        self.metadata: dict[str, Any] | None = config.get("metadata")
        self.rows: list[_Row] = []
        self.by_id: dict[str, _Row] = {}
        self.error = 0  # records with an error message
        self.by_field: Counter[str] = Counter()  # records with an error message, per field
        self.extra_keys: set[str] = set()  # values kept for fields the config does not name
        self.commits: list[_Commit] = []
        # The sheet's version before any commit: what a PUT that changes nothing answers.
        self.head = head
        self.seqs: dict[str, int] = {head[0]: 0, head[1]: 0}  # commit or version id -> seq
        self.next_seq = 1
        self.next_pos = 0
        self.cache: dict[tuple[Any, ...], list[_Row]] = {}
        self.created_at = self.updated_at = _now()

    @property
    def slug(self) -> str:
        return str(self.config["slug"])

    @property
    def allow_extra(self) -> bool:
        return bool(self.config.get("allowAdditionalFields"))

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config
        self.keys = [f["key"] for f in config["fields"]]
        self.validator = _Validator(config["fields"])

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

    # ----------------------------------------------------------- rows

    def account(self, row: _Row, sign: int) -> None:
        """Add (``+1``) or remove (``-1``) a row's errors from the sheet's counts."""
        if row.errors:
            self.error += sign
            for key in row.errors:
                self.by_field[key] += sign

    def validate(self, row: _Row) -> None:
        row.platform = self.validator.messages(row.values) if self.validator.checks else None
        row.errors = _error_fields(row.platform, row.custom)

    def changed(self) -> None:
        self.cache.clear()
        self.updated_at = _now()

    def wire_row(self, row: _Row, keys: Sequence[str] | None, messages: bool) -> dict[str, Any]:
        """A record as ``GET /records`` writes it: every field of the sheet (or of
        ``fields``) as a cell ``{value, valid, updatedAt, messages?}``."""
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
            out = {"id": row.id, "values": cells, "valid": True, "metadata": row.metadata or {}}
            if row.config is not None:
                out["config"] = row.config
            return out
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
        out = {
            "id": row.id,
            "values": cells,
            "valid": not errors,
            "metadata": row.metadata if row.metadata is not None else {},
        }
        if row.config is not None:
            out["config"] = row.config
        return out


class _Workbook:
    __slots__ = ("created_at", "fields", "id", "sheets", "space", "updated_at")

    def __init__(self, id: str, space: _Space, fields: dict[str, Any]) -> None:
        self.id = id
        self.space = space
        self.fields = fields  # name, labels, namespace, settings, metadata...
        self.sheets: list[_Sheet] = []
        self.created_at = self.updated_at = _now()

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


class _Space:
    __slots__ = ("created_at", "environment_id", "fields", "id", "updated_at")

    def __init__(self, id: str, environment_id: str, fields: dict[str, Any]) -> None:
        self.id = id
        self.environment_id = environment_id
        self.fields = fields
        self.created_at = self.updated_at = _now()

    @property
    def name(self) -> str:
        return str(self.fields.get("name", ""))


class _File:
    __slots__ = ("content", "created_at", "fields", "id", "space", "updated_at")

    def __init__(self, id: str, space: _Space, fields: dict[str, Any], content: bytes) -> None:
        self.id = id
        self.space = space
        self.fields = fields
        self.content = content
        self.created_at = self.updated_at = _now()

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


class _Document:
    __slots__ = ("created_at", "fields", "id", "space", "updated_at")

    def __init__(self, id: str, space: _Space, fields: dict[str, Any]) -> None:
        self.id = id
        self.space = space
        self.fields = fields
        self.created_at = self.updated_at = _now()

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


# --------------------------------------------------------------------------- the store


class DataStore:
    """The data of one emulated environment, beside its jobs and events (``state``).

    Args:
        state: the :class:`~flatjobs.emulator.PlatformState` whose ids, event feed and
            default space (``state.space_id``, created here) the data shares.
    """

    def __init__(self, state: PlatformState) -> None:
        self.state = state
        self.spaces: dict[str, _Space] = {}
        self.workbooks: dict[str, _Workbook] = {}
        self.sheets: dict[str, _Sheet] = {}
        self.commits: dict[str, _Commit] = {}
        self.files: dict[str, _File] = {}
        self.documents: dict[str, _Document] = {}
        self._quiet = 0
        default = _Space(
            state.space_id,
            state.environment_id,
            {"name": "Emulator space", "guestAuthentication": ["magic_link"]},
        )
        self.spaces[default.id] = default
        # A job created for a known workbook, sheet, file or document gets the event
        # context the platform gives it (its space, workbook, sheet slug).
        state.locate = self.locate

    # ----------------------------------------------------------- ids, events, lookups

    def _new_id(self, prefix: str, given: str | None = None) -> str:
        if given is None:
            return self.state.new_id(prefix)
        self._check_id(prefix, given)
        return given

    def _check_id(self, prefix: str, given: str) -> None:
        """A fixed id (a seed's) must look like the platform's and be free."""
        if (
            not isinstance(given, str)
            or not given.startswith(prefix)
            or not _ID.fullmatch(given)
            or self._taken(given)
        ):
            raise EmulatorError(
                400,
                f"id {given!r:.80} must start with {prefix}, use only letters, digits, "
                "- and _, and not be in use already",
                key="id",
            )

    def _taken(self, ident: str) -> bool:
        return any(
            ident in table
            for table in (
                self.spaces,
                self.workbooks,
                self.sheets,
                self.files,
                self.documents,
                self.commits,
            )
        )

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Within the block, changes emit no events (seeding: the world as it already was)."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def _emit(
        self, topic: str, domain: str, context: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> None:
        if self._quiet:
            return
        base = {
            "accountId": self.state.account_id,
            "environmentId": self.state.environment_id,
            "actorId": ACTOR,
        }
        self.state.emit(topic, domain=domain, context={**base, **context}, payload=payload)

    def locate(self, resource_id: str | None) -> dict[str, Any]:
        """The event context of a known workbook, sheet, file, document or space id (empty
        for an id the store does not hold)."""
        if not resource_id:
            return {}
        found = self._resource(resource_id)
        if isinstance(found, _Space):
            return {"spaceId": found.id}
        return found.context() if found is not None else {}

    def _resource(self, resource_id: str) -> _Sheet | _Workbook | _File | _Document | _Space | None:
        return (
            self.sheets.get(resource_id)
            or self.workbooks.get(resource_id)
            or self.files.get(resource_id)
            or self.documents.get(resource_id)
            or self.spaces.get(resource_id)
        )

    def space(self, space_id: str) -> _Space:
        """The space, or a 404."""
        return _found(self.spaces, space_id, "space", "spaceId")

    def workbook(self, workbook_id: str) -> _Workbook:
        """The workbook, or a 404."""
        return _found(self.workbooks, workbook_id, "workbook", "workbookId")

    def sheet(self, sheet_id: str) -> _Sheet:
        """The sheet, or a 404."""
        return _found(self.sheets, sheet_id, "sheet", "sheetId")

    def file(self, file_id: str) -> _File:
        """The file, or a 404."""
        return _found(self.files, file_id, "file", "fileId")

    def _check_environment(self, fields: Mapping[str, Any], where: str = "environmentId") -> None:
        given = fields.get("environmentId")
        if given is not None and given != self.state.environment_id:
            raise EmulatorError(
                400,
                f"{where} must be this environment's id, {self.state.environment_id}, got "
                f"{given!r:.80}",
                key=where,
            )

    # ----------------------------------------------------------- spaces

    def space_wire(self, space: _Space) -> dict[str, Any]:
        """A space as the API answers it."""
        out = {
            "id": space.id,
            "environmentId": space.environment_id,
            "guestAuthentication": ["magic_link"],
            **space.fields,
            "workbooksCount": sum(w.space is space for w in self.workbooks.values()),
            "filesCount": sum(f.space is space for f in self.files.values()),
            "createdAt": space.created_at,
            "updatedAt": space.updated_at,
        }
        out.setdefault("name", "")
        return out

    def create_space(self, body: Any, *, id: str | None = None) -> dict[str, Any]:
        """``POST /spaces`` (SpaceConfig; every field optional)."""
        fields = ck.read(body if body is not None else {}, _SPACE)
        self._check_environment(fields)
        fields.pop("environmentId", None)
        space = _Space(self._new_id("us_sp_", id), self.state.environment_id, fields)
        self.spaces[space.id] = space
        self._emit("space:created", "space", {"spaceId": space.id}, {})
        return self.space_wire(space)

    def list_spaces(self, params: Params) -> list[dict[str, Any]]:
        """``GET /spaces``: this environment's spaces, oldest first (paged by the caller)."""
        env = ck.one(params, "environmentId")
        if env is not None and env != self.state.environment_id:
            return []
        return [self.space_wire(s) for s in self.spaces.values()]

    def get_space(self, space_id: str) -> dict[str, Any]:
        """``GET /spaces/{id}``."""
        return self.space_wire(self.space(space_id))

    def update_space(self, space_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /spaces/{id}``: the fields given replace those held."""
        space = self.space(space_id)
        fields = ck.read(body, _SPACE)
        self._check_environment(fields)
        fields.pop("environmentId", None)
        space.fields.update(fields)
        space.updated_at = _now()
        self._emit("space:updated", "space", {"spaceId": space.id}, {})
        return self.space_wire(space)

    def delete_space(self, space_id: str) -> None:
        """``DELETE /spaces/{id}``, with its workbooks, files and documents."""
        space = self.space(space_id)
        for workbook in [w for w in self.workbooks.values() if w.space is space]:
            self.delete_workbook(workbook.id)
        for file in [f for f in self.files.values() if f.space is space]:
            self.delete_file(file.id)
        for document in [d for d in self.documents.values() if d.space is space]:
            self.delete_document(space.id, document.id)
        del self.spaces[space_id]
        self._emit("space:deleted", "space", {"spaceId": space.id}, {})

    # ----------------------------------------------------------- workbooks and sheets

    def _sheet_config(self, config: dict[str, Any], where: str, taken: set[str]) -> dict[str, Any]:
        """A checked SheetConfig: unique field keys, the config each field type needs (with
        the documented defaults filled in), a slug unique in its workbook."""
        keys: set[str] = set()
        for index, field in enumerate(config["fields"]):
            at = ck.where_item(ck.where_key(where, "fields"), index)
            if not field["key"]:
                raise EmulatorError(400, f"{at}.key must not be empty", key=f"{at}.key")
            if field["key"] in keys:
                raise EmulatorError(
                    400, f"{at}.key {field['key']!r:.60} is used twice", key=f"{at}.key"
                )
            keys.add(field["key"])
            kind, field_config = field["type"], field.get("config")
            if kind in ("enum", "enum-list"):
                options = (field_config or {}).get("options")
                if not isinstance(options, list) or not all(
                    isinstance(o, Mapping) for o in options
                ):
                    raise EmulatorError(
                        400,
                        f"{at}.config.options must be an array of options for an {kind} field",
                        key=f"{at}.config.options",
                    )
            elif kind in ("reference", "reference-list"):
                if not isinstance((field_config or {}).get("ref"), str):
                    raise EmulatorError(
                        400,
                        f"{at}.config.ref must name the referenced sheet for a {kind} field",
                        key=f"{at}.config.ref",
                    )
                field["config"] = {"key": "id", **(field_config or {})}  # "Defaults to id"
            elif kind == "string" and field_config is not None:
                field["config"] = {"size": "normal", **field_config}  # the documented default
            elif kind == "boolean" and field_config is not None:
                field["config"] = {"allowIndeterminate": True, **field_config}
        slug = config.get("slug")
        if slug is None:
            base = slug = _slugify(config["name"])
            n = 1
            while slug in taken:
                n += 1
                slug = f"{base}-{n}"
            config["slug"] = slug
        elif slug in taken:
            raise EmulatorError(
                400,
                f"{where}.slug {slug!r:.60} is used by another sheet of the workbook",
                key=f"{where}.slug",
            )
        taken.add(config["slug"])
        return config

    def _add_sheet(self, workbook: _Workbook, config: dict[str, Any], id: str | None) -> _Sheet:
        head = (self.state.new_id("us_vr_"), self.state.new_id("us_vr_"))
        sheet = _Sheet(self._new_id("us_sh_", id), workbook, config, head)
        sheet.configure(config)
        workbook.sheets.append(sheet)
        self.sheets[sheet.id] = sheet
        self._emit("sheet:created", "sheet", sheet.context(), {})
        return sheet

    def create_workbook(
        self, body: Any, *, id: str | None = None, sheet_ids: Sequence[str | None] = ()
    ) -> dict[str, Any]:
        """``POST /workbooks`` (CreateWorkbookConfig): the workbook and its sheets; without
        ``spaceId``, in the default space."""
        fields = ck.read(body, _WORKBOOK, required=("name",))
        self._check_environment(fields)
        space = self.spaces.get(fields.get("spaceId", self.state.space_id))
        if space is None:
            raise _not_found("space", fields["spaceId"], "spaceId")
        configs = fields.pop("sheets", [])
        fixed = [i for i in sheet_ids if i is not None]
        for given in fixed:
            self._check_id("us_sh_", given)
        if len(set(fixed)) != len(fixed):
            raise EmulatorError(400, "two sheets cannot have one id", key="id")
        if id is not None:
            self._check_id("us_wb_", id)
        taken: set[str] = set()
        configs = [
            self._sheet_config(c, ck.where_item("sheets", i), taken) for i, c in enumerate(configs)
        ]
        workbook = _Workbook(self._new_id("us_wb_", id), space, fields)
        self.workbooks[workbook.id] = workbook
        self._emit("workbook:created", "workbook", workbook.context(), {})
        for index, config in enumerate(configs):
            self._add_sheet(workbook, config, sheet_ids[index] if index < len(sheet_ids) else None)
        return workbook.wire()

    def list_workbooks(self, params: Params) -> list[dict[str, Any]]:
        """``GET /workbooks``: filtered by ``spaceId``, ``name``, ``namespace`` and
        ``label`` (each negated by a leading ``-``); ``includeSheets`` defaults to true."""
        include_sheets = ck.flag(params, "includeSheets", True)
        found = list(self.workbooks.values())
        filters: list[tuple[str, Callable[[_Workbook], list[Any]]]] = [
            ("spaceId", lambda w: [w.space.id]),
            ("name", lambda w: [w.name]),
            ("namespace", lambda w: [w.fields.get("namespace")]),
            ("label", lambda w: list(w.fields.get("labels") or [])),
        ]
        for key, value_of in filters:
            wanted = ck.one(params, key)
            if wanted is None:
                continue
            negate = wanted.startswith("-")
            wanted = wanted[1:] if negate else wanted
            found = [w for w in found if (wanted in value_of(w)) != negate]
        return [w.wire(sheets=include_sheets) for w in found]

    def get_workbook(self, workbook_id: str) -> dict[str, Any]:
        """``GET /workbooks/{id}``."""
        return self.workbook(workbook_id).wire()

    def update_workbook(self, workbook_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /workbooks/{id}`` (WorkbookUpdate): the fields given replace those held.
        Each of ``sheets`` updates the sheet with its slug (every record is validated again
        against the new fields) or adds a sheet; sheets not named stay as they are."""
        workbook = self.workbook(workbook_id)
        fields = ck.read(body, _WORKBOOK_UPDATE)
        self._check_environment(fields)
        fields.pop("environmentId", None)
        if "spaceId" in fields:
            space = self.spaces.get(fields["spaceId"])
            if space is None:
                raise _not_found("space", fields["spaceId"], "spaceId")
        configs = fields.pop("sheets", None)
        checked: list[dict[str, Any]] = []
        if configs is not None:
            by_slug = {s.slug: s for s in workbook.sheets}
            taken = set(by_slug) - {c["slug"] for c in configs}
            for index, config in enumerate(configs):
                checked.append(self._sheet_config(config, ck.where_item("sheets", index), taken))
        if "spaceId" in fields:
            workbook.space = self.spaces[fields.pop("spaceId")]
        workbook.fields.update(fields)
        workbook.updated_at = _now()
        self._emit("workbook:updated", "workbook", workbook.context(), {})
        for config in checked:
            sheet = next((s for s in workbook.sheets if s.slug == config["slug"]), None)
            if sheet is None:
                self._add_sheet(workbook, config, None)
            else:
                self._reconfigure(sheet, config)
        return workbook.wire()

    def _reconfigure(self, sheet: _Sheet, config: dict[str, Any]) -> None:
        before = sheet.counts()
        sheet.configure(config)
        for row in sheet.rows:
            sheet.account(row, -1)
            sheet.validate(row)
            sheet.account(row, +1)
        sheet.changed()
        self._emit("sheet:updated", "sheet", sheet.context(), {})
        self._counts_changed(sheet, before)

    def delete_workbook(self, workbook_id: str) -> None:
        """``DELETE /workbooks/{id}``, with its sheets."""
        workbook = self.workbook(workbook_id)
        for sheet in list(workbook.sheets):
            self.delete_sheet(sheet.id)
        del self.workbooks[workbook_id]
        self._emit("workbook:deleted", "workbook", workbook.context(), {})

    def list_sheets(self, params: Params) -> list[dict[str, Any]]:
        """``GET /sheets?workbookId=`` (required)."""
        workbook_id = ck.one(params, "workbookId")
        if not workbook_id:
            raise EmulatorError(400, "workbookId is required", key="workbookId")
        workbook = self.workbooks.get(workbook_id)
        return [s.wire() for s in workbook.sheets] if workbook is not None else []

    def get_sheet(self, sheet_id: str) -> dict[str, Any]:
        """``GET /sheets/{id}``."""
        return self.sheet(sheet_id).wire()

    def update_sheet(self, sheet_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /sheets/{id}`` (``name``, ``slug``, ``metadata``)."""
        sheet = self.sheet(sheet_id)
        fields = ck.read(body, _SHEET_UPDATE)
        slug = fields.get("slug")
        if slug is not None and any(
            s.slug == slug for s in sheet.workbook.sheets if s is not sheet
        ):
            raise EmulatorError(
                400, f"slug {slug!r:.60} is used by another sheet of the workbook", key="slug"
            )
        config = dict(sheet.config)
        for key in ("name", "slug"):
            if key in fields:
                config[key] = fields[key]
        sheet.configure(config)
        if "metadata" in fields:
            sheet.metadata = fields["metadata"]
        sheet.updated_at = _now()
        self._emit("sheet:updated", "sheet", sheet.context(), {})
        return sheet.wire()

    def delete_sheet(self, sheet_id: str) -> None:
        """``DELETE /sheets/{id}``, with its records and commits."""
        sheet = self.sheet(sheet_id)
        sheet.workbook.sheets.remove(sheet)
        for commit in sheet.commits:
            self.commits.pop(commit.id, None)
        del self.sheets[sheet_id]
        self._emit("sheet:deleted", "sheet", sheet.context(), {})

    # ----------------------------------------------------------- commits

    def _commit(self, sheet: _Sheet) -> _Commit:
        """A new commit of ``sheet``: complete at once unless its workbook tracks changes
        (``settings.trackChanges``), when a listener completes it."""
        now = _now()
        commit = _Commit(
            self.state.new_id("us_vr_"), self.state.new_id("us_vr_"), sheet.id, sheet.next_seq, now
        )
        sheet.next_seq += 1
        if not sheet.workbook.track_changes:
            commit.completed_at, commit.completed_by = now, ACTOR
        sheet.commits.append(commit)
        sheet.seqs[commit.id] = sheet.seqs[commit.version_id] = commit.seq
        sheet.head = (commit.id, commit.version_id)
        self.commits[commit.id] = commit
        return commit

    def _announce(
        self, sheet: _Sheet, commit: _Commit, topic: str, count: int, before: dict[str, Any]
    ) -> None:
        """The events of one change of records: ``records:*`` (payload ``{count}``, the
        number of records), ``commit:created`` (payload ``{trackChanges}``), and
        ``sheet:counts-updated`` (payload ``{counts}``) when the counts moved.

        The platform's ``Domain`` enum has no ``records`` or ``commit``: these events say
        ``workbook``, the domain that holds sheets."""
        context = {**sheet.context(), "commitId": commit.id}
        self._emit(topic, "workbook", context, {"count": count})
        self._emit(
            "commit:created",
            "workbook",
            context,
            {"trackChanges": sheet.workbook.track_changes, "sheetId": sheet.id},
        )
        self._counts_changed(sheet, before)

    def _counts_changed(self, sheet: _Sheet, before: dict[str, Any]) -> None:
        after = sheet.counts()
        if after != before:
            self._emit("sheet:counts-updated", "sheet", sheet.context(), {"counts": after})

    def list_commits(self, sheet_ids: Sequence[str], params: Params) -> list[dict[str, Any]]:
        """``GET /sheets/{id}/commits`` and ``GET /workbooks/{id}/commits``: ``completed``
        true or false keeps those (not) completed."""
        completed = ck.one(params, "completed")
        wanted = None if completed is None else ck.flag(params, "completed")
        return [
            commit.wire()
            for sheet_id in sheet_ids
            for commit in self.sheets[sheet_id].commits
            if wanted is None or (commit.completed_at is not None) == wanted
        ]

    def get_commit(self, commit_id: str) -> dict[str, Any]:
        """``GET /commits/{id}``."""
        commit = self.commits.get(commit_id)
        if commit is None:
            raise _not_found("commit", commit_id, "commitId")
        return commit.wire()

    def complete_commit(self, commit_id: str) -> None:
        """``POST /commits/{id}/complete``: emits ``commit:completed`` (once)."""
        commit = self.commits.get(commit_id)
        if commit is None:
            raise _not_found("commit", commit_id, "commitId")
        if commit.completed_at is not None:
            return
        commit.completed_at, commit.completed_by = _now(), ACTOR
        sheet = self.sheets[commit.sheet_id]
        self._emit("commit:completed", "workbook", {**sheet.context(), "commitId": commit.id}, {})

    # ----------------------------------------------------------- reading records

    def _field(self, sheet: _Sheet, params: Params, key: str) -> str | None:
        value = ck.one(params, key)
        if value is not None and value not in sheet.keys and not sheet.allow_extra:
            raise EmulatorError(
                400, f"{key} {value!r:.60} is not a field of sheet {sheet.slug}", key=key
            )
        return value

    def _seq(self, sheet: _Sheet, params: Params, key: str) -> int | None:
        value = ck.one(params, key)
        if value is None:
            return None
        seq = sheet.seqs.get(value)
        if seq is None:
            raise EmulatorError(
                400, f"{key} {value!r:.60} is not a commit of sheet {sheet.slug}", key=key
            )
        return seq

    def _query(self, sheet: _Sheet, params: Params) -> _Query:
        """The selection a records (or counts, or download) query asks for, checked."""
        q = _Query()
        if ck.one(params, "q"):
            raise EmulatorError(400, "q (FFQL) is not supported by the emulator", key="q")
        kind = ck.one(params, "filter")
        if kind is not None and kind not in FILTERS:
            raise EmulatorError(
                400, f"filter must be one of {', '.join(FILTERS)}, got {kind!r:.40}", key="filter"
            )
        # `none` filters nothing, like no filter at all (and does not exclude `ids`).
        q.filter = kind if kind in ("valid", "error") else None
        q.filter_field = self._field(sheet, params, "filterField")
        q.search_value = ck.one(params, "searchValue")
        q.search_field = self._field(sheet, params, "searchField")
        ids = params.get("ids") or ()
        if len(ids) > MAX_IDS:
            raise EmulatorError(
                400, f"ids names at most {MAX_IDS} records, got {len(ids)}", key="ids"
            )
        q.ids = tuple(ids)
        # With a filtering parameter the ids are left out; otherwise the result is them.
        q.ids_excluded = q.search_value is not None or kind in ("valid", "error", "all")
        q.sort_field = self._field(sheet, params, "sortField")
        direction = ck.one(params, "sortDirection")
        if direction is not None and direction not in ("asc", "desc"):
            raise EmulatorError(
                400,
                f"sortDirection must be asc or desc, got {direction!r:.40}",
                key="sortDirection",
            )
        q.sort_desc = direction == "desc"
        q.since_seq = self._seq(sheet, params, "sinceCommitId")
        if q.since_seq is None:
            q.since_seq = self._seq(sheet, params, "sinceVersionId")
        q.commit_seq = self._seq(sheet, params, "commitId")
        if q.commit_seq is None:
            q.commit_seq = self._seq(sheet, params, "versionId")
        event_id = ck.one(params, "for")
        if event_id is not None and q.commit_seq is None:
            # The records of the change an event (a commit:created) announced.
            try:
                event = self.state.get_event(event_id)
            except EmulatorError as exc:
                raise EmulatorError(400, exc.message, key="for") from None
            commit_id = (event.get("context") or {}).get("commitId")
            q.commit_seq = sheet.seqs.get(commit_id) if isinstance(commit_id, str) else None
            if q.commit_seq is None:
                raise EmulatorError(
                    400, f"event {event_id!r:.60} names no commit of this sheet", key="for"
                )
        return q

    def _select(self, sheet: _Sheet, q: _Query) -> list[_Row]:
        """The rows ``q`` selects, in order. Do not mutate: it may be the sheet's own list."""
        if q.trivial:
            return sheet.rows
        key = q.key()
        cached = sheet.cache.get(key)
        if cached is not None:
            return cached
        if q.ids and not q.ids_excluded:
            found = {sheet.by_id[i].pos: sheet.by_id[i] for i in q.ids if i in sheet.by_id}
            rows = [found[pos] for pos in sorted(found)]
        else:
            rows = sheet.rows
            if q.ids:
                excluded = set(q.ids)
                rows = [r for r in rows if r.id not in excluded]
        since, exact = q.since_seq, q.commit_seq
        if since is not None:
            rows = [r for r in rows if r.seq > since]
        if exact is not None:
            rows = [r for r in rows if r.seq == exact]
        if q.filter is not None:
            want_error = q.filter == "error"
            field = q.filter_field
            if field is None:
                rows = [r for r in rows if bool(r.errors) == want_error]
            else:
                rows = [r for r in rows if (field in r.errors) == want_error]
        if q.search_value is not None:
            rows = self._search(sheet, rows, q.search_value, q.search_field)
        if q.sort_field is not None:
            field = q.sort_field
            present = [r for r in rows if not _empty(r.values.get(field))]
            absent = [r for r in rows if _empty(r.values.get(field))]
            present.sort(key=lambda r: _sort_key(r.values[field]), reverse=q.sort_desc)
            rows = present + absent  # empty cells last, whichever the direction
        if len(sheet.cache) >= 16:
            sheet.cache.pop(next(iter(sheet.cache)))
        sheet.cache[key] = rows
        return rows

    @staticmethod
    def _search(sheet: _Sheet, rows: list[_Row], value: str, field: str | None) -> list[_Row]:
        """``searchValue``: ``""`` finds empty cells, ``"..."`` (quoted) an exact value,
        anything else a case-insensitive part of a value; in ``searchField``, else in any
        field."""
        keys = [field] if field is not None else sheet.keys
        if value == "":
            return [r for r in rows if any(_empty(r.values.get(k)) for k in keys)]
        if len(value) >= 2 and value[0] == value[-1] == '"':
            exact = value[1:-1]

            def hit(v: Any) -> bool:
                return (
                    any(_text(x) == exact for x in v)
                    if isinstance(v, list)
                    else (_text(v) == exact)
                )
        else:
            part = value.casefold()

            def hit(v: Any) -> bool:
                return part in _text(v).casefold()

        return [r for r in rows if any(k in r.values and hit(r.values[k]) for k in keys)]

    @staticmethod
    def _counts_of(sheet: _Sheet, rows: list[_Row], by_field: bool = False) -> dict[str, Any]:
        if rows is sheet.rows:
            counts: dict[str, Any] = sheet.counts()
            counts["errorsByField"] = {k: n for k, n in sheet.by_field.items() if n}
        else:
            error = sum(1 for r in rows if r.errors)
            per_field: Counter[str] = Counter(k for r in rows for k in r.errors)
            counts = {
                "total": len(rows),
                "valid": len(rows) - error,
                "error": error,
                "errorsByField": dict(per_field),
            }
        if by_field:
            counts["byField"] = {
                key: {
                    "total": len(rows),
                    "valid": sum(1 for r in rows if key not in r.errors),
                    "error": sum(1 for r in rows if key in r.errors),
                    "empty": sum(1 for r in rows if _empty(r.values.get(key))),
                }
                for key in sheet.keys
            }
        return counts

    def get_records(self, sheet_id: str, params: Params) -> dict[str, Any]:
        """``GET /sheets/{id}/records``: a page (``pageSize``, default 10,000;
        ``pageNumber`` from 1) of the records the filters select, as ``{success, records,
        counts?, commitId, versionId}`` (no ``pagination``).

        Cells carry ``messages`` only with ``includeMessages=true``; ``fields`` keeps those
        fields; ``includeCounts`` or ``includeLength`` add ``counts`` of the whole
        selection; ``commitId`` selects the records last changed by that commit,
        ``sinceCommitId`` those changed after it (the emulator keeps no history: a record
        changed again since is selected by its latest commit)."""
        sheet = self.sheet(sheet_id)
        q = self._query(sheet, params)
        size = ck.positive(params, "pageSize", RECORDS_PAGE_SIZE)
        number = ck.positive(params, "pageNumber", 1)
        include_messages = ck.flag(params, "includeMessages")
        with_counts = ck.flag(params, "includeCounts") | ck.flag(params, "includeLength")
        ck.flag(params, "includeLinks")  # checked; links are not computed
        fields = params.get("fields")
        keys: list[str] | None = None
        if fields:
            unknown = [f for f in fields if f not in sheet.keys]
            if unknown and not sheet.allow_extra:
                raise EmulatorError(
                    400,
                    f"fields names {unknown[0]!r:.60}, not a field of sheet {sheet.slug}",
                    key="fields",
                )
            keys = list(dict.fromkeys(fields))
        rows = self._select(sheet, q)
        start = (number - 1) * size
        wire = sheet.wire_row
        out: dict[str, Any] = {
            "success": True,
            "records": [wire(r, keys, include_messages) for r in rows[start : start + size]],
        }
        if with_counts:
            out["counts"] = self._counts_of(sheet, rows)
        out["commitId"], out["versionId"] = sheet.head
        return out

    def counts(self, sheet_id: str, params: Params) -> dict[str, Any]:
        """``GET /sheets/{id}/counts``: ``{counts: {total, valid, error, errorsByField,
        byField?}, success}`` of the records the filters select."""
        sheet = self.sheet(sheet_id)
        rows = self._select(sheet, self._query(sheet, params))
        return {
            "counts": self._counts_of(sheet, rows, by_field=ck.flag(params, "byField")),
            "success": True,
        }

    def download(self, sheet_id: str, params: Params) -> tuple[bytes, str]:
        """``GET /sheets/{id}/download``: the selected records as UTF-8 CSV, and a file name.

        The header row holds the field keys, not their labels: keys are unique, and the
        file reads back in as a seed. A list is written as its items joined by ``", "``, a
        boolean as ``true``/``false``, an empty cell as nothing."""
        sheet = self.sheet(sheet_id)
        rows = self._select(sheet, self._query(sheet, params))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        keys = sheet.keys
        writer.writerow(keys)
        writer.writerows([_text(r.values.get(k)) for k in keys] for r in rows)
        return out.getvalue().encode(), f"{sheet.slug}.csv"

    def records_of(self, sheet_id: str) -> list[dict[str, Any]]:
        """Every record of the sheet with its messages, ``versionId`` and ``commitId``
        (which the API does not show), for assertions."""
        sheet = self.sheet(sheet_id)
        out = []
        for row in sheet.rows:
            wire = sheet.wire_row(row, None, True)
            wire["versionId"], wire["commitId"] = row.version_id, row.commit_id
            out.append(wire)
        return out

    # ----------------------------------------------------------- writing records

    def _cells(
        self, sheet: _Sheet, item: Any, where: str
    ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        """The values and custom messages of one RecordData (``{field: {value, messages}}``).

        A field the sheet does not have is kept only when the sheet allows additional
        fields (``allowAdditionalFields``); otherwise it is dropped, as the platform
        ignores what its blueprint does not define."""
        if not isinstance(item, dict):
            raise ck.bad(where, "an object of cells ({field: {value}})", item)
        values: dict[str, Any] = {}
        messages: dict[str, list[dict[str, Any]]] = {}
        keys = sheet.keys
        allow_extra = sheet.allow_extra
        for key, cell in item.items():
            if key not in keys and not allow_extra:
                continue
            if not isinstance(cell, dict):
                raise ck.bad(ck.where_key(where, key), 'a cell object ({"value": ...})', cell)
            if "value" in cell:
                value = cell["value"]
                if not (value is None or isinstance(value, _SCALARS)) and not (
                    isinstance(value, list) and all(isinstance(x, str) for x in value)
                ):
                    raise ck.bad(
                        f"{ck.where_key(where, key)}.value",
                        "a string, number, boolean, array of strings or null",
                        value,
                    )
                values[key] = value
            if cell.get("messages") is not None:
                at = ck.where_key(where, key)
                messages[key] = _messages(cell["messages"], f"{at}.messages")
        return values, messages

    def insert_records(self, sheet_id: str, body: Any) -> dict[str, Any]:
        """``POST /sheets/{id}/records`` with RecordData ``[{field: {value}}]``: ``{success,
        records, counts, commitId, versionId}``, the records as ``GET`` writes them with
        their messages. An empty list inserts nothing, makes no commit and emits nothing."""
        sheet = self.sheet(sheet_id)
        if not isinstance(body, list):
            raise ck.bad("", "an array of records", body)
        parsed = [self._cells(sheet, item, ck.where_item("", i)) for i, item in enumerate(body)]
        if not parsed:
            return {"success": True, "records": [], "counts": sheet.counts()}
        before = sheet.counts()
        commit = self._commit(sheet)
        now = _now()
        new_id = self.state.new_id
        rows = []
        for values, messages in parsed:
            row = _Row(
                new_id("us_rc_"),
                sheet.next_pos,
                {k: v for k, v in values.items() if v is not None},
                messages or None,
                now,
            )
            sheet.next_pos += 1
            row.seq, row.commit_id, row.version_id = commit.seq, commit.id, commit.version_id
            sheet.validate(row)
            sheet.account(row, +1)
            if sheet.allow_extra:
                sheet.extra_keys.update(k for k in row.values if k not in sheet.keys)
            sheet.rows.append(row)
            sheet.by_id[row.id] = row
            rows.append(row)
        sheet.changed()
        self._announce(sheet, commit, "records:created", len(rows), before)
        return {
            "success": True,
            "records": [sheet.wire_row(r, None, True) for r in rows],
            "counts": sheet.counts(),
            "commitId": commit.id,
            "versionId": commit.version_id,
        }

    def update_records(self, sheet_id: str, body: Any) -> dict[str, Any]:
        """``PUT /sheets/{id}/records`` with ``[{id, values?, metadata?, config?}]``:
        ``{versionId, commitId}``.

        Each cell given is merged into the record: ``value`` replaces the value
        (``null`` empties it); ``messages`` replaces the messages handlers wrote on that
        cell (their ``source`` defaults to ``custom-logic``; messages with the platform's
        own sources are ignored: those are recomputed). ``metadata`` and ``config`` replace
        the record's. ``versionId``/``commitId`` on a record are accepted and not checked.
        Every record must be in the sheet, or nothing changes (400).

        When nothing changes the answer is the same, with the sheet's current ids, and
        status 200: the platform may answer 304 with no body, which both of Flatfile's
        SDKs fail to read."""
        sheet = self.sheet(sheet_id)
        if not isinstance(body, list):
            raise ck.bad("", "an array of records", body)
        plans = []
        for index, item in enumerate(body):
            where = ck.where_item("", index)
            fields = ck.read(
                item,
                {
                    "id": ck.string,
                    "values": ck.any_json,
                    "metadata": ck.json_object,
                    "config": ck.json_object,
                    "versionId": ck.string,
                    "commitId": ck.string,
                },
                where,
                required=("id",),
            )
            row = sheet.by_id.get(fields["id"])
            if row is None:
                raise EmulatorError(
                    400,
                    f"{where}.id: record {fields['id']!r:.60} is not in sheet {sheet.slug}",
                    key=f"{where}.id",
                )
            values, messages = (
                self._cells(sheet, fields["values"], f"{where}.values")
                if "values" in fields
                else ({}, {})
            )
            plans.append((row, values, messages, fields))
        before = sheet.counts()
        now = _now()
        changed: dict[str, _Row] = {}
        for row, values, messages, fields in plans:
            if self._merge(sheet, row, values, messages, fields, now):
                changed[row.id] = row
        if not changed:
            commit_id, version_id = sheet.head
            return {"versionId": version_id, "commitId": commit_id}
        commit = self._commit(sheet)
        for row in changed.values():
            row.seq, row.commit_id, row.version_id = commit.seq, commit.id, commit.version_id
        sheet.changed()
        self._announce(sheet, commit, "records:updated", len(changed), before)
        return {"versionId": commit.version_id, "commitId": commit.id}

    @staticmethod
    def _merge(
        sheet: _Sheet,
        row: _Row,
        values: dict[str, Any],
        messages: dict[str, list[dict[str, Any]]],
        fields: dict[str, Any],
        now: str,
    ) -> bool:
        """Apply one record's update; whether anything changed."""
        touched = False
        new_values = row.values
        for key, value in values.items():
            if not _same(row.values.get(key), value):
                if new_values is row.values:
                    new_values = dict(row.values)
                if value is None:
                    new_values.pop(key, None)
                else:
                    new_values[key] = value
                row.times = row.times if row.times is not None else {}
                row.times[key] = now
                touched = True
        custom = row.custom
        for key, found in messages.items():
            if (custom or {}).get(key, []) != found:
                custom = dict(custom or {})
                if found:
                    custom[key] = found
                else:
                    custom.pop(key, None)
                row.times = row.times if row.times is not None else {}
                row.times[key] = now
                touched = True
        for key in ("metadata", "config"):
            if key in fields and not _same(getattr(row, key), fields[key]):
                setattr(row, key, fields[key])
                touched = True
        if new_values is not row.values or custom is not row.custom:
            sheet.account(row, -1)
            row.values, row.custom = new_values, custom or None
            sheet.validate(row)
            sheet.account(row, +1)
            if sheet.allow_extra:
                sheet.extra_keys.update(k for k in row.values if k not in sheet.keys)
        return touched

    def delete_records(self, sheet_id: str, params: Params) -> dict[str, Any]:
        """``DELETE /sheets/{id}/records?ids=...`` (1 to 100 ids): ``{success: true}``. Ids
        not in the sheet are ignored; when none is, nothing changes."""
        sheet = self.sheet(sheet_id)
        ids = params.get("ids") or ()
        if not ids:
            raise EmulatorError(400, "ids is required: the records to delete", key="ids")
        if len(ids) > MAX_IDS:
            raise EmulatorError(
                400, f"ids names at most {MAX_IDS} records, got {len(ids)}", key="ids"
            )
        doomed = {i for i in ids if i in sheet.by_id}
        if doomed:
            before = sheet.counts()
            for record_id in doomed:
                sheet.account(sheet.by_id.pop(record_id), -1)
            sheet.rows = [r for r in sheet.rows if r.id not in doomed]
            commit = self._commit(sheet)
            sheet.changed()
            self._announce(sheet, commit, "records:deleted", len(doomed), before)
        return {"success": True}

    # ----------------------------------------------------------- files

    def upload_file(
        self,
        fields: Mapping[str, str],
        name: str,
        content: bytes,
        content_type: str | None,
        actions: Sequence[Any] = (),
        *,
        id: str | None = None,
    ) -> dict[str, Any]:
        """``POST /files``: ``fields`` are the form's text parts (``spaceId`` and
        ``environmentId`` required, ``mode`` import or export, ``origin``), then the file,
        and ``actions`` parsed from their JSON parts.

        An import file is ``partial`` (uploaded, not extracted: the emulator extracts
        nothing); an export file is ``complete``. ``encoding`` is ``utf-8`` when the bytes
        are UTF-8 text, else ``binary``."""
        for key in ("spaceId", "environmentId"):
            if not fields.get(key):
                raise EmulatorError(400, f"{key} is required", key=key)
        self._check_environment(fields)
        space = self.spaces.get(fields["spaceId"])
        if space is None:
            raise _not_found("space", fields["spaceId"], "spaceId")
        mode = fields.get("mode") or "import"
        if mode not in FILE_MODES:
            raise EmulatorError(400, f"mode must be import or export, got {mode!r:.40}", key="mode")
        checked_actions = ck.action_list(list(actions), "actions") if actions else None
        try:
            content.decode()
            encoding = "utf-8"
        except UnicodeDecodeError:
            encoding = "binary"
        stem, dot, ext = name.rpartition(".")
        stored: dict[str, Any] = {
            "name": name,
            "ext": ext if dot and stem else "",
            "mimetype": content_type or "application/octet-stream",
            "encoding": encoding,
            "status": "partial" if mode == "import" else "complete",
            "mode": mode,
        }
        if fields.get("origin"):
            stored["origin"] = fields["origin"]
        if checked_actions:
            stored["actions"] = checked_actions
        file = _File(self._new_id("us_fl_", id), space, stored, content)
        self.files[file.id] = file
        self._emit("file:created", "file", file.context(), {"status": stored["status"]})
        return file.wire()

    def list_files(self, params: Params) -> list[dict[str, Any]]:
        """``GET /files``: in ``spaceId`` (every space, without it), of ``mode`` (which
        defaults to ``import``, as documented), oldest first (paged by the caller)."""
        mode = ck.one(params, "mode") or "import"
        if mode not in FILE_MODES:
            raise EmulatorError(400, f"mode must be import or export, got {mode!r:.40}", key="mode")
        space_id = ck.one(params, "spaceId")
        return [
            f.wire()
            for f in self.files.values()
            if f.fields["mode"] == mode and (space_id is None or f.space.id == space_id)
        ]

    def get_file(self, file_id: str) -> dict[str, Any]:
        """``GET /files/{id}``."""
        return self.file(file_id).wire()

    def update_file(self, file_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /files/{id}`` (``workbookId``, ``sheetId``, ``name``, ``description``,
        ``mode``, ``status``, ``actions``)."""
        file = self.file(file_id)
        fields = ck.read(body, _FILE_UPDATE)
        if "mode" in fields and fields["mode"] not in FILE_MODES:
            raise EmulatorError(400, "mode must be import or export", key="mode")
        if "status" in fields and fields["status"] not in FILE_STATUSES:
            raise EmulatorError(
                400, f"status must be one of {', '.join(FILE_STATUSES)}", key="status"
            )
        if "workbookId" in fields and fields["workbookId"] not in self.workbooks:
            raise _not_found("workbook", fields["workbookId"], "workbookId")
        if "sheetId" in fields and fields["sheetId"] not in self.sheets:
            raise _not_found("sheet", fields["sheetId"], "sheetId")
        if "name" in fields:
            stem, dot, ext = fields["name"].rpartition(".")
            fields["ext"] = ext if dot and stem else ""
        file.fields.update(fields)
        file.updated_at = _now()
        self._emit("file:updated", "file", file.context(), {"status": file.fields["status"]})
        return file.wire()

    def delete_file(self, file_id: str) -> None:
        """``DELETE /files/{id}``."""
        file = self.file(file_id)
        del self.files[file_id]
        self._emit("file:deleted", "file", file.context(), {})

    def file_content(self, file_id: str) -> tuple[bytes, str, str]:
        """``GET /files/{id}/download``: the bytes, their content type and the file name."""
        file = self.file(file_id)
        return file.content, str(file.fields["mimetype"]), str(file.fields["name"])

    # ----------------------------------------------------------- documents

    def _document(self, space_id: str, document_id: str) -> _Document:
        space = self.space(space_id)
        found = self.documents.get(document_id)
        if found is None or found.space is not space:
            raise _not_found("document", document_id, "documentId")
        return found

    def list_documents(self, space_id: str) -> list[dict[str, Any]]:
        """``GET /spaces/{id}/documents``."""
        space = self.space(space_id)
        return [d.wire() for d in self.documents.values() if d.space is space]

    def create_document(self, space_id: str, body: Any, *, id: str | None = None) -> dict[str, Any]:
        """``POST /spaces/{id}/documents`` (DocumentConfig: ``title`` and ``body`` required)."""
        space = self.space(space_id)
        fields = ck.read(body, _DOCUMENT, required=("title", "body"))
        document = _Document(self._new_id("us_dc_", id), space, fields)
        self.documents[document.id] = document
        self._emit("document:created", "document", document.context(), {})
        return document.wire()

    def get_document(self, space_id: str, document_id: str) -> dict[str, Any]:
        """``GET /spaces/{id}/documents/{documentId}``."""
        return self._document(space_id, document_id).wire()

    def update_document(self, space_id: str, document_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /spaces/{id}/documents/{documentId}``: the fields given replace those held."""
        document = self._document(space_id, document_id)
        document.fields.update(ck.read(body, _DOCUMENT))
        document.updated_at = _now()
        self._emit("document:updated", "document", document.context(), {})
        return document.wire()

    def delete_document(self, space_id: str, document_id: str) -> None:
        """``DELETE /spaces/{id}/documents/{documentId}``."""
        document = self._document(space_id, document_id)
        del self.documents[document_id]
        self._emit("document:deleted", "document", document.context(), {})

    # ----------------------------------------------------------- actions

    def actions_of(self, resource_id: str) -> tuple[str, list[dict[str, Any]]]:
        """The domain (``workbook``, ``sheet``, ``file``, ``document``, ``space``) of a
        resource and the actions configured on it; ``LookupError`` when unknown."""
        found = self._resource(resource_id)
        if found is None:
            raise LookupError(f"no workbook, sheet, file, document or space {resource_id!r}")
        if isinstance(found, _Sheet):
            return "sheet", list(found.config.get("actions") or [])
        domain = {_Workbook: "workbook", _File: "file", _Document: "document", _Space: "space"}
        return domain[type(found)], list(found.fields.get("actions") or [])

    def first(self, domain: str) -> str | None:
        """The id of the oldest workbook, sheet, file or document, if there is one."""
        tables: dict[str, Mapping[str, object]] = {
            "workbook": self.workbooks,
            "sheet": self.sheets,
            "file": self.files,
            "document": self.documents,
        }
        return next(iter(tables.get(domain, {})), None)


def _messages(value: Any, where: str) -> list[dict[str, Any]]:
    """Messages a handler writes on a cell, checked: each ``message``, ``type``, ``source``,
    ``field`` and ``path`` a string; ``type`` defaults to ``error`` and ``source`` to
    ``custom-logic``; those with the platform's own sources are dropped."""
    if not isinstance(value, list):
        raise ck.bad(where, "an array of messages", value)
    out = []
    for index, item in enumerate(value):
        at = ck.where_item(where, index)
        if not isinstance(item, Mapping):
            raise ck.bad(at, "a message object", item)
        message: dict[str, Any] = {}
        for key in ("message", "type", "source", "field", "path"):
            found = item.get(key)
            if found is not None:
                if not isinstance(found, str):
                    raise ck.bad(f"{at}.{key}", "a string", found)
                message[key] = found
        message.setdefault("type", "error")
        message.setdefault("source", "custom-logic")
        if message["source"] not in PLATFORM_SOURCES:
            out.append(message)
    return out
