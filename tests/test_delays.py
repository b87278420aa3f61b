"""No number becomes a wait unchecked: not one from the network, not one from a user.

``asyncio.sleep(nan)`` is accepted, and a NaN among the loop's timers breaks their order:
every timer of the process can stop, and a deadline compared with ``now + nan`` is never
reached. These tests answer retries with every kind of hostile ``Retry-After`` from a real
local server, with a loop that refuses a timer at a time that is no finite number (the
check a real loop lacks), while a ticker shows the other timers keep running; and they
give every option that becomes a wait NaN, infinity, negatives, huge numbers and
non-numbers.

Tests whose comment starts "Was a bug:" failed before the fix they describe.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
from structlog.testing import capture_logs

import flatjobs
from flatjobs import (
    FlatfileAPIError,
    FlatfileClient,
    Jobs,
    Listener,
    MemorySource,
    PollingSource,
    PushSource,
    Reconciler,
    RetryPolicy,
    Runner,
    job_lifecycle,
)
from flatjobs.dev._cli import main
from flatjobs.emulator import Emulator, Fault
from flatjobs.testing import make_event, run_job

from .conftest import JOB_BODY, TOKEN, Recorded, RecordingServer, Reply
from .test_cli import APP

BACKOFF = 0.05  # the policy's first wait (no jitter): what a header that is no wait leaves
CAP = 0.08  # the policy's longest wait: what a huge wait becomes
POLICY = RetryPolicy(attempts=2, initial_delay=BACKOFF, max_delay=CAP, jitter=0.0, deadline=30)


@pytest.fixture
async def strict_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The running loop refuses a timer at a time that is not a finite number.

    A real loop takes it, and what breaks then depends on where the timer lands among the
    others (it may freeze every timer, or none): refused here, the first such timer fails
    the test at once, wherever it comes from."""
    loop = asyncio.get_running_loop()
    call_at = loop.call_at

    def checked(when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        if not math.isfinite(when):
            raise AssertionError(f"a timer was set at {when!r}: no number of seconds")
        return call_at(when, callback, *args, context=context)

    monkeypatch.setattr(loop, "call_at", checked)


@pytest.fixture
def real_waits() -> Any:
    """The policy's waits are waited (the suite switches them off)."""
    with flatjobs.set_testing(False):
        yield


@attrs.define
class Ticker:
    """An ``asyncio.sleep``-based ticker: the process's other timers, as a count."""

    ticks: int = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.001)
            self.ticks += 1


@pytest.fixture
async def ticker() -> AsyncIterator[Ticker]:
    ticker = Ticker()
    task = asyncio.ensure_future(ticker.run())
    yield ticker
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _hostile(
    recorder: RecordingServer, ticker: Ticker, status: int, headers: dict[str, str]
) -> list[int]:
    """The first request answers ``status`` with ``headers``, the next ones a job; returns
    the ticker's count at each request, filled as they come."""
    seen: list[int] = []

    def answer(request: Recorded) -> Reply:
        seen.append(ticker.ticks)
        if len(seen) == 1:
            return (status, {"errors": [{"message": "slow down"}]}, headers)
        return (200, JOB_BODY)

    recorder.responder = answer
    return seen


PAST = "Wed, 21 Oct 2015 07:28:00 GMT"
HEADERS = [
    # A header that holds no wait is ignored: the policy's backoff applies.
    pytest.param({"Retry-After": "nan"}, BACKOFF, id="nan"),
    pytest.param({"Retry-After": "NaN"}, BACKOFF, id="NaN"),
    pytest.param({"Retry-After": "inf"}, BACKOFF, id="inf"),
    pytest.param({"Retry-After": "-Infinity"}, BACKOFF, id="-Infinity"),
    pytest.param({"Retry-After": "-1"}, BACKOFF, id="negative"),
    pytest.param({"Retry-After": "1e400"}, BACKOFF, id="1e400"),
    pytest.param({"Retry-After": "soon"}, BACKOFF, id="words"),
    pytest.param({"Retry-After": "Fri, 31 Dec 99999 23:59:59 GMT"}, BACKOFF, id="year-99999"),
    pytest.param({"retry-after-ms": "nan"}, BACKOFF, id="ms-nan"),
    pytest.param({"retry-after-ms": "Infinity"}, BACKOFF, id="ms-Infinity"),
    pytest.param({"retry-after-ms": "-5"}, BACKOFF, id="ms-negative"),
    # A wait the server may ask: honoured, within the policy's longest.
    pytest.param({"retry-after-ms": "nan", "Retry-After": "0.06"}, 0.06, id="ms-nan-then-s"),
    pytest.param({"retry-after-ms": "60"}, 0.06, id="ms"),
    pytest.param({"Retry-After": "0"}, 0.0, id="zero"),
    pytest.param({"Retry-After": "9" * 400}, CAP, id="huge"),
    pytest.param({"retry-after-ms": "1" + "0" * 30}, CAP, id="ms-huge"),
    pytest.param({"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, CAP, id="date-far-future"),
    pytest.param({"Retry-After": PAST}, 0.0, id="date-past"),
    pytest.param({"Retry-After": PAST.replace("GMT", "-0000")}, 0.0, id="date-past-0000"),
]


@pytest.mark.usefixtures("strict_timers", "real_waits")
@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(("headers", "wait"), HEADERS)
async def test_every_retry_after_becomes_a_finite_wait_and_other_timers_keep_running(
    recorder: RecordingServer,
    ticker: Ticker,
    status: int,
    headers: dict[str, str],
    wait: float,
) -> None:
    # Was a bug: `Retry-After: nan` (or `retry-after-ms: nan`) became `asyncio.sleep(nan)`,
    # past the deadline's check; `-1` retried at once; an HTTP date in `-0000` (no zone)
    # raised TypeError out of the call.
    seen = _hostile(recorder, ticker, status, headers)
    async with FlatfileClient(recorder.url, TOKEN, retry=POLICY) as client:
        with capture_logs() as logs:
            await client.request("GET", "/jobs/us_jb_1")
    (retry,) = [e for e in logs if e["event"] == "an API call failed; retrying"]
    assert retry["retry_in"] == wait
    assert len(seen) == 2
    if wait > 0:  # the ticker's timers fired while the retry waited
        assert seen[1] > seen[0]


@pytest.mark.usefixtures("strict_timers", "real_waits")
@pytest.mark.parametrize(
    "headers",
    [{"Retry-After": "nan"}, {"retry-after-ms": "nan"}, {"Retry-After": "9" * 400}],
    ids=["nan", "ms-nan", "huge"],
)
async def test_the_deadline_holds_whatever_the_server_asks(
    recorder: RecordingServer, ticker: Ticker, headers: dict[str, str]
) -> None:
    # Was a bug: a NaN wait passed `now + wait >= deadline` (false for NaN) and was slept.
    seen = _hostile(recorder, ticker, 503, headers)
    policy = RetryPolicy(attempts=5, initial_delay=3600, max_delay=3600, deadline=5)
    async with FlatfileClient(recorder.url, TOKEN, retry=policy) as client:
        with pytest.raises(FlatfileAPIError, match="answered 503: slow down"):
            await client.request("GET", "/jobs/us_jb_1")
    assert len(seen) == 1  # the wait would pass the deadline: given up at once


@attrs.frozen(kw_only=True)
class BadDelay(RetryPolicy):
    """A policy whose own ``delay`` answers NaN."""

    def delay(self, retry: int, retry_after: float | None) -> float:
        return math.nan


@pytest.mark.usefixtures("strict_timers")
async def test_a_policy_whose_delay_is_no_number_of_seconds_is_an_error_naming_it(
    recorder: RecordingServer, ticker: Ticker
) -> None:
    # Was a bug: what an overridden `RetryPolicy.delay` returned was slept, NaN too.
    _hostile(recorder, ticker, 503, {})
    async with FlatfileClient(recorder.url, TOKEN, retry=BadDelay()) as client:
        with pytest.raises(ValueError, match=r"BadDelay.delay\(\) returned nan, which is no"):
            await client.request("GET", "/jobs/us_jb_1")


@attrs.frozen(kw_only=True)
class LongDelay(RetryPolicy):
    """A policy whose own ``delay`` asks for longer than any deadline."""

    def delay(self, retry: int, retry_after: float | None) -> float:
        return 10.0**300


@pytest.mark.usefixtures("strict_timers")
async def test_a_policy_asking_a_wait_past_any_deadline_gives_up_at_once(
    recorder: RecordingServer, ticker: Ticker
) -> None:
    seen = _hostile(recorder, ticker, 503, {})
    async with FlatfileClient(recorder.url, TOKEN, retry=LongDelay(deadline=5)) as client:
        with pytest.raises(FlatfileAPIError, match="answered 503"):
            await client.request("GET", "/jobs/us_jb_1")
    assert len(seen) == 1


def test_backoff_past_a_thousand_retries_stays_at_its_longest(real_waits: None) -> None:
    # Was a bug: 2.0 ** 1024 raises OverflowError, out of the retry loop.
    policy = RetryPolicy(attempts=5000, initial_delay=0, max_delay=2.0, jitter=0.0)
    assert policy.delay(2000, None) == 0.0
    assert RetryPolicy(max_delay=2.0, jitter=0.0).delay(5000, None) == 2.0
    assert RetryPolicy(max_delay=2.0).delay(5000, math.nan) <= 2.0 * 1.2  # no hint: backoff


# --------------------------------------------------------------------------- options

BAD: list[Any] = [math.nan, math.inf, -math.inf, -1, -0.5, 1e300, 10**400, True, "5", None]
CLIENT = FlatfileClient("http://127.0.0.1:1", TOKEN, environment_id="us_env_1")
LISTENER = Listener(client=CLIENT)

# (the option as its error names it, how to give it, what it takes that BAD holds)
OPTIONS: list[tuple[str, Callable[[Any], object], tuple[Any, ...]]] = [
    ("RetryPolicy.initial_delay", lambda v: RetryPolicy(initial_delay=v), ()),
    ("RetryPolicy.max_delay", lambda v: RetryPolicy(max_delay=v), ()),
    ("RetryPolicy.deadline", lambda v: RetryPolicy(deadline=v), ()),
    ("RetryPolicy.request_timeout", lambda v: RetryPolicy(request_timeout=v), ()),
    ("grace_period", lambda v: Runner(LISTENER, MemorySource([]), grace_period=v), ()),
    ("cancel_grace", lambda v: Runner(LISTENER, MemorySource([]), cancel_grace=v), ()),
    ("interval", lambda v: PollingSource(CLIENT, interval=v), ()),
    ("max_interval", lambda v: PollingSource(CLIENT, max_interval=v), ()),
    ("overlap", lambda v: PollingSource(CLIENT, overlap=v), ()),
    ("hold", lambda v: PushSource(CLIENT, hold=v), ()),
    ("max_backoff", lambda v: PushSource(CLIENT, max_backoff=v), ()),
    ("overlap", lambda v: PushSource(CLIENT, overlap=v), ()),
    ("interval", lambda v: Reconciler(LISTENER, interval=v), ()),
    ("lookback", lambda v: Reconciler(LISTENER, lookback=v), ()),
    ("ready_grace", lambda v: Reconciler(LISTENER, ready_grace=v), ()),
    ("progress_interval", lambda v: Jobs(progress_interval=v), ()),
    ("heartbeat", lambda v: Jobs(heartbeat=v), (None,)),  # None: no heartbeat
    ("timeout", lambda v: Jobs(timeout=v), (None, math.inf)),  # documented: no limit
    ("timeout", lambda v: job_lifecycle(make_event(job="a:b"), timeout=v), (None, math.inf)),
    ("max_loop_lag", lambda v: _health_server(v), ()),
    ("body_timeout", lambda v: Emulator(body_timeout=v), ()),
    ("push_hold", lambda v: Emulator(push_hold=v), ()),
    ("push_ttl", lambda v: Emulator(push_ttl=v), ()),
    ("Fault.latency", lambda v: Fault(latency=v), ()),
    ("Fault.retry_after", lambda v: Fault(status=503, retry_after=v), (None,)),
]


def _health_server(max_loop_lag: Any) -> object:
    from flatjobs import HealthServer

    return HealthServer(metrics=False, max_loop_lag=max_loop_lag)


@pytest.mark.parametrize(
    ("name", "make", "bad"),
    [
        pytest.param(name, make, bad, id=f"{n}-{name}-{bad!r:.12}")
        for n, (name, make, takes) in enumerate(OPTIONS)
        for bad in BAD
        if not any(bad is t for t in takes)
    ],
)
def test_an_option_that_becomes_a_wait_refuses_what_is_no_duration(
    name: str, make: Callable[[Any], object], bad: Any
) -> None:
    # Was a bug: NaN passed checks written `x < 0` (a Runner then waited
    # `asyncio.wait(timeout=nan)`), infinity reached `timedelta` (OverflowError) or waited
    # forever, and a PushSource's `hold` and `max_backoff` were not checked at all.
    with pytest.raises(ValueError, match=f"^{name} must be") as info:
        make(bad)
    assert str(info.value).endswith(f"got {bad!r:.80}")


def test_math_inf_is_taken_only_where_it_is_documented_as_no_limit() -> None:
    assert Jobs(timeout=math.inf).timeout == math.inf
    with pytest.raises(ValueError, match="heartbeat must be a positive number of seconds"):
        Jobs(heartbeat=math.inf)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1, 1e300, "5"], ids=repr)
async def test_waiting_on_the_emulator_refuses_what_is_no_duration(bad: Any) -> None:
    # Was a bug: `asyncio.timeout(nan)` put a NaN among the loop's timers.
    async with Emulator() as emu:
        job = emu.trigger("a:b")
        with pytest.raises(ValueError, match=r"^timeout must be ") as info:
            await emu.wait_for(job.id, timeout=bad)
        assert str(info.value).endswith(f"got {bad!r}")
        with pytest.raises(ValueError, match=r"^timeout must be ") as info:
            await run_job(Listener(), emu, "a:b", timeout=bad)
        assert str(info.value).endswith(f"got {bad!r}")
        assert len(emu.state.jobs) == 1  # refused before triggering anything
        with pytest.raises(TimeoutError):  # 0: look once, wait no more
            await emu.wait_for(job.id, timeout=0)


async def test_the_distributed_modes_waits_refuse_what_is_no_duration() -> None:
    pytest.importorskip("nats")
    from flatjobs.nats import Broker, Ingress, WorkerSource, connect

    broker = cast(Broker, object())  # refused before the broker is touched
    for bad in (math.nan, math.inf, -1):
        with pytest.raises(ValueError, match=r"^fetch_timeout must be ") as info:
            WorkerSource(broker, LISTENER, fetch_timeout=bad)
        assert str(info.value).endswith(f"got {bad!r}")
        with pytest.raises(ValueError, match=r"^cursor_every must be ") as info:
            Ingress(broker, LISTENER, MemorySource([]), cursor_every=bad)
        assert str(info.value).endswith(f"got {bad!r}")
        # Was a bug: `asyncio.timeout(nan + 2)` was entered before anything said no.
        with pytest.raises(ValueError, match=r"^timeout must be ") as info:
            await connect("nats://127.0.0.1:9", timeout=bad)
        assert str(info.value).endswith(f"got {bad!r}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Was a bug: `--interval inf` was taken (the flag had no upper bound).
        (["--source", "poll", "--interval", "inf"], "--interval: must be from 0.01 to 31622400"),
        # Was a bug: `--lookback 0` passed the flag and raised ValueError out of the sweep.
        (["--lookback", "0"], "--lookback: must be from 1 to 31622400, got 0"),
        (["--grace-period", "nan"], "--grace-period: must be from 0 to 31622400, got nan"),
    ],
)
def test_the_commands_durations_refuse_what_is_no_duration(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", APP, *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


async def test_a_lease_whose_expiry_reads_nan_hands_the_message_back_for_a_while(
    tmp_path: Path,
) -> None:
    # Was a bug: a lease's `until` is read back as JSON, where `NaN` parses: the worker
    # handed the message back with `nak(delay=nan)`, which raised ValueError (nats-py makes
    # whole nanoseconds of it) and left the message unsettled until AckWait.
    pytest.importorskip("nats")
    from flatjobs.nats import connect

    from .nats_server import NatsServer
    from .test_nats import fast, running, until

    ran: list[str] = []
    listener = Listener()

    @listener.on("job:parts-completed")
    async def parts(event: flatjobs.FlatfileEvent) -> None:
        ran.append(event.id or "")

    event = make_event("job:parts-completed", job="workbook:work", id="us_evt_nan")
    job_id = flatjobs.FlatfileEvent.parse(event).job_id
    assert job_id is not None
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        async with (
            await connect(server.url, fast()) as other,
            await connect(server.url, fast()) as broker,
        ):
            key = other.job_key(job_id)
            await other.leases._write(key, b'{"owner": "elsewhere", "until": NaN}', 0, "30s")
            with capture_logs() as logs:
                async with running(listener, broker, "all", MemorySource([event])) as node:
                    worker = node.stats.worker
                    assert worker is not None
                    await until(lambda: worker.busy >= 2)  # handed back, taken again
                    assert ran == []
                    await other.kv.delete(key)
                    await until(lambda: ran == ["us_evt_nan"])
        errors = [e for e in logs if e["log_level"] in ("error", "critical")]
        assert errors == []
    finally:
        server.kill()
