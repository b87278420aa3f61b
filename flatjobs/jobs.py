"""``Jobs``: a registry of job handlers that plugs into a :class:`Listener`.

>>> jobs = Jobs()
>>> @jobs.handle("workbook:export")
... async def export(event: FlatfileEvent, tick: Tick) -> str:
...     await tick(50, "half way")
...     return "Exported 1,204 rows"
>>> listener = Listener().use(jobs)

A handler is ``async def handler(event, tick)``; it runs inside :func:`job_lifecycle`, so
the job is acknowledged first and completed with what the handler returns (``None``, a
message, a :class:`JobOutcome` or :class:`JobCompleteDetails`), or failed with the message
of what it raises (:class:`JobError` for a user-facing outcome).

Multi-part jobs: a handler calls ``await tick.split(n)``; each part's ``job:ready`` goes to
a ``@jobs.handle_part(...)`` handler (or, if there is none, to the job's own handler with
``event.payload["isPart"]`` true); when all parts have ended, the parent is completed, or
failed when a part failed, unless an ``@jobs.on_parts_completed(...)`` handler decides.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs

from ._callables import is_async_callable
from .errors import JobError
from .event import FlatfileEvent
from .lifecycle import (
    DEFAULT_HEARTBEAT,
    DEFAULT_PROGRESS_INTERVAL,
    JobLifecycle,
    check_job_options,
)
from .listener import Listener
from .log import get_logger
from .models import JobEventPayload, JobPartsCounts, Next, from_wire
from .tick import CompletionValue, Tick

__all__ = ["Handler", "Jobs", "PartsHandler"]

Handler = Callable[[FlatfileEvent, Tick], Awaitable[CompletionValue]]
PartsHandler = Callable[[FlatfileEvent, Tick, JobPartsCounts], Awaitable[CompletionValue]]
H = TypeVar("H", bound=Handler)
P = TypeVar("P", bound=PartsHandler)
_log = get_logger("flatjobs.jobs")


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def _job_filter(job: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(job, str):
        return {"job": job}  # exactly what Flatfile's job handler does with a string (SPEC §4)
    if isinstance(job, Mapping):
        return job
    raise TypeError(
        f"a job is selected by a 'domain:operation' string or an EventFilter mapping, "
        f"got {type(job).__name__} {job!r}"
    )


def _check_selector_not_handler(job: Any, decorator: str) -> None:
    if callable(job) and not isinstance(job, Mapping):
        raise TypeError(
            f"@jobs.{decorator} needs the job it handles: write "
            f'@jobs.{decorator}("domain:operation") above '
            f"{getattr(job, '__name__', 'the handler')}, not a bare @jobs.{decorator}"
        )


def _check_handler(func: Any, params: int, shape: str) -> None:
    if not is_async_callable(func):
        raise TypeError(
            f"a job handler must be an `async def` function, got {func!r}; "
            f"declare it `async def {getattr(func, '__name__', 'handler')}({shape}): ...`"
        )
    try:
        signature = inspect.signature(func)
        signature.bind(*range(params))
    except TypeError:
        raise TypeError(
            f"job handler {_name(func)} must take {params} parameters ({shape}), "
            f"got {getattr(func, '__name__', func)}{inspect.signature(func)}"
        ) from None


@attrs.frozen(eq=False)
class _Registration:
    func: Callable[..., Awaitable[CompletionValue]]
    selector: Mapping[str, Any]
    kind: str  # "job", "part" or "parts"
    part: bool
    timeout: float | None
    progress_interval: float
    heartbeat: float | None
    debug: bool

    @property
    def name(self) -> str:
        return _name(self.func)

    async def __call__(self, event: FlatfileEvent) -> None:
        """Never called: in the index listeners a registration is only matched."""
        raise AssertionError("a job handler registration is matched, not dispatched to")

    @property
    def topics(self) -> list[str]:
        # A job's handler also hears its parts-completed event, to end a split parent.
        return (
            ["job:parts-completed"]
            if self.kind == "parts"
            else ["job:ready", "job:parts-completed"]
        )


class Jobs:
    """A registry of job handlers; install it with ``listener.use(jobs)``.

    Args:
        timeout: default seconds a handler may run before its job is failed (None: no
            limit).
        progress_interval: default minimum seconds between progress updates (``0``
            reproduces Flatfile's JS handler call for call).
        heartbeat: default seconds without a progress update after which the current
            progress is sent again (None: never).
        debug: log each job's receipt and completion.

    A handler's own options (``@jobs.handle(..., timeout=...)``) override these; an option
    left as None there takes the registry's. ``timeout=math.inf`` gives one handler no
    limit under a registry that has one.
    """

    def __init__(
        self,
        *,
        timeout: float | None = None,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        debug: bool = False,
    ) -> None:
        check_job_options(timeout=timeout, progress_interval=progress_interval,
                          heartbeat=heartbeat)  # fmt: skip
        self.timeout = timeout
        self.progress_interval = progress_interval
        self.heartbeat = heartbeat
        self.debug = debug
        self._handlers: list[_Registration] = []
        self._parts_handlers: list[_Registration] = []
        # Handlers are matched through a listener's compiled index (literal job names are
        # looked up, not tested one by one); these listeners are never dispatched to.
        self._index = Listener()
        self._parts_index = Listener()
        self._running: set[str] = set()
        self._listeners: list[Listener] = []

    def __repr__(self) -> str:
        names = [r.name for r in self._handlers]
        return f"Jobs(handlers={names!r})"

    def __call__(self, listener: Listener) -> None:
        """Install on ``listener`` (``listener.use(jobs)``): one callback per handler,
        named after it, so ``listener.match(event)`` shows which handler takes a job."""
        if listener in self._listeners:
            return
        self._listeners.append(listener)
        for registration in (*self._handlers, *self._parts_handlers):
            self._install(listener, registration)

    def _install(self, listener: Listener, registration: _Registration) -> None:
        async def callback(event: FlatfileEvent) -> None:
            await self._on_event(registration, event)

        callback.__module__ = getattr(registration.func, "__module__", __name__)
        callback.__qualname__ = registration.name
        listener.on(registration.topics, registration.selector, callback)

    @property
    def running(self) -> frozenset[str]:
        """Ids of the jobs whose handlers are running now."""
        return frozenset(self._running)

    # ----------------------------------------------------------- registration

    def _register(
        self,
        target: list[_Registration],
        func: Any,
        job: str | Mapping[str, Any],
        *,
        part: bool,
        params: int,
        shape: str,
        timeout: float | None,
        progress_interval: float | None,
        debug: bool | None,
    ) -> None:
        _check_handler(func, params, shape)
        timeout = self.timeout if timeout is None else timeout
        if timeout == math.inf:
            timeout = None
        progress_interval = (
            self.progress_interval if progress_interval is None else progress_interval
        )
        check_job_options(timeout=timeout, progress_interval=progress_interval,
                          heartbeat=self.heartbeat)  # fmt: skip
        selector = dict(_job_filter(job))
        if part:
            selector["isPart"] = True
        registration = _Registration(
            func=func, selector=selector, part=part, timeout=timeout,
            kind="parts" if target is self._parts_handlers else "part" if part else "job",
            progress_interval=progress_interval, heartbeat=self.heartbeat,
            debug=self.debug if debug is None else debug,
        )  # fmt: skip
        target.append(registration)
        index = self._parts_index if target is self._parts_handlers else self._index
        index.on(registration.topics, selector, registration)
        for listener in self._listeners:
            self._install(listener, registration)

    def handle(
        self,
        job: str | Mapping[str, Any],
        *,
        timeout: float | None = None,
        progress_interval: float | None = None,
        debug: bool | None = None,
    ) -> Callable[[H], H]:
        """Register ``async def handler(event, tick)`` for ``job:ready`` events of ``job``.

        ``job`` is ``"domain:operation"`` (globs allowed: ``"sheet:*"``), which becomes the
        filter ``{"job": job}``, or an EventFilter mapping. The handler is returned
        unchanged, so it can be unit-tested directly. ``timeout``, ``progress_interval``
        and ``debug`` default to the registry's.

        Raises:
            TypeError: the handler is not ``async def`` or does not take two parameters,
                ``job`` is neither a string nor a mapping, or the decorator was used bare
                (``@jobs.handle`` instead of ``@jobs.handle("domain:operation")``).
        """

        return self._handler_decorator(job, False, timeout, progress_interval, debug)

    def handle_part(
        self,
        job: str | Mapping[str, Any],
        *,
        timeout: float | None = None,
        progress_interval: float | None = None,
        debug: bool | None = None,
    ) -> Callable[[H], H]:
        """Register ``async def handler(event, tick)`` for the parts of a split ``job``.

        ``(await tick.job()).part_data`` holds the part's data (``{"part": i, "total": n}``
        for a split into ``n``, or the dict given for it)."""

        return self._handler_decorator(job, True, timeout, progress_interval, debug)

    def _handler_decorator(
        self,
        job: str | Mapping[str, Any],
        part: bool,
        timeout: float | None,
        progress_interval: float | None,
        debug: bool | None,
    ) -> Callable[[H], H]:
        _check_selector_not_handler(job, "handle_part" if part else "handle")

        def register(func: H) -> H:
            self._register(self._handlers, func, job, part=part, params=2, shape="event, tick",
                           timeout=timeout, progress_interval=progress_interval, debug=debug)  # fmt: skip
            return func

        return register

    def on_parts_completed(
        self,
        job: str | Mapping[str, Any],
        *,
        timeout: float | None = None,
        debug: bool | None = None,
    ) -> Callable[[P], P]:
        """Register ``async def handler(event, tick, parts)`` to end a split job's parent.

        ``parts`` is a :class:`JobPartsCounts` (whichever shape the platform sent). The
        handler's return value completes the parent; an exception fails it. Without such a
        handler the parent completes when no part failed or was canceled, and fails with a
        Retry button otherwise.
        """
        _check_selector_not_handler(job, "on_parts_completed")

        def register(func: P) -> P:
            self._register(self._parts_handlers, func, job, part=False, params=3,
                           shape="event, tick, parts", timeout=timeout, progress_interval=0,
                           debug=debug)  # fmt: skip
            return func

        return register

    # ----------------------------------------------------------- dispatch

    @staticmethod
    def _select(index: Listener, event: FlatfileEvent) -> tuple[_Registration | None, list[str]]:
        """The handler that takes ``event`` (the first registered; for a part, the first
        part handler), and the names of the other matching ones."""
        matches: list[_Registration] = index._matching_callbacks(event)  # type: ignore[assignment]
        if not matches:
            return None, []
        chosen = matches[0]
        if event.payload.get("isPart") is True:
            chosen = next((r for r in matches if r.part), matches[0])
        return chosen, [r.name for r in matches if r is not chosen]

    async def _on_event(self, registration: _Registration, event: FlatfileEvent) -> None:
        # Every matching handler's callback gets here; only the chosen one acts.
        if event.topic == "job:ready":
            chosen, others = self._select(self._index, event)
            if chosen is registration:
                self._warn_others(event, chosen, others)
                await self._run(
                    event, chosen, lambda tick: chosen.func(event, tick), acknowledge=True
                )
            return
        parts_handler, others = self._select(self._parts_index, event)
        if parts_handler is not None:
            if parts_handler is registration:
                self._warn_others(event, parts_handler, others)
                counts = self._parts_counts(event)
                await self._run(event, parts_handler,
                                lambda tick: parts_handler.func(event, tick, counts),
                                acknowledge=False)  # fmt: skip
            return
        owner, _ = self._select(self._index, event)
        if owner is registration:  # the job's own handler ends the parent by default
            counts = self._parts_counts(event)
            await self._run(event, owner, lambda tick: _default_parts(event, tick, counts),
                            acknowledge=False)  # fmt: skip

    @staticmethod
    def _warn_others(event: FlatfileEvent, chosen: _Registration, others: list[str]) -> None:
        if others:
            _log.warning("several job handlers match; only the first registered runs",
                         job=event.payload.get("job"), job_id=event.job_id, ran=chosen.name,
                         skipped=others)  # fmt: skip

    @staticmethod
    def _parts_counts(event: FlatfileEvent) -> JobPartsCounts:
        try:
            return from_wire(event.payload, JobEventPayload).parts_counts() or JobPartsCounts()
        except ValueError as exc:
            _log.error("job:parts-completed has an unreadable parts summary", job_id=event.job_id,
                       event_id=event.id, error=str(exc))  # fmt: skip
            return JobPartsCounts()

    async def _run(
        self,
        event: FlatfileEvent,
        handler: _Registration,
        call: Callable[[Tick], Awaitable[CompletionValue]],
        *,
        acknowledge: bool,
    ) -> None:
        job_id = event.job_id
        if job_id is None:
            _log.error("job event without context.jobId; skipped", event_id=event.id,
                       topic=event.topic, handler=handler.name)  # fmt: skip
            return
        if job_id in self._running:
            _log.warning("job is already running; duplicate event skipped", job_id=job_id,
                         event_id=event.id, topic=event.topic)  # fmt: skip
            return
        lifecycle = JobLifecycle(event, timeout=handler.timeout, debug=handler.debug,
                                 progress_interval=handler.progress_interval,
                                 heartbeat=handler.heartbeat, acknowledge=acknowledge)  # fmt: skip
        self._running.add(job_id)
        try:
            async with lifecycle as tick:
                tick.complete_with(await call(tick))
        except Exception:
            # The lifecycle has logged it once and ended the job (failed, canceled or
            # already ended): one job's failure never stops the listener.
            pass
        finally:
            self._running.discard(job_id)


async def _default_parts(
    event: FlatfileEvent, tick: Tick, parts: JobPartsCounts
) -> CompletionValue:
    bad = parts.failed + parts.canceled
    if bad:
        raise JobError(f"{bad} of {parts.total} parts did not complete", next=Next.retry("Retry"))
    return f"All {parts.total} parts completed"
