"""The ``flatjobs`` command.

``flatjobs run TARGET``
    run a listener against the Flatfile API configured from the environment (polling).
``flatjobs dev TARGET --trigger domain:operation``
    run it against an embedded emulator, trigger jobs as a user would, show their progress
    (also in the emulator's jobs panel, a web page; ``--open`` opens it).
``flatjobs emulator``
    run the emulator alone (its jobs panel at its root URL).

``TARGET`` names a :class:`flatjobs.Listener` or :class:`flatjobs.Jobs`: ``package.module:attr``
or ``path/to/file.py:attr``; without ``:attr``, ``listener`` then ``jobs`` are looked up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import difflib
import functools
import importlib
import importlib.util
import json
import logging
import math
import os
import sys
import webbrowser
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, NoReturn

import attrs
import structlog
import yarl

from flatjobs import _meta
from flatjobs._seconds import YEAR
from flatjobs.client import FlatfileClient, RetryPolicy
from flatjobs.errors import ConfigurationError, FlatfileAPIError, FlatfileError
from flatjobs.events._event import job_id_of
from flatjobs.events._topics import JOB_READY
from flatjobs.jobs._registry import Jobs
from flatjobs.listener._listener import Listener
from flatjobs.log import redact_tokens, shorten
from flatjobs.models import TERMINAL_STATUSES, Job, JobStatus
from flatjobs.running._runner import Runner, run, signals_stop
from flatjobs.running._sweep import Reconciler
from flatjobs.sources import EventSource, PollingSource, PushSource

from ._reload import Reloader

__all__ = ["TargetError", "load_target", "main"]


class TargetError(Exception):
    """The TARGET argument does not name a Listener or Jobs."""


def load_target(spec: str) -> Listener:
    """The Listener named by ``spec`` (a Jobs registry is installed on a new Listener).

    Raises:
        TargetError: naming what is wrong with ``spec``.
    """
    module_part, _, attr = spec.partition(":")
    if not module_part:
        raise TargetError(f"{spec!r} names no module: use package.module:attr or file.py:attr")
    try:
        if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
            path = Path(module_part)
            if not path.is_file():
                raise TargetError(f"no such file: {module_part}")
            name = f"_flatjobs_target_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise TargetError(f"cannot load {module_part} as a Python module")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            # As `python -m` does: a module beside the user is importable by its name.
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_part)
    except TargetError:
        raise
    except Exception as exc:
        raise TargetError(f"cannot import {module_part!r}: {type(exc).__name__}: {exc}") from exc
    names = [attr] if attr else ["listener", "jobs"]
    for name in names:
        if hasattr(module, name):
            target = getattr(module, name)
            break
    else:
        wanted = " or ".join(map(repr, names))
        close = difflib.get_close_matches(names[0], [n for n in vars(module) if n[:1] != "_"])
        hint = f": did you mean {close[0]!r}?" if close else ""
        raise TargetError(f"{module_part} has no attribute {wanted}{hint}")
    if isinstance(target, Jobs):
        return Listener().use(target)
    if isinstance(target, Listener):
        return target
    raise TargetError(
        f"{module_part}:{name} is a {type(target).__name__}, not a flatjobs Listener or Jobs"
    )


def _configure_logging(level: str) -> None:
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


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, then exit code 2 (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _job_name(value: str) -> str:
    domain, colon, operation = value.partition(":")
    if not (domain and colon and operation) or ":" in operation or value != value.strip():
        raise argparse.ArgumentTypeError(
            f"takes DOMAIN:OPERATION, such as workbook:export; got {value!r}"
        )
    return value


def _number(kind: type[int] | type[float], low: float, high: float = math.inf) -> Any:
    """An argparse type: a ``kind`` number within [low, high]."""

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"is not a number: {text!r}") from None
        if not low <= value <= high:  # NaN too
            bounds = f"from {low:g} to {high:.15g}" if high < math.inf else f"{low:g} or more"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return convert


_COUNT = _number(int, 1)
_SECONDS = _number(float, 0, YEAR)  # a year: inf and 1e300 are no durations
_PORT = _number(int, 0, 65535)


_SKEW = dt.timedelta(minutes=5)


def _instant(text: str) -> dt.datetime:
    """An argparse type: an ISO 8601 time (UTC unless it says otherwise), not in the future."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"is not an ISO 8601 time such as 2026-11-22T09:30:00Z: {text[:40]!r}"
        ) from None
    when = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    # The time of an event is the server's: a clock a little ahead of this one is no error
    # (the source never moves past the server's clock).
    if when > dt.datetime.now(dt.UTC) + _SKEW:
        raise argparse.ArgumentTypeError(f"is in the future: {text}")
    return when


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"is not JSON ({exc}): {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text[:80]!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flatjobs", description="Run Flatfile job handlers written with flatjobs."
    )
    parser.add_argument("--version", action="version", version=f"flatjobs {_meta.version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sub: argparse.ArgumentParser, level: str) -> None:
        sub.add_argument(
            "--log-level",
            default=level,
            choices=["debug", "info", "warning", "error"],
            help="log lines at this level and above go to stderr (default: %(default)s)",
        )
        sub.add_argument(
            "--concurrency",
            type=_COUNT,
            default=50,
            help="events handled at once (default: %(default)s)",
        )
        sub.add_argument(
            "--grace-period",
            type=_SECONDS,
            default=30.0,
            help="seconds in-flight jobs get to finish on shutdown (default: %(default)s)",
        )

    run_cmd = commands.add_parser(
        "run",
        help="run a listener against the Flatfile API",
        description="Run a listener against the Flatfile API configured by FLATFILE_API_URL, "
        "FLATFILE_BEARER_TOKEN (or FLATFILE_API_KEY) and FLATFILE_ENVIRONMENT_ID. Events are "
        "pushed on Flatfile's channel (FLATFILE_PUSH_ORIGIN overrides its host), the events "
        "feed filling any gap; --source poll polls the feed instead. A sweep runs jobs left "
        "ready and ends jobs a stopped worker left. SIGINT/SIGTERM stop it gracefully.",
    )
    run_cmd.add_argument(
        "target", metavar="TARGET", help="module:attr or file.py:attr of a Listener or Jobs"
    )
    run_cmd.add_argument("--environment-id", help="overrides FLATFILE_ENVIRONMENT_ID")
    run_cmd.add_argument("--space-id", help="only events of this space")
    run_cmd.add_argument(
        "--source",
        choices=("push", "poll"),
        default="push",
        help="how events arrive: pushed on Flatfile's channel, with the events feed filling "
        "any gap, or by polling the events feed (default: %(default)s)",
    )
    run_cmd.add_argument(
        "--interval",
        type=_number(float, 0.01, YEAR),
        default=0.5,
        help="with --source poll, seconds between polls (default: %(default)s)",
    )
    run_cmd.add_argument(
        "--sweep-interval",
        type=_SECONDS,
        default=60.0,
        help="seconds between reconciliation sweeps, which run jobs left ready and end jobs "
        "a stopped worker left executing; 0 turns the sweep off (default: %(default)s)",
    )
    run_cmd.add_argument(
        "--ready-grace",
        type=_SECONDS,
        default=10.0,
        help="seconds a job may stay ready before the sweep runs it (default: %(default)s)",
    )
    run_cmd.add_argument(
        "--lookback",
        type=_number(float, 1, YEAR),  # the sweep reads no jobs in less than a second
        default=3600.0,
        help="how far back, in seconds of creation time, the sweep reads jobs "
        "(default: %(default)s)",
    )
    run_cmd.add_argument(
        "--since",
        type=_instant,
        metavar="TIME",
        help="read events from this ISO 8601 time at start, such as the last one a previous "
        "run handled (default: a few seconds back; jobs left ready before are run by the "
        "sweep either way)",
    )
    run_cmd.add_argument(
        "--metrics-port",
        type=_PORT,
        metavar="PORT",
        help="serve /metrics (Prometheus, with the prometheus extra), /healthz and /readyz on "
        "this port, for Kubernetes probes; 0 picks one (default: none)",
    )
    run_cmd.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="with --metrics-port, the address to listen on; the default reaches this "
        "machine only: in a container whose probes or Prometheus come from outside it, "
        "pass 0.0.0.0 (default: %(default)s)",
    )
    distributed = run_cmd.add_argument_group(
        "distributed mode",
        "many processes, each job once, through NATS JetStream (the nats extra: "
        "pip install -e '.[nats]' in a checkout of flatjobs); every process of a deployment "
        "takes the same settings",
    )
    distributed.add_argument(
        "--nats",
        metavar="URL",
        default=os.environ.get("FLATJOBS_NATS_URL"),
        help="run in the distributed mode through the NATS server at URL, e.g. "
        "nats://nats:4222; credentials go in the URL (nats://USER:PASSWORD@HOST:4222): set "
        "FLATJOBS_NATS_URL rather than this flag to keep them out of the process list",
    )
    distributed.add_argument(
        "--role",
        choices=("ingress", "worker", "all"),
        help="ingress: take events from the platform (--source) into the stream and run the "
        "sweep; worker: run jobs from the stream (--concurrency at once); all: both "
        "(default: all)",
    )
    distributed.add_argument(
        "--nats-stream",
        default="FLATJOBS",
        metavar="NAME",
        help="the stream, subject prefix and key-value bucket's name; one per deployment "
        "(default: %(default)s)",
    )
    distributed.add_argument(
        "--ack-wait",
        type=_number(float, 2, 86_400),
        default=45.0,
        metavar="SECONDS",
        help="seconds a silent worker keeps its messages before they go to another, 2 to "
        "86400: a stopped worker's jobs end within about this long, or 1.5 heartbeats of "
        "their handler if longer (default: %(default)s)",
    )
    distributed.add_argument(
        "--max-deliver",
        type=int,
        default=5,
        metavar="N",
        help="deliveries after which a message is poison: terminated and logged "
        "(default: %(default)s)",
    )
    distributed.add_argument(
        "--nats-replicas",
        type=int,
        default=1,
        metavar="N",
        help="replicas of the stream and bucket: 3 on a three-node NATS cluster; set when "
        "they are created (default: %(default)s)",
    )
    distributed.add_argument(
        "--partitions",
        type=int,
        default=16,
        metavar="N",
        help="ordered lanes for events that run no job; fixed when the stream is created "
        "(default: %(default)s)",
    )
    common(run_cmd, "info")

    dev = commands.add_parser(
        "dev",
        help="run a listener against an embedded emulator and trigger jobs",
        description="Start the embedded emulator, run the listener against it, trigger jobs "
        "as a user clicking an action would, and show each job's progress and outcome; the "
        "emulator's jobs panel, a web page at its root URL, shows them too and has the "
        "action buttons.",
    )
    dev.add_argument(
        "target", metavar="TARGET", help="module:attr or file.py:attr of a Listener or Jobs"
    )
    dev.add_argument(
        "--trigger",
        action="append",
        type=_job_name,
        default=[],
        metavar="DOMAIN:OPERATION",
        help="a job to trigger; repeat for more",
    )
    dev.add_argument(
        "--input",
        type=_json_object,
        default=None,
        metavar="JSON",
        help="the triggered jobs' input, a JSON object",
    )
    dev.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="exit once every triggered job has ended; exit code 1 if any failed "
        "unexpectedly (a crash or timeout, not a JobError)",
    )
    dev.add_argument(
        "--timeout",
        type=_SECONDS,
        default=120.0,
        help="with --exit-when-idle, give up this many seconds after starting: jobs still "
        "running are stopped at once and failed with a Retry button, and the command exits "
        "(a body that ignores its cancellation is abandoned 5 seconds later) "
        "(default: %(default)s)",
    )
    dev.add_argument(
        "--reload",
        action="store_true",
        help="import the listener again when a Python file of its folder changes: new "
        "events go to the new code, running jobs finish on the old (needs watchfiles: "
        "pip install -e '.[reload]' in a checkout of flatjobs)",
    )
    dev.add_argument(
        "--seed",
        metavar="FILE",
        help="a JSON seed of spaces, workbooks, sheets and records the emulator starts with; "
        "triggered workbook and sheet jobs are about its first workbook or sheet",
    )
    dev.add_argument(
        "--open",
        action="store_true",
        help="open the jobs panel in a web browser: the emulator's page showing the seeded "
        "sheets with their action buttons, and every job live with its progress and outcome",
    )
    common(dev, "warning")

    emulator = commands.add_parser(
        "emulator",
        help="run the local emulator of Flatfile's Jobs and Events API",
        description="Run the local emulator of Flatfile's Jobs and Events API until interrupted; "
        "its jobs panel, a web page at its root URL, shows the data, the action buttons and "
        "the jobs live.",
    )
    emulator.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    emulator.add_argument(
        "--port", type=_PORT, default=8080, help="port; 0 picks one (default: %(default)s)"
    )
    emulator.add_argument(
        "--push-port",
        type=_PORT,
        help="the push channel's port; 0 picks one (default: the port after --port, so the "
        "FLATFILE_PUSH_ORIGIN it prints stays true across restarts)",
    )
    emulator.add_argument("--environment-id", default="us_env_emulator", help="its environment id")
    emulator.add_argument(
        "--seed",
        metavar="FILE",
        help="a JSON seed of spaces, workbooks, sheets and records to start with (their ids "
        "are printed)",
    )
    return parser


def _sweep(
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


def _push_port(port: int, given: int | None) -> int:
    """The emulator's push port: ``given``, else the one after ``port`` (0 for 0: any)."""
    if given is not None:
        return given
    return port + 1 if 0 < port < 65535 else 0


def _source(args: argparse.Namespace, client: FlatfileClient) -> EventSource:
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


def _health(args: argparse.Namespace, source: object) -> AbstractAsyncContextManager[Any]:
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


_NATS_FLAGS = {
    "stream": "--nats-stream",
    "ack_wait": "--ack-wait",
    "max_deliver": "--max-deliver",
    "partitions": "--partitions",
    "replicas": "--nats-replicas",
}
"""The options of ``flatjobs run`` that set each field of ``NatsSettings``."""


async def _run_nats(args: argparse.Namespace, listener: Listener, client: FlatfileClient) -> int:
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
    source = _source(args, client) if ingress else None
    async with (
        client,
        await connect(args.nats, settings) as broker,
        # /readyz: the broker's connection and the source's; the API's from the first call
        _health(args, Connectivity(broker, source)),
    ):
        await _first_contact(client)
        sweep = _sweep(args, listener, running=broker.job_running) if ingress else None
        _say(
            "run",
            f"{_started(args, client, source, sweep)}; {role} of a distributed "
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
            on_signal=functools.partial(_say, "run"),
        )
    return _stopped(stats)


def _leave(code: int, abandoned: int) -> int:
    """``code``, exiting at once when job bodies that ignore cancellation were abandoned
    (their jobs were failed): asyncio.run would wait for them for ever."""
    if abandoned:
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code)
    return code


def _stopped(stats: Any) -> int:
    """Log the run's stats; exit code 0 (at once, when bodies were abandoned)."""
    structlog.get_logger("flatjobs.cli").info("stopped", **attrs.asdict(stats))
    return _leave(0, stats.abandoned)


def _say(command: str, message: str) -> None:
    """One line for the person at the terminal, on stderr (stdout is the program's)."""
    print(f"flatjobs {command}: {message}", file=sys.stderr, flush=True)


def _token_variable() -> str:
    """The variable the token came from (the client reads the first that is set)."""
    if os.environ.get("FLATFILE_BEARER_TOKEN") or not os.environ.get("FLATFILE_API_KEY"):
        return "FLATFILE_BEARER_TOKEN"
    return "FLATFILE_API_KEY"


async def _first_contact(client: FlatfileClient) -> None:
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


def _started(
    args: argparse.Namespace, client: FlatfileClient, source: EventSource | None, sweep: Any
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


def _client(args: argparse.Namespace) -> FlatfileClient:
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


async def _run(args: argparse.Namespace) -> int:
    listener = load_target(args.target)
    client = _client(args)
    listener.client = client
    if args.nats:
        return await _run_nats(args, listener, client)
    if args.role is not None:
        raise ConfigurationError("--role needs --nats URL (or FLATJOBS_NATS_URL)")
    source = _source(args, client)
    sweep = _sweep(args, listener)
    async with client, _health(args, source):
        await _first_contact(client)
        stats = await run(
            listener,
            source,
            concurrency=args.concurrency,
            grace_period=args.grace_period,
            sweep=sweep,
            on_signal=functools.partial(_say, "run"),
            started=functools.partial(_say, "run", _started(args, client, source, sweep)),
        )
    return _stopped(stats)


@contextlib.asynccontextmanager
async def _reloading(
    reloader: Reloader | None, runner: Runner, client: FlatfileClient
) -> AsyncIterator[None]:
    """With a reloader, watch for changes for the duration of the block."""
    if reloader is None:
        yield
        return
    stop = asyncio.Event()
    watching = asyncio.create_task(reloader.watch(runner, client, stop))
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(watching, 5)


_MADE_UP_SOURCES = ("workbook", "sheet", "file", "document")
"""The domains whose triggered job is about a made-up id when the emulator holds none."""


def _meant(name: str, listener: Listener) -> str:
    """``: did you mean 'x'?`` naming the job of the listener's handlers closest to
    ``name``, or nothing."""
    known = [
        job
        for router in listener.routers()
        if isinstance(router, Jobs)
        for job in router.job_names()
        if not any(c in job for c in "*?[")  # a glob would have matched
    ]
    close = difflib.get_close_matches(name, known, n=1)
    return f": did you mean {close[0]}?" if close else ""


def _on_made_up_source(emu: Any, display: Any) -> Callable[[dict[str, Any]], None]:
    """An event callback saying, under a job that failed on the made-up id of its workbook,
    sheet, file or document (the emulator held none of its kind), that --seed gives it one:
    the failure itself only says that a read of that id found nothing."""

    def hint(event: dict[str, Any]) -> None:
        job_id = job_id_of(event)
        if event.get("topic") != "job:failed" or job_id is None:
            return
        job = emu.job(job_id)
        domain = str(job.type)
        said = f"{job.info} {job.outcome.message if job.outcome else ''}"
        if domain in _MADE_UP_SOURCES and emu.data.first(domain) is None and job.source in said:
            display.note(
                f"  {job.job_name:<28} the emulator holds no {domain}: this job was about "
                f"the made-up {job.source}; pass --seed FILE to give it a {domain} to work on"
            )

    return hint


async def _dev(args: argparse.Namespace) -> int:
    from flatjobs.emulator import Emulator
    from flatjobs.testing import emulated

    from ._display import ProgressDisplay

    # --timeout bounds the whole run, start-up included (--exit-when-idle).
    deadline = asyncio.get_running_loop().time() + args.timeout
    listener = load_target(args.target)
    if args.exit_when_idle and not args.trigger:
        raise TargetError(
            "nothing to do: --exit-when-idle waits for triggered jobs, and no --trigger "
            "names one (add --trigger DOMAIN:OPERATION, or leave --exit-when-idle out)"
        )
    reloader = (
        Reloader(args.target, functools.partial(_say, "dev"), load_target) if args.reload else None
    )
    out = sys.stdout
    async with Emulator(record=False, seed=args.seed) as emu:
        display = ProgressDisplay(emu.job, out)
        emu.on_event(display.on_event)
        emu.on_event(_on_made_up_source(emu, display))
        head = f"flatjobs dev: emulator on {emu.url}, running {args.target}"
        print(f"{head}; jobs panel: {emu.panel_url}", file=out, flush=True)
        if args.open and not await asyncio.to_thread(webbrowser.open, emu.panel_url):
            _say("dev", f"no browser to open: visit {emu.panel_url}")
        async with (
            emulated(
                listener, emulator=emu, concurrency=args.concurrency, grace_period=args.grace_period
            ) as env,
            _reloading(reloader, env.runner, env.client),
        ):
            with signals_stop(env.runner, functools.partial(_say, "dev")):
                triggered: list[tuple[str, str]] = []
                unhandled: list[str] = []
                for name in args.trigger:
                    job = await env.trigger(name, input=args.input, wait=False)
                    triggered.append((job.id, name))
                    ready = next(
                        e
                        for e in reversed(emu.events)
                        if e["topic"] == JOB_READY and job_id_of(e) == job.id
                    )
                    if not listener.match(ready):
                        unhandled.append(name)
                        display.note(
                            f"  {name:<28} no callback of {args.target} handles this job"
                            f"{_meant(name, listener)}"
                        )
                if not args.exit_when_idle:
                    stats = await env.stopped()
                    return _leave(0, stats.abandoned)
                running: list[str] = []
                try:
                    async with asyncio.timeout_at(deadline):
                        for job_id, name in triggered:
                            if name not in unhandled:
                                await emu.wait_for(job_id, timeout=args.timeout)
                except TimeoutError:
                    running = [
                        j
                        for j, name in triggered
                        if name not in unhandled and emu.job(j).status not in TERMINAL_STATUSES
                    ]
                    # A second stop cancels at once: their jobs are failed with a Retry
                    # button, without the grace period a drain would give them.
                    env.runner.stop()
                env.runner.stop()
                stats = await env.stopped()
        jobs = [emu.job(job_id) for job_id, _ in triggered]
        done = sum(j.status == JobStatus.COMPLETE for j in jobs)
        failed = [j for j in jobs if j.status == JobStatus.FAILED]
        unexpected = [
            j for j in failed if j.id not in env.results or not env.results[j.id].expected
        ]
        summary = f"{len(jobs)} job(s): {done} complete, {len(failed)} failed"
        if failed:
            summary += f" ({len(unexpected)} unexpectedly)"
        if unhandled:
            summary += f", {len(unhandled)} with no handler"
        if running:
            summary += f", {len(running)} stopped at the {args.timeout:g}s timeout"
        print(summary, file=out, flush=True)
        return _leave(1 if unexpected or unhandled or running else 0, stats.abandoned)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flatjobs`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    from flatjobs.emulator import SeedError

    if args.command == "emulator":
        from flatjobs.emulator import serve

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
    _configure_logging(args.log_level)
    try:
        return asyncio.run(_run(args) if args.command == "run" else _dev(args))
    except (TargetError, ConfigurationError, SeedError) as exc:
        print(f"flatjobs {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the runner took over the signals: nothing ran yet
        print(f"flatjobs {args.command}: stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
