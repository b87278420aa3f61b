"""The ``flatjobs`` command.

``flatjobs run TARGET``
    run a listener against the Flatfile API configured from the environment (events
    pushed, or polled).
``flatjobs dev TARGET --trigger domain:operation``
    run it against an embedded emulator, trigger jobs as a user would, show their progress
    (also in the emulator's jobs panel, a web page; ``--open`` opens it).
``flatjobs emulator``
    run the emulator alone (its jobs panel at its root URL).

``TARGET`` names a :class:`flatjobs.Listener` or :class:`flatjobs.Jobs`: ``package.module:attr``
or ``path/to/file.py:attr``; without ``:attr``, ``listener`` then ``jobs`` are looked up.

This module parses the arguments, hands them to the command's module (:mod:`._run`,
:mod:`._dev`, :mod:`._emulator`) and turns the errors that end a command into its exit
code: 2 for a usage or configuration error, 130 for an interrupt before anything ran.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from flatjobs.errors import ConfigurationError

from ._args import make_parser
from ._console import configure_logging
from ._dev import dev_command
from ._emulator import emulator_command
from ._run import run_command
from ._target import TargetError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flatjobs`` console script; returns the exit code."""
    args = make_parser().parse_args(argv)
    if args.command == "emulator":
        return emulator_command(args)
    from flatjobs.emulator import SeedError

    configure_logging(args.log_level)
    try:
        return asyncio.run(run_command(args) if args.command == "run" else dev_command(args))
    except (TargetError, ConfigurationError, SeedError) as exc:
        print(f"flatjobs {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the runner took over the signals: nothing ran yet
        print(f"flatjobs {args.command}: stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
