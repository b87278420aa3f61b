"""Writing records: ``POST``, ``PUT`` and ``DELETE /sheets/{id}/records``.

A body is checked whole before anything changes; each write that changes something makes
one commit, whose events :meth:`~flatjobs.emulator._data._commits.Commits.announce` emits.
Each write says whether it starts the record hooks (``hooks``: the HTTP routes read it from
the request's headers, :func:`~flatjobs.emulator._data._commits.hooks_requested`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flatjobs.emulator import _checks as ck
from flatjobs.emulator._checks import Params
from flatjobs.emulator._errors import EmulatorError

from ._commits import Commits
from ._entities import Sheet, now
from ._rows import MAX_IDS, PLATFORM_SOURCES, SCALARS, Row
from ._store import Store

__all__ = ["RecordWrites"]

_UPDATE: dict[str, ck.Check] = {
    "id": ck.string,
    "values": ck.any_json,
    "metadata": ck.json_object,
    "config": ck.json_object,
    "versionId": ck.string,
    "commitId": ck.string,
}
"""One record of a ``PUT``."""


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: ``1``, ``1.0`` and ``true`` are three different values."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    return bool(a == b)


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


def _cells(
    sheet: Sheet, item: Any, where: str
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The values and custom messages of one RecordData (``{field: {value, messages}}``).

    A field the sheet does not have is kept only when the sheet allows additional
    fields (``allowAdditionalFields``); otherwise it is dropped, as the platform
    ignores what its blueprint does not define. A cell with neither ``value`` nor
    ``messages`` (``{}``: an SDK's ``{value: undefined}``) is an empty value."""
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
            if not (value is None or isinstance(value, SCALARS)) and not (
                isinstance(value, list) and all(isinstance(x, str) for x in value)
            ):
                raise ck.bad(
                    f"{ck.where_key(where, key)}.value",
                    "a string, number, boolean, array of strings or null",
                    value,
                )
            values[key] = value
        elif "messages" not in cell:
            values[key] = None
        if cell.get("messages") is not None:
            at = ck.where_key(where, key)
            messages[key] = _messages(cell["messages"], f"{at}.messages")
    return values, messages


def _merge(
    sheet: Sheet,
    row: Row,
    values: dict[str, Any],
    messages: dict[str, list[dict[str, Any]]],
    fields: dict[str, Any],
    at: str,
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
            row.times[key] = at
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
            row.times[key] = at
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


class RecordWrites:
    """Inserts, updates and deletes of a sheet's records, each change one commit."""

    def __init__(self, store: Store, commits: Commits) -> None:
        self.store = store
        self.commits = commits

    def insert(self, sheet_id: str, body: Any, *, hooks: bool = True) -> dict[str, Any]:
        """``POST /sheets/{id}/records`` with RecordData ``[{field: {value}}]``: ``{success,
        records, counts, commitId, versionId}``, the records as ``GET`` writes them with
        their messages. An empty list inserts nothing, makes no commit and emits nothing.
        A record may be ``{}`` (a blank row); keys the sheet does not have are dropped
        (unless it allows additional fields)."""
        sheet = self.store.sheet(sheet_id)
        if not isinstance(body, list):
            raise ck.bad("", "an array of records", body)
        parsed = [_cells(sheet, item, ck.where_item("", i)) for i, item in enumerate(body)]
        if not parsed:
            return {"success": True, "records": [], "counts": sheet.counts()}
        before = sheet.counts()
        commit = self.commits.new(sheet, hooks=hooks)
        at = now()
        new_id = self.store.state.new_id
        rows = []
        for values, messages in parsed:
            row = Row(
                new_id("us_rc_"),
                sheet.next_pos,
                {k: v for k, v in values.items() if v is not None},
                messages or None,
                at,
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
        commit.rows = rows
        sheet.changed()
        self.commits.announce(sheet, commit, "records:created", len(rows), before)
        return {
            "success": True,
            "records": [sheet.wire_row(r, None, True) for r in rows],
            "counts": sheet.counts(),
            "commitId": commit.id,
            "versionId": commit.version_id,
        }

    def update(
        self, sheet_id: str, body: Any, params: Params | None = None, *, hooks: bool = True
    ) -> dict[str, Any]:
        """``PUT /sheets/{id}/records`` with ``[{id, values?, metadata?, config?}]``:
        ``{versionId, commitId}``.

        Only the records and cells given change (a merge, as Flatfile's record hook
        presumes: it sends only what it changed). Each cell given is merged into its
        record: ``value`` replaces the value (``null`` empties it); ``messages`` replaces
        the messages handlers wrote on that cell (their ``source`` defaults to
        ``custom-logic``; messages with the platform's own sources are ignored: those are
        recomputed). A cell given as ``{}`` (what an SDK sends for ``{value: undefined}``)
        empties the value; a cell with ``messages`` and no ``value`` keeps its value.
        ``metadata`` and ``config`` replace the record's. ``versionId``/``commitId`` on a
        record are accepted and not checked. Every record must be in the sheet, or nothing
        changes (400).

        Written to a commit's ``dataUrl`` (``?for=<eventId>``, a hook writing back), every
        record must be one of that commit's (400 otherwise): a hook writes back what it was
        given.

        When nothing changes the answer is the same, with the sheet's current ids, and
        status 200: the platform may answer 304 with no body, which both of Flatfile's
        SDKs fail to read."""
        sheet = self.store.sheet(sheet_id)
        event_id = ck.one(params or {}, "for")
        within = self.commits.for_event(sheet, event_id) if event_id is not None else None
        if not isinstance(body, list):
            raise ck.bad("", "an array of records", body)
        plans = []
        for index, item in enumerate(body):
            where = ck.where_item("", index)
            fields = ck.read(item, _UPDATE, where, required=("id",))
            row = sheet.by_id.get(fields["id"])
            if row is None:
                raise EmulatorError(
                    400,
                    f"{where}.id: record {fields['id']!r:.60} is not in sheet {sheet.slug}",
                    key=f"{where}.id",
                )
            if within is not None and not self.commits.holds(within, row):
                raise EmulatorError(
                    400,
                    f"{where}.id: record {row.id!r:.60} is not one of the records of event "
                    f"{event_id!r:.60}'s commit",
                    key=f"{where}.id",
                )
            values, messages = (
                _cells(sheet, fields["values"], f"{where}.values")
                if "values" in fields
                else ({}, {})
            )
            plans.append((row, values, messages, fields))
        before = sheet.counts()
        at = now()
        changed: dict[str, Row] = {}
        for row, values, messages, fields in plans:
            if _merge(sheet, row, values, messages, fields, at):
                changed[row.id] = row
        if not changed:
            commit_id, version_id = sheet.head
            return {"versionId": version_id, "commitId": commit_id}
        commit = self.commits.new(sheet, hooks=hooks)
        for row in changed.values():
            row.seq, row.commit_id, row.version_id = commit.seq, commit.id, commit.version_id
        commit.rows = sorted(changed.values(), key=lambda r: r.pos)
        sheet.changed()
        self.commits.announce(sheet, commit, "records:updated", len(changed), before)
        return {"versionId": commit.version_id, "commitId": commit.id}

    def delete(self, sheet_id: str, params: Params, *, hooks: bool = True) -> dict[str, Any]:
        """``DELETE /sheets/{id}/records?ids=...`` (1 to 100 ids): ``{success: true}``. Ids
        not in the sheet are ignored; when none is, nothing changes."""
        sheet = self.store.sheet(sheet_id)
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
            self.commits.forget(sheet, doomed)
            commit = self.commits.new(sheet, hooks=hooks)
            sheet.changed()
            self.commits.announce(sheet, commit, "records:deleted", len(doomed), before)
        return {"success": True}
