"""``flatjobs run``: a listener against the Flatfile API configured by the environment.

Events pushed (or polled), a sweep beside them, the health server on demand; with
``--nats``, the process's role in a distributed deployment (:mod:`._distributed`).
"""

from __future__ import annotations

import argparse
import functools

from flatjobs.errors import ConfigurationError
from flatjobs.running._runner import run

from ._console import say, stopped
from ._distributed import run_nats
from ._parts import client_from, first_contact, health, source_from, started_line, sweep_from
from ._target import load_target

__all__ = ["run_command"]


async def run_command(args: argparse.Namespace) -> int:
    """``flatjobs run``; returns the exit code."""
    listener = load_target(args.target)
    client = client_from(args)
    listener.client = client
    if args.nats:
        return await run_nats(args, listener, client)
    if args.role is not None:
        raise ConfigurationError("--role needs --nats URL (or FLATJOBS_NATS_URL)")
    source = source_from(args, client)
    sweep = sweep_from(args, listener)
    async with client, health(args, source):
        await first_contact(client)
        stats = await run(
            listener,
            source,
            concurrency=args.concurrency,
            grace_period=args.grace_period,
            sweep=sweep,
            on_signal=functools.partial(say, "run"),
            started=functools.partial(say, "run", started_line(args, client, source, sweep)),
        )
    return stopped(stats)
