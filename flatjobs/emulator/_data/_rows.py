"""A record as a sheet keeps it (:class:`Row`), and the platform's own validation of it.

A row keeps its values and messages compactly and is written as wire JSON only when read
(:meth:`~flatjobs.emulator._data._entities.Sheet.wire_row`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MAX_IDS", "PLATFORM_SOURCES", "SCALARS", "Row", "Validator", "error_fields"]

MAX_IDS = 100
"""The most record ids one request may name ("Maximum of 100 allowed")."""
# The platform's own validation writes messages with these sources; a handler's PUT never
# writes them (they are recomputed on every change).
PLATFORM_SOURCES = frozenset({"required-constraint", "invalid-option"})
SCALARS = (str, int, float)  # a tuple: isinstance with `str | int` is several times slower


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Validator:
    """A sheet's own validation: ``required`` constraints and enum options."""

    __slots__ = ("checks",)

    def __init__(self, fields: Sequence[Mapping[str, Any]]) -> None:
        checks: list[tuple[str, str, dict[str, str] | None, frozenset[Any] | None]] = []
        for field in fields:
            key = field["key"]
            label = field.get("label") or key
            required: dict[str, str] | None = None
            for constraint in field.get("constraints") or ():
                if constraint.get("type") == "required":
                    config = constraint.get("config") or {}
                    level = config.get("level")
                    required = {
                        "type": level if level in ("error", "warn", "info") else "error",
                        "source": "required-constraint",
                        "message": str(config["message"])
                        if isinstance(config.get("message"), str)
                        else f"{label} is required",
                    }
            options: frozenset[Any] | None = None
            config = field.get("config") or {}
            if field["type"] in ("enum", "enum-list") and not config.get("allowCustom"):
                options = frozenset(
                    o.get("value")
                    for o in config.get("options") or ()
                    if isinstance(o.get("value"), str | int | float)
                )
            if required is not None or options is not None:
                checks.append((key, label, required, options))
        self.checks = checks

    def messages(self, values: Mapping[str, Any]) -> dict[str, list[dict[str, str]]] | None:
        """The platform's messages for a row's values, by field (``None``: none)."""
        out: dict[str, list[dict[str, str]]] | None = None
        for key, label, required, options in self.checks:
            value = values.get(key)
            if value is None or value == "" or value == []:
                if required is not None:
                    out = out if out is not None else {}
                    out[key] = [required]
                continue
            if options is None:
                continue
            items = value if isinstance(value, list) else (value,)
            bad = [x for x in items if not isinstance(x, SCALARS) or x not in options]
            if bad:
                out = out if out is not None else {}
                out[key] = [
                    {
                        "type": "error",
                        "source": "invalid-option",
                        "message": f"{_short(x)} is not a valid option for {label}",
                    }
                    for x in bad
                ]
        return out


def error_fields(*sources: dict[str, list[dict[str, Any]]] | None) -> tuple[str, ...]:
    """The fields with an error message in any of ``sources`` (messages by field)."""
    keys: list[str] = []
    for source in sources:
        if source:
            for key, messages in source.items():
                if key not in keys and any(m.get("type") == "error" for m in messages):
                    keys.append(key)
    return tuple(keys)


class Row:
    """One record. ``values`` holds the non-empty values; ``platform`` and ``custom`` the
    messages of each field (the platform's own, and those written by handlers); ``errors``
    the fields with an error message (none: the record is valid)."""

    __slots__ = (
        "commit_id",
        "config",
        "created",
        "custom",
        "errors",
        "id",
        "metadata",
        "platform",
        "pos",
        "seq",
        "times",
        "values",
        "version_id",
    )

    def __init__(
        self,
        id: str,
        pos: int,
        values: dict[str, Any],
        custom: dict[str, list[dict[str, Any]]] | None,
        created: str,
    ) -> None:
        self.id = id
        self.pos = pos
        self.values = values
        self.custom = custom
        self.platform: dict[str, list[dict[str, Any]]] | None = None
        self.errors: tuple[str, ...] = ()
        self.metadata: dict[str, Any] | None = None
        self.config: dict[str, Any] | None = None
        self.created = created
        self.times: dict[str, str] | None = None  # cells changed since the record was made
        self.seq = 0
        self.commit_id = ""
        self.version_id = ""
