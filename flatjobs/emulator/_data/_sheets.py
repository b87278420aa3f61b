"""Sheets: their config (checked, with the documented defaults), their rows, and the
``/sheets`` endpoints.

A sheet holds its rows in insertion order in a list, so the common read (every record, in
order, page by page) is a slice; its counts are kept as rows change.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flatjobs.emulator import _checks as ck
from flatjobs.emulator._checks import Check, Params
from flatjobs.emulator._errors import EmulatorError

from ._rows import Row, Validator, error_fields
from ._store import Store, now

if TYPE_CHECKING:
    from ._commits import Commit
    from ._workbooks import Workbook

__all__ = ["FIELD", "SHEET", "Sheet", "Sheets", "checked_config"]

FIELD: dict[str, Check] = {
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
"""A sheet's field (Property)."""
SHEET: dict[str, Check] = {
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
    "fields": ck.list_of(ck.model(FIELD, required=("key", "type")), "an array of fields"),
}
"""A SheetConfig."""
_SHEET_UPDATE: dict[str, Check] = {
    "name": ck.string,
    "slug": ck.string,
    "metadata": ck.json_object,
}


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "sheet"


def checked_config(config: dict[str, Any], where: str, taken: set[str]) -> dict[str, Any]:
    """A checked SheetConfig: unique field keys, the config each field type needs (with
    the documented defaults filled in), a slug unique in its workbook (``taken``: the slugs
    in use, to which this one is added)."""
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
            if not isinstance(options, list) or not all(isinstance(o, Mapping) for o in options):
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


class Sheets:
    """``/sheets``: a workbook's sheets, made, configured again, renamed, deleted."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, workbook: Workbook, config: dict[str, Any], id: str | None) -> Sheet:
        """A new sheet of ``workbook`` with a checked ``config``; emits ``sheet:created``."""
        store = self.store
        head = (store.state.new_id("us_vr_"), store.state.new_id("us_vr_"))
        sheet = Sheet(store.new_id("us_sh_", id), workbook, config, head)
        sheet.configure(config)
        workbook.sheets.append(sheet)
        store.sheets[sheet.id] = sheet
        store.emit("sheet:created", "sheet", sheet.context(), {})
        return sheet

    def reconfigure(self, sheet: Sheet, config: dict[str, Any]) -> None:
        """Give ``sheet`` new fields: every record is validated again against them."""
        before = sheet.counts()
        sheet.configure(config)
        for row in sheet.rows:
            sheet.account(row, -1)
            sheet.validate(row)
            sheet.account(row, +1)
        sheet.changed()
        self.store.emit("sheet:updated", "sheet", sheet.context(), {})
        self.counts_changed(sheet, before)

    def counts_changed(self, sheet: Sheet, before: dict[str, Any]) -> None:
        """``sheet:counts-updated`` (payload ``{counts}``), when the counts moved."""
        after = sheet.counts()
        if after != before:
            self.store.emit("sheet:counts-updated", "sheet", sheet.context(), {"counts": after})

    def list(self, params: Params) -> list[dict[str, Any]]:
        """``GET /sheets?workbookId=`` (required)."""
        workbook_id = ck.one(params, "workbookId")
        if not workbook_id:
            raise EmulatorError(400, "workbookId is required", key="workbookId")
        workbook = self.store.workbooks.get(workbook_id)
        return [s.wire() for s in workbook.sheets] if workbook is not None else []

    def get(self, sheet_id: str) -> dict[str, Any]:
        """``GET /sheets/{id}``."""
        return self.store.sheet(sheet_id).wire()

    def update(self, sheet_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /sheets/{id}`` (``name``, ``slug``, ``metadata``)."""
        sheet = self.store.sheet(sheet_id)
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
        sheet.updated_at = now()
        self.store.emit("sheet:updated", "sheet", sheet.context(), {})
        return sheet.wire()

    def delete(self, sheet_id: str) -> None:
        """``DELETE /sheets/{id}``, with its records and commits."""
        store = self.store
        sheet = store.sheet(sheet_id)
        sheet.workbook.sheets.remove(sheet)
        for commit in sheet.commits:
            store.commits.pop(commit.id, None)
        del store.sheets[sheet_id]
        store.emit("sheet:deleted", "sheet", sheet.context(), {})
