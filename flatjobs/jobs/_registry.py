"""``Jobs``: a registry of job handlers that plugs into a :class:`Listener`.

>>> jobs = Jobs()
>>> @jobs.handle("workbook:export")
... async def export(event: FlatfileEvent, tick: Tick) -> str:
...     await tick(50, "half way")
...     return "Exported 1,204 rows"
>>> listener = Listener().use(jobs)
>>> import asyncio
>>> from flatjobs.testing import emulated
>>> async def main() -> None:
...     async with emulated(listener) as env:     # the production path, on an emulator
...         job = await env.trigger("workbook:export")
...     print(job.status, job.outcome.message)
>>> asyncio.run(main())
complete Exported 1,204 rows

A handler is ``async def handler(event, tick)``; it runs inside :func:`job_lifecycle`, so
the job is acknowledged first and completed with what the handler returns (``None``, a
message, a :class:`JobOutcome` or :class:`JobCompleteDetails`), or failed with what it
raises: a :class:`JobError`'s message as written (a user-facing outcome), any other
exception's type and text (``KeyError: 'email'``), secrets redacted.

Multi-part jobs: a handler calls ``await tick.split(n)``; each part's ``job:ready`` goes to
a ``@jobs.handle_part(...)`` handler (or, if there is none, to the job's own handler with
``event.payload["isPart"]`` true); when all parts have ended, the parent is completed, or
failed when a part failed, unless an ``@jobs.on_parts_completed(...)`` handler decides.

Which handler takes an event is decided once, by :meth:`Jobs.select`: the first registered
that matches (for a part, the first part handler), the others named in a warning.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import attrs

from flatjobs._callables import callable_name, is_async_callable
from flatjobs.errors import JobError, JobSkipped
from flatjobs.events._event import FlatfileEvent
from flatjobs.events._filters import FilterMatcher
from flatjobs.events._globs import TopicMatcher
from flatjobs.events._index import RouteIndex
from flatjobs.events._topics import JOB_PARTS_COMPLETED, JOB_READY, JOB_RUNNING_TOPICS
from flatjobs.listener._listener import Listener
from flatjobs.log import get_logger
from flatjobs.models import JobEventPayload, JobPartsCounts, Next, from_wire

from ._claims import claims, running_jobs
from ._lifecycle import JobLifecycle
from ._options import DEFAULT_HEARTBEAT, DEFAULT_PROGRESS_INTERVAL, JobOptions, OnOrphan
from ._outcomes import CompletionValue
from ._tick import Tick

__all__ = ["Handler", "JobRoute", "Jobs", "PartsHandler"]

Handler = Callable[[FlatfileEvent, Tick], Awaitable[CompletionValue]]
PartsHandler = Callable[[FlatfileEvent, Tick, JobPartsCounts], Awaitable[CompletionValue]]
H = TypeVar("H", bound=Handler)
P = TypeVar("P", bound=PartsHandler)
_log = get_logger("flatjobs.jobs")
_READY = TopicMatcher(list(JOB_RUNNING_TOPICS))  # a job's handler ends its parent
_PARTS = TopicMatcher(JOB_PARTS_COMPLETED)


def _job_filter(job: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(job, str):
        return {"job": job}  # exactly what Flatfile's job handler does with a string
    if isinstance(job, Mapping):
        return job
    raise TypeError(
        f"a job is selected by a 'domain:operation' string or an EventFilter mapping, "
        f"got {type(job).__name__} {job!r:.80}"
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
        inspect.signature(func).bind(*range(params))
    except TypeError:
        raise TypeError(
            f"job handler {callable_name(func)} must take {params} parameters ({shape}), "
            f"got {getattr(func, '__name__', func)}{inspect.signature(func)}"
        ) from None


@attrs.frozen(eq=False)
class _Registration:
    func: Callable[..., Awaitable[CompletionValue]]
    kind: Literal["job", "part", "parts"]
    options: JobOptions
    name: str
    job: str | None
    """The ``domain:operation`` (or glob) the handler was registered for, when one is named."""


@attrs.frozen
class JobRoute:
    """Which handler of a :class:`Jobs` registry takes an event, as :meth:`Jobs.select`
    decides it once per event.

    Attributes:
        handler: the name of the handler that runs (None: no handler takes the event).
        run: what it runs: a job's handler (``"job"``), a part handler (``"part"``), an
            ``on_parts_completed`` handler (``"parts"``), or the default that ends a split
            parent from its parts' summary (``"default-parts"``).
        others: the names of the other handlers that matched and do not run.
    """

    handler: str | None
    run: Literal["job", "part", "parts", "default-parts"] | None
    others: tuple[str, ...] = ()
    _registration: _Registration | None = attrs.field(
        default=None, repr=False, alias="registration"
    )

    @property
    def options(self) -> JobOptions | None:
        """The chosen handler's options (None: no handler takes the event)."""
        return self._registration.options if self._registration else None

    @property
    def heartbeat(self) -> float | None:
        """The heartbeat of the chosen handler's jobs, in seconds (None: none)."""
        return self._registration.options.heartbeat if self._registration else None

    @property
    def on_orphan(self) -> OnOrphan:
        """What the sweep does with an orphaned job of the chosen handler."""
        return self._registration.options.on_orphan if self._registration else "fail"


@attrs.frozen
class _Options:
    """A handler's own options, as given to the decorator (None: the registry's)."""

    timeout: float | None
    progress_interval: float | None
    debug: bool | None
    on_orphan: OnOrphan


class _Run:
    """What the listener runs for one event: a :class:`JobRoute` bound to the event."""

    __slots__ = ("_event", "_jobs", "_route")

    def __init__(self, jobs: Jobs, route: JobRoute, event: FlatfileEvent) -> None:
        self._jobs = jobs
        self._route = route
        self._event = event

    @property
    def name(self) -> str:
        assert self._route.handler is not None
        return self._route.handler

    def __call__(self) -> Awaitable[None]:
        return self._jobs._run(self._event, self._route)


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
        self.defaults = JobOptions(
            timeout=timeout, progress_interval=progress_interval, heartbeat=heartbeat, debug=debug
        )
        """The options a handler's own options fall back on (checked here, once)."""
        self._routes: list[tuple[TopicMatcher, tuple[FilterMatcher, ...], _Registration]] = []
        self._built: RouteIndex[_Registration] | None = RouteIndex()
        self._listeners: list[Listener] = []

    @property
    def timeout(self) -> float | None:
        """The registry's default timeout (None: no limit)."""
        return self.defaults.timeout

    @property
    def progress_interval(self) -> float:
        """The registry's default progress interval."""
        return self.defaults.progress_interval

    @property
    def heartbeat(self) -> float | None:
        """The heartbeat of every handler's jobs (None: none)."""
        return self.defaults.heartbeat

    @property
    def debug(self) -> bool:
        """The registry's default for logging each job's receipt."""
        return self.defaults.debug

    @property
    def _index(self) -> RouteIndex[_Registration]:
        # Built when first needed after a change: registering many handlers costs one build.
        if self._built is None:
            self._built = RouteIndex(self._routes)
        return self._built

    def __repr__(self) -> str:
        return f"Jobs(handlers={self.handlers()!r})"

    def __call__(self, listener: Listener) -> None:
        """Install on ``listener`` (``listener.use(jobs)``): ``listener.match(event)`` then
        names the handler that takes a job."""
        if listener not in self._listeners:
            self._listeners.append(listener)
            listener.add_router(list(JOB_RUNNING_TOPICS), self)

    @property
    def names(self) -> frozenset[str]:
        """The bare filter keys the handlers' selectors look up (for the listener)."""
        return self._index.names

    def handlers(self) -> list[str]:
        """The names of the registered handlers, in registration order."""
        return [reg.name for _, _, reg in self._routes]

    def job_names(self) -> list[str]:
        """The jobs the handlers are registered for, once each, in registration order:
        ``"domain:operation"`` as given (globs too), and a selector mapping's ``job`` when
        it is a string (``flatjobs dev`` offers them for a mistyped ``--trigger``)."""
        return list(dict.fromkeys(reg.job for _, _, reg in self._routes if reg.job))

    @property
    def running(self) -> frozenset[str]:
        """Ids of the jobs whose lifecycle runs in this process now (any registry's)."""
        return running_jobs()

    # ----------------------------------------------------------- registration

    def _register(
        self,
        func: Any,
        job: str | Mapping[str, Any],
        kind: Literal["job", "part", "parts"],
        options: _Options,
    ) -> None:
        if kind == "parts":
            _check_handler(func, 3, "event, tick, parts")
        else:
            _check_handler(func, 2, "event, tick")
        defaults = self.defaults
        settings = JobOptions(
            timeout=defaults.timeout if options.timeout is None else options.timeout,
            progress_interval=(
                defaults.progress_interval
                if options.progress_interval is None
                else options.progress_interval
            ),
            heartbeat=defaults.heartbeat,
            debug=defaults.debug if options.debug is None else options.debug,
            on_orphan=options.on_orphan,
        )
        selector = dict(_job_filter(job))
        if kind == "part":
            selector["isPart"] = True
        registration = _Registration(
            func=func,
            kind=kind,
            options=settings,
            name=callable_name(func),
            job=selector.get("job") if isinstance(selector.get("job"), str) else None,
        )
        topics = _PARTS if kind == "parts" else _READY
        self._routes.append((topics, (FilterMatcher(selector),), registration))
        self._built = None

    def handle(
        self,
        job: str | Mapping[str, Any],
        *,
        timeout: float | None = None,
        progress_interval: float | None = None,
        debug: bool | None = None,
        on_orphan: OnOrphan = "fail",
    ) -> Callable[[H], H]:
        """Register ``async def handler(event, tick)`` for ``job:ready`` events of ``job``.

        ``job`` is ``"domain:operation"`` (globs allowed: ``"sheet:*"``), which becomes the
        filter ``{"job": job}``, or an EventFilter mapping. The handler is returned
        unchanged, so it can be unit-tested directly. ``timeout``, ``progress_interval``
        and ``debug`` default to the registry's. ``on_orphan="rerun"`` lets the
        reconciliation sweep run a job again when the worker running it stopped (for
        idempotent work); by default such a job is failed with a Retry button.

        Raises:
            TypeError: the handler is not ``async def`` or does not take two parameters,
                ``job`` is neither a string nor a mapping, or the decorator was used bare
                (``@jobs.handle`` instead of ``@jobs.handle("domain:operation")``).
        """
        return self._decorator(job, "job", _Options(timeout, progress_interval, debug, on_orphan))

    def handle_part(
        self,
        job: str | Mapping[str, Any],
        *,
        timeout: float | None = None,
        progress_interval: float | None = None,
        debug: bool | None = None,
        on_orphan: OnOrphan = "fail",
    ) -> Callable[[H], H]:
        """Register ``async def handler(event, tick)`` for the parts of a split ``job``.

        ``(await tick.job()).part_data`` holds the part's data (``{"part": i, "total": n}``
        for a split into ``n``, or the dict given for it)."""
        options = _Options(timeout, progress_interval, debug, on_orphan)
        return self._decorator(job, "part", options)

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
        return self._decorator(job, "parts", _Options(timeout, 0, debug, "fail"))

    def _decorator(
        self, job: str | Mapping[str, Any], kind: Literal["job", "part", "parts"], options: _Options
    ) -> Callable[[Any], Any]:
        decorator = {"job": "handle", "part": "handle_part", "parts": "on_parts_completed"}
        _check_selector_not_handler(job, decorator[kind])
        _job_filter(job)  # a wrong type fails at the decorator line, not at the function

        def register(func: Any) -> Any:
            self._register(func, job, kind, options)
            return func

        return register

    # ----------------------------------------------------------- selection

    def select(self, event: FlatfileEvent | Mapping[str, Any]) -> JobRoute:
        """Which handler takes ``event``, and which others matched: decided once, here.

        For ``job:ready``: the first registered handler that matches (for a part, the
        first part handler, else the job's own). For ``job:parts-completed``: the first
        ``on_parts_completed`` handler, else the default that ends the parent, run for the
        job's own handler.
        """
        event = FlatfileEvent.parse(event)
        matches = self._index.match(event.raw, event._flat)
        if event.topic == JOB_READY:
            candidates = [r for r in matches if r.kind != "parts"]
            if event.payload.get("isPart") is True:
                chosen = next((r for r in candidates if r.kind == "part"), None)
                chosen = chosen or next(iter(candidates), None)
            else:
                chosen = next((r for r in candidates if r.kind == "job"), None)
            run: Literal["job", "part", "parts", "default-parts"] = (
                "part" if chosen is not None and chosen.kind == "part" else "job"
            )
        elif event.topic == JOB_PARTS_COMPLETED:
            candidates = [r for r in matches if r.kind == "parts"]
            chosen, run = next(iter(candidates), None), "parts"
            if chosen is None:
                candidates = [r for r in matches if r.kind == "job"]
                chosen, run = next(iter(candidates), None), "default-parts"
        else:
            return JobRoute(None, None)
        if chosen is None:
            return JobRoute(None, None)
        # Others of its kind: a part handler and its job's own handler are no rivals.
        others = tuple(r.name for r in candidates if r is not chosen and r.kind == chosen.kind)
        return JobRoute(chosen.name, run, others, registration=chosen)

    def route(self, event: FlatfileEvent) -> _Run | None:
        """For the listener: what runs for ``event`` (see :meth:`select`), or None."""
        chosen = self.select(event)
        return _Run(self, chosen, event) if chosen.handler is not None else None

    # ----------------------------------------------------------- running

    async def _run(self, event: FlatfileEvent, route: JobRoute) -> None:
        handler = route._registration
        assert handler is not None
        if route.others:
            _log.warning(
                "several job handlers match; only the first registered runs",
                job=event.payload.get("job"),
                job_id=event.job_id,
                ran=handler.name,
                skipped=list(route.others),
            )
        if event.job_id is None:
            _log.error(
                "job event without context.jobId; skipped",
                event_id=event.id,
                topic=event.topic,
                handler=handler.name,
            )
            return
        call: Callable[[Tick], Awaitable[CompletionValue]]
        if route.run in ("job", "part"):
            call = lambda tick: handler.func(event, tick)  # noqa: E731
        else:
            counts = _parts_counts(event)
            body = handler.func if route.run == "parts" else _default_parts
            call = lambda tick: body(event, tick, counts)  # noqa: E731
        # The job is claimed once: by the runner that took the event in (it is on the
        # event), else here; a job running here already is busy, said without an exception.
        claim = event.claim or claims().claim(event.job_id)
        if claim is None or claim.job_id != event.job_id:
            _log.warning(
                "job is already running; duplicate event skipped",
                job_id=event.job_id,
                event_id=event.id,
                topic=event.topic,
            )
            return
        lifecycle = JobLifecycle(
            event,
            options=handler.options,
            acknowledge=route.run in ("job", "part"),
            claim=claim,
        )
        try:
            async with lifecycle as tick:
                tick.complete_with(await call(tick))
        except JobSkipped as skipped:
            _log.info("job not run", job_id=event.job_id, event_id=event.id, reason=skipped.reason)
        except Exception:
            # The lifecycle has logged it once and ended the job (failed, canceled or
            # already ended): one job's failure never stops the listener.
            pass
        finally:
            if claim is not event.claim:  # claimed here: released here
                claim.release()


def _parts_counts(event: FlatfileEvent) -> JobPartsCounts:
    try:
        return from_wire(event.payload, JobEventPayload).parts_counts() or JobPartsCounts()
    except ValueError as exc:
        _log.error(
            "job:parts-completed has an unreadable parts summary",
            job_id=event.job_id,
            event_id=event.id,
            error=str(exc),
        )
        return JobPartsCounts()


async def _default_parts(
    event: FlatfileEvent, tick: Tick, parts: JobPartsCounts
) -> CompletionValue:
    bad = parts.failed + parts.canceled
    if bad:
        raise JobError(f"{bad} of {parts.total} parts did not complete", next=Next.retry("Retry"))
    return f"All {parts.total} parts completed"
