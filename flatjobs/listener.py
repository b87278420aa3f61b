"""``Listener``: route Flatfile events to async callbacks, as ``@flatfile/listener`` does.

>>> listener = Listener()
>>> @listener.on("job:ready", {"job": "sheet:*"})
... async def on_sheet_job(event: FlatfileEvent) -> None:
...     print(event.topic, event.payload["job"])

Ordering and isolation follow SPEC §5: the callbacks matching an event run one after
another in registration order, a parent listener's before its children's; an exception in
one is logged and the next still runs; ``after_all`` callbacks run once per event after
all others.

Dispatch is indexed: callbacks are grouped by literal topic, and within a topic by a
literal filter value (``{"job": "sheet:export"}``), so the cost of dispatching an event
does not grow with callbacks that cannot match it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs

from ._callables import callable_name, is_async_callable
from .errors import InvalidEventError
from .event import Callback, FlatfileEvent
from .log import get_logger
from .matching import _SUFFIX, FilterMatcher, FlatEvent, TopicMatcher
from .models import Event

if TYPE_CHECKING:
    from .client import FlatfileClient

__all__ = ["Callback", "CallbackFailure", "DispatchResult", "FlatfileEvent", "Listener"]

C = TypeVar("C", bound=Callback)
_log = get_logger("flatjobs.listener")


@attrs.frozen
class CallbackFailure:
    """A callback that raised while handling an event."""

    callback: str
    error: BaseException


@attrs.frozen
class DispatchResult:
    """What :meth:`Listener.dispatch` ran for one event."""

    event_id: str | None
    topic: str
    ran: tuple[str, ...]
    """Names of the callbacks that ran to completion, in order (after_all ones included)."""
    failed: tuple[CallbackFailure, ...]

    @property
    def ok(self) -> bool:
        """True when no callback raised."""
        return not self.failed

    @property
    def matched(self) -> int:
        """How many callbacks matched the event (ran or failed)."""
        return len(self.ran) + len(self.failed)


@attrs.frozen(eq=False)
class _Entry:
    order: int
    topics: TopicMatcher
    filters: tuple[FilterMatcher, ...]  # the listener chain's filters, then the callback's own
    callback: Callback
    name: str
    needs_flat: bool


class _Bucket:
    """Callbacks that may match one topic, indexed by a literal filter value where possible."""

    __slots__ = ("check_topic", "indexed", "plain")

    def __init__(self, check_topic: bool) -> None:
        self.check_topic = check_topic
        self.plain: list[_Entry] = []
        self.indexed: dict[Any, tuple[Any, dict[str, list[_Entry]]]] = {}

    def add(self, entry: _Entry) -> None:
        for matcher in entry.filters:
            key = matcher.index_key()
            if key is not None and key.index_texts is not None:
                ident = (key.kind, key.key)
                _, by_text = self.indexed.setdefault(ident, (key, {}))
                for text in key.index_texts:
                    by_text.setdefault(text, []).append(entry)
                return
        self.plain.append(entry)

    def candidates(self, flat: FlatEvent) -> list[_Entry]:
        if not self.indexed:
            return self.plain
        found: list[_Entry] = list(self.plain)
        for key, by_text in self.indexed.values():
            for text in key.event_texts(flat):
                hits = by_text.get(text)
                if hits:
                    found.extend(hits)
        if len(found) > 1:
            found = sorted(set(found), key=lambda e: e.order)
        return found


class _Table:
    """The compiled routing of one listener subtree."""

    def __init__(self, entries: list[_Entry]) -> None:
        # The bare-key names any filter looks up: only those are indexed per event.
        self.names = frozenset(
            key.key for e in entries for f in e.filters for key in f.keys if key.kind == _SUFFIX
        )
        self.by_topic: dict[str, _Bucket] = {}
        self.wildcard = _Bucket(check_topic=True)
        for entry in entries:
            if entry.topics.wildcard:
                self.wildcard.add(entry)
            else:
                for topic in entry.topics.literals:
                    self.by_topic.setdefault(topic, _Bucket(check_topic=False)).add(entry)

    def match(self, raw: Mapping[str, Any], flat: FlatEvent | None = None) -> list[_Entry]:
        topic = raw["topic"]
        if flat is None:
            flat = FlatEvent(raw, self.names)
        bucket = self.by_topic.get(topic)
        found = self._select(bucket, flat, topic) if bucket is not None else []
        if self.wildcard.plain or self.wildcard.indexed:
            extra = self._select(self.wildcard, flat, topic)
            if extra:
                found = sorted(found + extra, key=lambda e: e.order) if found else extra
        return found

    @staticmethod
    def _select(bucket: _Bucket, flat: FlatEvent, topic: str) -> list[_Entry]:
        out = []
        for entry in bucket.candidates(flat):
            if bucket.check_topic and not entry.topics(topic):
                continue
            if entry.needs_flat and not all(f(flat) for f in entry.filters):
                continue
            out.append(entry)
        return out


@attrs.define
class _Registration:
    topics: TopicMatcher
    filter: FilterMatcher
    callback: Callback
    name: str


class Listener:
    """Routes events to async callbacks by topic and EventFilter (SPEC §3, §4, §5).

    Args:
        client: the :class:`FlatfileClient` callbacks reach as ``event.client``. When not
            given, one is built from the environment the first time it is needed, so a
            listener can be built and dispatched to in tests without a token.
    """

    def __init__(self, client: FlatfileClient | None = None) -> None:
        self._client = client
        self._owns_client = False
        self._filter = FilterMatcher(None)
        self._registrations: list[_Registration] = []
        self._children: list[Listener] = []
        self._parent: Listener | None = None
        self._version = 0
        self._table: tuple[int, _Table] | None = None

    def __repr__(self) -> str:
        return (
            f"Listener(callbacks={len(self._registrations)}, children={len(self._children)}, "
            f"filter={self._filter.source!r})"
        )

    # ----------------------------------------------------------- the client

    @property
    def client(self) -> FlatfileClient:
        """The client callbacks use; set it to bind the listener (and its children)."""
        root = self._root()
        if root._client is None:
            from .client import FlatfileClient

            root._client = FlatfileClient()
            root._owns_client = True
        return root._client

    @client.setter
    def client(self, client: FlatfileClient) -> None:
        self._root()._client = client

    @contextlib.asynccontextmanager
    async def bound(self, client: FlatfileClient) -> AsyncIterator[Listener]:
        """Use ``client`` for the duration of the block, then close it and restore."""
        root = self._root()
        previous = root._client
        root._client = client
        try:
            yield self
        finally:
            root._client = previous
            await client.close()

    async def aclose(self) -> None:
        """Close the client this listener built from the environment, if any."""
        root = self._root()
        if root._client is not None and root._owns_client:
            await root._client.close()
            root._client = None

    # ----------------------------------------------------------- registration

    def _root(self) -> Listener:
        node = self
        while node._parent is not None:
            node = node._parent
        return node

    def _changed(self) -> None:
        node: Listener | None = self
        while node is not None:
            node._version += 1
            node = node._parent

    @overload
    def on(
        self, topics: str | Sequence[str], filter: Mapping[str, Any] | str | None = None
    ) -> Callable[[C], C]: ...

    @overload
    def on(
        self, topics: str | Sequence[str], filter: Mapping[str, Any] | str | None, callback: C
    ) -> C: ...

    def on(
        self,
        topics: str | Sequence[str],
        filter: Mapping[str, Any] | str | None = None,
        callback: C | None = None,
    ) -> C | Callable[[C], C]:
        """Register ``async def callback(event)`` for events matching ``topics`` and ``filter``.

        Use as a decorator (``@listener.on("job:ready", {"job": "sheet:*"})``) or call it
        with the callback as third argument. Returns the callback unchanged.

        Raises:
            TypeError: the callback is not async, ``topics`` is not a string or list of
                strings, or ``filter`` is not a mapping.
        """
        matcher = TopicMatcher(topics)
        compiled = FilterMatcher(filter)

        def register(cb: C) -> C:
            if not is_async_callable(cb):
                raise TypeError(
                    f"a listener callback must be an `async def` function, got {cb!r}; "
                    f"declare it `async def {getattr(cb, '__name__', 'callback')}(event): ...`"
                )
            self._registrations.append(_Registration(matcher, compiled, cb, callable_name(cb)))
            self._changed()
            return cb

        return register(callback) if callback is not None else register

    def off(
        self,
        topics: str | Sequence[str],
        filter: Mapping[str, Any] | str | None = None,
        callback: Callback | None = None,
    ) -> int:
        """Remove registrations of ``callback`` on exactly these ``topics`` (and this
        ``filter``, when given); with no callback, every registration on those topics.
        Returns how many were removed."""
        wanted = (topics,) if isinstance(topics, str) else tuple(topics)
        keep = [
            r
            for r in self._registrations
            if not (
                r.topics.patterns == wanted
                and (callback is None or r.callback == callback)
                and (filter is None or r.filter.source == filter)
            )
        ]
        removed = len(self._registrations) - len(keep)
        if removed:
            self._registrations = keep
            self._changed()
        return removed

    def filter(
        self, filter: Mapping[str, Any], configure: Callable[[Listener], Any] | None = None
    ) -> Listener:
        """A child listener whose callbacks only see events that also match ``filter``."""
        child = Listener()
        child._filter = FilterMatcher(filter)
        child._parent = self
        self._children.append(child)
        self._changed()
        if configure is not None:
            configure(child)
        return child

    def namespace(
        self, namespaces: str | Sequence[str], configure: Callable[[Listener], Any] | None = None
    ) -> Listener:
        """A child listener for events whose ``namespaces`` match (``"space:red"``, ...)."""
        value = namespaces if isinstance(namespaces, str) else list(namespaces)
        return self.filter({"namespaces": value}, configure)

    def use(self, plugin: Callable[[Listener], Any]) -> Listener:
        """Install a plugin: ``plugin(listener)`` registers what it needs. Returns self."""
        if not callable(plugin):
            raise TypeError(f"a plugin must be a callable taking the listener, got {plugin!r}")
        plugin(self)
        return self

    def callbacks(self) -> list[str]:
        """Names of every callback of this listener and its children, in dispatch order."""
        return [e.name for e in self._entries()]

    # ----------------------------------------------------------- dispatch

    def _entries(self) -> list[_Entry]:
        out: list[_Entry] = []

        def collect(node: Listener, chain: tuple[FilterMatcher, ...]) -> None:
            if not node._filter.matches_all:
                chain = (*chain, node._filter)
            for reg in node._registrations:
                filters = chain if reg.filter.matches_all else (*chain, reg.filter)
                out.append(_Entry(len(out), reg.topics, filters, reg.callback, reg.name,
                                  needs_flat=bool(filters)))  # fmt: skip
            for child in node._children:
                collect(child, chain)

        collect(self, ())
        return out

    def _compiled(self) -> _Table:
        if self._table is None or self._table[0] != self._version:
            self._table = (self._version, _Table(self._entries()))
        return self._table[1]

    def _matching_callbacks(self, event: FlatfileEvent) -> list[Callback]:
        # Reuses the flattened view the dispatching listener already built for the event.
        return [e.callback for e in self._compiled().match(event.raw, event._flat)]

    def match(self, event: Mapping[str, Any] | Event | FlatfileEvent) -> list[str]:
        """Names of the callbacks ``event`` would run, in order, without running them."""
        return [e.name for e in self._compiled().match(FlatfileEvent.parse(event).raw)]

    async def dispatch(self, event: Mapping[str, Any] | Event | FlatfileEvent) -> DispatchResult:
        """Run every callback matching ``event`` (raw wire JSON, an :class:`Event`, or a
        :class:`FlatfileEvent` already checked where it entered).

        Raises:
            InvalidEventError: the event is malformed (not a mapping, no topic...).
        """
        wrapped = FlatfileEvent.parse(event)
        wrapped._listener = self._root()
        raw = wrapped.raw
        table = self._compiled()
        flat = FlatEvent(raw, table.names)
        try:
            entries = table.match(raw, flat)
        except RecursionError:
            raise InvalidEventError(f"event {wrapped!r} nests too deeply to be matched") from None
        wrapped._flat = flat
        ran: list[str] = []
        failed: list[CallbackFailure] = []
        for entry in entries:
            try:
                await entry.callback(wrapped)
            except Exception as exc:
                _failed(entry.name, wrapped, exc, failed)
            else:
                ran.append(entry.name)
        if wrapped._after_all:
            await self._run_after_all(wrapped, ran, failed)
        return DispatchResult(wrapped.id, wrapped.topic, tuple(ran), tuple(failed))

    async def _run_after_all(
        self, event: FlatfileEvent, ran: list[str], failed: list[CallbackFailure]
    ) -> None:
        # Each key runs once, including keys that after_all callbacks add while running.
        done: set[Any] = set()
        while pending := [(k, cb) for k, cb in event._after_all.items() if k not in done]:
            for key, callback in pending:
                done.add(key)
                await self._run(callback, callable_name(callback), event, ran, failed)

    @staticmethod
    async def _run(
        callback: Callback,
        name: str,
        event: FlatfileEvent,
        ran: list[str],
        failed: list[CallbackFailure],
    ) -> None:
        try:
            await callback(event)
        except Exception as exc:
            _failed(name, event, exc, failed)
        else:
            ran.append(name)


def _failed(name: str, event: FlatfileEvent, exc: Exception, failed: list[CallbackFailure]) -> None:
    failed.append(CallbackFailure(name, exc))
    _log.error("callback failed", event_id=event.id, topic=event.topic, callback=name, exc_info=exc)
