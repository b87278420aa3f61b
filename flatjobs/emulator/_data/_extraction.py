"""What Flatfile's file extractors ask of the platform besides files, workbooks and records:
a resource's entitlements (``GET /entitlements``), and where the header of a table is
(``POST /files/detect-header``).

The header detection runs the algorithms Flatfile's extractors run themselves
(``@flatfile/plugin-delimiter-extractor``'s ``header.detection.ts``; the xlsx extractor ran
the same locally before it asked the platform): ``default`` (the row with the most non-empty
cells among the first rows, the earliest on a tie), ``explicitHeaders``, ``specificRows`` and
``dataRowAndSubHeaderDetection``. ``aiDetection`` runs on Flatfile's servers and is not
public: the emulator answers it as ``default``.

"The first rows" are ``rowsToSearch`` (10 by default) plus one: Flatfile's code stops its
stream of rows once it has seen ``rowsToSearch`` of them, and the row already on its way is
looked at too (seen running the published delimiter extractor: with ``rowsToSearch: 2`` a
fuller third row is its header). The emulator answers as that code does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flatjobs.emulator import _checks as ck
from flatjobs.emulator._checks import Params
from flatjobs.emulator._errors import EmulatorError

from ._store import Store, not_found

__all__ = ["ALGORITHMS", "ROWS_TO_SEARCH", "Extraction", "detect_header", "letters"]

ROWS_TO_SEARCH = 10
"""``rowsToSearch`` unless told: ``default`` and ``dataRowAndSubHeaderDetection`` look at one
row more."""
ALGORITHMS = ("aiDetection", "default", "explicitHeaders", "specificRows", "dataRowAndSubHeaderDetection")  # fmt: skip
"""The algorithms ``HeaderDetectionOptions`` names."""
_ENTITLEMENT: dict[str, ck.Check] = {"key": ck.string, "metadata": ck.any_json}


def letters(count: int) -> list[str]:
    """The column letters of ``count`` columns: ``A``..``Z``, ``AA``..."""
    out = []
    for index in range(count):
        name = ""
        while index >= 0:
            name = chr(ord("A") + index % 26) + name
            index = index // 26 - 1
        out.append(name)
    return out


def _non_empty(row: Sequence[str]) -> int:
    return sum(1 for cell in row if cell.strip() != "")


# A string JavaScript's Number() reads as a number (Number("") is 0: an empty cell counts).
_JS_NUMBER = re.compile(
    r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?Infinity|0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+"
)


def _likely_data(row: Sequence[str]) -> bool:
    """A row with an empty, numeric, ``true`` or ``false`` cell (``likelyContainsData``)."""
    for cell in row:
        text = cell.strip()
        if text == "" or _JS_NUMBER.fullmatch(text) or text.lower() in ("true", "false"):
            return True
    return False


def _default(rows: Sequence[Sequence[str]], search: int) -> tuple[list[str], int]:
    header: list[str] = []
    skip = 0
    for number, row in enumerate(rows[: search + 1], start=1):
        if _non_empty(row) > _non_empty(header):
            header, skip = list(row), number
    return header, skip


def _specific_rows(
    rows: Sequence[Sequence[str]], numbers: Sequence[int], skip: int | None
) -> tuple[list[str], int]:
    last = max(numbers)
    header: list[str] = []
    for current, row in enumerate(rows[: last + 1]):
        if current not in numbers:
            continue
        if not header:
            header = list(row)
            continue
        for i, cell in enumerate(header):
            # Flatfile's code fails on a row shorter than the header; here it is empty.
            more = row[i].strip() if i < len(row) else ""
            header[i] = more if cell == "" else f"{cell.strip()} {more}"
    return header, last + 1 if skip is None else skip


def _data_row_and_sub_header(rows: Sequence[Sequence[str]], search: int) -> tuple[list[str], int]:
    header: list[str] = []
    skip = 0
    seen = rows[: search + 1]
    for number, row in enumerate(seen, start=1):
        if _non_empty(row) > _non_empty(header):
            header, skip = list(row), number
        if _likely_data(row) and number >= 2:
            previous = seen[number - 2]
            if _non_empty(header) == _non_empty(previous) and not _likely_data(previous):
                header, skip = list(previous), number - 1
    # A later row as full as the header whose words fuzzy-match more than half of its
    # cells is a sub-header: it becomes the header (the last such row wins).
    found: tuple[list[str], int] | None = None
    for index in range(skip, len(seen)):
        row = seen[index]
        if header and _non_empty(header) == _non_empty(row):
            matches = 0
            for position, cell in enumerate(header):
                text = row[position].strip() if position < len(row) else ""
                words = re.split(r"\s+", text)
                if all(word.lower() in cell.lower() for word in words):
                    matches += 1
            if matches / len(header) > 0.5:
                found = (list(row), index + 1)
    return found if found is not None else (header, skip)


def _cell(value: Any, where: str) -> str:
    """A cell as the text Flatfile's code reads (``null`` as empty)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    raise ck.bad(where, "a string, number, boolean or null", value)


def _count(options: Mapping[str, Any], key: str) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ck.bad(f"options.{key}", "a whole number >= 0", value)
    return value


def detect_header(body: Any) -> dict[str, Any]:
    """``POST /files/detect-header`` with ``{options: {algorithm, rowsToSearch?, skip?,
    headers?, rowNumbers?}, data: [[cell, ...], ...]}``: ``{header, headerRow, letters}``.

    ``headerRow`` is the number of rows to skip to reach the data, which is the header's
    row number counted from 1 (0: no header found): Flatfile's xlsx extractor takes the
    data as ``data.slice(headerRow)``. ``letters`` are the header's column letters. Rows
    may be ragged or empty (``[]``, as the xlsx extractor sends a blank row)."""
    if not isinstance(body, Mapping):
        raise ck.bad("", "an object {options, data}", body)
    options = body.get("options")
    if not isinstance(options, Mapping):
        raise ck.bad("options", "an object {algorithm, ...}", options)
    algorithm = options.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise EmulatorError(
            400,
            f"options.algorithm must be one of {', '.join(ALGORITHMS)}, got {ck.kind(algorithm)}",
            key="options.algorithm",
        )
    data = body.get("data")
    if not isinstance(data, list):
        raise ck.bad("data", "an array of rows", data)
    rows: list[list[str]] = []
    for r, row in enumerate(data):
        if not isinstance(row, list):
            raise ck.bad(ck.where_item("data", r), "an array of cells", row)
        rows.append([_cell(v, f"data[{r}][{c}]") for c, v in enumerate(row)])
    search = _count(options, "rowsToSearch") or ROWS_TO_SEARCH
    skip = _count(options, "skip")
    if algorithm == "explicitHeaders":
        given = options.get("headers")
        if not isinstance(given, list) or not given or not all(isinstance(h, str) for h in given):
            raise ck.bad("options.headers", "a non-empty array of strings", given)
        header, skip = list(given), skip or 0
    elif algorithm == "specificRows":
        numbers = options.get("rowNumbers")
        if (
            not isinstance(numbers, list)
            or not numbers
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers)
        ):
            raise ck.bad("options.rowNumbers", "a non-empty array of row numbers (from 0)", numbers)
        header, skip = _specific_rows(rows, numbers, skip)
    elif algorithm == "dataRowAndSubHeaderDetection":
        header, skip = _data_row_and_sub_header(rows, search)
    else:  # default, and aiDetection (not public): the default's answer
        header, skip = _default(rows, search)
    return {"header": header, "headerRow": skip, "letters": letters(len(header))}


class Extraction:
    """``GET /entitlements`` (what each resource is entitled to, none unless set) and
    ``POST /files/detect-header``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.entitlements: dict[str, list[dict[str, Any]]] = {}

    def set_entitlements(self, resource_id: str, entitlements: Iterable[Any]) -> None:
        """Set what ``GET /entitlements?resourceId=`` answers for a resource the store
        holds: each ``{key, metadata?}``."""
        if not self.store.locate(resource_id):
            raise not_found("resource", resource_id, "resourceId")
        checked = [
            ck.read(e, _ENTITLEMENT, ck.where_item("entitlements", i), required=("key",))
            for i, e in enumerate(entitlements)
        ]
        self.entitlements[resource_id] = checked

    def list(self, params: Params) -> list[dict[str, Any]]:
        """``GET /entitlements?resourceId=`` (required): the resource's entitlements
        (``[]``: none, which is enough for Flatfile's extractors); 404 for an id the store
        does not hold."""
        resource_id = ck.one(params, "resourceId")
        if not resource_id:
            raise EmulatorError(400, "resourceId is required", key="resourceId")
        if not self.store.locate(resource_id):
            raise not_found("resource", resource_id, "resourceId")
        return [dict(e) for e in self.entitlements.get(resource_id, [])]
