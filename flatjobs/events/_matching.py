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
event matches, in registration order: by topic pattern, then by a filter value where it
can, a glob like a literal one (a glob is found by the literal text all its matches start
or end with: ``job:*`` by ``job:``, ``*:ready`` by ``:ready``), so routes that cannot
match cost nothing; the routes found are then tested as above. Both the listener (its
callbacks) and the ``Jobs`` registry (its handlers) route through one.
"""

from __future__ import annotations

import bisect
import collections
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
P = TypeVar("P")
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


_LITERAL_RUN: Final = re.compile(r"[^*?\\]*", re.DOTALL)


def _literal_start(segments: Iterable[str]) -> str:
    """The text every match of a ``:``-glob starts with: its whole literal segments and their
    separators, then the literal run that starts the first segment that is not literal. A
    ``**`` segment stops it before its separator, since it may match no segment at all.
    Given the segments reversed and each one reversed, it reads the text every match ends
    with, reversed (``*``, ``?`` and ``\\`` stop it from either end)."""
    out: list[str] = []
    for i, segment in enumerate(segments):
        if segment == "**":
            break
        if i:
            out.append(":")
        run = _LITERAL_RUN.match(segment)
        assert run is not None  # it matches the empty text at least
        out.append(run[0])
        if run.end() < len(segment):
            break
    return "".join(out)


def _anchor(pattern: str) -> tuple[str, str] | None:
    """How a ``:``-glob is found without being tried: ``("=", text)`` for a literal pattern,
    ``("<", prefix)`` or ``(">", suffix)`` for the longer literal text every match starts or
    ends with, or None when matches need not share one (``**``, ``*:*``)."""
    if _is_literal(pattern):
        return "=", pattern
    prefix = _literal_start(pattern.split(":"))
    suffix = _literal_start(pattern[::-1].split(":"))[::-1]
    if prefix and len(prefix) >= len(suffix):
        return "<", prefix
    if suffix:
        return ">", suffix
    return None


# --------------------------------------------------------------------------- topics


class TopicMatcher:
    """Compiled topic patterns: a string or a list of strings, any of which may match.

    ``literals`` holds the patterns without glob characters and ``globs`` the others, each
    with its compiled test, so a dispatcher can index its callbacks by pattern.
    """

    __slots__ = ("globs", "literals", "patterns")

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
        self.globs: dict[str, Callable[[str], bool]] = {
            p: _glob_test(p, ":") for p in normalised if not _is_literal(p)
        }

    def __call__(self, topic: Any) -> bool:
        if not isinstance(topic, str) or not topic:
            return False
        if topic in self.literals:
            return True
        return any(test(topic) for test in self.globs.values())

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

    __slots__ = ("anchor", "kind", "test", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.test: Callable[[str], bool] | None = None
        self.anchor: tuple[str, str] | None = None  # how an index finds it, see _anchor
        if isinstance(value, str):
            self.kind = _TEXT
            pattern = value or "**"  # an empty filter value acts as "**"
            self.test = _glob_test(pattern, ":")
            self.anchor = _anchor(pattern)
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

    __slots__ = ("anchors", "key", "kind", "regex", "values")

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
        # An index can find a route by this key when every value has an anchor (else: empty).
        anchors = [v.anchor for v in self.values]
        self.anchors: frozenset[tuple[str, str]] = (
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
        for key in self.keys:  # noqa: SIM110 - a loop costs less than all() over a generator
            if not key.matches(event):
                return False
        return True

    @property
    def matches_all(self) -> bool:
        return not self.keys

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


class _GlobIndex(Generic[P]):
    """``:``-globs, each with a payload, found without trying each glob.

    :meth:`collect` gives the payloads of every glob that may match a text: literal globs by
    equality, the others by the literal text all their matches start or end with (one dict
    lookup per distinct length of those texts), and those with none every time. It may give
    a glob that does not match (``job:*`` for ``job:a:b``): callers test what it gives.
    """

    __slots__ = (
        "_anywhere",
        "_exact",
        "_prefix_lengths",
        "_prefixes",
        "_suffix_lengths",
        "_suffixes",
    )

    def __init__(self) -> None:
        self._exact: dict[str, list[P]] = {}
        self._prefixes: dict[str, list[P]] = {}
        self._prefix_lengths: list[int] = []  # the distinct lengths of the prefixes, in order
        self._suffixes: dict[str, list[P]] = {}
        self._suffix_lengths: list[int] = []
        self._anywhere: list[P] = []

    def add(self, anchor: tuple[str, str] | None, payload: P) -> None:
        """Add a glob by its anchor (see :func:`_anchor`)."""
        if anchor is None:
            self._anywhere.append(payload)
            return
        side, text = anchor
        if side == "=":
            self._exact.setdefault(text, []).append(payload)
            return
        by_text, lengths = (
            (self._prefixes, self._prefix_lengths)
            if side == "<"
            else (self._suffixes, self._suffix_lengths)
        )
        if len(text) not in lengths:
            bisect.insort(lengths, len(text))
        by_text.setdefault(text, []).append(payload)

    def collect(self, text: str, out: list[P]) -> None:
        """Append to ``out`` the payloads of the globs that may match ``text``."""
        hits = self._exact.get(text)
        if hits:
            out.extend(hits)
        if self._prefix_lengths:
            by_text = self._prefixes
            size = len(text)
            for n in self._prefix_lengths:
                if n > size:
                    break
                hits = by_text.get(text[:n])
                if hits:
                    out.extend(hits)
        if self._suffix_lengths:
            by_text = self._suffixes
            size = len(text)
            for n in self._suffix_lengths:
                if n > size:
                    break
                hits = by_text.get(text[-n:])
                if hits:
                    out.extend(hits)
        if self._anywhere:
            out.extend(self._anywhere)


class _Bucket(Generic[T]):
    """The routes of one topic pattern, found by the value of one of their filter keys where
    they can be (and all of them otherwise)."""

    __slots__ = ("by_key", "plain")

    def __init__(self) -> None:
        self.plain: list[Route[T]] = []
        self.by_key: dict[tuple[int, str], tuple[_Key, _GlobIndex[Route[T]]]] = {}

    def fill(self, routes: list[Route[T]]) -> None:
        """Index ``routes``, each by the filter key whose values it shares with the fewest
        other routes here (the fewest candidates per event; then literal values, then the
        longest anchors), so that a key all of them filter on alike is not chosen."""
        usable = [[k for f in route.filters for k in f.keys if k.anchors] for route in routes]
        shared: collections.Counter[tuple[int, str, tuple[str, str]]] | None = None

        def cost(key: _Key) -> tuple[int, int, int]:
            assert shared is not None
            return (
                sum(shared[key.kind, key.key, a] for a in key.anchors),
                sum(side != "=" for side, _ in key.anchors),
                -min(len(text) for _, text in key.anchors),
            )

        for route, keys in zip(routes, usable, strict=True):
            if not keys:
                self.plain.append(route)
                continue
            if len(keys) == 1:
                key = keys[0]
            else:
                if shared is None:  # counted once, when some route has a choice
                    shared = collections.Counter(
                        (k.kind, k.key, a) for ks in usable for k in ks for a in k.anchors
                    )
                key = min(keys, key=cost)
            key_id = key.kind, key.key
            if key_id not in self.by_key:
                self.by_key[key_id] = key, _GlobIndex()
            index = self.by_key[key_id][1]
            for anchor in key.anchors:
                index.add(anchor, route)

    def collect(
        self, flat: FlatEvent, texts: dict[tuple[int, str], set[str]], out: list[Route[T]]
    ) -> None:
        """Append to ``out`` the routes here that may match the event (``texts``: the texts
        of its values by filter key, filled as keys are first read, shared by buckets)."""
        if self.plain:
            out.extend(self.plain)
        for key_id, (key, index) in self.by_key.items():
            found = texts.get(key_id)
            if found is None:
                found = texts[key_id] = key.event_texts(flat)
            for text in found:
                index.collect(text, out)


class RouteIndex(Generic[T]):
    """Routes compiled once; :meth:`match` finds those an event matches, in order.

    Routes are grouped by topic pattern; the patterns that may match the event's topic are
    found by equality, or by the literal text all their matches start or end with (so an
    event tries a few patterns, not every one); within a pattern, a route is found by the
    value of one of its filter keys, literal or glob, the same way. Only the routes found
    are then tested, so routes that cannot match cost nothing, whether their topics and
    filter values are literal or globs.

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
        members: dict[str, list[Route[T]]] = {}
        tests: dict[str, Callable[[str], bool]] = {}
        for route in self.routes:
            tests.update(route.topics.globs)
            for pattern in (*route.topics.literals, *route.topics.globs):
                members.setdefault(pattern, []).append(route)
        self._by_topic: dict[str, _Bucket[T]] = {}
        # The buckets of glob patterns, each with the pattern's test.
        self._by_glob: _GlobIndex[tuple[Callable[[str], bool], _Bucket[T]]] = _GlobIndex()
        for pattern, routes_here in members.items():
            bucket: _Bucket[T] = _Bucket()
            bucket.fill(routes_here)
            if pattern in tests:
                self._by_glob.add(_anchor(pattern), (tests[pattern], bucket))
            else:
                self._by_topic[pattern] = bucket
        self._any_glob = bool(tests)

    def flatten(self, raw: Mapping[str, Any], also: frozenset[str] = frozenset()) -> FlatEvent:
        """The event's flattened view, indexing only the names this index's filters use
        (and ``also``: names another index will look up in the same view)."""
        return FlatEvent(raw, self.names | also if also else self.names)

    def match_routes(self, raw: Mapping[str, Any], flat: FlatEvent | None = None) -> list[Route[T]]:
        """The routes ``raw`` matches, in order (``flat``: its view, if already built)."""
        topic = raw["topic"]
        if not isinstance(topic, str) or not topic:
            return []  # no topic pattern matches one
        if flat is None:
            flat = self.flatten(raw)
        candidates: list[Route[T]] = []
        texts: dict[tuple[int, str], set[str]] = {}
        bucket = self._by_topic.get(topic)
        if bucket is not None:
            bucket.collect(flat, texts, candidates)
        if self._any_glob:
            globs: list[tuple[Callable[[str], bool], _Bucket[T]]] = []
            self._by_glob.collect(topic, globs)
            for test, bucket in globs:
                if test(topic):
                    bucket.collect(flat, texts, candidates)
        if len(candidates) > 1:
            # A route is found once per topic pattern and filter value that may match.
            candidates = sorted(set(candidates), key=_order)
        matched = []
        for route in candidates:
            for matcher in route.filters:
                if not matcher(flat):
                    break
            else:
                matched.append(route)
        return matched

    def match(self, raw: Mapping[str, Any], flat: FlatEvent | None = None) -> list[T]:
        """The values of the routes ``raw`` matches, in order."""
        return [route.value for route in self.match_routes(raw, flat)]


def _order(route: Route[Any]) -> int:
    return route.order
