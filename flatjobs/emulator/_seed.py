"""Seeds: data an emulator starts with, described in JSON (a file, or a dict).

A seed names spaces, their workbooks, sheets and records, documents and files::

    {
      "spaces": [{
        "name": "Acme",
        "workbooks": [{
          "name": "Contacts",
          "actions": [{"label": "Export", "operation": "export"}],
          "sheets": [{
            "name": "Contacts", "slug": "contacts",
            "fields": [
              {"key": "email", "required": true},
              {"key": "status", "type": "enum", "options": ["active", "inactive"]},
              {"key": "age", "type": "number"}
            ],
            "records": [{"email": "ann@example.com", "age": 41}]
          }]
        }],
        "documents": [{"title": "Welcome", "body": "<p>Hi</p>"}],
        "files": [{"name": "contacts.csv", "path": "contacts.csv"}]
      }],
      "workbooks": [...]
    }

Every object takes the fields the API's create call takes (SpaceConfig, CreateWorkbookConfig,
SheetConfig, DocumentConfig), plus:

* ``id`` on a space, workbook, sheet, document or file: a fixed id (with the right prefix,
  ``us_sh_...``) instead of a new one;
* on a field: ``type`` defaults to ``string``; ``"required": true`` stands for a ``required``
  constraint, ``"options": [...]`` for an enum's ``config.options`` (values, or option
  objects);
* on a sheet, ``records``: a list of ``{field: value}`` objects (a value may also be a cell,
  ``{"value": ..., "messages": [...]}``), or the path of a CSV file whose header row holds
  field keys;
* a file: ``name``, then ``path`` (read as bytes) or ``content`` (text), and optionally
  ``mode``, ``mimetype``, ``actions``.

Top-level ``workbooks``, ``documents`` and ``files`` go in the default space. Paths are
relative to the seed file (to the working directory for a dict). CSV cells are read by their
field's type: a number field's ``42`` is the number 42, a boolean's ``true``/``yes``/``1`` is
true, a list field's ``a, b`` is ``["a", "b"]``, an empty cell is empty; text that does not
read as its type stays text (and shows as it is, like any value the platform did not check).

Seeding emits no events unless asked: a seed is the world as it already was.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from ._data import DOCUMENT, FIELD, SHEET, SPACE, WORKBOOK, DataStore, paused_gc
from ._errors import EmulatorError

__all__ = ["SeedError", "SeedSource", "Seeded", "load_seed"]

SeedSource = Mapping[str, Any] | str | os.PathLike[str]
"""A seed: a dict, or the path of a JSON file."""


class SeedError(ValueError):
    """A seed cannot be loaded; the message says where in the seed, and why."""


@attrs.frozen
class Seeded:
    """The ids a seed created, by name: ``seeded.sheets["contacts"]``.

    Spaces and workbooks are keyed by name, sheets by slug, documents by title and files by
    name. A name used twice within the kinds is kept only in its qualified form:
    ``"<space name>/<workbook name>"`` for a workbook, ``"<workbook name>/<slug>"`` for a
    sheet (which is always there).
    """

    spaces: Mapping[str, str] = attrs.field(factory=dict)
    workbooks: Mapping[str, str] = attrs.field(factory=dict)
    sheets: Mapping[str, str] = attrs.field(factory=dict)
    documents: Mapping[str, str] = attrs.field(factory=dict)
    files: Mapping[str, str] = attrs.field(factory=dict)

    def merged(self, later: Seeded) -> Seeded:
        """These ids and ``later``'s (``later`` wins a name both use)."""
        return Seeded(
            **{
                kind: {**getattr(self, kind), **getattr(later, kind)}
                for kind in ("spaces", "workbooks", "sheets", "documents", "files")
            }
        )


class _Names:
    """Ids by name; a name seen twice is dropped (ambiguous) unless qualified."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.twice: set[str] = set()

    def add(self, name: str | None, ident: str, qualified: str | None = None) -> None:
        if qualified is not None:
            self.ids[qualified] = ident
        if not name:
            return
        if name in self.ids and name not in self.twice:
            self.twice.add(name)
            del self.ids[name]
        elif name not in self.twice:
            self.ids[name] = ident


_TOP = {"spaces", "workbooks", "documents", "files"}
_SPACE_KEYS = set(SPACE) | {"id", "workbooks", "documents", "files"}
_WORKBOOK_KEYS = (set(WORKBOOK) - {"spaceId", "environmentId"}) | {"id"}
_SHEET_KEYS = set(SHEET) | {"id", "records"}
_FIELD_KEYS = set(FIELD) | {"required", "options"}
_DOCUMENT_KEYS = set(DOCUMENT) | {"id"}
_FILE_KEYS = {"id", "name", "path", "content", "mode", "mimetype", "actions"}


def load_seed(store: DataStore, source: SeedSource, *, events: bool = False) -> Seeded:
    """Create what ``source`` describes in ``store``; the ids created.

    Raises:
        SeedError: the seed cannot be read, or describes something the API would refuse
            (what was created before that point stays).
    """
    if isinstance(source, Mapping):
        spec: Any = source
        loader = _Loader(store, Path.cwd(), "the seed")
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise SeedError(f"cannot read the seed {path}: {exc}") from None
        try:
            spec = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise SeedError(f"{path} is not valid JSON: {exc}") from None
        loader = _Loader(store, path.parent, str(path))
    with contextlib.nullcontext() if events else store.quiet(), paused_gc():
        loader.top(spec)
    return loader.result()


class _Loader:
    def __init__(self, store: DataStore, base: Path, origin: str) -> None:
        self.store = store
        self.base = base
        self.origin = origin
        self.names = {k: _Names() for k in ("spaces", "workbooks", "sheets", "documents", "files")}

    def result(self) -> Seeded:
        return Seeded(**{kind: dict(names.ids) for kind, names in self.names.items()})

    def fail(self, where: str, message: str) -> SeedError:
        return SeedError(
            f"{self.origin}: {where}: {message}" if where else f"{self.origin}: {message}"
        )

    @contextlib.contextmanager
    def at(self, where: str) -> Iterator[None]:
        """Errors of the API inside the block name where in the seed they come from."""
        try:
            yield
        except EmulatorError as exc:
            raise self.fail(where, exc.message) from None

    def obj(self, value: Any, where: str, keys: set[str]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, "must be an object")
        unknown = sorted(set(value) - keys)
        if unknown:
            raise self.fail(where, f"unknown key {unknown[0]!r}; known: {', '.join(sorted(keys))}")
        return dict(value)

    def items(self, value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, "must be an array")
        return value

    # ----------------------------------------------------------- the tree

    def top(self, spec: Any) -> None:
        spec = self.obj(spec, "", _TOP)
        for index, space in enumerate(self.items(spec.get("spaces"), "spaces")):
            self.space(space, f"spaces[{index}]")
        default = self.store.state.space_id
        self.contents(spec, "", default, self.store.spaces[default].name)

    def space(self, spec: Any, where: str) -> None:
        spec = self.obj(spec, where, _SPACE_KEYS)
        body = {k: v for k, v in spec.items() if k not in ("id", "workbooks", "documents", "files")}
        with self.at(where):
            space = self.store.create_space(body, id=spec.get("id"))
        self.names["spaces"].add(space.get("name"), space["id"])
        self.contents(spec, f"{where}.", space["id"], space.get("name") or space["id"])

    def contents(self, spec: dict[str, Any], where: str, space_id: str, space_name: str) -> None:
        for index, workbook in enumerate(self.items(spec.get("workbooks"), f"{where}workbooks")):
            self.workbook(workbook, f"{where}workbooks[{index}]", space_id, space_name)
        for index, document in enumerate(self.items(spec.get("documents"), f"{where}documents")):
            at = f"{where}documents[{index}]"
            document = self.obj(document, at, _DOCUMENT_KEYS)
            ident = document.pop("id", None)
            with self.at(at):
                made = self.store.create_document(space_id, document, id=ident)
            self.names["documents"].add(made.get("title"), made["id"])
        for index, file in enumerate(self.items(spec.get("files"), f"{where}files")):
            self.file(file, f"{where}files[{index}]", space_id)

    def workbook(self, spec: Any, where: str, space_id: str, space_name: str) -> None:
        spec = self.obj(spec, where, _WORKBOOK_KEYS)
        sheets = self.items(spec.pop("sheets", None), f"{where}.sheets")
        configs, records, sheet_ids = [], [], []
        for index, sheet in enumerate(sheets):
            at = f"{where}.sheets[{index}]"
            sheet = self.obj(sheet, at, _SHEET_KEYS)
            sheet_ids.append(sheet.pop("id", None))
            records.append((sheet.pop("records", None), f"{at}.records"))
            sheet["fields"] = [
                self.field(f, f"{at}.fields[{i}]")
                for i, f in enumerate(self.items(sheet.get("fields"), f"{at}.fields"))
            ]
            configs.append(sheet)
        ident = spec.pop("id", None)
        with self.at(where):
            made = self.store.create_workbook(
                {**spec, "spaceId": space_id, "sheets": configs}, id=ident, sheet_ids=sheet_ids
            )
        name = made.get("name")
        self.names["workbooks"].add(name, made["id"], f"{space_name}/{name}")
        for sheet, (rows, at) in zip(made["sheets"], records, strict=True):
            self.names["sheets"].add(sheet["slug"], sheet["id"], f"{name}/{sheet['slug']}")
            if rows is not None:
                self.records(sheet, rows, at)

    def field(self, spec: Any, where: str) -> dict[str, Any]:
        field = self.obj(spec, where, _FIELD_KEYS)
        if field.get("config") is not None and not isinstance(field["config"], Mapping):
            raise self.fail(f"{where}.config", "must be an object")
        field.setdefault("type", "string")
        if field.pop("required", False) is True:
            constraints = list(field.get("constraints") or [])
            constraints.append({"type": "required"})
            field["constraints"] = constraints
        options = field.pop("options", None)
        if options is not None:
            options = [
                o if isinstance(o, Mapping) else {"value": o, "label": str(o)}
                for o in self.items(options, f"{where}.options")
            ]
            field["config"] = {**(field.get("config") or {}), "options": options}
        return field

    def records(self, sheet: Mapping[str, Any], rows: Any, where: str) -> None:
        if isinstance(rows, str):
            cells = self.csv(sheet, self.base / rows, where)
        else:
            cells = []
            for index, row in enumerate(self.items(rows, where)):
                if not isinstance(row, Mapping):
                    raise self.fail(f"{where}[{index}]", "must be an object {field: value}")
                cells.append(
                    {k: v if isinstance(v, Mapping) else {"value": v} for k, v in row.items()}
                )
        try:
            self.store.insert_records(sheet["id"], cells)
        except EmulatorError as exc:
            raise self.fail(where, exc.message) from None

    def csv(self, sheet: Mapping[str, Any], path: Path, where: str) -> list[dict[str, Any]]:
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise self.fail(where, f"cannot read {path}: {exc}") from None
        types = {f["key"]: f["type"] for f in sheet["config"]["fields"]}
        return [
            {
                key: {"value": _from_csv(text, types.get(key))}
                for key, text in row.items()
                if key is not None and text not in (None, "")
            }
            for row in rows
        ]

    def file(self, spec: Any, where: str, space_id: str) -> None:
        spec = self.obj(spec, where, _FILE_KEYS)
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise self.fail(where, "needs a name")
        if isinstance(spec.get("path"), str):
            try:
                content = (self.base / spec["path"]).read_bytes()
            except OSError as exc:
                raise self.fail(where, f"cannot read {spec['path']}: {exc}") from None
        elif isinstance(spec.get("content"), str):
            content = spec["content"].encode()
        else:
            raise self.fail(where, "needs a path or a content")
        fields = {
            "spaceId": space_id,
            "environmentId": self.store.state.environment_id,
            "mode": spec.get("mode") or "import",
        }
        with self.at(where):
            made = self.store.upload_file(
                fields,
                name,
                content,
                spec.get("mimetype"),
                self.items(spec.get("actions"), f"{where}.actions"),
                id=spec.get("id"),
            )
        self.names["files"].add(name, made["id"])


_INTEGER = re.compile(r"[+-]?\d+")


def _from_csv(text: str, kind: str | None) -> Any:
    """A CSV cell as a value of its field's type (text, when it does not read as one)."""
    if kind == "number":
        if _INTEGER.fullmatch(text.strip()):
            with contextlib.suppress(ValueError):  # more digits than Python reads: text
                return int(text)
            return text
        with contextlib.suppress(ValueError):
            number = float(text)
            if number == number and abs(number) != float("inf"):
                return number
        return text
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        return text
    if kind in ("string-list", "enum-list", "reference-list"):
        return [part.strip() for part in text.split(",") if part.strip()]
    return text
