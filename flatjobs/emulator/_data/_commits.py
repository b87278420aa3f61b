"""Commits: every change of a sheet's records makes one, and announces it.

:meth:`Commits.announce` is the one place the events of a change of records are emitted
(``records:*``, ``commit:created``, ``sheet:counts-updated``), and :meth:`Commits.complete`
the one place a commit completes (``commit:completed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flatjobs.emulator import _checks as ck
from flatjobs.emulator._checks import Params

from ._sheets import Sheet, Sheets
from ._store import ACTOR, Store, not_found, now

__all__ = ["Commit", "Commits"]


class Commit:
    """One change of a sheet's records: its ids (the commit's and the version's), its
    place in the sheet's history (``seq``), and whether it is complete."""

    __slots__ = (
        "completed_at",
        "completed_by",
        "created_at",
        "id",
        "seq",
        "sheet_id",
        "version_id",
    )

    def __init__(self, id: str, version_id: str, sheet_id: str, seq: int, created_at: str) -> None:
        self.id = id
        self.version_id = version_id
        self.sheet_id = sheet_id
        self.seq = seq
        self.created_at = created_at
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


class Commits:
    """``/commits``, and the commits the writes of records make."""

    def __init__(self, store: Store, sheets: Sheets) -> None:
        self.store = store
        self.sheets = sheets

    def new(self, sheet: Sheet) -> Commit:
        """A new commit of ``sheet``: complete at once unless its workbook tracks changes
        (``settings.trackChanges``), when a listener completes it."""
        state = self.store.state
        at = now()
        commit = Commit(
            state.new_id("us_vr_"), state.new_id("us_vr_"), sheet.id, sheet.next_seq, at
        )
        sheet.next_seq += 1
        if not sheet.workbook.track_changes:
            commit.completed_at, commit.completed_by = at, ACTOR
        sheet.commits.append(commit)
        sheet.seqs[commit.id] = sheet.seqs[commit.version_id] = commit.seq
        sheet.head = (commit.id, commit.version_id)
        self.store.commits[commit.id] = commit
        return commit

    def announce(
        self, sheet: Sheet, commit: Commit, topic: str, count: int, before: dict[str, Any]
    ) -> None:
        """The events of one change of records: ``records:*`` (payload ``{count}``, the
        number of records), ``commit:created`` (payload ``{trackChanges}``), and
        ``sheet:counts-updated`` (payload ``{counts}``) when the counts moved.

        The platform's ``Domain`` enum has no ``records`` or ``commit``: these events say
        ``workbook``, the domain that holds sheets."""
        emit = self.store.emit
        context = {**sheet.context(), "commitId": commit.id}
        emit(topic, "workbook", context, {"count": count})
        emit(
            "commit:created",
            "workbook",
            context,
            {"trackChanges": sheet.workbook.track_changes, "sheetId": sheet.id},
        )
        self.sheets.counts_changed(sheet, before)

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
