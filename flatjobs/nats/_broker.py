"""``Broker``: one connection to NATS, with the stream, consumers and bucket in place."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import socket
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import nats
import nats.errors
import nats.js.errors as jse
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.kv import KeyValue

from flatjobs._seconds import check_seconds
from flatjobs.errors import ConfigurationError
from flatjobs.log import get_logger

from ._lease import Leases
from ._settings import NatsSettings, check_url, shown_url, token

if TYPE_CHECKING:
    from flatjobs.models import Job

__all__ = ["TRANSIENT", "Broker", "connect"]

_log = get_logger("flatjobs.nats")

TRANSIENT: Final = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    jse.NoStreamResponseError,
    jse.ServiceUnavailableError,
)
"""What a broker that went away, or is coming back, raises: worth trying again."""

RUN_CONSUMER: Final = "flatjobs-run"
_MIN_SERVER: Final = (2, 11)  # per-message TTLs (leases); subject transforms came in 2.10
_PARTITIONS: Final = re.compile(r"\{\{\s*partition\((\d+),")


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "no answer"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Broker:
    """A connection to NATS JetStream with the distributed mode's stream, consumers and
    key-value bucket in place: what ingress and workers share. Built by :func:`connect`;
    ``async with`` (or :meth:`close`) closes it.

    Attributes:
        settings: the settings it was connected with.
        nc: the NATS connection (reconnects by itself, forever, after the first connect).
        js: its JetStream context.
        kv: the bucket of job leases and cursors.
        leases: the job leases, taken in this process's name.
        events: the bucket of the event ids dispatched, each kept for the stream's
            duplicate window (see :meth:`claim`).
    """

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        kv: KeyValue,
        events: KeyValue,
        settings: NatsSettings,
        url: str,
    ) -> None:
        self.nc = nc
        self.js = js
        self.kv = kv
        self.events = events
        self.settings = settings
        self.url = shown_url(url)
        owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.leases = Leases(js, kv, settings.bucket, owner)
        self._reconnect_callbacks: list[Callable[[], None]] = []
        self._closing = False
        self._outage_logged = False

    def __repr__(self) -> str:
        return f"Broker(url={self.url!r}, stream={self.settings.stream!r})"

    @property
    def owner(self) -> str:
        """This process's name on the leases it holds: ``host:pid:random``."""
        return self.leases.owner

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    @property
    def connected(self) -> bool:
        """True while the connection to the server is up (False while it reconnects, and
        once closed): what ``/readyz`` reads, through the worker's source and the ingress."""
        return bool(self.nc.is_connected) and not self._closing

    @property
    def max_payload(self) -> int:
        """The largest message the server takes, in bytes (headers included)."""
        return int(self.nc.max_payload)

    def on_reconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` at each reconnection (a pull made before a server restart is
        unknown to the new server: pulls give up and ask again); returns its remover."""
        self._reconnect_callbacks.append(callback)

        def remove() -> None:
            if callback in self._reconnect_callbacks:
                self._reconnect_callbacks.remove(callback)

        return remove

    # ----------------------------------------------------------- connection events

    async def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, nats.errors.StaleConnectionError):
            return  # the connection dropped: the disconnection is logged next
        if not self._outage_logged:
            self._outage_logged = True
            _log.warning(
                "the NATS server cannot be reached; reconnecting",
                server=self.url,
                error=_reason(exc),
            )

    async def _on_disconnected(self) -> None:
        if not self._closing:
            _log.warning("lost the connection to the NATS server; reconnecting", server=self.url)
            self._outage_logged = True

    async def _on_reconnected(self) -> None:
        self._outage_logged = False
        _log.info("reconnected to the NATS server", server=self.url)
        for callback in list(self._reconnect_callbacks):
            callback()

    # ----------------------------------------------------------- set-up

    async def ensure(self) -> None:
        """Create the stream and its consumers (or check and update them).

        Raises:
            ConfigurationError: the stream exists with settings these cannot agree with.
        """
        s = self.settings
        config = StreamConfig(
            name=s.stream,
            description="flatjobs: Flatfile events to run, one job per worker",
            subjects=[s.run_subjects, s.event_subjects],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=s.replicas,
            duplicate_window=s.duplicate_window,
            subject_transform=SubjectTransform(src=s.event_subjects, dest=s.partition_transform),
        )
        try:
            info = await self.js.stream_info(s.stream)
        except jse.NotFoundError:
            try:
                await self.js.add_stream(config)
            except jse.BadRequestError as err:  # another process created it meanwhile
                if err.err_code != 10058:
                    raise
            else:
                _log.info("created the stream", stream=s.stream, partitions=s.partitions)
            info = await self.js.stream_info(s.stream)
        self._check_stream(info.config)
        if info.config.duplicate_window != s.duplicate_window:
            await self.js.update_stream(config)
            _log.info(
                "updated the stream's duplicate window", stream=s.stream, seconds=s.duplicate_window
            )
        common: dict[str, Any] = {
            "ack_policy": AckPolicy.EXPLICIT,
            "deliver_policy": DeliverPolicy.ALL,
            "ack_wait": s.ack_wait,
            "max_deliver": -1,  # poison is judged by flatjobs, which terms it and says why
        }
        consumers = [
            ConsumerConfig(
                durable_name=RUN_CONSUMER,
                name=RUN_CONSUMER,
                description="flatjobs: events that run a job, any worker",
                filter_subject=s.run_subjects,
                max_ack_pending=s.max_ack_pending,
                **common,
            )
        ]
        consumers += [
            ConsumerConfig(
                durable_name=f"flatjobs-ev-{p}",
                name=f"flatjobs-ev-{p}",
                description=f"flatjobs: other events, partition {p}, one at a time",
                filter_subject=s.partition_subjects(p),
                max_ack_pending=1,  # in order: the next only when this one is acknowledged
                **common,
            )
            for p in range(s.partitions)
        ]
        await asyncio.gather(*(self.js.add_consumer(s.stream, c) for c in consumers))

    def _check_stream(self, found: StreamConfig) -> None:
        s = self.settings
        problems = []
        if found.retention != RetentionPolicy.WORK_QUEUE:
            problems.append(f"its retention is {found.retention}, not workqueue")
        if sorted(found.subjects or []) != sorted([s.run_subjects, s.event_subjects]):
            problems.append(f"its subjects are {found.subjects}")
        transform = found.subject_transform.dest if found.subject_transform else ""
        match = _PARTITIONS.search(transform or "")
        partitions = int(match.group(1)) if match else None
        if partitions != s.partitions:
            problems.append(
                f"it has {partitions} partitions and this process was started with "
                f"{s.partitions} (the partition count can only change on a drained stream: "
                "delete the stream, and start every process with the same count)"
            )
        if problems:
            raise ConfigurationError(
                f"the stream {s.stream} on {self.url} was made with other settings: "
                + "; ".join(problems)
            )

    # ----------------------------------------------------------- use

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> PubAck:
        """Publish to the stream, trying again for as long as the broker is away.

        A retry of a publish that landed (or the same message id published by another
        ingress) is dropped by the stream while the server remembers the id: within the
        duplicate window, but after a server restart only for the messages it still
        stores (an acknowledged message is deleted, and its id forgotten). A copy stored
        that way is still dispatched once: the worker that takes it finds its event id
        claimed (:meth:`claim`) and acknowledges it unrun.

        Raises:
            nats.errors.ConnectionClosedError: the broker was closed meanwhile.
            nats.js.errors.APIError: the stream refused the message.
        """
        wait, missing = 0.05, 0
        while True:
            try:
                return await self.js.publish(subject, payload, headers=headers)
            except TRANSIENT as err:
                if self._closing:
                    raise nats.errors.ConnectionClosedError() from err
                if not self._outage_logged:
                    self._outage_logged = True
                    _log.warning(
                        "publishing to the stream failed; trying again",
                        server=self.url,
                        error=_reason(err),
                    )
                missing = missing + 1 if isinstance(err, jse.NoStreamResponseError) else 0
                if missing and missing % 20 == 0:  # deleted? made again, as at start
                    with contextlib.suppress(*TRANSIENT, jse.APIError, ConfigurationError):
                        await self.ensure()
            await asyncio.sleep(wait)
            wait = min(wait * 2, 1.0)

    def job_key(self, job_id: str) -> str:
        """The lease key of ``job_id``."""
        return f"job.{token(job_id)}"

    async def claim(self, msg_id: str, seq: int) -> int | None:
        """Claim the event published as ``msg_id`` for the stream message ``seq``, before
        dispatching it: one key-value create, kept for the duplicate window. None when the
        claim is this message's (new, or made by an earlier delivery of the same message,
        whose worker stopped); else the sequence of the other message that claimed it (the
        event was stored twice: do not dispatch this one).

        Raises:
            nats.errors.Error, nats.js.errors.APIError: the bucket could not be written.
        """
        key, value = token(msg_id), str(seq).encode()
        for attempt in range(3):
            try:
                await self.events.create(key, value)
                return None
            except jse.KeyWrongLastSequenceError:
                pass
            except jse.NoStreamResponseError:
                if attempt:
                    raise
                # The bucket is gone (deleted by hand?): made again, as at start.
                self.events = await _events_bucket(self.js, self.settings)
                continue
            try:
                entry = await self.events.get(key)
            except jse.KeyNotFoundError:
                continue  # expired meanwhile: claim it again
            try:
                first = int(entry.value or b"")
            except ValueError:
                first = 0
            return None if first == seq else first
        return None

    async def job_running(self, job: Job) -> bool:
        """Whether a worker holds ``job``'s lease now: the reconciliation sweep's
        ``running`` hook in the distributed mode (only ready and executing jobs are
        looked up)."""
        if job.status not in ("ready", "executing"):
            return False
        try:
            return await self.leases.holder(self.job_key(job.id)) is not None
        except (*TRANSIENT, jse.APIError) as err:
            _log.warning(
                "could not read a job's lease; taking it as held", job_id=job.id, error=_reason(err)
            )
            return True  # unsure: leave the job alone this sweep

    async def close(self) -> None:
        """Close the connection (what was published or acknowledged is flushed first)."""
        if self._closing:
            return
        self._closing = True
        if not self.nc.is_closed:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self.nc.flush(timeout=2)
            # A server that is gone cannot be told goodbye, and nats-py's farewell write can
            # fail in odd ways then (Python 3.12.1's asyncio raises TypeError from
            # writelines on a transport already lost): the connection is closed either way.
            try:
                await self.nc.close()
            except Exception as exc:  # closing must not fail a stop
                _log.debug("closing the NATS connection failed", error=_reason(exc))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def connect(
    url: str,
    settings: NatsSettings | None = None,
    *,
    name: str = "flatjobs",
    timeout: float = 5.0,
) -> Broker:
    """Connect to the NATS server at ``url`` and put the stream, consumers and bucket in
    place (created on first use, checked after): ``async with await connect(url) as broker``.

    The first connection is tried for about ``timeout`` seconds; once connected, a lost
    connection is retried forever, and what was being published or acknowledged waits.

    Raises:
        ConfigurationError: ``url`` is not a NATS URL; the server cannot be reached, has no
            JetStream, or is older than 2.11; or the stream exists with other settings.
            The message never shows credentials.
    """
    settings = settings or NatsSettings()
    check_url(url)
    check_seconds("timeout", timeout, positive=True)
    shown = shown_url(url)
    events = _Events()
    attempts = 3  # a refused connection fails in about 1.5 s; a silent host, in `timeout`
    try:
        async with asyncio.timeout(timeout + 2.0):
            nc = await nats.connect(
                servers=[url],
                name=name,
                connect_timeout=max(1, min(2, int(timeout))),
                reconnect_time_wait=0.5,
                max_reconnect_attempts=attempts,
                error_cb=events.error,
                disconnected_cb=events.disconnected,
                reconnected_cb=events.reconnected,
            )
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        cause = events.errors[-1] if events.errors else exc
        raise ConfigurationError(
            f"cannot connect to the NATS server at {shown} ({_reason(cause)}): is it running, "
            "and is the URL right?"
        ) from None
    try:
        if nc.connected_server_version.major < 2 or (
            nc.connected_server_version.major == 2
            and nc.connected_server_version.minor < _MIN_SERVER[1]
        ):
            raise ConfigurationError(
                f"the NATS server at {shown} is version {nc.connected_server_version}: the "
                "distributed mode needs 2.11 or newer (per-message TTLs)"
            )
        js = nc.jetstream(timeout=5.0)
        try:
            await js.account_info()
        except (nats.errors.Error, jse.APIError) as exc:
            raise ConfigurationError(
                f"the NATS server at {shown} has no JetStream ({_reason(exc)}): start it "
                "with -js (or `jetstream: enabled` in its configuration)"
            ) from None
        kv = await _bucket(js, settings)
        dispatched = await _events_bucket(js, settings)
        broker = Broker(nc, js, kv, dispatched, settings, url)
        await broker.ensure()
    except BaseException:
        await nc.close()
        raise
    # Connected: from now on a lost server is waited for, forever.
    nc.options["max_reconnect_attempts"] = -1
    events.broker = broker
    return broker


class _Events:
    """The connection's callbacks: the first connection's errors are kept (for the
    message if it fails), later ones go to the broker."""

    def __init__(self) -> None:
        self.broker: Broker | None = None
        self.errors: list[Exception] = []

    async def error(self, exc: Exception) -> None:
        if self.broker is None:
            self.errors.append(exc)
        else:
            await self.broker._on_error(exc)

    async def disconnected(self) -> None:
        if self.broker is not None:
            await self.broker._on_disconnected()

    async def reconnected(self) -> None:
        if self.broker is not None:
            await self.broker._on_reconnected()


async def _bucket(js: JetStreamContext, settings: NatsSettings) -> KeyValue:
    try:
        return await js.create_key_value(
            bucket=settings.bucket,
            description="flatjobs: job leases and ingress cursors",
            history=1,
            storage=StorageType.FILE,
            replicas=settings.replicas,
        )
    except jse.BadRequestError as err:
        if err.err_code != 10058:  # exists with another configuration: use it as it is
            raise
    kv = await js.key_value(settings.bucket)
    info = await js.stream_info(f"KV_{settings.bucket}")
    if not info.config.allow_msg_ttl:
        raise ConfigurationError(
            f"the key-value bucket {settings.bucket} does not allow per-message TTLs, which "
            "leases need: delete it (it holds only leases and cursors) and start again"
        )
    return kv


async def _events_bucket(js: JetStreamContext, settings: NatsSettings) -> KeyValue:
    """The bucket of event ids dispatched, its entries kept for the duplicate window (made
    to agree when the window changed)."""
    name = settings.events_bucket
    try:
        return await js.create_key_value(
            bucket=name,
            description="flatjobs: event ids dispatched, each kept for the duplicate window",
            history=1,
            ttl=settings.duplicate_window,
            storage=StorageType.FILE,
            replicas=settings.replicas,
        )
    except jse.BadRequestError as err:
        if err.err_code != 10058:  # exists with another configuration
            raise
    info = await js.stream_info(f"KV_{name}")
    max_age = settings.duplicate_window
    if info.config.max_age != max_age:
        info.config.max_age = max_age
        # The bucket's own duplicate window (its writes' ids) may not exceed max_age.
        info.config.duplicate_window = min(120.0, max_age)
        await js.update_stream(info.config)
        _log.info("updated how long event ids are kept", bucket=name, seconds=max_age)
    return await js.key_value(name)
