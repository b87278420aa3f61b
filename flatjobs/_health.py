"""The health server: ``/metrics``, ``/healthz`` and ``/readyz`` for Kubernetes probes.

``flatjobs run --metrics-port N`` serves it; in your own program, around the runner::

    async with serve_health(9108, source=source):
        await run(listener, source)

* ``/healthz`` (liveness) asks the event loop: a task beats every fraction of a second and
  measures how late its timer fired. 200 while the loop keeps up; 503 when it ran a timer
  more than ``max_loop_lag`` seconds late within the last ``max_loop_lag`` seconds, or has
  not beaten for that long (code blocking the loop). A loop stuck for good answers nothing,
  which a probe reads as a failure too.
* ``/readyz`` (readiness): 200 when the source is connected and the API reachable, else
  503; the JSON answer says which part is not. A source says it is connected with a
  ``connected`` attribute (:class:`~flatjobs.PollingSource`: its last poll succeeded;
  :class:`~flatjobs.PushSource`: its channel answers, which it does not once a long-poll
  and the handshake after it got no answer, within ``hold`` + 10 s of going silent, nor
  while its long-polls come back at once with nothing); a source without one counts as
  connected. The API is reachable when the last API call of this process was answered,
  neither 5xx nor 401/403 (no extra calls are made to find out).
* ``/metrics``: the Prometheus text of ``registry``, when the ``prometheus`` extra is
  installed (the metrics are then counted while the server runs); without it, 501 with a
  line saying what to install, and the probes still work.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from aiohttp import web

from ._seconds import check_seconds
from .instruments import Instrument, add_instrument
from .log import get_logger

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .prometheus import PrometheusMetrics

__all__ = ["Connected", "HealthServer", "Readiness", "serve_health"]

_log = get_logger("flatjobs.health")
NO_METRICS: Final = (
    "Prometheus metrics need the prometheus extra: pip install -e '.[prometheus]' in a "
    "checkout of flatjobs\n"
)
_REFUSED: Final = frozenset({401, 403})  # answered, but these credentials will not do


@runtime_checkable
class Connected(Protocol):
    """A source that says whether it is connected (read by ``/readyz``)."""

    @property
    def connected(self) -> bool: ...


class Readiness(Instrument):
    """Whether the API is reachable, from the outcome of the last API call (an instrument)."""

    def __init__(self) -> None:
        self.status: int | None = None
        """The last call's status; None when it had no answer (or no call has ended)."""
        self.calls = 0
        """API calls that ended since it was added."""
        self.at: float | None = None
        """When the last call ended (``time.monotonic()``)."""

    @property
    def reachable(self) -> bool:
        """The last call was answered, neither 5xx nor 401/403."""
        status = self.status
        return status is not None and status < 500 and status not in _REFUSED

    def http_call(self, endpoint: str, method: str, status: int | None, seconds: float) -> None:
        """Note the outcome."""
        self.status = status
        self.calls += 1
        self.at = time.monotonic()


class _LoopMonitor:
    """Beats every ``interval`` seconds and keeps how late its timers fired."""

    def __init__(self, max_lag: float) -> None:
        self.max_lag = max_lag
        self.interval = min(max(max_lag / 5, 0.01), 1.0)
        self.lags: collections.deque[tuple[float, float]] = collections.deque()
        self.beat = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.beat = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._run(), name="flatjobs-loop-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.beat = now
            self.lags.append((now, max(now - before - self.interval, 0.0)))
            while self.lags and self.lags[0][0] < now - self.max_lag:
                self.lags.popleft()

    def state(self) -> tuple[bool, float, float]:
        """(healthy, the worst recent lag, seconds since the last beat)."""
        now = asyncio.get_running_loop().time()
        worst = max((lag for at, lag in self.lags if at >= now - self.max_lag), default=0.0)
        silent = now - self.beat
        alive = self._task is not None and not self._task.done()
        healthy = alive and worst <= self.max_lag and silent <= self.max_lag + self.interval
        return healthy, worst, silent


class HealthServer:
    """The running health server (see :func:`serve_health`)."""

    def __init__(
        self,
        *,
        source: Any = None,
        registry: CollectorRegistry | None = None,
        metrics: bool = True,
        max_loop_lag: float = 5.0,
    ) -> None:
        check_seconds("max_loop_lag", max_loop_lag, positive=True)
        self.source = source
        self.readiness = Readiness()
        self.metrics: PrometheusMetrics | None = None
        if metrics:
            try:
                from .prometheus import metrics as metrics_of
            except ImportError:
                pass
            else:
                self.metrics = metrics_of(registry)
        self._monitor = _LoopMonitor(max_loop_lag)
        self._runner: web.AppRunner | None = None
        self._removers: list[Callable[[], None]] = []
        self.port = 0
        """The port it listens on (the one picked, when asked for port 0)."""
        self.host = ""

    @property
    def url(self) -> str:
        """``http://host:port`` of the server."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether the worker is ready, and the details ``/readyz`` answers."""
        connected = getattr(self.source, "connected", None) if self.source is not None else None
        readiness = self.readiness
        api: dict[str, Any] = {"reachable": readiness.reachable, "last_status": readiness.status}
        if readiness.at is not None:
            api["seconds_since_last_call"] = round(time.monotonic() - readiness.at, 3)
        elif readiness.calls == 0:
            api["reason"] = "no API call has ended yet"
        source_ok = connected is not False
        ready = source_ok and readiness.reachable
        return ready, {"ready": ready, "source": {"connected": connected}, "api": api}

    # ----------------------------------------------------------- handlers

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, worst, silent = self._monitor.state()
        body = {
            "status": "ok" if healthy else "stalled",
            "loop_lag_seconds": round(worst, 4),
            "seconds_since_beat": round(silent, 4),
            "max_loop_lag_seconds": self._monitor.max_lag,
        }
        if self.metrics is not None:
            self.metrics.loop_lag.set(worst)
        return web.json_response(body, status=200 if healthy else 503)

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, body = self.ready()
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.metrics is None:
            return web.Response(status=501, text=NO_METRICS)
        from prometheus_client.exposition import choose_encoder

        self.metrics.loop_lag.set(self._monitor.state()[1])
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self.metrics.registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    # ----------------------------------------------------------- serving

    async def start(self, port: int, host: str = "127.0.0.1") -> None:
        """Listen on ``host:port`` (this machine only by default) and start counting."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._removers = [add_instrument(self.readiness)]
        if self.metrics is not None:
            from .prometheus import instrument

            self._removers.append(instrument(self.metrics.registry))
        self._monitor.start()
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await self.stop()
            await runner.cleanup()
            raise
        self._runner = runner
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        self.host = host

    async def stop(self) -> None:
        """Stop serving and counting."""
        for remove in self._removers:
            remove()
        self._removers = []
        await self._monitor.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@contextlib.asynccontextmanager
async def serve_health(
    port: int,
    *,
    host: str = "127.0.0.1",
    source: Any = None,
    registry: CollectorRegistry | None = None,
    metrics: bool = True,
    max_loop_lag: float = 5.0,
) -> AsyncIterator[HealthServer]:
    """Serve ``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port`` while the block runs
    (see the module docstring); ``port=0`` picks a free one (``server.port``).

    Args:
        host: the address to listen on: the loopback by default, which only this machine
            reaches; ``"0.0.0.0"`` (every address) in a container whose probes and
            scraper come from outside it.
        source: the runner's event source, whose ``connected`` attribute ``/readyz`` reads.
        registry: the Prometheus registry to count into and serve (the global one by
            default).
        metrics: count and serve Prometheus metrics (when the extra is installed).
        max_loop_lag: seconds late a timer may fire before ``/healthz`` answers 503.

    Raises:
        OSError: the port cannot be listened on.
    """
    server = HealthServer(
        source=source, registry=registry, metrics=metrics, max_loop_lag=max_loop_lag
    )
    await server.start(port, host)
    if server.metrics is None and metrics:
        _log.warning(
            "/metrics answers 501: the prometheus extra is not installed",
            install="pip install -e '.[prometheus]' in a checkout of flatjobs",
        )
    _log.info(
        "health server listening",
        address=f"{host}:{server.port}",
        url=server.url,
        paths="/healthz /readyz /metrics",
    )
    try:
        yield server
    finally:
        await server.stop()
