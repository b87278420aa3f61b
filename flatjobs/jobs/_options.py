"""``JobOptions``: how a job is run, checked once, where it is given."""

from __future__ import annotations

import math
from typing import Any, Final, Literal

import attrs

from flatjobs._seconds import check_seconds

__all__ = [
    "DEFAULT_HEARTBEAT",
    "DEFAULT_PROGRESS_INTERVAL",
    "JobOptions",
    "OnOrphan",
]

DEFAULT_PROGRESS_INTERVAL: Final = 0.5
"""Seconds between two progress updates of one job, by default."""
DEFAULT_HEARTBEAT: Final = 30.0
"""Seconds without a progress update after which the current progress is sent again."""

OnOrphan = Literal["fail", "rerun"]
"""What the reconciliation sweep does with a job of this handler left executing by a
worker that stopped: fail it with a Retry button (the default), or run it again."""


def _timeout(instance: JobOptions, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None:
        check_seconds("timeout", value, positive=True, forever=True)


def _interval(instance: JobOptions, attribute: attrs.Attribute[Any], value: float) -> None:
    check_seconds("progress_interval", value)


def _heartbeat(instance: JobOptions, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None:
        check_seconds("heartbeat", value, positive=True)


def _on_orphan(instance: JobOptions, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in ("fail", "rerun"):
        raise ValueError(f"on_orphan must be 'fail' or 'rerun', got {value!r}")


@attrs.frozen
class JobOptions:
    """How a job runs: checked when made, then carried unchanged to the lifecycle.

    Args:
        timeout: seconds the body may run before it is cancelled and the job failed
            (None or ``math.inf``: no limit).
        progress_interval: minimum seconds between progress updates (``0``: every tick,
            call for call, as Flatfile's JS handler).
        heartbeat: seconds without a progress update after which the current progress is
            sent again (None: never).
        debug: log each job's receipt at info level.
        on_orphan: what the sweep does with a job left executing by a worker that stopped.

    Raises:
        ValueError: naming the option and the value.
    """

    timeout: float | None = attrs.field(default=None, validator=_timeout)
    progress_interval: float = attrs.field(default=DEFAULT_PROGRESS_INTERVAL, validator=_interval)
    heartbeat: float | None = attrs.field(default=DEFAULT_HEARTBEAT, validator=_heartbeat)
    debug: bool = False
    on_orphan: OnOrphan = attrs.field(default="fail", validator=_on_orphan)

    @property
    def limit(self) -> float | None:
        """Seconds the body may run, None for no limit (``math.inf`` is no limit too)."""
        return None if self.timeout == math.inf else self.timeout
