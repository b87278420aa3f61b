"""Which routes an event matches: a :class:`RouteIndex` of (topics, filters, value) routes.

An index finds the routes an event matches, in registration order: by topic pattern, then
by a filter value where it can, a glob like a literal one (a glob is found by the literal
text all its matches start or end with: ``job:*`` by ``job:``, ``*:ready`` by ``:ready``),
so routes that cannot match cost nothing; the routes found are then tested by their
:class:`~flatjobs.events._globs.TopicMatcher` and
:class:`~flatjobs.events._filters.FilterMatcher`. Both the listener (its callbacks) and
the ``Jobs`` registry (its handlers) route through one. :func:`match_event` answers for
one route, unindexed.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

from ._filters import FilterKey, FilterMatcher, FlatEvent
from ._globs import Anchor, GlobIndex, TopicMatcher, anchor

__all__ = ["Route", "RouteIndex", "match_event"]

T = TypeVar("T")


def match_event(
    raw: Mapping[str, Any], topics: str | Sequence[str], filter: Mapping[str, Any] | None = None
) -> bool:
    """Whether a callback registered with ``topics`` and ``filter`` runs for ``raw``."""
    return TopicMatcher(topics)(raw.get("topic")) and FilterMatcher(filter)(FlatEvent(raw))


@attrs.frozen(eq=False)
class Route(Generic[T]):
    """One entry of a :class:`RouteIndex`: topics, the filters that must all match, a value."""

    order: int
    topics: TopicMatcher
    filters: tuple[FilterMatcher, ...]
    value: T


class _Bucket(Generic[T]):
    """The routes of one topic pattern, found by the value of one of their filter keys where
    they can be (and all of them otherwise)."""

    __slots__ = ("by_key", "plain")

    def __init__(self) -> None:
        self.plain: list[Route[T]] = []
        self.by_key: dict[tuple[int, str], tuple[FilterKey, GlobIndex[Route[T]]]] = {}

    def fill(self, routes: list[Route[T]]) -> None:
        """Index ``routes``, each by the filter key whose values it shares with the fewest
        other routes here (the fewest candidates per event; then literal values, then the
        longest anchors), so that a key all of them filter on alike is not chosen."""
        usable = [[k for f in route.filters for k in f.keys if k.anchors] for route in routes]
        shared: collections.Counter[tuple[int, str, Anchor]] | None = None

        def cost(key: FilterKey) -> tuple[int, int, int]:
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
                self.by_key[key_id] = key, GlobIndex()
            index = self.by_key[key_id][1]
            for found in key.anchors:
                index.add(found, route)

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
        self.names: frozenset[str] = frozenset().union(
            *(f.names for r in self.routes for f in r.filters)
        )
        members: dict[str, list[Route[T]]] = {}
        tests: dict[str, Callable[[str], bool]] = {}
        for route in self.routes:
            tests.update(route.topics.globs)
            for pattern in (*route.topics.literals, *route.topics.globs):
                members.setdefault(pattern, []).append(route)
        self._by_topic: dict[str, _Bucket[T]] = {}
        # The buckets of glob patterns, each with the pattern's test.
        self._by_glob: GlobIndex[tuple[Callable[[str], bool], _Bucket[T]]] = GlobIndex()
        for pattern, routes_here in members.items():
            bucket: _Bucket[T] = _Bucket()
            bucket.fill(routes_here)
            if pattern in tests:
                self._by_glob.add(anchor(pattern), (tests[pattern], bucket))
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
