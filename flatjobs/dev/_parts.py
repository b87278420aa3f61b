"""What ``flatjobs run`` is made of, from its options and the environment.

The client (a missing setting named as the command takes it), the first call that checks
it, the event source, the reconciliation sweep, the health server and the start-up line
that names them. Both modes of the command, plain and distributed, assemble these.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import yarl

from flatjobs.client import FlatfileClient, RetryPolicy
from flatjobs.errors import ConfigurationError, FlatfileAPIError, FlatfileError
from flatjobs.listener._listener import Listener
from flatjobs.log import shorten
from flatjobs.models import Job
from flatjobs.running._sweep import Reconciler
from flatjobs.sources import EventSource, PollingSource, PushSource

__all__ = ["client_from", "first_contact", "health", "source_from", "started_line", "sweep_from"]


def client_from(args: argparse.Namespace) -> FlatfileClient:
    """The client ``flatjobs run`` talks through; a setting it lacks is named as the
    command takes it (a variable or an option), not as the library's keyword."""
    environ = os.environ
    token = environ.get("FLATFILE_BEARER_TOKEN") or environ.get("FLATFILE_API_KEY") or ""
    if not token.strip():  # as the client reads it
        raise ConfigurationError(
            "no Flatfile API token: set FLATFILE_BEARER_TOKEN (or FLATFILE_API_KEY) to a "
            "secret key of the environment"
        )
    if not (args.environment_id or environ.get("FLATFILE_ENVIRONMENT_ID")):
        raise ConfigurationError(
            "no environment id: set FLATFILE_ENVIRONMENT_ID or pass --environment-id"
        )
    return FlatfileClient(environment_id=args.environment_id)


def _token_variable() -> str:
    """The variable the token came from (the client reads the first that is set)."""
    if os.environ.get("FLATFILE_BEARER_TOKEN") or not os.environ.get("FLATFILE_API_KEY"):
        return "FLATFILE_BEARER_TOKEN"
    return "FLATFILE_API_KEY"


async def first_contact(client: FlatfileClient) -> None:
    """One call before anything runs: a refused token or an API out of reach is named
    now, as a configuration error (exit code 2), not retried in the logs for ever."""
    environment = client.require_environment(None)
    try:
        await client.events.list_raw(
            page_size=1, since=dt.datetime.now(dt.UTC), retry=RetryPolicy(attempts=3, deadline=10.0)
        )
    except FlatfileAPIError as exc:
        if exc.status == 401:
            raise ConfigurationError(
                f"the Flatfile API at {client.host} refused the token (401): set "
                f"{_token_variable()} to a valid secret key"
            ) from None
        if exc.status == 403:
            raise ConfigurationError(
                f"the token may not read environment {environment} at {client.host} (403): "
                f"check FLATFILE_ENVIRONMENT_ID (or --environment-id), and that "
                f"{_token_variable()} is a key of that environment"
            ) from None
        if exc.status in (400, 404) and isinstance(exc.body, Mapping) and "errors" in exc.body:
            # The platform's own answer (an error body, not a web server's page for a wrong
            # FLATFILE_API_URL) to a well-formed call: the environment id is what it refused.
            said = shorten(" ".join(exc.detail.split()), 200)
            raise ConfigurationError(
                f"the Flatfile API at {client.host} knows no environment "
                f"{shorten(repr(environment), 100)} ({exc.status}: {said}): check "
                f"FLATFILE_ENVIRONMENT_ID (or --environment-id)"
            ) from None
        said = shorten(" ".join(str(exc).split()), 300)  # an HTML page, on one line
        raise ConfigurationError(f"the Flatfile API at {client.host} failed: {said}") from None
    except FlatfileError as exc:
        raise ConfigurationError(
            f"cannot reach the Flatfile API at {client.host} ({exc}): check FLATFILE_API_URL"
        ) from None


def source_from(args: argparse.Namespace, client: FlatfileClient) -> EventSource:
    """The event source ``--source`` names."""
    if args.source == "push":
        return PushSource(client, space_id=args.space_id, since=args.since)
    return PollingSource(
        client,
        space_id=args.space_id,
        interval=args.interval,
        max_interval=max(args.interval, 2.0),
        since=args.since,
    )


def sweep_from(
    args: argparse.Namespace,
    listener: Listener,
    running: Callable[[Job], Awaitable[bool]] | None = None,
) -> Reconciler | None:
    """The reconciliation sweep the options ask for (None: ``--sweep-interval 0``)."""
    if args.sweep_interval <= 0:
        return None
    return Reconciler(
        listener,
        interval=args.sweep_interval,
        ready_grace=args.ready_grace,
        lookback=args.lookback,
        running=running,
        space_id=args.space_id,
    )


def health(args: argparse.Namespace, source: object) -> AbstractAsyncContextManager[Any]:
    """The health server ``--metrics-port`` asks for (imported only then), or nothing.
    ``/readyz`` reads ``source.connected``: an event source's, or (``--nats``) the
    broker's and the source's (``Connectivity``)."""
    if args.metrics_port is None:
        return contextlib.nullcontext()
    from flatjobs._health import serve_health

    return _listening(
        serve_health(args.metrics_port, host=args.metrics_host, source=source),
        f"--metrics-port {args.metrics_port} on {args.metrics_host}",
    )


@contextlib.asynccontextmanager
async def _listening(server: AbstractAsyncContextManager[Any], what: str) -> AsyncIterator[Any]:
    """``server``, whose failure to listen (a port in use) is a configuration error."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            entered = await stack.enter_async_context(server)
        except OSError as exc:
            raise ConfigurationError(f"cannot listen for {what}: {exc.strerror or exc}") from None
        yield entered


def started_line(
    args: argparse.Namespace,
    client: FlatfileClient,
    source: EventSource | None,
    sweep: Reconciler | None,
) -> str:
    """The start-up line: where events come from, for which environment, through what."""
    line = f"{args.target} on environment {client.environment_id} at {client.host}"
    if isinstance(source, PushSource):
        line += f"; events pushed from {yarl.URL(source.origin).host}, the feed filling gaps"
    elif isinstance(source, PollingSource):
        line += f"; events polled every {source.interval:g}s"
    if sweep is not None:
        line += f"; sweep every {args.sweep_interval:g}s"
    return line
