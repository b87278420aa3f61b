"""``Listener``: route Flatfile events to async callbacks, as ``@flatfile/listener`` does.

>>> import asyncio
>>> from flatjobs.testing import make_event
>>> listener = Listener()
>>> @listener.on("job:ready", {"job": "sheet:*"})
... async def on_sheet_job(event: FlatfileEvent) -> None:
...     print(event.topic, event.payload["job"])
>>> result = asyncio.run(listener.dispatch(make_event(job="sheet:dedupe")))
job:ready sheet:dedupe
>>> result.ran
('flatjobs.listener._listener.on_sheet_job',)

Ordering and isolation follow ``@flatfile/listener``'s: the callbacks matching an event run one after
another in registration order, a parent listener's before its children's; an exception in
one is logged and the next still runs; ``after_all`` callbacks run once per event after
all others.

Dispatch is indexed: callbacks are grouped by literal topic, and within a topic by a
literal filter value (``{"job": "sheet:export"}``), so the cost of dispatching an event
does not grow with callbacks that cannot match it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import (
    Any,
    Final,
    Protocol,
    TypeGuard,
    TypeVar,
    cast,
    overload,
    runtime_checkable,
)

import attrs

from flatjobs._callables import callable_name, is_async_callable
from flatjobs.client import FlatfileClient
from flatjobs.errors import InvalidEventError
from flatjobs.events._event import Callback, FlatfileEvent
from flatjobs.events._filters import FilterKey, FilterMatcher
from flatjobs.events._globs import TopicMatcher
from flatjobs.events._index import RouteIndex
from flatjobs.log import get_logger
from flatjobs.models import Event
from flatjobs.observe._results import CallbackFailure, DispatchResult

__all__ = [
    "Callback",
    "CallbackFailure",
    "DispatchResult",
    "FlatfileEvent",
    "Listener",
    "Routed",
    "Router",
]

C = TypeVar("C", bound=Callback)
_log = get_logger("flatjobs.listener")


@runtime_checkable
class Routed(Protocol):
    """What a :class:`Router` decided to run for one event."""

    @property
    def name(self) -> str:
        """The name of the handler it runs, for logs and :meth:`Listener.match`."""
        ...

    def __call__(self) -> Awaitable[Any]:
        """Run it."""
        ...


@runtime_checkable
class Router(Protocol):
    """A callback that routes an event on to one handler of its own, as ``Jobs`` does.

    Installed with :meth:`Listener.add_router`; the listener asks it once per event which
    handler takes the event (:meth:`route`), so :meth:`Listener.match` can name it.
    """

    @property
    def names(self) -> frozenset[str]:
        """The bare filter keys it looks up (``{"job"}``), so the event's view indexes them."""
        ...

    def route(self, event: FlatfileEvent) -> Routed | None:
        """What it would run for ``event``, or None when none of its handlers takes it."""
        ...

    def handlers(self) -> list[str]:
        """The names of all its handlers, in order."""
        ...


_JOB_KEYS: Final = frozenset({"job", "payload.job"})
"""Filter keys that name a job (``{"job": ...}`` matches ``payload.job`` anywhere)."""


def _names_job(key: FilterKey, event: FlatfileEvent) -> bool:
    """Whether a filter key picks jobs by name: ``{"job": ...}``, or a bare value
    (``listener.on("job:ready", "workbook:export", ...)``) that the job's name matches."""
    if key.key in _JOB_KEYS:
        return True
    job = event.payload.get("job")
    return key.key == "**" and isinstance(job, str) and key.matches_value(job)


@attrs.frozen(eq=False)
class _Registration:
    topics: TopicMatcher
    filter: FilterMatcher
    callback: Callback | Router
    name: str


class Listener:
    """Routes events to async callbacks by topic and EventFilter, as ``@flatfile/listener`` does.

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
        self._index: tuple[int, RouteIndex[_Registration], frozenset[str]] | None = None

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
            root._client = FlatfileClient()
            root._owns_client = True
        return root._client

    @client.setter
    def client(self, client: FlatfileClient) -> None:
        root = self._root()
        root._client, root._owns_client = client, False  # lent: never closed here

    @contextlib.asynccontextmanager
    async def bound(self, client: FlatfileClient) -> AsyncIterator[Listener]:
        """Use ``client`` for the duration of the block, then restore the previous one.

        The client stays yours: what a listener is lent, it never closes.
        """
        root = self._root()
        previous, owned = root._client, root._owns_client
        root._client, root._owns_client = client, False
        try:
            yield self
        finally:
            root._client, root._owns_client = previous, owned

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

    def add_router(
        self,
        topics: str | Sequence[str],
        router: Router,
        filter: Mapping[str, Any] | str | None = None,
    ) -> None:
        """Install a :class:`Router` (a plugin that routes events on to its own handlers, as
        ``Jobs`` does) on ``topics``; it runs in registration order among the callbacks."""
        if not isinstance(router, Router):
            raise TypeError(f"a router needs route(), handlers() and names, got {router!r}")
        name = callable_name(type(router))
        self._registrations.append(
            _Registration(TopicMatcher(topics), FilterMatcher(filter), router, name)
        )
        self._changed()

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

    def routers(self) -> list[Router]:
        """The routers (``Jobs`` registries) installed on this listener and its children."""
        routes = self._compiled().routes
        return [r.value.callback for r in routes if _is_router(r.value.callback)]

    def callbacks(self) -> list[str]:
        """Names of every callback of this listener and its children, in dispatch order (a
        router's handlers by name)."""
        names: list[str] = []
        for route in self._compiled().routes:
            callback = route.value.callback
            names.extend(callback.handlers() if _is_router(callback) else [route.value.name])
        return names

    # ----------------------------------------------------------- dispatch

    def _compiled(self) -> RouteIndex[_Registration]:
        return self._compile()[0]

    def _compile(self) -> tuple[RouteIndex[_Registration], frozenset[str]]:
        """The route index of this subtree, and the filter names its routers look up."""
        if self._index is None or self._index[0] != self._version:
            index = RouteIndex(self._routes())
            names = frozenset().union(
                *(r.value.callback.names for r in index.routes if _is_router(r.value.callback))
            )
            self._index = (self._version, index, names)
        return self._index[1], self._index[2]

    def _routes(self) -> list[tuple[TopicMatcher, tuple[FilterMatcher, ...], _Registration]]:
        out: list[tuple[TopicMatcher, tuple[FilterMatcher, ...], _Registration]] = []

        def collect(node: Listener, chain: tuple[FilterMatcher, ...]) -> None:
            if not node._filter.matches_all:
                chain = (*chain, node._filter)
            for reg in node._registrations:
                filters = chain if reg.filter.matches_all else (*chain, reg.filter)
                out.append((reg.topics, filters, reg))
            for child in node._children:
                collect(child, chain)

        collect(self, ())
        return out

    def _matching(self, event: FlatfileEvent) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
        """What ``event`` runs: (name, call) of each callback, and of each handler a router
        chose. The event's flattened view is built here, once, and kept on the event."""
        index, router_names = self._compile()
        if event._flat is None:
            event._flat = index.flatten(event.raw, router_names)
        try:
            registrations = index.match(event.raw, event._flat)
        except RecursionError:
            raise InvalidEventError(f"event {event!r} nests too deeply to be matched") from None
        out: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        for reg in registrations:
            callback = reg.callback
            if _is_router(callback):
                routed = callback.route(event)
                if routed is not None:
                    out.append((routed.name, routed))
            else:
                out.append((reg.name, functools.partial(cast("Callback", callback), event)))
        return out

    def match(self, event: Mapping[str, Any] | Event | FlatfileEvent) -> list[str]:
        """Names of the callbacks ``event`` would run, in order, without running them (for
        a router, the handler it would choose)."""
        return [name for name, _ in self._matching(FlatfileEvent.parse(event))]

    def takes_job(self, event: Mapping[str, Any] | Event | FlatfileEvent) -> bool:
        """Whether ``event``'s job is this listener's to run and to end: a router's handler
        takes it, or a callback whose filter (its own or its listener's) names the job
        (``{"job": "workbook:export"}``), as Flatfile's job handlers are routed. A callback
        that matches every job (an audit log on ``"**"``) does not make a job ours: the
        reconciliation sweep runs and fails only jobs this says are ours."""
        wrapped = FlatfileEvent.parse(event)
        index, router_names = self._compile()
        if wrapped._flat is None:
            wrapped._flat = index.flatten(wrapped.raw, router_names)
        for route in index.match_routes(wrapped.raw, wrapped._flat):
            callback = route.value.callback
            if _is_router(callback):
                if callback.route(wrapped) is not None:
                    return True
            elif any(_names_job(key, wrapped) for f in route.filters for key in f.keys):
                return True
        return False

    async def dispatch(self, event: Mapping[str, Any] | Event | FlatfileEvent) -> DispatchResult:
        """Run every callback matching ``event`` (raw wire JSON, an :class:`Event`, or a
        :class:`FlatfileEvent` already checked where it entered).

        Raises:
            InvalidEventError: the event is malformed (not a mapping, no topic...).
        """
        wrapped = FlatfileEvent.parse(event)
        wrapped._listener = self._root()
        ran: list[str] = []
        failed: list[CallbackFailure] = []
        for name, call in self._matching(wrapped):
            try:
                await call()
            except Exception as exc:
                _failed(name, wrapped, exc, failed)
            else:
                ran.append(name)
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


def _is_router(callback: Callback | Router) -> TypeGuard[Router]:
    return hasattr(callback, "route")


def _failed(name: str, event: FlatfileEvent, exc: Exception, failed: list[CallbackFailure]) -> None:
    failed.append(CallbackFailure(name, exc))
    _log.error("callback failed", event_id=event.id, topic=event.topic, callback=name, exc_info=exc)
