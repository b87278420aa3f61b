"""The ``flatjobs`` command.

``flatjobs emulator --port N`` runs the local emulator of Flatfile's API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from . import _meta

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flatjobs", description="Run Flatfile job handlers written with flatjobs."
    )
    parser.add_argument("--version", action="version", version=f"flatjobs {_meta.version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    emulator = commands.add_parser(
        "emulator",
        help="run the local emulator of Flatfile's Jobs and Events API",
        description="Run the local emulator of Flatfile's Jobs and Events API until interrupted.",
    )
    emulator.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    emulator.add_argument(
        "--port",
        type=int,
        default=8080,
        help="port to listen on; 0 picks one (default: %(default)s)",
    )
    emulator.add_argument("--environment-id", default="us_env_emulator", help="its environment id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flatjobs`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "emulator":
        from .emulator import serve

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(host=args.host, port=args.port, environment_id=args.environment_id))
        return 0
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects others


if __name__ == "__main__":
    sys.exit(main())
