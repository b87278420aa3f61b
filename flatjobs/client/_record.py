"""``Record``: one record of a sheet as a handler reads and edits it, and what it changed.

A :class:`Record` keeps the JSON it came as (a page of 10,000 records costs no model
building) and tracks what a handler changes: values set, messages added or cleared,
metadata. It is built from a record as the API sends it (``Record(raw)``), wherever the
record was read: :meth:`Record.changes` is then the update that sends only what changed,
and :class:`RecordChanges` the body of one update of many records, which marks them saved
once the write went through (:meth:`RecordsAPI.update <flatjobs.client.RecordsAPI.update>`
sends one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from flatjobs.models import CellValue, MessageType, ValidationMessage, evolve, from_wire

__all__ = ["Record", "RecordChanges"]

CUSTOM: Final = "custom-logic"  # the source of messages a handler writes
PLATFORM_SOURCES: Final = frozenset(
    {"required-constraint", "unique-constraint", "unlinked", "invalid-option", "is-artifact"}
)
"""The sources of the messages the platform computes from the data (a handler's writes
leave them alone; they come and go with the values)."""


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


class RecordChanges:
    """What one update of records sends: a :class:`Record` its :meth:`~Record.changes`
    (nothing when it did not change), a mapping as given (``{"id", "values": {...}}``).

    ``body`` is the update's JSON body (empty: there is nothing to send); once the write
    succeeded, :meth:`saved` marks the records sent as saved (a failed write leaves them
    changed, to be sent again).

    Raises:
        TypeError: an item is neither a :class:`Record` nor a mapping.
    """

    __slots__ = ("_sent", "body")

    def __init__(self, records: Iterable[Record | Mapping[str, Any]]) -> None:
        self.body: list[dict[str, Any]] = []
        self._sent: list[Record] = []
        for record in records:
            if isinstance(record, Record):
                change = record.changes()
                if change is not None:
                    self.body.append(change)
                    self._sent.append(record)
            elif isinstance(record, Mapping):
                self.body.append(dict(record))
            else:
                raise TypeError(f"a record to update is a Record or a mapping, got {record!r:.80}")

    def saved(self) -> None:
        """Mark the records sent as saved: what they hold now is what was read."""
        for record in self._sent:
            record._saved()
