"""Workbooks: a space's workbooks with their sheets, and the ``/workbooks`` endpoints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flatjobs.emulator import _checks as ck
from flatjobs.emulator._checks import Check, Params
from flatjobs.emulator._errors import EmulatorError

from ._entities import Workbook, now
from ._sheets import SHEET, Sheets, checked_config
from ._store import Store, not_found

__all__ = ["WORKBOOK", "Workbooks"]

WORKBOOK: dict[str, Check] = {
    "name": ck.string,
    "labels": ck.string_list,
    "spaceId": ck.string,
    "environmentId": ck.string,
    "namespace": ck.string,
    "sheets": ck.list_of(ck.model(SHEET, required=("name", "fields")), "an array of sheets"),
    "actions": ck.action_list,
    "settings": ck.json_object,
    "metadata": ck.json_object,
    "treatments": ck.string_list,
    "storageStrategy": ck.string,
    "folder": ck.string,
}
"""A CreateWorkbookConfig."""
# WorkbookUpdate: the same, its sheets found by slug (new slugs are added).
_WORKBOOK_UPDATE = {
    **WORKBOOK,
    "sheets": ck.list_of(
        ck.model(SHEET, required=("name", "slug", "fields")), "an array of sheets"
    ),
}


class Workbooks:
    """``/workbooks``: made with their sheets, listed, changed (sheets added or configured
    again), deleted with their sheets."""

    def __init__(self, store: Store, sheets: Sheets) -> None:
        self.store = store
        self.sheets = sheets

    def create(
        self, body: Any, *, id: str | None = None, sheet_ids: Sequence[str | None] = ()
    ) -> dict[str, Any]:
        """``POST /workbooks`` (CreateWorkbookConfig): the workbook and its sheets; without
        ``spaceId``, in the default space."""
        store = self.store
        fields = ck.read(body, WORKBOOK, required=("name",))
        store.check_environment(fields)
        space = store.spaces.get(fields.get("spaceId", store.state.space_id))
        if space is None:
            raise not_found("space", fields["spaceId"], "spaceId")
        configs = fields.pop("sheets", [])
        fixed = [i for i in sheet_ids if i is not None]
        for given in fixed:
            store.check_id("us_sh_", given)
        if len(set(fixed)) != len(fixed):
            raise EmulatorError(400, "two sheets cannot have one id", key="id")
        if id is not None:
            store.check_id("us_wb_", id)
        taken: set[str] = set()
        configs = [
            checked_config(c, ck.where_item("sheets", i), taken) for i, c in enumerate(configs)
        ]
        workbook = Workbook(store.new_id("us_wb_", id), space, fields)
        store.workbooks[workbook.id] = workbook
        store.emit("workbook:created", "workbook", workbook.context(), {})
        for index, config in enumerate(configs):
            self.sheets.add(workbook, config, sheet_ids[index] if index < len(sheet_ids) else None)
        return workbook.wire()

    def get(self, workbook_id: str) -> dict[str, Any]:
        """``GET /workbooks/{id}``."""
        return self.store.workbook(workbook_id).wire()

    def update(self, workbook_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /workbooks/{id}`` (WorkbookUpdate): the fields given replace those held.
        Each of ``sheets`` updates the sheet with its slug (every record is validated again
        against the new fields) or adds a sheet; sheets not named stay as they are."""
        store = self.store
        workbook = store.workbook(workbook_id)
        fields = ck.read(body, _WORKBOOK_UPDATE)
        store.check_environment(fields)
        fields.pop("environmentId", None)
        if "spaceId" in fields:
            space = store.spaces.get(fields["spaceId"])
            if space is None:
                raise not_found("space", fields["spaceId"], "spaceId")
        configs = fields.pop("sheets", None)
        checked: list[dict[str, Any]] = []
        if configs is not None:
            by_slug = {s.slug: s for s in workbook.sheets}
            taken = set(by_slug) - {c["slug"] for c in configs}
            for index, config in enumerate(configs):
                checked.append(checked_config(config, ck.where_item("sheets", index), taken))
        if "spaceId" in fields:
            workbook.space = store.spaces[fields.pop("spaceId")]
        workbook.fields.update(fields)
        workbook.updated_at = now()
        store.emit("workbook:updated", "workbook", workbook.context(), {})
        for config in checked:
            sheet = next((s for s in workbook.sheets if s.slug == config["slug"]), None)
            if sheet is None:
                self.sheets.add(workbook, config, None)
            else:
                self.sheets.reconfigure(sheet, config)
        return workbook.wire()

    def delete(self, workbook_id: str) -> None:
        """``DELETE /workbooks/{id}``, with its sheets."""
        store = self.store
        workbook = store.workbook(workbook_id)
        for sheet in list(workbook.sheets):
            self.sheets.delete(sheet.id)
        del store.workbooks[workbook_id]
        store.emit("workbook:deleted", "workbook", workbook.context(), {})

    def list(self, params: Params) -> list[dict[str, Any]]:
        """``GET /workbooks``: filtered by ``spaceId``, ``name``, ``namespace`` and
        ``label`` (each negated by a leading ``-``); ``includeSheets`` defaults to true."""
        include_sheets = ck.flag(params, "includeSheets", True)
        found = list(self.store.workbooks.values())
        filters: list[tuple[str, Callable[[Workbook], list[Any]]]] = [
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
