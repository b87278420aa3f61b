"""``FlatfileEvent``: one event as callbacks and job handlers see it, checked at the door.

An event is validated once, where it enters (:meth:`FlatfileEvent.parse`, or the
constructor): it must be a JSON object with a topic, a context object, and, for ``job:*``
topics, a well-formed ``context.jobId``. What was decided there (its id, topic and job id)
travels with it, so no later layer reads or checks those again.

Around the raw wire JSON it offers per-event helpers: a cache, ``after_all`` callbacks,
secrets fetched once per event, and the typed, lenient context. It sits below the listener
and the job lifecycle, which both use it; it reaches the API through whatever client its
dispatcher gives it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

import attrs

from flatjobs._callables import is_async_callable
from flatjobs.client import FlatfileClient
from flatjobs.errors import InvalidEventError
from flatjobs.log import shorten
from flatjobs.models import Context, Event, evolve, from_wire, to_wire

from ._filters import FlatEvent
from ._topics import JOB_READY

__all__ = ["Callback", "Claim", "Delivery", "FlatfileEvent", "is_valid_id", "job_id_of"]

Callback = Callable[["FlatfileEvent"], Awaitable[Any]]

# Flatfile's ids are "us_jb_..."-like words. An id that is anything else (a "/", a "?",
# "..") is refused where an event enters, before it could ever reach a URL.
_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,200}")


def is_valid_id(value: Any) -> bool:
    """Whether ``value`` is a well-formed Flatfile id (letters, digits, ``_`` and ``-``)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def job_id_of(raw: Mapping[str, Any]) -> str | None:
    """``context.jobId`` of a raw event when it is a well-formed id, else None."""
    context = raw.get("context")
    value = context.get("jobId") if isinstance(context, Mapping) else None
    return value if is_valid_id(value) else None


@attrs.frozen
class Delivery:
    """An event a source delivers with what it knows about it.

    Sources may yield raw events, or raw events wrapped in a ``Delivery``:

    Attributes:
        raw: the event as it came (wire JSON, possibly malformed).
        replayed: the event is from before this process started (or comes from a
            reconciliation sweep): a previous run may have started its job, so the job is
            run only while it is still ``ready``.
        orphaned: a sweep found the event's job ``executing`` with no one running it, and
            its handler asked to re-run orphans: the job is run though it is executing.
        done: awaited once the runner is through with the event: dispatched (its job
            ended), or skipped as malformed or as a job already running here. A source
            backed by a broker acknowledges its message there.
        headers: what the message carried beside the event (a broker's message
            headers), such as trace context: the dispatch's span continues the trace
            they name (see :mod:`flatjobs.otel`).
    """

    raw: Any
    replayed: bool = False
    orphaned: bool = False
    done: Callable[[], Awaitable[None]] | None = attrs.field(default=None, eq=False, repr=False)
    headers: Mapping[str, str] | None = attrs.field(default=None, eq=False, repr=False)


class _HasClient(Protocol):
    @property
    def client(self) -> FlatfileClient: ...


class Claim(Protocol):
    """A job claimed as running in this process (``flatjobs.jobs``'s ``JobClaim``)."""

    @property
    def job_id(self) -> str:
        """The claimed job's id."""
        ...

    def release(self) -> None:
        """The job no longer runs here."""


def _check(raw: Any) -> tuple[Mapping[str, Any], str, str | None, str | None]:
    """The event's raw mapping, topic, id and job id, or :class:`InvalidEventError`."""
    if not isinstance(raw, Mapping):
        raise InvalidEventError(f"an event must be a JSON object, got {type(raw).__name__}")
    event_id = raw.get("id")
    shown = shorten(repr(event_id), 80)
    topic = raw.get("topic")
    if not isinstance(topic, str) or not topic:
        raise InvalidEventError(f"event {shown} has no topic (got {shorten(repr(topic), 80)})")
    context = raw.get("context")
    if not isinstance(context, Mapping):
        raise InvalidEventError(
            f"event {shown} has no context object: context must be an object, "
            f"got {type(context).__name__}"
        )
    job_id = context.get("jobId")
    if job_id == "":
        job_id = None
    if job_id is not None and not is_valid_id(job_id):
        raise InvalidEventError(
            f"event {shown}: context.jobId is not a well-formed id: {shorten(repr(job_id), 80)}"
        )
    if job_id is None and topic == JOB_READY:
        raise InvalidEventError(
            f"event {shown} has no context.jobId: a job:ready event without context.jobId"
        )
    return raw, topic, event_id if isinstance(event_id, str) else None, job_id


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

    Built from raw wire JSON, it checks the event once (see the module docstring).

    Args:
        raw: the event, a JSON object (use :meth:`parse` for JSON text).

    Raises:
        InvalidEventError: the event is malformed, naming what is wrong.

    Attributes:
        raw: the event as received (wire JSON); filters match on this.
        id: the event's id, if it has a string one.
        topic: the event's topic, e.g. ``job:ready``.
        job_id: ``context.jobId``, the job a ``job:*`` event is about (a checked id).
        replayed: the event is from before this process started, or from a reconciliation
            sweep: a previous run may have started its job, so a job's lifecycle runs it
            only while the job is still ``ready``.
        orphaned: a reconciliation sweep re-runs an orphaned job (its handler opted in):
            the lifecycle runs it while it is still ``executing``.
        cache: a dict that lives as long as this event's dispatch.
        claim: the claim on the event's job made where the event entered (the runner's
            door), handed to the job's lifecycle with the event; None when none was made.
    """

    __slots__ = (
        "_after_all",
        "_context",
        "_flat",
        "_listener",
        "_secrets",
        "cache",
        "claim",
        "id",
        "job_id",
        "orphaned",
        "raw",
        "replayed",
        "topic",
    )

    def __init__(
        self,
        raw: Mapping[str, Any],
        listener: _HasClient | None = None,
        *,
        replayed: bool = False,
        orphaned: bool = False,
    ) -> None:
        self.raw, self.topic, self.id, self.job_id = _check(raw)
        self.replayed = replayed
        self.orphaned = orphaned
        self.cache: dict[str, Any] = {}
        self.claim: Claim | None = None
        self._listener = listener
        self._context: Context | None = None
        self._after_all: dict[Any, Callback] = {}
        self._secrets: dict[tuple[str, str, str], dict[str, str]] = {}
        self._flat: FlatEvent | None = None

    @classmethod
    def parse(cls, data: Any) -> FlatfileEvent:
        """An event from what a source delivered: JSON text or bytes, a mapping, an
        :class:`~flatjobs.models.Event`, a :class:`~flatjobs.sources.Delivery`, or a
        ``FlatfileEvent`` (returned as it is).

        Raises:
            InvalidEventError: naming what is wrong (not JSON, not an object, no topic...).
        """
        if isinstance(data, FlatfileEvent):
            return data
        if isinstance(data, Delivery):
            event = cls.parse(data.raw)
            event.replayed, event.orphaned = data.replayed, data.orphaned
            return event
        if isinstance(data, Event):
            return cls(to_wire(data))
        if isinstance(data, bytes | bytearray | str):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise InvalidEventError(f"an event is not JSON ({exc})") from None
            except RecursionError:
                raise InvalidEventError("an event is JSON nested too deeply to read") from None
        return cls(data)

    def __repr__(self) -> str:
        return (
            f"FlatfileEvent(id={shorten(repr(self.id), 80)}, topic={shorten(repr(self.topic), 80)})"
        )

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
        if not is_async_callable(callback):
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
        from flatjobs.errors import ConfigurationError, SecretNotFound

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
