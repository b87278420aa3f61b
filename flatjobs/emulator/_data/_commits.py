"""Commits: every change of a sheet's records makes one, and announces it.

:meth:`Commits.announce` is the one place the events of a change of records are emitted
(``records:*``, ``commit:created``, ``sheet:counts-updated``), and :meth:`Commits.complete`
the one place a commit completes (``commit:completed``).

A write starts the record hooks (``commit:created``) unless it says not to (``X-Disable-Hooks:
true`` without ``X-Force-Hooks: true``): the rule and its reasons are in the emulator's
documentation (:class:`~flatjobs.emulator.Emulator`). A commit remembers the records it
changed, so that what its ``dataUrl`` serves stays the same while a hook pages through it and
writes back.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from flatjobs.emulator import _checks as ck
from flatjobs.emulator._checks import Params
from flatjobs.emulator._errors import EmulatorError

from ._entities import ACTOR, Commit, Sheet, now
from ._rows import Row
from ._sheets import Sheets
from ._store import Store, not_found

__all__ = ["Commits", "data_url", "hooks_requested"]


def data_url(sheet_id: str, event_id: str) -> str:
    """The ``dataUrl`` of a ``commit:created``: relative, without a leading ``/``, its query
    plain ``key=value`` pairs, as Flatfile's JS listener needs it (it appends the URL to its
    API base, and re-encodes the query with ``URLSearchParams``). The records come with their
    cells' messages, which a hook compares with its own."""
    return f"v1/sheets/{sheet_id}/records?for={event_id}&includeMessages=true"


def hooks_requested(headers: Mapping[str, str]) -> bool:
    """Whether a write of records starts the record hooks: unless it carries
    ``X-Disable-Hooks: true``, and then still with ``X-Force-Hooks: true``."""
    force = headers.get("X-Force-Hooks", "").strip().lower() == "true"
    disable = headers.get("X-Disable-Hooks", "").strip().lower() == "true"
    return force or not disable


def _pos(row: Row) -> int:
    return row.pos


class Commits:
    """``/commits``, and the commits the writes of records make."""

    def __init__(self, store: Store, sheets: Sheets) -> None:
        self.store = store
        self.sheets = sheets

    def new(self, sheet: Sheet, *, hooks: bool = True) -> Commit:
        """A new commit of ``sheet``, which starts the record hooks when ``hooks`` (and the
        store is not :meth:`~Store.quiet`).

        It is complete at once unless its workbook tracks changes
        (``settings.trackChanges``) and it starts the hooks: then it stays open until a
        listener completes it (``POST /commits/{id}/complete``). A commit no hook is told of
        is complete from the start, as nobody would ever complete it."""
        store = self.store
        state = store.state
        at = now()
        hooks = hooks and not store.silent
        commit = Commit(
            state.new_id("us_vr_"), state.new_id("us_vr_"), sheet.id, sheet.next_seq, at, hooks
        )
        sheet.next_seq += 1
        if not (sheet.workbook.track_changes and hooks):
            commit.completed_at, commit.completed_by = at, ACTOR
        sheet.commits.append(commit)
        sheet.seqs[commit.id] = sheet.seqs[commit.version_id] = commit.seq
        sheet.head = (commit.id, commit.version_id)
        self.store.commits[commit.id] = commit
        return commit

    def announce(
        self, sheet: Sheet, commit: Commit, topic: str, count: int, before: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The events of one change of records: ``records:*`` (payload ``{count}``, the
        number of records), ``commit:created`` when the commit starts the hooks (payload
        ``{trackChanges, sheetId}``, and a ``dataUrl`` serving the commit's records), and
        ``sheet:counts-updated`` (payload ``{counts}``) when the counts moved. Returns the
        ``commit:created`` event, if one was emitted.

        The platform's ``Domain`` enum has no ``records`` or ``commit``: these events say
        ``workbook``, the domain that holds sheets."""
        store = self.store
        context = {**sheet.context(), "commitId": commit.id}
        store.emit(topic, "workbook", context, {"count": count})
        created = None
        if commit.hooks:
            event_id = store.state.new_id("us_evt_")
            created = store.emit(
                "commit:created",
                "workbook",
                context,
                {"trackChanges": sheet.workbook.track_changes, "sheetId": sheet.id},
                event_id=event_id,
                fields={"dataUrl": data_url(sheet.id, event_id)},
            )
            commit.event_id = event_id if created is not None else None
        self.sheets.counts_changed(sheet, before)
        return created

    def for_event(self, sheet: Sheet, event_id: str, key: str = "for") -> Commit:
        """The commit of ``sheet`` a ``commit:created`` event announced (a ``dataUrl``'s
        ``for``), or a 400 naming ``key``."""
        try:
            event = self.store.state.get_event(event_id)
        except EmulatorError as exc:
            raise EmulatorError(400, exc.message, key=key) from None
        context = event.get("context")
        commit_id = context.get("commitId") if isinstance(context, Mapping) else None
        commit = self.store.commits.get(commit_id) if isinstance(commit_id, str) else None
        if commit is None or commit.sheet_id != sheet.id:
            raise EmulatorError(
                400, f"event {event_id!r:.60} names no commit of sheet {sheet.slug}", key=key
            )
        return commit

    @staticmethod
    def records(commit: Commit) -> list[Row]:
        """The records ``commit`` changed that the sheet still holds, in sheet order, as
        they are now (do not mutate)."""
        return commit.rows

    @staticmethod
    def holds(commit: Commit, row: Row) -> bool:
        """Whether ``row`` is one of the records ``commit`` changed (a binary search: its
        records are in sheet order)."""
        rows = commit.rows
        index = bisect.bisect_left(rows, row.pos, key=_pos)
        return index < len(rows) and rows[index] is row

    @staticmethod
    def forget(sheet: Sheet, deleted: set[str]) -> None:
        """Deleted records leave the commits that changed them."""
        for commit in sheet.commits:
            if commit.rows and any(row.id in deleted for row in commit.rows):
                commit.rows = [row for row in commit.rows if row.id not in deleted]

    def list(self, sheet_ids: Sequence[str], params: Params) -> list[dict[str, Any]]:
        """``GET /sheets/{id}/commits`` and ``GET /workbooks/{id}/commits``: ``completed``
        true or false keeps those (not) completed."""
        completed = ck.one(params, "completed")
        wanted = None if completed is None else ck.flag(params, "completed")
        return [
            commit.wire()
            for sheet_id in sheet_ids
            for commit in self.store.sheets[sheet_id].commits
            if wanted is None or (commit.completed_at is not None) == wanted
        ]

    def get(self, commit_id: str) -> dict[str, Any]:
        """``GET /commits/{id}``."""
        commit = self.store.commits.get(commit_id)
        if commit is None:
            raise not_found("commit", commit_id, "commitId")
        return commit.wire()

    def complete(self, commit_id: str) -> None:
        """``POST /commits/{id}/complete``: emits ``commit:completed`` (once)."""
        store = self.store
        commit = store.commits.get(commit_id)
        if commit is None:
            raise not_found("commit", commit_id, "commitId")
        if commit.completed_at is not None:
            return
        commit.completed_at, commit.completed_by = now(), ACTOR
        sheet = store.sheets[commit.sheet_id]
        store.emit("commit:completed", "workbook", {**sheet.context(), "commitId": commit.id}, {})
