"""What every resource of the data model shares: the tables (of what ``_entities.py``
defines), ids, events and lookups.

Each resource module (``_spaces.py``, ``_workbooks.py``, ``_sheets.py``, ``_commits.py``,
``_query.py`` and ``_writes.py`` for records, ``_files.py``) holds a small class over one
:class:`Store`; :class:`~flatjobs.emulator.DataStore` is the store with those classes
composed.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from flatjobs.emulator._errors import EmulatorError
from flatjobs.emulator._state import PlatformState

from ._entities import ACTOR, Commit, Document, File, Sheet, Space, Workbook

__all__ = ["Store", "found", "not_found", "paused_gc"]

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


_T = TypeVar("_T")


def found(table: Mapping[str, _T], ident: str, kind: str, key: str) -> _T:
    """``table[ident]``, or a 404 naming the ``kind`` and the request's ``key``."""
    value = table.get(ident)
    if value is None:
        raise not_found(kind, ident, key)
    return value


def not_found(what: str, ident: str, key: str) -> EmulatorError:
    """The 404 for an id the store does not hold."""
    return EmulatorError(404, f"{what} {ident!r:.80} not found", key=key)


class Store:
    """The data of one emulated environment, table by table, beside its jobs and events.

    Args:
        state: the :class:`~flatjobs.emulator.PlatformState` whose ids, clock and event
            feed the data shares.
    """

    def __init__(self, state: PlatformState) -> None:
        self.state = state
        self.spaces: dict[str, Space] = {}
        self.workbooks: dict[str, Workbook] = {}
        self.sheets: dict[str, Sheet] = {}
        self.commits: dict[str, Commit] = {}
        self.files: dict[str, File] = {}
        self.documents: dict[str, Document] = {}
        self._quiet = 0
        # A job created for a known workbook, sheet, file or document gets the event
        # context the platform gives it (its space, workbook, sheet slug).
        state.locate = self.locate

    # ----------------------------------------------------------- ids

    def new_id(self, prefix: str, given: str | None = None) -> str:
        """A new id with ``prefix``, or ``given`` (a seed's fixed id), checked."""
        if given is None:
            return self.state.new_id(prefix)
        self.check_id(prefix, given)
        return given

    def check_id(self, prefix: str, given: str) -> None:
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

    # ----------------------------------------------------------- events

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Within the block, changes emit no events (seeding: the world as it already was)."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    @property
    def silent(self) -> bool:
        """Whether changes emit no events now (within :meth:`quiet`)."""
        return self._quiet > 0

    def emit(
        self,
        topic: str,
        domain: str,
        context: Mapping[str, Any],
        payload: Mapping[str, Any],
        *,
        event_id: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """The event of a change, made by the emulator's user (none within :meth:`quiet`);
        ``event_id`` and ``fields`` as :meth:`~flatjobs.emulator.PlatformState.emit` takes
        them. Returns the event emitted."""
        if self._quiet:
            return None
        base = {
            "accountId": self.state.account_id,
            "environmentId": self.state.environment_id,
            "actorId": ACTOR,
        }
        return self.state.emit(
            topic,
            domain=domain,
            context={**base, **context},
            payload=payload,
            event_id=event_id,
            fields=fields,
        )

    # ----------------------------------------------------------- lookups

    def locate(self, resource_id: str | None) -> dict[str, Any]:
        """The event context of a known workbook, sheet, file, document or space id (empty
        for an id the store does not hold)."""
        if not resource_id:
            return {}
        held = self.resource(resource_id)
        return held.context() if held is not None else {}

    def resource(self, resource_id: str) -> Sheet | Workbook | File | Document | Space | None:
        """The sheet, workbook, file, document or space with that id, if held."""
        return (
            self.sheets.get(resource_id)
            or self.workbooks.get(resource_id)
            or self.files.get(resource_id)
            or self.documents.get(resource_id)
            or self.spaces.get(resource_id)
        )

    def space(self, space_id: str) -> Space:
        """The space, or a 404."""
        return found(self.spaces, space_id, "space", "spaceId")

    def workbook(self, workbook_id: str) -> Workbook:
        """The workbook, or a 404."""
        return found(self.workbooks, workbook_id, "workbook", "workbookId")

    def sheet(self, sheet_id: str) -> Sheet:
        """The sheet, or a 404."""
        return found(self.sheets, sheet_id, "sheet", "sheetId")

    def file(self, file_id: str) -> File:
        """The file, or a 404."""
        return found(self.files, file_id, "file", "fileId")

    def check_environment(self, fields: Mapping[str, Any], where: str = "environmentId") -> None:
        """A body's ``environmentId``, when given, must be this environment's."""
        given = fields.get("environmentId")
        if given is not None and given != self.state.environment_id:
            raise EmulatorError(
                400,
                f"{where} must be this environment's id, {self.state.environment_id}, got "
                f"{given!r:.80}",
                key=where,
            )

    # ----------------------------------------------------------- actions

    def actions_of(self, resource_id: str) -> tuple[str, list[dict[str, Any]]]:
        """The domain (``workbook``, ``sheet``, ``file``, ``document``, ``space``) of a
        resource and the actions configured on it; ``LookupError`` when unknown."""
        held = self.resource(resource_id)
        if held is None:
            raise LookupError(f"no workbook, sheet, file, document or space {resource_id!r}")
        return held.domain, held.actions()

    def first(self, domain: str) -> str | None:
        """The id of the oldest workbook, sheet, file or document, if there is one."""
        tables: dict[str, Mapping[str, object]] = {
            "workbook": self.workbooks,
            "sheet": self.sheets,
            "file": self.files,
            "document": self.documents,
        }
        return next(iter(tables.get(domain, {})), None)
