"""``client.records``: a sheet's records, a page at a time, and their writes.

A page of :class:`~flatjobs.client.Record` writes back only what its handler changed, in
one call::

    async for page in client.records.pages(sheet_id, include_messages=True):
        for record in page:
            record.clear_messages("email")  # what an earlier run wrote may no longer hold
            email = record.get("email")
            if not email:
                record.error("email", "Email is required")
            elif email != email.strip().lower():
                record["email"] = email.strip().lower()
        await page.save()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from flatjobs.errors import UnexpectedResponseError
from flatjobs.models import RecordCounts, from_wire

from ._record import Record, RecordChanges
from ._transport import Answer, Caller, Endpoint, envelope, success

__all__ = ["RecordPage", "RecordsAPI", "UpdateResult"]

LIST: Final = Endpoint("GET", "/sheets/{}/records", "records.list")
INSERT: Final = Endpoint("POST", "/sheets/{}/records", "records.insert")
UPDATE: Final = Endpoint("PUT", "/sheets/{}/records", "records.update")
DELETE: Final = Endpoint("DELETE", "/sheets/{}/records", "records.delete")
MAX_IDS: Final = 100
"""The most ids one call may name (``ids`` when reading, deleting)."""

Filter = Literal["valid", "error", "all", "none"]


@attrs.frozen
class UpdateResult:
    """What an update did: how many records were sent, and the commit that took them."""

    updated: int
    version_id: str | None = None
    commit_id: str | None = None
    not_modified: bool = False
    """The server answered 304: nothing it holds changed."""


class RecordPage(Sequence[Record]):
    """One page of a sheet's records: a sequence of :class:`Record`, and the commit it was
    read at. :meth:`save` writes back the records changed on it, in one call."""

    def __init__(
        self,
        api: RecordsAPI,
        sheet_id: str,
        records: list[Record],
        *,
        number: int = 1,
        counts: RecordCounts | None = None,
        commit_id: str | None = None,
        version_id: str | None = None,
    ) -> None:
        self._api = api
        self.sheet_id = sheet_id
        self.records = records
        self.number = number
        self.counts = counts
        self.commit_id = commit_id
        self.version_id = version_id

    def __repr__(self) -> str:
        return f"RecordPage(sheet_id={self.sheet_id!r}, number={self.number}, records={len(self)})"

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __getitem__(self, index: Any) -> Any:
        return self.records[index]

    def changed(self) -> list[Record]:
        """The records changed on this page."""
        return [r for r in self.records if r.changed]

    async def save(self) -> UpdateResult:
        """Send what changed on this page: one call (none when nothing changed)."""
        return await self._api.update(self.sheet_id, self.records)


def _records_answer(api: RecordsAPI, sheet_id: str, number: int) -> Any:
    def decode(answer: Answer) -> RecordPage:
        data = envelope(answer)
        raw = data.get("records") if isinstance(data, Mapping) else None
        if not isinstance(raw, list):
            raise ValueError("expected `data.records` to be a list")
        counts = data.get("counts")
        return RecordPage(
            api,
            sheet_id,
            [Record(r) for r in raw],
            number=number,
            counts=from_wire(counts, RecordCounts) if isinstance(counts, Mapping) else None,
            commit_id=_text(data.get("commitId")),
            version_id=_text(data.get("versionId")),
        )

    return decode


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _repeated(sheet_id: str, number: int, earlier: int) -> UnexpectedResponseError:
    """The error for page ``number`` of a sheet answering the records of page ``earlier``."""
    return UnexpectedResponseError(
        200,
        LIST.method,
        "/v1" + LIST.path(sheet_id),
        None,
        f"page {number} of sheet {sheet_id} holds the same records as page {earlier} (does "
        "the server ignore pageNumber?): the pages stop there, later records unread",
    )


def _update_answer(count: int) -> Any:
    def decode(answer: Answer) -> UpdateResult:
        if answer.status == 304:
            return UpdateResult(count, not_modified=True)
        data = envelope(answer) if answer.body is not None else {}
        data = data if isinstance(data, Mapping) else {}
        return UpdateResult(count, _text(data.get("versionId")), _text(data.get("commitId")))

    return decode


class RecordsAPI:
    """``client.records``: read, insert, update and delete a sheet's records."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    async def get(
        self,
        sheet_id: str,
        *,
        page_size: int | None = None,
        page_number: int | None = None,
        filter: Filter | None = None,
        filter_field: str | None = None,
        search_value: str | None = None,
        search_field: str | None = None,
        ids: Sequence[str] | None = None,
        sort_field: str | None = None,
        sort_direction: Literal["asc", "desc"] | None = None,
        fields: Sequence[str] | None = None,
        include_messages: bool | None = None,
        include_links: bool | None = None,
        include_length: bool | None = None,
        commit_id: str | None = None,
        since_commit_id: str | None = None,
        for_event: str | None = None,
        q: str | None = None,
    ) -> RecordPage:
        """One page of ``GET /sheets/{id}/records`` (the server's page size is 10,000 by
        default). ``ids`` (at most 100) limit the page to those records, or, with a filter
        or a search, leave them out; ``fields`` selects the fields read.

        Raises:
            ValueError: more than 100 ``ids``.
        """
        if ids is not None:
            ids = _ids(ids)
        if ids is not None and len(ids) > MAX_IDS:
            raise ValueError(f"at most {MAX_IDS} ids a call, got {len(ids)}")
        params = {
            "pageSize": page_size,
            "pageNumber": page_number,
            "filter": filter,
            "filterField": filter_field,
            "searchValue": search_value,
            "searchField": search_field,
            "ids": list(ids) if ids is not None else None,
            "sortField": sort_field,
            "sortDirection": sort_direction,
            "fields": list(fields) if fields is not None else None,
            "includeMessages": include_messages,
            "includeLinks": include_links,
            "includeLength": include_length,
            "commitId": commit_id,
            "sinceCommitId": since_commit_id,
            "for": for_event,
            "q": q,
        }
        decode = _records_answer(self, sheet_id, page_number or 1)
        page: RecordPage = await self._client.call(LIST, sheet_id, params=params, decode=decode)
        return page

    async def pages(
        self, sheet_id: str, *, page_size: int = 1000, **filters: Any
    ) -> AsyncGenerator[RecordPage, None]:
        """Every page of the sheet's records (with the filters of :meth:`get`), one page in
        memory at a time, plus the next one read ahead.

        The end is found as Flatfile's own helpers find it (the answer has no
        ``pagination``): the first page asks for the length of the result, and pages are
        read until that many records came, or a page is empty. Changing records so that
        they leave the filter while iterating shifts the pages: iterate unfiltered (or by
        ``ids``) when the handler's own changes affect the filter.

        Raises:
            UnexpectedResponseError: a page holds the same records as an earlier one (a
                server that ignores ``pageNumber``, or answers its last page for any
                number past it); the message names the sheet and both pages. That page is
                not yielded.
        """
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        first = await self.get(
            sheet_id, page_size=page_size, page_number=1, include_length=True, **filters
        )
        total = first.counts.total if first.counts is not None else None
        page = first
        del first  # held, it would keep a third page in memory to the end
        # A page whose records are those of an earlier page means the server does not
        # page (the events poller stops alike at a page answered twice; here any earlier
        # page counts: a server may also go round). Each page read is kept as a hash of
        # its set of record ids: one int a page, where its ids would cost them all (a
        # false match of 64-bit hashes is out of reach); a set, so the same records in
        # another order are the same page; all the ids, not the first and last, so pages
        # that merely share records (moved by a handler's edits) are no repeat.
        read: dict[int, int] = {}  # the hash of a page's ids -> the page's number
        seen = 0
        while True:
            key = hash(frozenset(record.id for record in page))
            if key in read:
                raise _repeated(sheet_id, page.number, read[key])
            read[key] = page.number
            seen += len(page)
            number = page.number + 1
            more = bool(page) and (total is None or seen < total)
            ahead = (
                asyncio.ensure_future(
                    self.get(sheet_id, page_size=page_size, page_number=number, **filters)
                )
                if more
                else None
            )
            try:
                yield page
            except BaseException:
                if ahead is not None:
                    ahead.cancel()
                    with contextlib.suppress(BaseException):
                        await ahead  # read its outcome, whatever it was
                raise
            if ahead is None:
                return
            page = await ahead
            if not page:
                return

    async def iterate(
        self, sheet_id: str, *, page_size: int = 1000, **filters: Any
    ) -> AsyncGenerator[Record, None]:
        """Every record of the sheet (with the filters of :meth:`get`), a page at a time."""
        # Closed early (a break inside ``contextlib.aclosing``), close the pages too: their
        # read-ahead must not outlive the loop (nor the client).
        async with contextlib.aclosing(
            self.pages(sheet_id, page_size=page_size, **filters)
        ) as pages:
            async for page in pages:
                for record in page:
                    yield record

    async def insert(self, sheet_id: str, rows: Iterable[Mapping[str, Any] | Record]) -> RecordPage:
        """Add records: each row a mapping of field key to value (or to a cell,
        ``{"value": ..., "messages": [...]}``). Returns the records as created."""
        body = [_insert_row(row) for row in rows]
        decode = _records_answer(self, sheet_id, 1)
        page: RecordPage = await self._client.call(INSERT, sheet_id, body=body, decode=decode)
        return page

    async def update(
        self, sheet_id: str, records: Iterable[Record | Mapping[str, Any]]
    ) -> UpdateResult:
        """Write back records: a :class:`Record` sends only what changed (nothing when it
        did not change); a mapping is sent as given (``{"id", "values": {...}}``). One call
        for all of them; a 304 "not modified" answer is a result, not an error."""
        changes = RecordChanges(records)
        if not changes.body:
            return UpdateResult(0)
        result: UpdateResult = await self._client.call(
            UPDATE, sheet_id, body=changes.body, decode=_update_answer(len(changes.body))
        )
        changes.saved()
        return result

    async def delete(self, sheet_id: str, ids: Iterable[str]) -> int:
        """Delete records by id, at most 100 a call; returns how many were asked deleted.

        Raises:
            TypeError: ``ids`` is one string (its characters are no ids): pass ``[id]``.
        """
        pending = list(_ids(ids))
        for start in range(0, len(pending), MAX_IDS):
            chunk = pending[start : start + MAX_IDS]
            await self._client.call(DELETE, sheet_id, params={"ids": chunk}, decode=success)
        return len(pending)


def _ids(ids: Iterable[str]) -> list[str]:
    if isinstance(ids, str | bytes):
        raise TypeError(f"ids is a list of record ids, not one string: pass [{ids!r:.40}]")
    return list(ids)


def _insert_row(row: Mapping[str, Any] | Record) -> dict[str, Any]:
    if isinstance(row, Record):
        return {key: {"value": row.get(key)} for key in row}
    if not isinstance(row, Mapping):
        raise TypeError(f"a row to insert is a mapping of field to value, got {row!r:.80}")
    return {
        str(key): dict(value)
        if isinstance(value, Mapping) and "value" in value
        else {"value": value}
        for key, value in row.items()
    }
