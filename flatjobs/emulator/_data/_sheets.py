"""Sheets: their config (checked, with the documented defaults), and the ``/sheets``
endpoints (the sheet itself, with its rows and counts, is
:class:`~flatjobs.emulator._data._entities.Sheet`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flatjobs.emulator import _checks as ck
from flatjobs.emulator._checks import Check, Params
from flatjobs.emulator._errors import EmulatorError

from ._entities import Sheet, Workbook, now
from ._store import Store

__all__ = ["FIELD", "SHEET", "Sheets", "checked_config"]

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
