"""The emulator's data: spaces, workbooks, sheets and their records, commits, files, documents.

Pure logic, no HTTP, beside :class:`~flatjobs.emulator.PlatformState` (whose ids, clock and
event feed it shares). Every method that serves an endpoint takes the request's body or
query and returns what goes in the answer's ``data``; a request the platform would refuse
raises :class:`~flatjobs.emulator.EmulatorError`.

The imports go one way, downward: the resources' modules, then the store, then what it
holds.

* ``_rows.py``: a record as a sheet keeps it, and the platform's validation of it;
* ``_entities.py``: what the store holds (spaces, documents, workbooks, sheets, commits,
  files), each with its wire form and event context; it imports nothing of the rest but
  ``_rows.py``;
* ``_store.py``: the tables of those, ids, events and lookups, which every resource shares.

Then one module per resource, each a small class over the store, handed the resources it
works through (a space's deletion goes through the workbooks' and the files'), never one
that works through it:

* ``_spaces.py``: spaces and their documents;
* ``_workbooks.py``: workbooks;
* ``_sheets.py``: sheets and their config;
* ``_commits.py``: the commit each change of records makes, and its events;
* ``_query.py``: reading records (filters, search, sort, pages, counts, CSV);
* ``_writes.py``: inserting, updating and deleting records;
* ``_files.py``: files;
* ``_extraction.py``: what file extractors ask besides (entitlements, header detection).

:class:`DataStore` composes them: its methods are the endpoints, each handed to its
resource.

Where the platform's behaviour is not documented, the emulator's choice is stated on the
method that makes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flatjobs.emulator._checks import Params
from flatjobs.emulator._state import PlatformState

from ._commits import Commits
from ._entities import Space
from ._extraction import Extraction, detect_header
from ._files import FILES_PAGE_SIZE, Files
from ._query import RecordReads
from ._sheets import FIELD, SHEET, Sheets
from ._spaces import DOCUMENT, SPACE, SPACES_PAGE_SIZE, Documents, Spaces
from ._store import Store, paused_gc
from ._workbooks import WORKBOOK, Workbooks
from ._writes import RecordWrites

__all__ = [
    "DOCUMENT",
    "FIELD",
    "FILES_PAGE_SIZE",
    "SHEET",
    "SPACE",
    "SPACES_PAGE_SIZE",
    "WORKBOOK",
    "DataStore",
    "paused_gc",
]


class DataStore(Store):
    """The data of one emulated environment, beside its jobs and events (``state``).

    The tables (``spaces``, ``workbooks``, ``sheets``, ``commits``, ``files``,
    ``documents``) map ids to what the store holds; each endpoint's method is served by
    its resource's class.

    Args:
        state: the :class:`~flatjobs.emulator.PlatformState` whose ids, event feed and
            default space (``state.space_id``, created here) the data shares.
    """

    def __init__(self, state: PlatformState) -> None:
        super().__init__(state)
        default = Space(
            state.space_id,
            state.environment_id,
            {"name": "Emulator space", "guestAuthentication": ["magic_link"]},
        )
        self.spaces[default.id] = default
        # Each resource is handed the others it works through: a space's deletion deletes
        # its workbooks, files and documents; a workbook's, its sheets; a write of records
        # makes a commit, whose events count the sheet's records.
        self._sheet_ops = Sheets(self)
        self._commit_ops = Commits(self, self._sheet_ops)
        self._file_ops = Files(self)
        self._document_ops = Documents(self)
        self._workbook_ops = Workbooks(self, self._sheet_ops)
        self._space_ops = Spaces(self, self._workbook_ops, self._file_ops, self._document_ops)
        self._record_reads = RecordReads(self, self._commit_ops)
        self._record_writes = RecordWrites(self, self._commit_ops)
        self._extraction = Extraction(self)

    # ----------------------------------------------------------- spaces

    def space_wire(self, space: Space) -> dict[str, Any]:
        """A space as the API answers it."""
        return self._space_ops.wire(space)

    def create_space(self, body: Any, *, id: str | None = None) -> dict[str, Any]:
        """``POST /spaces``."""
        return self._space_ops.create(body, id=id)

    def list_spaces(self, params: Params) -> list[dict[str, Any]]:
        """``GET /spaces``."""
        return self._space_ops.list(params)

    def get_space(self, space_id: str) -> dict[str, Any]:
        """``GET /spaces/{id}``."""
        return self._space_ops.get(space_id)

    def update_space(self, space_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /spaces/{id}``."""
        return self._space_ops.update(space_id, body)

    def delete_space(self, space_id: str) -> None:
        """``DELETE /spaces/{id}``, with its workbooks, files and documents."""
        self._space_ops.delete(space_id)

    # ----------------------------------------------------------- documents

    def list_documents(self, space_id: str) -> list[dict[str, Any]]:
        """``GET /spaces/{id}/documents``."""
        return self._document_ops.list(space_id)

    def create_document(self, space_id: str, body: Any, *, id: str | None = None) -> dict[str, Any]:
        """``POST /spaces/{id}/documents``."""
        return self._document_ops.create(space_id, body, id=id)

    def get_document(self, space_id: str, document_id: str) -> dict[str, Any]:
        """``GET /spaces/{id}/documents/{documentId}``."""
        return self._document_ops.get(space_id, document_id)

    def update_document(self, space_id: str, document_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /spaces/{id}/documents/{documentId}``."""
        return self._document_ops.update(space_id, document_id, body)

    def delete_document(self, space_id: str, document_id: str) -> None:
        """``DELETE /spaces/{id}/documents/{documentId}``."""
        self._document_ops.delete(space_id, document_id)

    # ----------------------------------------------------------- workbooks

    def create_workbook(
        self, body: Any, *, id: str | None = None, sheet_ids: Sequence[str | None] = ()
    ) -> dict[str, Any]:
        """``POST /workbooks``: the workbook and its sheets (``id`` and ``sheet_ids``:
        fixed ids, for seeds)."""
        return self._workbook_ops.create(body, id=id, sheet_ids=sheet_ids)

    def list_workbooks(self, params: Params) -> list[dict[str, Any]]:
        """``GET /workbooks``."""
        return self._workbook_ops.list(params)

    def get_workbook(self, workbook_id: str) -> dict[str, Any]:
        """``GET /workbooks/{id}``."""
        return self._workbook_ops.get(workbook_id)

    def update_workbook(self, workbook_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /workbooks/{id}``: sheets named by slug are configured again or added."""
        return self._workbook_ops.update(workbook_id, body)

    def delete_workbook(self, workbook_id: str) -> None:
        """``DELETE /workbooks/{id}``, with its sheets."""
        self._workbook_ops.delete(workbook_id)

    # ----------------------------------------------------------- sheets and commits

    def list_sheets(self, params: Params) -> list[dict[str, Any]]:
        """``GET /sheets?workbookId=``."""
        return self._sheet_ops.list(params)

    def get_sheet(self, sheet_id: str) -> dict[str, Any]:
        """``GET /sheets/{id}``."""
        return self._sheet_ops.get(sheet_id)

    def update_sheet(self, sheet_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /sheets/{id}``."""
        return self._sheet_ops.update(sheet_id, body)

    def delete_sheet(self, sheet_id: str) -> None:
        """``DELETE /sheets/{id}``, with its records and commits."""
        self._sheet_ops.delete(sheet_id)

    def list_commits(self, sheet_ids: Sequence[str], params: Params) -> list[dict[str, Any]]:
        """``GET /sheets/{id}/commits`` and ``GET /workbooks/{id}/commits``."""
        return self._commit_ops.list(sheet_ids, params)

    def get_commit(self, commit_id: str) -> dict[str, Any]:
        """``GET /commits/{id}``."""
        return self._commit_ops.get(commit_id)

    def complete_commit(self, commit_id: str) -> None:
        """``POST /commits/{id}/complete``."""
        self._commit_ops.complete(commit_id)

    # ----------------------------------------------------------- records

    def get_records(self, sheet_id: str, params: Params) -> dict[str, Any]:
        """``GET /sheets/{id}/records``: a page of the records the filters select."""
        return self._record_reads.get(sheet_id, params)

    def counts(self, sheet_id: str, params: Params) -> dict[str, Any]:
        """``GET /sheets/{id}/counts``."""
        return self._record_reads.counts(sheet_id, params)

    def download(self, sheet_id: str, params: Params) -> tuple[bytes, str]:
        """``GET /sheets/{id}/download``: CSV, and a file name."""
        return self._record_reads.download(sheet_id, params)

    def records_of(self, sheet_id: str) -> list[dict[str, Any]]:
        """Every record of the sheet with its messages, ``versionId`` and ``commitId``
        (which the API does not show), for assertions."""
        return self._record_reads.records_of(sheet_id)

    def insert_records(self, sheet_id: str, body: Any, *, hooks: bool = True) -> dict[str, Any]:
        """``POST /sheets/{id}/records``; ``hooks``: whether the write starts the record
        hooks (``commit:created``)."""
        return self._record_writes.insert(sheet_id, body, hooks=hooks)

    def update_records(
        self, sheet_id: str, body: Any, params: Params | None = None, *, hooks: bool = True
    ) -> dict[str, Any]:
        """``PUT /sheets/{id}/records`` (``params``: its query, ``for`` when written to a
        commit's ``dataUrl``); ``hooks`` as :meth:`insert_records`."""
        return self._record_writes.update(sheet_id, body, params, hooks=hooks)

    def delete_records(
        self, sheet_id: str, params: Params, *, hooks: bool = True
    ) -> dict[str, Any]:
        """``DELETE /sheets/{id}/records?ids=...``; ``hooks`` as :meth:`insert_records`."""
        return self._record_writes.delete(sheet_id, params, hooks=hooks)

    def commit_event(self, answer: Mapping[str, Any]) -> dict[str, Any] | None:
        """The ``commit:created`` of the commit a write answered with (its ``commitId``),
        if that write started the hooks."""
        commit_id = answer.get("commitId")
        commit = self.commits.get(commit_id) if isinstance(commit_id, str) else None
        if commit is None or commit.event_id is None:
            return None
        return self.state.get_event(commit.event_id)

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
        """``POST /files``: the form's text parts, then the file, and its actions."""
        return self._file_ops.upload(fields, name, content, content_type, actions, id=id)

    def list_files(self, params: Params) -> list[dict[str, Any]]:
        """``GET /files``."""
        return self._file_ops.list(params)

    def get_file(self, file_id: str) -> dict[str, Any]:
        """``GET /files/{id}``."""
        return self._file_ops.get(file_id)

    def update_file(self, file_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /files/{id}``."""
        return self._file_ops.update(file_id, body)

    def delete_file(self, file_id: str) -> None:
        """``DELETE /files/{id}``."""
        self._file_ops.delete(file_id)

    def file_content(self, file_id: str) -> tuple[bytes, str, str]:
        """``GET /files/{id}/download``: the bytes, their content type and the file name."""
        return self._file_ops.content(file_id)

    # ----------------------------------------------------------- extraction

    def detect_header(self, body: Any) -> dict[str, Any]:
        """``POST /files/detect-header``: where a table's header is."""
        return detect_header(body)

    def list_entitlements(self, params: Params) -> list[dict[str, Any]]:
        """``GET /entitlements?resourceId=``."""
        return self._extraction.list(params)

    def set_entitlements(self, resource_id: str, entitlements: Iterable[Any]) -> None:
        """What ``GET /entitlements`` answers for a resource: ``[{key, metadata?}]``."""
        self._extraction.set_entitlements(resource_id, entitlements)
