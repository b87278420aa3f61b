"""EventFilter matching with ``@flatfile/listener``'s semantics.

An EventFilter is a mapping, nested mappings flattening to dotted keys. Each key must
match: a key containing ``.`` or ``*`` is a ``.``-glob over the event's flattened paths; a
bare key ``k`` means ``**.k``. A string value is a ``:``-glob (see
:mod:`flatjobs.events._globs`) over the event value as JavaScript renders it
(:func:`js_string`); other values compare by type-strict equality.

A filter is compiled once, when its callback is registered; matching an event costs one
flattening of the event (a :class:`FlatEvent`, shared by every filter) and a few dict
lookups.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._globs import Anchor, anchor, glob_test, glob_to_regex, is_literal

__all__ = ["FilterKey", "FilterMatcher", "FlatEvent", "flatten", "js_string"]

# --------------------------------------------------------------------------- values


def _js_number(x: float) -> str:
    """``Number.prototype.toString()`` for a double, digit for digit."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 2**53:
        return str(int(x))  # exact, and the shortest form too
    sign, digit_tuple, exponent = decimal.Decimal(repr(x)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exponent += len(digit_tuple) - len(digits)
    k = len(digits)
    n = exponent + k  # value = 0.<digits> x 10^n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return ("-" if sign else "") + text


def js_string(value: Any) -> str:
    """A JSON value rendered as JavaScript's ``String(value)`` renders it."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        # JSON numbers are doubles in JS: a big integer renders as its nearest double does.
        return str(value) if abs(value) < 2**53 else _js_number(float(value))
    if isinstance(value, float):
        return _js_number(value)
    if value is None:
        return "null"
    if isinstance(value, list):
        return ",".join("" if v is None else js_string(v) for v in value)
    return "[object Object]"


_NEVER: Final = 0
_TEXT: Final = 1
_NULL: Final = 2
_BOOL: Final = 3
_NUMBER: Final = 4


class _Value:
    """One compiled filter value."""

    __slots__ = ("anchor", "kind", "test", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.test: Callable[[str], bool] | None = None
        self.anchor: Anchor | None = None  # how an index finds it
        if isinstance(value, str):
            self.kind = _TEXT
            pattern = value or "**"  # an empty filter value acts as "**"
            self.test = glob_test(pattern, ":")
            self.anchor = anchor(pattern)
        elif value is None:
            self.kind = _NULL
        elif isinstance(value, bool):
            self.kind = _BOOL
        elif isinstance(value, int | float):
            self.kind = _NUMBER
        else:
            self.kind = _NEVER  # objects and lists compare by identity in JS: never equal

    def matches(self, event_value: Any) -> bool:
        if event_value is None:
            return self.kind == _NULL
        if isinstance(event_value, list):
            return any(self.matches(v) for v in event_value)
        kind = self.kind
        if kind == _TEXT:
            text = event_value if event_value.__class__ is str else js_string(event_value)
            return bool(text) and self.test(text)  # type: ignore[misc]
        if kind == _BOOL:
            return isinstance(event_value, bool) and event_value == self.value
        if kind == _NUMBER:
            return (
                isinstance(event_value, int | float)
                and not isinstance(event_value, bool)
                and event_value == self.value
            )
        return False


# --------------------------------------------------------------------------- events


def flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted paths to leaves, as the ``flat`` package with ``safe: true`` makes them:
    non-empty objects are walked, lists and empty objects are leaves."""
    out: dict[str, Any] = {}

    def walk(value: Mapping[str, Any], prefix: str) -> None:
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(item, dict) and item:
                walk(item, path)
            else:
                out[path] = item

    walk(data, "")
    return out


# How a filter key finds its values in an event: one path, every path ending in one name,
# or the paths a glob matches.
_EXACT: Final = 0
_SUFFIX: Final = 1
_GLOB: Final = 2


class FlatEvent:
    """An event's flattened paths, built once and shared by every filter that reads it.

    Args:
        raw: the event.
        names: the bare-key names that will be looked up, when known in advance (a
            dispatcher knows them from its compiled filters); only those are indexed.
    """

    __slots__ = ("_by_name", "_names", "_paths", "raw")

    def __init__(self, raw: Mapping[str, Any], names: frozenset[str] | None = None) -> None:
        self.raw = raw
        self._names = names
        self._paths: dict[str, Any] | None = None
        self._by_name: dict[str, list[Any]] = {}

    def _build(self) -> dict[str, Any]:
        # One walk fills both the dotted paths and the index of wanted last segments.
        paths: dict[str, Any] = {}
        by_name = self._by_name
        names = self._names

        def walk(value: Mapping[str, Any], prefix: str) -> None:
            # `prefix` carries its trailing dot; this loop is the hot path of dispatch.
            for key, item in value.items():
                if key.__class__ is not str:
                    key = str(key)
                path = prefix + key
                if item.__class__ is dict and item:
                    walk(item, path + "." if path else "")  # as `flat` does for "" keys
                    continue
                paths[path] = item
                name = key if "." not in key else path.rpartition(".")[2]
                if names is None or name in names:
                    found = by_name.get(name)
                    if found is None:
                        by_name[name] = [item]
                    else:
                        found.append(item)

        walk(self.raw, "")
        self._paths = paths
        return paths

    @property
    def paths(self) -> dict[str, Any]:
        paths = self._paths
        return paths if paths is not None else self._build()

    def values_at(self, kind: int, key: str, regex: re.Pattern[str] | None) -> list[Any]:
        paths = self._paths if self._paths is not None else self._build()
        if kind == _EXACT:
            return [paths[key]] if key in paths else []
        if kind == _SUFFIX:
            found = self._by_name.get(key)
            if found is None:
                if self._names is None or key in self._names:
                    return []
                # A name the builder did not index (another index shares this view): scan
                # once and keep the answer.
                found = self._by_name[key] = [
                    v for p, v in paths.items() if p.rpartition(".")[2] == key
                ]
            return found
        assert regex is not None
        return [v for p, v in paths.items() if regex.fullmatch(p)]


# --------------------------------------------------------------------------- filters


class FilterKey:
    """One compiled key of a filter (its ``key`` and the values it matches, any of which
    may match)."""

    __slots__ = ("anchors", "key", "kind", "regex", "values")

    def __init__(self, key: str, value: Any) -> None:
        pattern = key if ("*" in key or "." in key) else f"**.{key}"
        self.regex: re.Pattern[str] | None = None
        if pattern.startswith("**.") and is_literal(pattern[3:]) and "." not in pattern[3:]:
            self.kind, self.key = _SUFFIX, pattern[3:]
        elif is_literal(pattern):
            self.kind, self.key = _EXACT, pattern
        else:
            self.kind, self.key = _GLOB, pattern
            self.regex = re.compile(glob_to_regex(pattern, "."), re.DOTALL)
        items = value if isinstance(value, list) else [value]
        self.values = tuple(_Value(v) for v in items)
        # An index can find a route by this key when every value has an anchor (else: empty).
        anchors = [v.anchor for v in self.values]
        self.anchors: frozenset[Anchor] = (
            frozenset(a for a in anchors if a is not None) if None not in anchors else frozenset()
        )

    def matches(self, event: FlatEvent) -> bool:
        # Loops, not any() over a generator: this runs for every route an event may match.
        values = self.values
        for found in event.values_at(self.kind, self.key, self.regex):
            for value in values:
                if value.matches(found):
                    return True
        return False

    def matches_value(self, value: Any) -> bool:
        """Whether one of this key's values matches ``value``."""
        return any(fv.matches(value) for fv in self.values)

    def event_texts(self, event: FlatEvent) -> set[str]:
        """The texts an index on this key looks up for ``event``."""
        out: set[str] = set()
        stack = list(event.values_at(self.kind, self.key, self.regex))
        while stack:
            value = stack.pop()
            if isinstance(value, list):
                stack.extend(value)
            elif value is not None:
                out.add(js_string(value))
        return out


class FilterMatcher:
    """A compiled EventFilter. ``FilterMatcher(None)`` and ``FilterMatcher({})`` match all.

    A filter that is a bare value, not a mapping, is read as ``{"**": value}``, as
    ``@flatfile/listener`` does: it matches when any value of the event does.
    """

    __slots__ = ("keys", "names", "source")

    def __init__(self, filter: Mapping[str, Any] | str | None) -> None:
        self.source = filter
        if filter is not None and not isinstance(filter, Mapping):
            if not isinstance(filter, str | int | float | bool | list):
                raise TypeError(
                    f"a filter must be a mapping such as {{'job': 'sheet:*'}}, a value, or "
                    f"None, got {type(filter).__name__} {filter!r:.80}"
                )
            filter = {"**": filter}
        flat = flatten(filter) if filter else {}
        self.keys = tuple(FilterKey(k, v) for k, v in flat.items())
        # The bare-key names it looks up ({"job"} for {"job": "sheet:*"}): a FlatEvent
        # built for it indexes those.
        self.names = frozenset(k.key for k in self.keys if k.kind == _SUFFIX)

    def __call__(self, event: FlatEvent) -> bool:
        for key in self.keys:  # noqa: SIM110 - a loop costs less than all() over a generator
            if not key.matches(event):
                return False
        return True

    @property
    def matches_all(self) -> bool:
        return not self.keys

    def __repr__(self) -> str:
        return f"FilterMatcher({self.source!r})"
