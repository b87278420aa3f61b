"""``client.records``: a sheet's records, and :class:`Record`, a record a handler edits.

A :class:`Record` keeps the JSON it came as (a page of 10,000 records costs no model
building) and tracks what a handler changes: values set, messages added or cleared,
metadata. A page writes back only what changed, in one call::

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
import builtins
import contextlib
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from flatjobs.errors import UnexpectedResponseError
from flatjobs.models import (
    CellValue,
    MessageType,
    RecordCounts,
    ValidationMessage,
    evolve,
    from_wire,
)

from ._transport import Answer, Caller, Endpoint, envelope, success

__all__ = ["Record", "RecordPage", "RecordsAPI", "UpdateResult"]

LIST: Final = Endpoint("GET", "/sheets/{}/records", "records.list")
INSERT: Final = Endpoint("POST", "/sheets/{}/records", "records.insert")
UPDATE: Final = Endpoint("PUT", "/sheets/{}/records", "records.update")
DELETE: Final = Endpoint("DELETE", "/sheets/{}/records", "records.delete")
MAX_IDS: Final = 100
"""The most ids one call may name (``ids`` when reading, deleting)."""
CUSTOM: Final = "custom-logic"  # the source of messages a handler writes
PLATFORM_SOURCES: Final = frozenset(
    {"required-constraint", "unique-constraint", "unlinked", "invalid-option", "is-artifact"}
)
"""The sources of the messages the platform computes from the data (a handler's writes
leave them alone; they come and go with the values)."""

Filter = Literal["valid", "error", "all", "none"]


class Record:
    """One record of a sheet, as a handler reads and edits it.

    ``record["email"]`` is a cell's value (``KeyError`` when the record has no such field;
    ``record.get("email")`` gives None instead); ``record["email"] = "a@b.c"`` sets it;
    ``record.error("email", "...")`` (and ``warn``, ``info``) writes a message on a cell;
    ``record.clear_messages()`` removes those handlers wrote. What changed is sent by
    :meth:`RecordPage.save` or :meth:`RecordsAPI.update`.
    """

    __slots__ = ("_changed", "_messaged", "_metadata_changed", "raw")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
            raise ValueError(f"a record is an object with a string id, got {raw!r:.80}")
        values = raw.get("values")
        self.raw: dict[str, Any] = dict(raw)
        self.raw["values"] = dict(values) if isinstance(values, Mapping) else {}
        # Made on first change: most records a handler reads it never changes.
        self._changed: dict[str, Any] | None = None  # key -> the value as read (or _ABSENT)
        # key -> the handlers' messages on the cell as read (None: read without messages)
        self._messaged: dict[str, list[Any] | None] | None = None
        self._metadata_changed = False

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={self.get(k)!r:.40}" for k in list(self.keys())[:6])
        return f"Record(id={self.id!r}, {shown})"

    @property
    def id(self) -> str:
        """The record's id."""
        value: str = self.raw["id"]
        return value

    # ----------------------------------------------------------- values

    def _cell(self, key: str) -> dict[str, Any] | None:
        cell = self.raw["values"].get(key)
        return cell if isinstance(cell, dict) else None

    def __getitem__(self, key: str) -> Any:
        if key not in self.raw["values"]:
            raise KeyError(key)
        cell = self._cell(key)
        return cell.get("value") if cell is not None else None

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when the record has no such field or the cell
        is empty."""
        cell = self._cell(key)
        value = cell.get("value") if cell is not None else None
        return default if value is None else value

    def __setitem__(self, key: str, value: Any) -> None:
        cell = self._cell(key)
        current = cell.get("value") if cell is not None else None
        if key in self.raw["values"] and _same(current, value):
            return  # unchanged: nothing to send
        changed = self._changed if self._changed is not None else {}
        self._changed = changed
        if key not in changed:
            changed[key] = current if key in self.raw["values"] else _ABSENT
        new = dict(cell) if cell is not None else {}
        new["value"] = value
        self.raw["values"][key] = new
        if _same(changed[key], value):
            del changed[key]  # set back to what was read: nothing to send

    def __contains__(self, key: object) -> bool:
        return key in self.raw["values"]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.raw["values"])

    def keys(self) -> Iterable[str]:
        """The field keys the record has values for."""
        values: dict[str, Any] = self.raw["values"]
        return values.keys()

    def values(self) -> dict[str, Any]:
        """Every field's value, by key."""
        return {key: self.get(key) for key in self.keys()}

    def cell(self, key: str) -> CellValue:
        """The cell ``key`` read whole: value, validity, messages."""
        cell = self._cell(key)
        return from_wire(cell, CellValue) if cell is not None else CellValue()

    # ----------------------------------------------------------- validity and messages

    @property
    def valid(self) -> bool | None:
        """Whether the platform holds the record valid (None when it did not say)."""
        value = self.raw.get("valid")
        return value if isinstance(value, bool) else None

    def is_valid(self, key: str) -> bool:
        """Whether the cell ``key`` has no error message (and is not marked invalid)."""
        cell = self._cell(key) or {}
        if cell.get("valid") is False:
            return False
        return not any(m.type == MessageType.ERROR for m in self.messages(key))

    def messages(self, key: str | None = None) -> list[ValidationMessage]:
        """The messages on the cell ``key``, or on every cell (read with
        ``include_messages=True``, and those written since)."""
        keys = [key] if key is not None else list(self.keys())
        out: list[ValidationMessage] = []
        for name in keys:
            for message in (self._cell(name) or {}).get("messages") or []:
                if isinstance(message, Mapping):
                    found = from_wire(message, ValidationMessage)
                    out.append(found if found.field else evolve(found, field=name))
        return out

    def error(self, key: str, message: str) -> None:
        """Write an error on the cell ``key``: the record is then invalid."""
        self._message(key, MessageType.ERROR, message)

    def warn(self, key: str, message: str) -> None:
        """Write a warning on the cell ``key``."""
        self._message(key, MessageType.WARN, message)

    def info(self, key: str, message: str) -> None:
        """Write an informational message on the cell ``key``."""
        self._message(key, MessageType.INFO, message)

    def clear_messages(self, key: str | None = None) -> None:
        """Remove the messages handlers wrote on the cell ``key``, or on every cell: run
        first, a validation whose earlier run flagged a cell the user has since fixed
        leaves no stale message behind. The platform's own messages (a required field
        left empty, a value not among an enum's options) stay: they follow the data.

        Only cells that held such messages are sent; read the records with
        ``include_messages=True``, else what a cell holds is unknown and each cleared
        cell is sent (``messages: []``)."""
        for name in [key] if key is not None else list(self.keys()):
            self._track_messages(name)
            cell = self._cell(name)
            if cell is not None and isinstance(cell.get("messages"), list):
                kept = [m for m in cell["messages"] if not _handlers(m)]
                if len(kept) != len(cell["messages"]):
                    self.raw["values"][name] = {**cell, "messages": kept}

    def _message(self, key: str, kind: MessageType, message: str) -> None:
        if not isinstance(message, str):
            raise TypeError(f"a message is text, got {type(message).__name__} {message!r:.80}")
        cell = dict(self._cell(key) or {})
        if self._track_messages(key):
            # The first message a handler writes replaces what its earlier runs wrote.
            cell["messages"] = [m for m in cell.get("messages") or [] if _source(m) != CUSTOM]
        entry = {"type": kind.value, "message": message, "source": CUSTOM}
        cell["messages"] = [*(cell.get("messages") or []), entry]
        self.raw["values"][key] = cell

    def _track_messages(self, key: str) -> bool:
        """Remember the handlers' messages on the cell ``key`` as read, before the first
        change to them; whether this is that first change."""
        if self._messaged is None:
            self._messaged = {}
        if key in self._messaged:
            return False
        self._messaged[key] = _handlers_messages(self._cell(key))
        return True

    def _message_changes(self) -> dict[str, list[Any]]:
        """The cells whose handlers' messages differ from what was read, with the messages
        to send (all of them: the cell's ``messages`` sent replace those it holds)."""
        out: dict[str, list[Any]] = {}
        for key, before in (self._messaged or {}).items():
            now = _handlers_messages(self._cell(key)) or []
            if before is None or now != before:
                out[key] = now
        return out

    # ----------------------------------------------------------- metadata

    @property
    def metadata(self) -> dict[str, Any]:
        """The record's metadata (assign a new dict to change it)."""
        value = self.raw.get("metadata")
        return dict(value) if isinstance(value, Mapping) else {}

    @metadata.setter
    def metadata(self, value: Mapping[str, Any]) -> None:
        self.raw["metadata"] = dict(value)
        self._metadata_changed = True

    # ----------------------------------------------------------- changes

    @property
    def changed(self) -> bool:
        """Whether anything was changed since the record was read (or last saved): a
        message written and cleared again, or a value set back, is no change."""
        return bool(self._changed or self._metadata_changed or self._message_changes())

    def changes(self) -> dict[str, Any] | None:
        """The update that sends what changed (only the changed cells), or None."""
        changed, messaged = self._changed or {}, self._message_changes()
        if not (changed or messaged or self._metadata_changed):
            return None
        update: dict[str, Any] = {"id": self.id, "values": {}}
        for key in changed.keys() | messaged.keys():
            cell = self._cell(key) or {}
            sent: dict[str, Any] = {}
            if key in changed:
                sent["value"] = cell.get("value")
            if key in messaged:
                sent["messages"] = messaged[key]
            update["values"][key] = sent
        if self._metadata_changed:
            update["metadata"] = self.metadata
        for passed in ("versionId", "commitId"):
            if passed in self.raw:
                update[passed] = self.raw[passed]
        return update

    def _saved(self) -> None:
        self._changed = self._messaged = None
        self._metadata_changed = False


_ABSENT: Any = object()  # a key the record had no value for when read


def _same(old: Any, new: Any) -> bool:
    """Whether writing ``new`` over ``old`` changes nothing: equal, and ``True`` is not ``1``
    (Python says they are equal; a boolean field and a number field do not)."""
    if old is _ABSENT or new is _ABSENT:
        return old is new
    if isinstance(old, bool) is not isinstance(new, bool):
        return False
    try:
        return bool(old == new)
    except Exception:  # a value whose comparison raises is a change
        return False


def _source(message: Any) -> Any:
    return message.get("source") if isinstance(message, Mapping) else None


def _handlers(message: Any) -> bool:
    """Whether a message is one handlers write (not one the platform computes)."""
    return isinstance(message, Mapping) and _source(message) not in PLATFORM_SOURCES


def _handlers_messages(cell: Mapping[str, Any] | None) -> list[Any] | None:
    """The messages handlers wrote on a cell; None when it was read without its messages."""
    messages = cell.get("messages") if cell is not None else None
    if not isinstance(messages, list):
        return None
    return [m for m in messages if _handlers(m)]


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
        body: builtins.list[dict[str, Any]] = []
        tracked: builtins.list[Record] = []
        for record in records:
            if isinstance(record, Record):
                change = record.changes()
                if change is not None:
                    body.append(change)
                    tracked.append(record)
            elif isinstance(record, Mapping):
                body.append(dict(record))
            else:
                raise TypeError(f"a record to update is a Record or a mapping, got {record!r:.80}")
        if not body:
            return UpdateResult(0)
        result: UpdateResult = await self._client.call(
            UPDATE, sheet_id, body=body, decode=_update_answer(len(body))
        )
        for record in tracked:
            record._saved()
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
