"""The ``flatjobs`` command's arguments: the parser, its help, and the checks of each value.

Every value is checked as it is parsed (a duration, a port, a count, a time, a job's name,
a JSON object), so that a wrong one is a usage error naming the option (exit code 2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
from typing import Any, NoReturn

from flatjobs import _meta
from flatjobs._seconds import YEAR

__all__ = ["make_parser"]


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


def make_parser() -> argparse.ArgumentParser:
    """The parser of ``flatjobs`` and its commands ``run``, ``dev`` and ``emulator``."""
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
