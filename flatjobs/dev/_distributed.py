"""``flatjobs run --nats``: this process's role in a distributed deployment.

Many processes, each job once, through NATS JetStream (the ``nats`` extra, imported only
here, only then).
"""

from __future__ import annotations

import argparse
import functools

from flatjobs.client import FlatfileClient
from flatjobs.errors import ConfigurationError
from flatjobs.listener._listener import Listener

from ._console import say, stopped
from ._parts import first_contact, health, source_from, started_line, sweep_from

__all__ = ["run_nats"]


_NATS_FLAGS = {
    "stream": "--nats-stream",
    "ack_wait": "--ack-wait",
    "max_deliver": "--max-deliver",
    "partitions": "--partitions",
    "replicas": "--nats-replicas",
}
"""The options of ``flatjobs run`` that set each field of ``NatsSettings``."""


async def run_nats(args: argparse.Namespace, listener: Listener, client: FlatfileClient) -> int:
    """``flatjobs run --nats``: this process's role in a distributed deployment."""
    try:
        from flatjobs.nats import Connectivity, NatsSettings, Role, connect, run_distributed
    except ImportError:
        raise ConfigurationError(
            "--nats needs the nats extra: pip install -e '.[nats]' in a checkout of flatjobs"
        ) from None
    try:
        settings = NatsSettings(
            stream=args.nats_stream,
            ack_wait=args.ack_wait,
            max_deliver=args.max_deliver,
            partitions=args.partitions,
            replicas=args.nats_replicas,
        )
    except ValueError as exc:  # "max_deliver must be...": named as the command takes it
        field, _, rest = str(exc).partition(" ")
        raise ConfigurationError(f"{_NATS_FLAGS.get(field, field)} {rest}") from None
    role: Role = args.role or "all"
    ingress = role in ("ingress", "all")
    source = source_from(args, client) if ingress else None
    async with (
        client,
        await connect(args.nats, settings) as broker,
        # /readyz: the broker's connection and the source's; the API's from the first call
        health(args, Connectivity(broker, source)),
    ):
        await first_contact(client)
        sweep = sweep_from(args, listener, running=broker.job_running) if ingress else None
        say(
            "run",
            f"{started_line(args, client, source, sweep)}; {role} of a distributed "
            f"deployment through {broker.url}, stream {settings.stream}",
        )
        stats = await run_distributed(
            listener,
            broker,
            role=role,
            source=source,
            sweep=sweep,
            concurrency=args.concurrency,
            grace_period=args.grace_period,
            on_signal=functools.partial(say, "run"),
        )
    return stopped(stats)
