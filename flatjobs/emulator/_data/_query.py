"""Reading records: what a read selects (filters, search, ids, commits, sort), the page of
it, its counts, and the sheet as CSV.

The common read, every record in order page by page, is a slice of the sheet's own list; a
filtered or sorted selection is worked out once and cached until the sheet next changes.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Any

from flatjobs.emulator import _checks as ck
from flatjobs.emulator._checks import Params
from flatjobs.emulator._errors import EmulatorError

from ._commits import Commits
from ._entities import Commit, Sheet
from ._rows import MAX_IDS, Row
from ._store import Store

__all__ = ["RECORDS_PAGE_SIZE", "Query", "RecordReads"]

RECORDS_PAGE_SIZE = 10_000
"""``GET /sheets/{id}/records``'s default page size (Flatfile's documented default)."""
FILTERS = ("valid", "error", "all", "none")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


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


class Query:
    """What a records read selects (everything but paging and the shape of the answer)."""

    __slots__ = (
        "commit",
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
        self.commit: Commit | None = None  # `for`: the records of an event's commit

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
            and self.commit is None
        )


class RecordReads:
    """``GET /sheets/{id}/records``, ``/counts`` and ``/download``."""

    def __init__(self, store: Store, commits: Commits) -> None:
        self.store = store
        self.commits = commits

    # ----------------------------------------------------------- the selection

    @staticmethod
    def _field(sheet: Sheet, params: Params, key: str) -> str | None:
        value = ck.one(params, key)
        if value is not None and value not in sheet.keys and not sheet.allow_extra:
            raise EmulatorError(
                400, f"{key} {value!r:.60} is not a field of sheet {sheet.slug}", key=key
            )
        return value

    @staticmethod
    def _seq(sheet: Sheet, params: Params, key: str) -> int | None:
        value = ck.one(params, key)
        if value is None:
            return None
        seq = sheet.seqs.get(value)
        if seq is None:
            raise EmulatorError(
                400, f"{key} {value!r:.60} is not a commit of sheet {sheet.slug}", key=key
            )
        return seq

    def query(self, sheet: Sheet, params: Params) -> Query:
        """The selection a records (or counts, or download) query asks for, checked."""
        q = Query()
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
        if event_id is not None:
            # The records of the change an event (a commit:created) announced, as they
            # are now: the same records however they change after (a hook writes back).
            q.commit = self.commits.for_event(sheet, event_id)
        return q

    def select(self, sheet: Sheet, q: Query) -> list[Row]:
        """The rows ``q`` selects, in order. Do not mutate: it may be the sheet's own list."""
        if q.trivial:
            return sheet.rows
        key = q.key()
        cached = sheet.cache.get(key)
        if cached is not None:
            return cached
        base = sheet.rows if q.commit is None else self.commits.records(q.commit)
        if q.ids and not q.ids_excluded:
            found = {sheet.by_id[i].pos: sheet.by_id[i] for i in q.ids if i in sheet.by_id}
            rows = [found[pos] for pos in sorted(found)]
            if q.commit is not None:
                within = {r.id for r in q.commit.rows}
                rows = [r for r in rows if r.id in within]
        else:
            rows = base
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
    def _search(sheet: Sheet, rows: list[Row], value: str, field: str | None) -> list[Row]:
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
    def _counts_of(sheet: Sheet, rows: list[Row], by_field: bool = False) -> dict[str, Any]:
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

    # ----------------------------------------------------------- the endpoints

    def get(self, sheet_id: str, params: Params) -> dict[str, Any]:
        """``GET /sheets/{id}/records``: a page (``pageSize``, default 10,000;
        ``pageNumber`` from 1) of the records the filters select, as ``{success, records,
        counts?, commitId, versionId}`` (no ``pagination``).

        Cells carry ``messages`` only with ``includeMessages=true``; ``fields`` keeps those
        fields; ``includeCounts`` or ``includeLength`` add ``counts`` of the whole
        selection; ``commitId`` selects the records last changed by that commit,
        ``sinceCommitId`` those changed after it (the emulator keeps no history: a record
        changed again since is selected by its latest commit).

        ``for`` (an event id: a ``commit:created``'s ``dataUrl``) selects the records that
        event's commit changed, as they are now, and stays the same selection while they
        change again (a hook writing back as it pages through them). Without ``pageSize``
        it answers them all at once: Flatfile's JS record hook reads a commit in one
        ``GET`` and takes that answer for the whole commit; with ``pageSize`` it pages, for
        hooks that read a large commit a part at a time."""
        sheet = self.store.sheet(sheet_id)
        q = self.query(sheet, params)
        rows = self.select(sheet, q)
        whole = max(1, len(rows)) if q.commit is not None else RECORDS_PAGE_SIZE
        size = ck.positive(params, "pageSize", whole)
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
        sheet = self.store.sheet(sheet_id)
        rows = self.select(sheet, self.query(sheet, params))
        return {
            "counts": self._counts_of(sheet, rows, by_field=ck.flag(params, "byField")),
            "success": True,
        }

    def download(self, sheet_id: str, params: Params) -> tuple[bytes, str]:
        """``GET /sheets/{id}/download``: the selected records as UTF-8 CSV, and a file name.

        The header row holds the field keys, not their labels: keys are unique, and the
        file reads back in as a seed. A list is written as its items joined by ``", "``, a
        boolean as ``true``/``false``, an empty cell as nothing."""
        sheet = self.store.sheet(sheet_id)
        rows = self.select(sheet, self.query(sheet, params))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        keys = sheet.keys
        writer.writerow(keys)
        writer.writerows([_text(r.values.get(k)) for k in keys] for r in rows)
        return out.getvalue().encode(), f"{sheet.slug}.csv"

    def records_of(self, sheet_id: str) -> list[dict[str, Any]]:
        """Every record of the sheet with its messages, ``versionId`` and ``commitId``
        (which the API does not show), for assertions."""
        sheet = self.store.sheet(sheet_id)
        out = []
        for row in sheet.rows:
            wire = sheet.wire_row(row, None, True)
            wire["versionId"], wire["commitId"] = row.version_id, row.commit_id
            out.append(wire)
        return out
