"""Seconds: the one checked conversion every wait, timeout and timer goes through.

asyncio takes any float as a delay. ``asyncio.sleep(nan)`` is accepted, and the NaN among
the loop's timers breaks their order (no comparison with NaN holds): timers scheduled
after it can stay buried until some later one fires, so every timer of the process may
stop, and a deadline compared with ``now + nan`` is never reached. Infinity and huge
numbers overflow where seconds become dates or whole numbers; a negative wait turns a
backoff into a busy loop. So no number becomes a wait without passing here:

* an option (``grace_period=``, ``interval=``, a flag of the command) is checked where it
  is given, by :func:`check_seconds`: a ``ValueError`` naming the option and the value;
* a number from the network (``Retry-After``, a lease's expiry) goes through
  :func:`seconds`, which gives None for what is no wait: its caller ignores it.

This module imports nothing of flatjobs', so every layer (the emulator too) may use it.
"""

from __future__ import annotations

import math
import random
from typing import Final

__all__ = ["YEAR", "backoff", "check_seconds", "seconds"]

YEAR: Final = 366 * 86_400
"""The longest any option in seconds may be: beyond a year, a number is no duration."""


def seconds(value: object, *, longest: float = YEAR) -> float | None:
    """``value`` as seconds to wait, at most ``longest`` (a finite number); None when it is
    no number of seconds: not an int or a float (``True`` is neither), NaN, infinite or
    negative.

    >>> seconds(2.5), seconds(10**400, longest=30), seconds(float("nan")), seconds(-1)
    (2.5, 30.0, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value < 0:
        return None
    # Compared before any float conversion: float(10**400) raises OverflowError.
    return float(value) if value <= longest else float(longest)


def check_seconds(
    name: str,
    value: object,
    *,
    positive: bool = False,
    most: float = YEAR,
    forever: bool = False,
    unit: str = "seconds",
) -> float:
    """``value`` if it is a number of seconds the option ``name`` may hold: at least 0
    (above 0 with ``positive``) and at most ``most``; ``math.inf`` too with ``forever``
    (for an option documented to take it as "no limit").

    >>> check_seconds("grace_period", 30)
    30.0
    >>> check_seconds("grace_period", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: grace_period must be >= 0 seconds, at most 31622400, got nan

    Raises:
        ValueError: naming the option and the value.
    """
    if forever and value == math.inf:
        return math.inf
    checked = seconds(value, longest=most)
    if checked is None or value != checked or (positive and checked == 0):
        least = "a positive number of" if positive else ">= 0"
        bound = (
            f"at most {most:.15g} (or math.inf: no limit)" if forever else f"at most {most:.15g}"
        )
        raise ValueError(f"{name} must be {least} {unit}, {bound}, got {value!r:.80}")
    return checked


def backoff(retry: int, first: float, longest: float, jitter: float) -> float:
    """The wait before retry number ``retry`` (1-based): ``first``, doubled for each retry
    after the first, at most ``longest``, times a random factor in ``1 ± jitter``.

    >>> [backoff(n, 0.5, 10.0, 0.0) for n in (1, 2, 3, 6, 5000)]
    [0.5, 1.0, 2.0, 10.0, 10.0]
    """
    # 2.0 ** 1024 raises OverflowError (a channel down for hours counts that many
    # failures); past 2 ** 1000 any wait is at its longest anyway.
    doubled = first * 2.0 ** min(max(retry - 1, 0), 1000)
    return min(doubled, longest) * random.uniform(1 - jitter, 1 + jitter)
