"""``flatjobs emulator``: the local emulator of Flatfile's API alone, until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

__all__ = ["emulator_command"]


def _push_port(port: int, given: int | None) -> int:
    """The emulator's push port: ``given``, else the one after ``port`` (0 for 0: any)."""
    if given is not None:
        return given
    return port + 1 if 0 < port < 65535 else 0


def emulator_command(args: argparse.Namespace) -> int:
    """``flatjobs emulator``; returns the exit code (2: a bad seed, or an address taken)."""
    from flatjobs.emulator import SeedError, serve

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                serve(
                    host=args.host,
                    port=args.port,
                    push_port=_push_port(args.port, args.push_port),
                    environment_id=args.environment_id,
                    seed=args.seed,
                )
            )
    except SeedError as exc:
        print(f"flatjobs emulator: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, or the address is not this machine's
        ports = f"{args.port} and {_push_port(args.port, args.push_port)}"
        print(
            f"flatjobs emulator: error: cannot listen on {args.host}, ports {ports}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    return 0
