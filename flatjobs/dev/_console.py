"""What the command writes on stderr, and how it ends.

Log lines go through structlog's chain (tokens redacted) to stderr; a line for the person
at the terminal goes there too (stdout is the program's); the exit code is returned, or
the process ends at once when job bodies that ignore cancellation were abandoned.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import attrs
import structlog

from flatjobs.log import redact_tokens

__all__ = ["configure_logging", "leave", "say", "stopped"]


def configure_logging(level: str) -> None:
    """Log lines at ``level`` and above to stderr, coloured on a terminal, secrets redacted."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,  # tracebacks become text, then are redacted
            redact_tokens,
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def leave(code: int, abandoned: int) -> int:
    """``code``, exiting at once when job bodies that ignore cancellation were abandoned
    (their jobs were failed): asyncio.run would wait for them for ever."""
    if abandoned:
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code)
    return code


def stopped(stats: Any) -> int:
    """Log the run's stats; exit code 0 (at once, when bodies were abandoned)."""
    structlog.get_logger("flatjobs.cli").info("stopped", **attrs.asdict(stats))
    return leave(0, stats.abandoned)


def say(command: str, message: str) -> None:
    """One line for the person at the terminal, on stderr (stdout is the program's)."""
    print(f"flatjobs {command}: {message}", file=sys.stderr, flush=True)
