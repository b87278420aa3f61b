"""``ProgressUpdate``: one progress report, checked once, and its wire form.

Flatfile types a job's progress as a whole number from 0 to 100 (its Python SDK cannot
even read a job whose progress is 33.5). A handler may report any number in that range;
it is sent rounded *down*, so 99.9 never shows 100 before the job has completed.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import attrs

from ._converter import to_wire

__all__ = ["ProgressUpdate", "check_progress"]


def check_progress(progress: Any) -> float:
    """``progress`` if it is a number within 0..100.

    Raises:
        ValueError: it is not a number (booleans are not), or it is outside 0..100 or NaN.
    """
    cls = progress.__class__
    exact = cls is int or cls is float  # the hot path: no isinstance calls
    if not exact and (isinstance(progress, bool) or not isinstance(progress, int | float)):
        raise ValueError(f"progress must be a number from 0 to 100, got {progress!r:.80}")
    if not 0 <= progress <= 100:  # also false for NaN; no float conversion of huge ints
        raise ValueError(f"progress must be within 0..100, got {progress!r:.80}")
    number: float = progress
    return number


def check_info(info: Any) -> str | None:
    """``info`` if it is None or a string; raises ``TypeError`` naming what it is."""
    if info is not None and info.__class__ is not str and not isinstance(info, str):
        raise TypeError(f"info must be a string, got {type(info).__name__} {info!r:.80}")
    return info


def check_eta(eta: Any) -> dt.datetime | None:
    """An ETA as an aware datetime: a datetime (naive ones are UTC) or a timedelta from now.

    Raises:
        TypeError: ``eta`` is neither.
    """
    if eta is None:
        return None
    if isinstance(eta, dt.datetime):
        return eta if eta.tzinfo else eta.replace(tzinfo=dt.UTC)
    if isinstance(eta, dt.timedelta):
        return dt.datetime.now(dt.UTC) + eta
    raise TypeError(f"eta must be a datetime or a timedelta, got {type(eta).__name__} {eta!r:.80}")


@attrs.frozen
class ProgressUpdate:
    """One progress report: ``progress`` (0..100, as the handler gave it), optional
    ``info`` text, and an optional ``eta`` (sent as ``estimatedCompletionAt``).

    >>> ProgressUpdate(33.9, "a third").to_wire()
    {'progress': 33, 'info': 'a third'}
    >>> ProgressUpdate(101)
    Traceback (most recent call last):
    ...
    ValueError: progress must be within 0..100, got 101
    """

    progress: float = attrs.field(converter=check_progress)
    info: str | None = attrs.field(default=None, converter=check_info)
    eta: dt.datetime | None = attrs.field(default=None, converter=check_eta)

    @classmethod
    def trusted(
        cls, progress: float, info: str | None = None, eta: dt.datetime | None = None
    ) -> ProgressUpdate:
        """An update of values checked already (by :func:`check_progress`,
        :func:`check_info` and :func:`check_eta`), built without checking them again: what
        a tick reports is checked once, where it is given."""
        update = object.__new__(cls)
        object.__setattr__(update, "progress", progress)
        object.__setattr__(update, "info", info)
        object.__setattr__(update, "eta", eta)
        return update

    @staticmethod
    def whole(progress: float) -> int:
        """``progress`` checked and rounded down to the whole number the API takes."""
        return math.floor(check_progress(progress))

    def to_wire(self) -> dict[str, Any]:
        """The body of ``POST /jobs/{id}/ack`` that reports it, in the JS handler's order."""
        body: dict[str, Any] = {"progress": math.floor(self.progress)}
        if self.info is not None:
            body["info"] = self.info
        if self.eta is not None:
            body["estimatedCompletionAt"] = to_wire(self.eta)
        return body
