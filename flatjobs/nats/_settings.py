"""The distributed mode's settings, and how ids become subject tokens and KV keys."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Final

import attrs
import yarl

from flatjobs.errors import ConfigurationError
from flatjobs.events._topics import JOB_RUNNING_TOPICS
from flatjobs.log import register_secret

__all__ = ["RUN_TOPICS", "NatsSettings", "shown_url", "token"]

RUN_TOPICS: Final = frozenset(JOB_RUNNING_TOPICS)
"""The topics whose dispatch runs a job's lifecycle: they take the job's lease."""

_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PREFIX: Final = re.compile(r"[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,3}")
_SAFE: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
_DAY: Final = 86_400


def token(value: str) -> str:
    """``value`` as one NATS subject token, KV key segment and message id.

    Subjects and keys have a narrow alphabet (no ``.``, ``*``, ``>``, spaces, ``/`` in
    subjects...). A value made of letters, digits, ``_`` and ``-`` (Flatfile's ids) is
    kept as it is, so subjects stay readable; anything else becomes ``=`` and a digest,
    which cannot collide with a kept value (``=`` is not in their alphabet).

    >>> token("us_jb_7Hx2")
    'us_jb_7Hx2'
    >>> token("a.b*>/?")
    '=073b9699f5c786c2cf9feb166cf33d1c'
    """
    if _SAFE.fullmatch(value):
        return value
    return "=" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def shown_url(url: str) -> str:
    """``url`` safe to show: user, password or token replaced by ``***``.

    >>> shown_url("nats://app:s3cret@nats.internal:4222")
    'nats://***@nats.internal:4222'
    """
    try:
        parsed = yarl.URL(url)
    except ValueError:
        return "(an unreadable URL)"
    if parsed.user is None and parsed.password is None:
        return str(parsed)
    host = parsed.host or ""
    port = f":{parsed.explicit_port}" if parsed.explicit_port else ""
    return f"{parsed.scheme}://***@{host}{port}{parsed.raw_path if parsed.raw_path != '/' else ''}"


def check_url(url: str) -> str:
    """``url`` if it names a NATS server (its credentials registered as secrets, so no log
    line shows them), else :class:`ConfigurationError` (the value itself is not echoed)."""
    try:
        parsed = yarl.URL(url)
    except ValueError:
        parsed = yarl.URL()
    for secret in (parsed.user, parsed.password):
        if secret:
            register_secret(secret)
    if parsed.scheme not in ("nats", "tls", "ws", "wss") or not parsed.host:
        raise ConfigurationError(
            "the NATS URL must look like nats://HOST:4222 (or tls://, ws://, wss://), with "
            "any credentials as nats://USER:PASSWORD@HOST:4222 (the value is not shown: it "
            "may hold a secret)"
        )
    return url


@attrs.frozen
class NatsSettings:
    """Where and how the distributed mode keeps its work on NATS JetStream.

    The first process to start creates the stream, its consumers and the key-value bucket
    with these settings; every process of one deployment must be started with the same.
    Two deployments (two apps, or staging beside production) share a server safely under
    different ``stream`` names.

    >>> settings = NatsSettings(ack_wait=10)
    >>> settings.lease_ttl, settings.bucket, settings.run_subjects
    (8, 'FLATJOBS', 'FLATJOBS.run.*')

    Attributes:
        stream: the stream's name; also the subjects' prefix and the bucket's name unless
            those are given.
        subject_prefix: the first token(s) of every subject (default: ``stream``).
        kv_bucket: the key-value bucket of leases and cursors (default: ``stream``); the
            event ids dispatched are kept beside it, in ``<kv_bucket>-events``.
        partitions: how many ordered lanes events that do not run a job are spread over,
            by job (or sheet, workbook, space). Fixed once the stream exists: change it
            only on a drained stream, by deleting the stream.
        ack_wait: seconds a worker may go silent before its message goes to another
            worker; leases last ``0.8 * ack_wait`` (whole seconds), and both are renewed
            every third of that while a job runs. A stopped worker's jobs end within
            ``ack_wait``, or 1.5 heartbeats of their handler when that is longer (a job
            still heartbeating runs somewhere: its worker lost the broker, not the
            platform). At most a day.
        max_deliver: deliveries after which a message is poison: it is terminated and
            logged (and its job, if executing, failed) instead of handled again.
        max_ack_pending: messages of running jobs out at once, cluster-wide.
        duplicate_window: seconds within which an event published twice (by two ingress
            processes, or one reading the feed again) is dispatched once: the stream
            drops the second copy while it remembers the id (a restarted server remembers
            only the ids of messages it still holds), and a worker that takes a copy
            anyway finds the event id claimed in the events bucket, which keeps each id
            this long. At most a week.
        replicas: stream and bucket replicas (1 on a single server, 3 on a cluster).
        fetch_batch: the most job messages a worker takes in one pull.
    """

    stream: str = "FLATJOBS"
    subject_prefix: str | None = None
    kv_bucket: str | None = None
    partitions: int = 16
    ack_wait: float = 45.0
    max_deliver: int = 5
    max_ack_pending: int = 20_000
    duplicate_window: float = 600.0
    replicas: int = 1
    fetch_batch: int = 16

    def __attrs_post_init__(self) -> None:
        letters = "1 to 64 letters, digits, '_' or '-'"
        for name, value, pattern, what in (
            ("stream", self.stream, _NAME, letters),
            ("subject_prefix", self.subject_prefix, _PREFIX, "dot-separated tokens of " + letters),
            ("kv_bucket", self.kv_bucket, _NAME, letters),
        ):
            if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
                raise ValueError(f"{name} must be {what}, got {value!r}")
        for name, number, least, most in (
            ("ack_wait", self.ack_wait, 2, _DAY),
            ("duplicate_window", self.duplicate_window, 1, 7 * _DAY),
        ):
            if (
                isinstance(number, bool)
                or not isinstance(number, int | float)
                or not least <= number <= most  # NaN and infinity too
            ):
                raise ValueError(
                    f"{name} must be a number of seconds from {least} to {most}, got {number!r}"
                )
        for name, count, top in (
            ("partitions", self.partitions, 1024),
            ("max_deliver", self.max_deliver, 10**6),
            ("max_ack_pending", self.max_ack_pending, 10**9),
            ("replicas", self.replicas, 5),
            ("fetch_batch", self.fetch_batch, 256),
        ):
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= top:
                raise ValueError(f"{name} must be a whole number 1..{top}, got {count!r}")

    @property
    def prefix(self) -> str:
        """The subjects' prefix."""
        return self.subject_prefix or self.stream

    @property
    def bucket(self) -> str:
        """The key-value bucket's name."""
        return self.kv_bucket or self.stream

    @property
    def run_subjects(self) -> str:
        """The subjects of events that run a job, one token per job id."""
        return f"{self.prefix}.run.*"

    @property
    def event_subjects(self) -> str:
        """The subjects other events are published on, one token per ordering key."""
        return f"{self.prefix}.ev.*"

    def partition_subjects(self, partition: int) -> str:
        """The subjects the stream stores partition ``partition``'s events under."""
        return f"{self.prefix}.ev.{partition}.*"

    @property
    def partition_transform(self) -> str:
        """The stream's subject transform: the server spreads events over partitions."""
        return f"{self.prefix}.ev.{{{{partition({self.partitions},1)}}}}.{{{{wildcard(1)}}}}"

    @property
    def events_bucket(self) -> str:
        """The key-value bucket of the event ids dispatched (kept ``duplicate_window``)."""
        return f"{self.bucket}-events"

    @property
    def lease_ttl(self) -> int:
        """Whole seconds a lease lasts without renewal: shorter than ``ack_wait``, so a dead
        worker's lease has lapsed by the time its message is delivered again."""
        return max(1, math.floor(self.ack_wait * 0.8))

    @property
    def renew_every(self) -> float:
        """Seconds between renewals of a running job's lease and message."""
        return self.lease_ttl / 3
