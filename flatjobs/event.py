"""``FlatfileEvent``: one event as callbacks and job handlers see it.

The raw wire JSON plus per-event helpers: a cache, ``after_all`` callbacks, secrets fetched
once per event, and the typed, lenient context. It sits below the listener and the job
lifecycle, which both use it; it reaches the API through whatever client its dispatcher
gives it.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .errors import InvalidEventError
from .matching import FlatEvent
from .models import Context, Event, evolve, from_wire, to_wire

if TYPE_CHECKING:
    from .client import FlatfileClient

__all__ = ["Callback", "FlatfileEvent", "as_raw_event"]

Callback = Callable[["FlatfileEvent"], Awaitable[Any]]


class _HasClient(Protocol):
    @property
    def client(self) -> FlatfileClient: ...


def _is_async_callable(obj: Any) -> bool:
    return inspect.iscoroutinefunction(obj) or (
        callable(obj) and inspect.iscoroutinefunction(getattr(obj, "__call__", None))  # noqa: B004
    )


def as_raw_event(event: Mapping[str, Any] | Event | FlatfileEvent) -> Mapping[str, Any]:
    """An event as wire JSON, checked for what dispatch needs: a mapping with a topic.

    Raises:
        InvalidEventError: naming what is wrong.
    """
    if isinstance(event, FlatfileEvent):
        return event.raw
    if isinstance(event, Event):
        raw: Mapping[str, Any] = to_wire(event)
        return raw
    if not isinstance(event, Mapping):
        raise InvalidEventError(f"an event must be a JSON object, got {type(event).__name__}")
    topic = event.get("topic")
    if not isinstance(topic, str) or not topic:
        raise InvalidEventError(f"event {event.get('id')!r} has no topic (got {topic!r})")
    context = event.get("context")
    if context is not None and not isinstance(context, Mapping):
        raise InvalidEventError(
            f"event {event.get('id')!r}: context must be an object, got {type(context).__name__}"
        )
    return event


def _lenient_context(raw: Any) -> Context:
    """The typed context; a known field of the wrong type is kept in ``extra`` instead of
    failing, so a callback reading ``event.context`` never trips on odd platform data."""
    if not isinstance(raw, Mapping):
        return Context()
    try:
        return from_wire(raw, Context)
    except ValueError:
        good: dict[str, Any] = {}
        odd: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                from_wire({key: value}, Context)
            except ValueError:
                odd[key] = value
            else:
                good[key] = value
        context = from_wire(good, Context)
        return evolve(context, extra={**context.extra, **odd})


class FlatfileEvent:
    """One event as callbacks see it: the raw wire JSON plus per-event helpers.

    Attributes:
        raw: the event as received (wire JSON); filters match on this.
        cache: a dict that lives as long as this event's dispatch.
    """

    __slots__ = ("_after_all", "_context", "_flat", "_listener", "_secrets", "cache", "raw")

    def __init__(self, raw: Mapping[str, Any], listener: _HasClient | None = None) -> None:
        self.raw = raw
        self.cache: dict[str, Any] = {}
        self._listener = listener
        self._context: Context | None = None
        self._after_all: dict[Any, Callback] = {}
        self._secrets: dict[tuple[str, str, str], dict[str, str]] = {}
        self._flat: FlatEvent | None = None

    def __repr__(self) -> str:
        return f"FlatfileEvent(id={self.id!r}, topic={self.topic!r})"

    @property
    def id(self) -> str | None:
        """The event's id, if it has a string one."""
        value = self.raw.get("id")
        return value if isinstance(value, str) else None

    @property
    def topic(self) -> str:
        """The event's topic, e.g. ``job:ready``."""
        return str(self.raw["topic"])

    @property
    def domain(self) -> str | None:
        """The event's domain (``job``, ``sheet``...), if any."""
        value = self.raw.get("domain")
        return value if isinstance(value, str) else None

    @property
    def payload(self) -> dict[str, Any]:
        """The payload as sent (an empty dict when it is not an object)."""
        value = self.raw.get("payload")
        return value if isinstance(value, dict) else {}

    @property
    def namespaces(self) -> list[str]:
        """The event's namespaces (an empty list when absent)."""
        value = self.raw.get("namespaces")
        return value if isinstance(value, list) else []

    @property
    def context(self) -> Context:
        """The context, typed (``event.context.job_id``); unknown keys in ``.extra``."""
        if self._context is None:
            self._context = _lenient_context(self.raw.get("context"))
        return self._context

    @property
    def job_id(self) -> str | None:
        """``context.jobId``: the job a ``job:*`` event is about."""
        context = self.raw.get("context")
        value = context.get("jobId") if isinstance(context, Mapping) else None
        return value if isinstance(value, str) and value else None

    @property
    def created_at(self) -> dt.datetime | None:
        """When the platform created the event, if readable."""
        value = self.raw.get("createdAt")
        try:
            return from_wire(value, dt.datetime) if value is not None else None
        except ValueError:
            return None

    def model(self) -> Event:
        """The whole event parsed into :class:`flatjobs.Event`; raises ``ValueError`` if malformed."""
        return from_wire(self.raw, Event)

    @property
    def client(self) -> FlatfileClient:
        """The listener's :class:`FlatfileClient` (built from the environment on first use)."""
        if self._listener is None:
            raise RuntimeError("this event was not dispatched by a Listener; it has no client")
        return self._listener.client

    def after_all(self, callback: Callback, key: Any = None) -> None:
        """Run ``callback(event)`` once after every callback for this event has run.

        Registering the same ``key`` (default: the callback itself) twice keeps the first.
        """
        if not _is_async_callable(callback):
            raise TypeError(f"after_all needs an async callable, got {callback!r}")
        self._after_all.setdefault(key if key is not None else callback, callback)

    async def secrets(
        self,
        name: str,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        actor_id: str | None = None,
    ) -> str:
        """The value of secret ``name`` for this event's environment, space and actor.

        One ``GET /v1/secrets`` per event and scope; later look-ups come from the cache.

        Raises:
            flatjobs.SecretNotFound: there is no such secret.
            flatjobs.ConfigurationError: the event has no environment id and none was given.
        """
        from .client import SecretNotFound
        from .errors import ConfigurationError

        ctx = self.context
        env = environment_id or ctx.environment_id or ""
        space = space_id or ctx.space_id or ""
        actor = actor_id or ctx.actor_id or ""
        if not env:
            raise ConfigurationError("environmentId is required to fetch secrets")
        scope = (env, space, actor)
        if scope not in self._secrets:
            found = await self.client.secrets.list(
                environment_id=env, space_id=space or None, actor_id=actor or None
            )
            self._secrets[scope] = {s.name: s.value for s in found}
        try:
            return self._secrets[scope][name]
        except KeyError:
            raise SecretNotFound(f"secret {name!r} not found") from None
