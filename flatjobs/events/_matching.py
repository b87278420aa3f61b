"""Topic globs and EventFilter matching with ``@flatfile/listener``'s semantics.

Everything is compiled once, when a callback is registered; matching an event costs one
flattening of the event (shared by every callback) and a few dict lookups.

Topic globs split on ``:``; ``*`` and ``?`` stay inside one segment; a whole ``**``
segment matches zero or more segments; ``a**b`` acts as ``a*b``; ``\\`` escapes the next
character. Where the JavaScript library has quirks, flatjobs is plain and says so:

* doubled or trailing separators are literal here (``job::ready`` matches only the text
  ``job::ready``; the JS library treats it as ``job:ready`` and lets ``job`` match ``job:``);
* consecutive ``**`` segments act as one, so ``**:**`` matches everything (the JS
  library's ``**:**`` matches nothing).

An EventFilter is a mapping, nested mappings flattening to dotted keys. Each key must
match: a key containing ``.`` or ``*`` is a ``.``-glob over the event's flattened paths; a
bare key ``k`` means ``**.k``. A string value is a ``:``-glob over the event value as
JavaScript renders it; other values compare by type-strict equality.

A :class:`RouteIndex` holds many (topics, filters, value) routes and finds the ones an
event matches, in registration order: by literal topic, then by a literal filter value
where it can, so routes that cannot match cost nothing. Both the listener (its callbacks)
and the ``Jobs`` registry (its handlers) route through one.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Generic, TypeVar

import attrs

__all__ = [
    "FilterMatcher",
    "FlatEvent",
    "Route",
    "RouteIndex",
    "TopicMatcher",
    "compile_filter",
    "compile_topics",
    "flatten",
    "glob_to_regex",
    "js_string",
    "match_event",
]

T = TypeVar("T")
_GLOB_CHARS: Final = frozenset("*?\\")
_GLOBSTAR: Final = object()


def _is_literal(pattern: str) -> bool:
    return not (_GLOB_CHARS & set(pattern))


def _segment_regex(segment: str, wild: str) -> str:
    out: list[str] = []
    chars = iter(segment)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, None)
            if nxt is not None:
                out.append(re.escape(nxt))
        elif ch == "?":
            out.append(wild)
        elif ch == "*":
            out.append(wild + "*")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def glob_to_regex(pattern: str, sep: str) -> str:
    """The regular expression (for ``re.fullmatch``) of a glob over ``sep`` segments."""
    esep = re.escape(sep)
    wild = f"[^{esep}]"
    parts: list[object] = []
    for segment in pattern.split(sep):
        if segment == "**":
            if parts and parts[-1] is _GLOBSTAR:
                continue
            parts.append(_GLOBSTAR)
        else:
            parts.append(segment)
    if parts == [_GLOBSTAR]:
        return ".*"
    regex: list[str] = []
    for i, part in enumerate(parts):
        if part is _GLOBSTAR:
            # Leading: zero or more "segment + sep"; elsewhere: zero or more "sep + segment".
            regex.append(f"(?:{wild}*{esep})*" if i == 0 else f"(?:{esep}{wild}*)*")
            continue
        leading_globstar_before = i == 1 and parts[0] is _GLOBSTAR
        if i > 0 and not leading_globstar_before:
            regex.append(esep)
        regex.append(_segment_regex(str(part), wild))
    return "".join(regex)


def _glob_test(pattern: str, sep: str) -> Callable[[str], bool]:
    """A predicate for one glob; literal patterns compare by equality."""
    if _is_literal(pattern):
        return pattern.__eq__
    compiled = re.compile(glob_to_regex(pattern, sep), re.DOTALL)
    return lambda text: compiled.fullmatch(text) is not None


# --------------------------------------------------------------------------- topics


class TopicMatcher:
    """Compiled topic patterns: a string or a list of strings, any of which may match.

    ``literals`` holds the patterns without glob characters, so a dispatcher can index its
    callbacks by topic; ``wildcard`` is true when some pattern needs the regex.
    """

    __slots__ = ("_tests", "literals", "patterns", "wildcard")

    def __init__(self, topics: str | Sequence[str]) -> None:
        if isinstance(topics, str):
            patterns: tuple[str, ...] = (topics,)
        elif isinstance(topics, Sequence) and all(isinstance(t, str) for t in topics):
            patterns = tuple(topics)
        else:
            raise TypeError(
                f"topics must be a string or a list of strings, got {type(topics).__name__} {topics!r}"
            )
        self.patterns = patterns
        normalised = [p or "**" for p in patterns]  # "" acts as "**", as in @flatfile/listener
        self.literals = frozenset(p for p in normalised if _is_literal(p))
        self.wildcard = any(not _is_literal(p) for p in normalised)
        self._tests = [_glob_test(p, ":") for p in normalised if not _is_literal(p)]

    def __call__(self, topic: Any) -> bool:
        if not isinstance(topic, str) or not topic:
            return False
        if topic in self.literals:
            return True
        return any(test(topic) for test in self._tests)

    def __repr__(self) -> str:
        return f"TopicMatcher({list(self.patterns)!r})"


def compile_topics(topics: str | Sequence[str]) -> TopicMatcher:
    return TopicMatcher(topics)


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

    __slots__ = ("kind", "literal", "test", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.literal: str | None = None
        self.test: Callable[[str], bool] | None = None
        if isinstance(value, str):
            self.kind = _TEXT
            pattern = value or "**"  # an empty filter value acts as "**"
            self.test = _glob_test(pattern, ":")
            if _is_literal(pattern):
                self.literal = pattern
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
            text = js_string(event_value)
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


_EXACT: Final = 0
_SUFFIX: Final = 1
_GLOB: Final = 2


class _Key:
    """One compiled filter key and its values (any value may match)."""

    __slots__ = ("index_texts", "key", "kind", "regex", "values")

    def __init__(self, key: str, value: Any) -> None:
        pattern = key if ("*" in key or "." in key) else f"**.{key}"
        self.regex: re.Pattern[str] | None = None
        if pattern.startswith("**.") and _is_literal(pattern[3:]) and "." not in pattern[3:]:
            self.kind, self.key = _SUFFIX, pattern[3:]
        elif _is_literal(pattern):
            self.kind, self.key = _EXACT, pattern
        else:
            self.kind, self.key = _GLOB, pattern
            self.regex = re.compile(glob_to_regex(pattern, "."), re.DOTALL)
        items = value if isinstance(value, list) else [value]
        self.values = tuple(_Value(v) for v in items)
        # When every value is a literal text, the key can index callbacks by that text.
        literals = [v.literal for v in self.values]
        self.index_texts: frozenset[str] | None = (
            frozenset(t for t in literals if t is not None)
            if self.values and self.kind != _GLOB and all(t is not None for t in literals)
            else None
        )

    def matches(self, event: FlatEvent) -> bool:
        values = self.values
        return any(
            fv.matches(ev)
            for ev in event.values_at(self.kind, self.key, self.regex)
            for fv in values
        )

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


FilterKey = _Key
"""One compiled key of a filter (its ``key`` and the values it matches)."""


class FilterMatcher:
    """A compiled EventFilter. ``FilterMatcher(None)`` and ``FilterMatcher({})`` match all.

    A filter that is a bare value, not a mapping, is read as ``{"**": value}``, as
    ``@flatfile/listener`` does: it matches when any value of the event does.
    """

    __slots__ = ("keys", "source")

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
        self.keys = tuple(_Key(k, v) for k, v in flat.items())

    def __call__(self, event: FlatEvent) -> bool:
        return all(key.matches(event) for key in self.keys)

    @property
    def matches_all(self) -> bool:
        return not self.keys

    def index_key(self) -> _Key | None:
        """The key a dispatcher can index this filter by, if any."""
        for key in self.keys:
            if key.index_texts:
                return key
        return None

    def __repr__(self) -> str:
        return f"FilterMatcher({self.source!r})"


def compile_filter(filter: Mapping[str, Any] | None) -> FilterMatcher:
    return FilterMatcher(filter)


def match_event(
    raw: Mapping[str, Any], topics: str | Sequence[str], filter: Mapping[str, Any] | None = None
) -> bool:
    """Whether a callback registered with ``topics`` and ``filter`` runs for ``raw``."""
    return TopicMatcher(topics)(raw.get("topic")) and FilterMatcher(filter)(FlatEvent(raw))


# --------------------------------------------------------------------------- routing


@attrs.frozen(eq=False)
class Route(Generic[T]):
    """One entry of a :class:`RouteIndex`: topics, the filters that must all match, a value."""

    order: int
    topics: TopicMatcher
    filters: tuple[FilterMatcher, ...]
    value: T


class _Bucket(Generic[T]):
    """Routes that may match one topic, indexed by a literal filter value where possible."""

    __slots__ = ("check_topic", "indexed", "plain")

    def __init__(self, check_topic: bool) -> None:
        self.check_topic = check_topic
        self.plain: list[Route[T]] = []
        self.indexed: dict[tuple[int, str], tuple[_Key, dict[str, list[Route[T]]]]] = {}

    def add(self, route: Route[T]) -> None:
        for matcher in route.filters:
            key = matcher.index_key()
            if key is not None and key.index_texts is not None:
                _, by_text = self.indexed.setdefault((key.kind, key.key), (key, {}))
                for text in key.index_texts:
                    by_text.setdefault(text, []).append(route)
                return
        self.plain.append(route)

    def select(self, flat: FlatEvent, topic: str) -> list[Route[T]]:
        candidates = self.plain
        if self.indexed:
            candidates = list(self.plain)
            for key, by_text in self.indexed.values():
                for text in key.event_texts(flat):
                    hits = by_text.get(text)
                    if hits:
                        candidates.extend(hits)
            if len(candidates) > 1:
                candidates = sorted(set(candidates), key=lambda r: r.order)
        return [
            route
            for route in candidates
            if (not self.check_topic or route.topics(topic)) and all(f(flat) for f in route.filters)
        ]


class RouteIndex(Generic[T]):
    """Routes compiled once; :meth:`match` finds those an event matches, in order.

    >>> index = RouteIndex([(TopicMatcher("job:ready"), (FilterMatcher({"job": "sheet:*"}),), "a"),
    ...                     (TopicMatcher("**"), (), "b")])
    >>> index.match({"topic": "job:ready", "payload": {"job": "sheet:export"}})
    ['a', 'b']
    """

    def __init__(
        self, routes: Iterable[tuple[TopicMatcher, tuple[FilterMatcher, ...], T]] = ()
    ) -> None:
        self.routes = [Route(n, t, f, v) for n, (t, f, v) in enumerate(routes)]
        # The bare-key names any filter looks up: only those are indexed per event.
        self.names = frozenset(
            key.key for r in self.routes for f in r.filters for key in f.keys if key.kind == _SUFFIX
        )
        self._by_topic: dict[str, _Bucket[T]] = {}
        self._wildcard: _Bucket[T] = _Bucket(check_topic=True)
        for route in self.routes:
            if route.topics.wildcard:
                self._wildcard.add(route)
            else:
                for topic in route.topics.literals:
                    self._by_topic.setdefault(topic, _Bucket(check_topic=False)).add(route)
        self._any_wildcard = bool(self._wildcard.plain or self._wildcard.indexed)

    def flatten(self, raw: Mapping[str, Any], also: frozenset[str] = frozenset()) -> FlatEvent:
        """The event's flattened view, indexing only the names this index's filters use
        (and ``also``: names another index will look up in the same view)."""
        return FlatEvent(raw, self.names | also if also else self.names)

    def match_routes(self, raw: Mapping[str, Any], flat: FlatEvent | None = None) -> list[Route[T]]:
        """The routes ``raw`` matches, in order (``flat``: its view, if already built)."""
        topic = raw["topic"]
        if flat is None:
            flat = self.flatten(raw)
        bucket = self._by_topic.get(topic)
        found = bucket.select(flat, topic) if bucket is not None else []
        if self._any_wildcard:
            extra = self._wildcard.select(flat, topic)
            if extra:
                found = sorted(found + extra, key=lambda r: r.order) if found else extra
        return found

    def match(self, raw: Mapping[str, Any], flat: FlatEvent | None = None) -> list[T]:
        """The values of the routes ``raw`` matches, in order."""
        return [route.value for route in self.match_routes(raw, flat)]
