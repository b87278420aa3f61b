"""Instruments: what flatjobs tells whoever watches it run (metrics, traces, leases).

An :class:`Instrument` receives a call at each point of an event's and a job's life. Its
methods do nothing by default; subclass it, override what you need, and add it with
:func:`add_instrument`. The Prometheus and OpenTelemetry integrations, and the distributed
mode's lease keeper, are instruments.

Instruments are called synchronously on the event loop, on the hot path: keep them cheap,
and never let them raise (what they raise is logged and dropped).

>>> class Count(Instrument):
...     def __init__(self) -> None:
...         self.jobs = 0
...     def job_started(self, job_id: str, job_name: str | None) -> None:
...         self.jobs += 1
>>> remove = add_instrument(Count())
>>> remove()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .log import get_logger

if TYPE_CHECKING:
    from ._event import FlatfileEvent
    from ._lifecycle import JobResult

__all__ = ["Instrument", "add_instrument", "instruments"]

_log = get_logger("flatjobs.instruments")
_instruments: list[Instrument] = []


class Instrument:
    """What to watch; every method is a no-op unless overridden."""

    def event_received(self, source: str) -> None:
        """An event came from a source (``"poll"``, ``"push"``, ``"sweep"``...)."""

    def event_invalid(self) -> None:
        """An event was malformed, logged and skipped."""

    def event_duplicate(self) -> None:
        """An event was dropped as delivered already."""

    def event_dispatched(self, event: FlatfileEvent) -> None:
        """An event went to the listener."""

    def job_started(self, job_id: str, job_name: str | None) -> None:
        """A job was acknowledged and its body starts."""

    def job_alive(self, job_id: str) -> None:
        """A running job showed the platform it is alive (its ack, progress, heartbeats)."""

    def job_ended(self, result: JobResult, seconds: float, job_name: str | None) -> None:
        """A job handled here ended (``result.status``: complete, failed, canceled...)."""

    def progress_sent(self, job_id: str, coalesced: int) -> None:
        """A progress update went out; ``coalesced`` ticks were folded into it since the last."""

    def http_call(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        """An HTTP call to the API ended: its endpoint name (``jobs.ack``), its status
        (None when no answer came), and how long it took, retries included."""


def add_instrument(instrument: Instrument) -> Callable[[], None]:
    """Start calling ``instrument``; returns a function that stops it."""
    _instruments.append(instrument)

    def remove() -> None:
        if instrument in _instruments:
            _instruments.remove(instrument)

    return remove


def instruments() -> list[Instrument]:
    """The instruments in use (a copy)."""
    return list(_instruments)


def notify(method: str, *args: Any) -> None:
    """Call ``method`` of every instrument; what one raises is logged and dropped."""
    for instrument in _instruments:
        try:
            getattr(instrument, method)(*args)
        except Exception:
            _log.exception("an instrument failed", instrument=type(instrument).__name__,
                           method=method)  # fmt: skip
