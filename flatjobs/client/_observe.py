"""What the client tells whoever watches its HTTP calls: the HTTP half of the instruments.

The client sits below events and jobs, so it cannot know :class:`flatjobs.Instrument`; it
knows :class:`HttpInstrument`, the hooks of one API call, and calls them through
:data:`HTTP_INSTRUMENTS`. :func:`flatjobs.add_instrument` adds every instrument here too.
With none added, a call pays one truth test.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Final, Protocol

import aiohttp

from flatjobs.log import get_logger

__all__ = ["HTTP_INSTRUMENTS", "HttpCall", "HttpInstrument", "HttpInstruments"]

_log = get_logger("flatjobs.instruments")


class HttpInstrument(Protocol):
    """The hooks of an API call (every :class:`flatjobs.Instrument` has them)."""

    def http_started(self, endpoint: str, method: str) -> None:
        """An API call begins, in the caller's task: its endpoint name (``jobs.ack``)."""

    def http_retry(self, endpoint: str, method: str, attempt: int, status: int | None) -> None:
        """Attempt number ``attempt`` failed (``status``; None: no answer) and is retried."""

    def http_call(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        """The call ended: its status (None: no answer) and its time, retries included."""

    def aiohttp_trace_configs(self) -> list[aiohttp.TraceConfig]:
        """Trace configs for each aiohttp session a client opens from now on."""
        ...


class HttpInstruments:
    """The instruments watching API calls; each hook is called on every one of them, and
    what one raises is logged and dropped (an instrument never breaks a call)."""

    def __init__(self) -> None:
        self._members: tuple[HttpInstrument, ...] = ()

    def __bool__(self) -> bool:
        return bool(self._members)

    def add(self, instrument: HttpInstrument) -> None:
        """Start calling ``instrument``."""
        self._members = (*self._members, instrument)

    def remove(self, instrument: HttpInstrument) -> None:
        """Stop calling ``instrument`` (one never added is ignored)."""
        self._members = tuple(m for m in self._members if m is not instrument)

    def _each(self, hook: str, call: Callable[[HttpInstrument], object]) -> None:
        for instrument in self._members:
            try:
                call(instrument)
            except Exception:
                _log.exception(
                    "an instrument failed", instrument=type(instrument).__name__, method=hook
                )

    def http_started(self, endpoint: str, method: str) -> None:
        """See :meth:`HttpInstrument.http_started`."""
        self._each("http_started", lambda i: i.http_started(endpoint, method))

    def http_retry(self, endpoint: str, method: str, attempt: int, status: int | None) -> None:
        """See :meth:`HttpInstrument.http_retry`."""
        self._each("http_retry", lambda i: i.http_retry(endpoint, method, attempt, status))

    def http_call(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        """See :meth:`HttpInstrument.http_call`."""
        self._each("http_call", lambda i: i.http_call(endpoint, method, status, seconds))

    def trace_configs(self) -> list[aiohttp.TraceConfig]:
        """The trace configs every instrument wants on a new aiohttp session."""
        configs: list[aiohttp.TraceConfig] = []
        self._each("aiohttp_trace_configs", lambda i: configs.extend(i.aiohttp_trace_configs()))
        return configs


HTTP_INSTRUMENTS: Final = HttpInstruments()
"""The instruments the client calls (:func:`flatjobs.add_instrument` adds to it)."""


class HttpCall:
    """One API call in progress: begun by :meth:`begin` (``http_started``), its retries
    reported by :meth:`retrying`, ended by :meth:`end` (``http_call``)."""

    __slots__ = ("_token", "attempts", "endpoint", "method")

    def __init__(self, endpoint: str, method: str) -> None:
        self.endpoint = endpoint
        self.method = method
        self.attempts = 1
        self._token: contextvars.Token[HttpCall | None] | None = None

    @classmethod
    def begin(cls, endpoint: str, method: str) -> HttpCall:
        """A call starts in this task."""
        call = cls(endpoint, method)
        call._token = _current.set(call)
        HTTP_INSTRUMENTS.http_started(endpoint, method)
        return call

    def end(self, status: int | None, seconds: float) -> None:
        """The call ended (in the task that began it)."""
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        HTTP_INSTRUMENTS.http_call(self.endpoint, self.method, status, seconds)

    @staticmethod
    def retrying(status: int | None) -> None:
        """The current call's attempt failed (``status``; None: no answer) and is retried."""
        call = _current.get()
        if call is None:  # a stream opened outside a call
            return
        HTTP_INSTRUMENTS.http_retry(call.endpoint, call.method, call.attempts, status)
        call.attempts += 1


_current: contextvars.ContextVar[HttpCall | None] = contextvars.ContextVar(
    "flatjobs_http_call", default=None
)
