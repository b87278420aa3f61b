"""``client.sheets`` and ``client.workbooks``: a space's workbooks, their sheets."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final

from flatjobs.models import (
    RecordCounts,
    Sheet,
    Workbook,
    WorkbookConfig,
    WorkbookUpdate,
    from_wire,
    to_wire,
)

from ._transport import Answer, Caller, Endpoint, data_list, data_object, envelope, success

__all__ = ["SheetsAPI", "WorkbooksAPI"]

SHEETS: Final = Endpoint("GET", "/sheets", "sheets.list")
SHEET: Final = Endpoint("GET", "/sheets/{}", "sheets.get")
COUNTS: Final = Endpoint("GET", "/sheets/{}/counts", "sheets.counts")
DOWNLOAD: Final = Endpoint("GET", "/sheets/{}/download", "sheets.download")
WORKBOOKS: Final = Endpoint("GET", "/workbooks", "workbooks.list")
CREATE_WORKBOOK: Final = Endpoint("POST", "/workbooks", "workbooks.create")
WORKBOOK: Final = Endpoint("GET", "/workbooks/{}", "workbooks.get")
UPDATE_WORKBOOK: Final = Endpoint("PATCH", "/workbooks/{}", "workbooks.update")
DELETE_WORKBOOK: Final = Endpoint("DELETE", "/workbooks/{}", "workbooks.delete")

_sheet = data_object(Sheet)
_sheets = data_list(Sheet)
_workbook = data_object(Workbook)
_workbooks = data_list(Workbook)


def _counts(answer: Answer) -> RecordCounts:
    data = envelope(answer)
    counts = data.get("counts") if isinstance(data, Mapping) else None
    if not isinstance(counts, Mapping):
        raise ValueError("expected `data.counts` to be an object")
    return from_wire(counts, RecordCounts)


class SheetsAPI:
    """``client.sheets``: the sheets of a workbook."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    async def list(self, workbook_id: str) -> list[Sheet]:
        """The sheets of a workbook (``GET /sheets?workbookId=``)."""
        params = {"workbookId": workbook_id}
        return await self._client.call(SHEETS, params=params, decode=_sheets)

    async def get(self, sheet_id: str) -> Sheet:
        """``GET /sheets/{id}``: the sheet, its fields and actions."""
        return await self._client.call(SHEET, sheet_id, decode=_sheet)

    async def counts(self, sheet_id: str, **filters: Any) -> RecordCounts:
        """How many records the sheet holds (``total``, ``valid``, ``error``), under the
        filters of :meth:`RecordsAPI.get` (``filter="error"``, ``search_value=...``)."""
        return await self._client.call(COUNTS, sheet_id, params=_filters(filters), decode=_counts)

    @contextlib.asynccontextmanager
    async def download(self, sheet_id: str, **filters: Any) -> AsyncIterator[AsyncIterator[bytes]]:
        """The sheet as CSV, streamed: ``async with client.sheets.download(id) as chunks:
        async for chunk in chunks``. Takes the filters of :meth:`RecordsAPI.get`."""
        async with self._client.stream(DOWNLOAD, sheet_id, params=_filters(filters)) as chunks:
            yield chunks


def _filters(filters: dict[str, Any]) -> dict[str, Any]:
    """Keyword filters in their wire names (``search_value`` -> ``searchValue``)."""
    names = {
        "filter": "filter",
        "filter_field": "filterField",
        "search_value": "searchValue",
        "search_field": "searchField",
        "ids": "ids",
        "commit_id": "commitId",
        "since_commit_id": "sinceCommitId",
        "by_field": "byField",
        "q": "q",
    }
    unknown = set(filters) - set(names)
    if unknown:
        raise TypeError(f"unknown filter(s): {', '.join(sorted(unknown))}")
    return {
        names[k]: (list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v)
        for k, v in filters.items()
    }


class WorkbooksAPI:
    """``client.workbooks``: the workbooks of a space."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    async def list(
        self,
        *,
        space_id: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        label: str | None = None,
        include_sheets: bool | None = None,
    ) -> list[Workbook]:
        """The workbooks (of a space, with a name, namespace or label)."""
        params = {
            "spaceId": space_id,
            "name": name,
            "namespace": namespace,
            "label": label,
            "includeSheets": include_sheets,
        }
        return await self._client.call(WORKBOOKS, params=params, decode=_workbooks)

    async def get(self, workbook_id: str) -> Workbook:
        """``GET /workbooks/{id}``, with its sheets."""
        return await self._client.call(WORKBOOK, workbook_id, decode=_workbook)

    async def create(self, config: WorkbookConfig) -> Workbook:
        """``POST /workbooks``: a workbook and its sheets, from a :class:`WorkbookConfig`."""
        return await self._client.call(CREATE_WORKBOOK, body=to_wire(config), decode=_workbook)

    async def update(self, workbook_id: str, update: WorkbookUpdate) -> Workbook:
        """``PATCH /workbooks/{id}`` with a :class:`WorkbookUpdate`."""
        body = to_wire(update)
        return await self._client.call(UPDATE_WORKBOOK, workbook_id, body=body, decode=_workbook)

    async def delete(self, workbook_id: str) -> None:
        """``DELETE /workbooks/{id}``."""
        await self._client.call(DELETE_WORKBOOK, workbook_id, decode=success)
