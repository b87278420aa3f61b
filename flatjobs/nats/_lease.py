"""Leases in a NATS key-value bucket: one holder at a time, fenced by revision.

A lease is a key whose every write is a compare-and-set on the key's last revision (its
stream sequence, which only grows) and carries a per-message TTL. Taking it is a write
that expects no value; renewing and releasing are writes that expect the revision the
holder last wrote. A holder that stalled past the TTL finds its next write refused: it has
been *fenced*, and must not act as the holder any more (above all, not acknowledge the
message of a job another worker now owns: JetStream accepts a late acknowledgement from a
stale delivery, nats-server#4786). A released lease is a delete marker that expires a
second later, so a bucket of millions of finished jobs holds nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

import attrs
import nats.js.errors as jse
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

__all__ = ["Lease", "LeaseLost", "Leases"]

_WRONG_LAST: Final = frozenset({10071, 10164})  # wrong last sequence (per subject)
_RELEASED_TTL: Final = "1s"


class LeaseLost(Exception):
    """The lease lapsed and another holder may have it: this holder is fenced."""


@attrs.define
class Lease:
    """A lease held: its key, and the revision its holder last wrote (the fencing token)."""

    key: str
    revision: int
    ttl: int


def _wrong_last(err: jse.APIError) -> bool:
    return err.err_code in _WRONG_LAST or isinstance(err, jse.KeyWrongLastSequenceError)


class Leases:
    """Leases in ``bucket`` held by ``owner``.

    Args:
        js: the JetStream context.
        kv: the bucket, bound (for reads).
        owner: who holds what this object takes (a worker's id, shown to other workers).
    """

    def __init__(self, js: JetStreamContext, kv: KeyValue, bucket: str, owner: str) -> None:
        self._js = js
        self._kv = kv
        self._bucket = bucket
        self.owner = owner

    def _value(self, ttl: int, note: dict[str, Any]) -> bytes:
        return json.dumps({"owner": self.owner, "until": time.time() + ttl, **note}).encode()

    async def _write(self, key: str, value: bytes, last: int, ttl: str) -> int:
        ack = await self._js.publish(
            f"$KV.{self._bucket}.{key}",
            value,
            headers={"Nats-Expected-Last-Subject-Sequence": str(last), "Nats-TTL": ttl},
        )
        return int(ack.seq)

    async def acquire(self, key: str, ttl: int, **note: Any) -> Lease | None:
        """Take the lease on ``key`` for ``ttl`` seconds; None while another holds it.

        ``note`` is stored with the owner in the lease's value, for other workers to read
        (:meth:`holder`).
        """
        value = self._value(ttl, note)
        last = 0
        for _ in range(3):
            try:
                return Lease(key, await self._write(key, value, last, f"{ttl}s"), ttl)
            except jse.APIError as err:
                if not _wrong_last(err):
                    raise
            # Something is there: a holder, or a released (deleted) lease's marker.
            try:
                await self._kv.get(key)
            except jse.KeyNotFoundError as gone:
                last = (gone.entry.revision or 0) if gone.entry is not None else 0
                continue
            return None
        return None

    async def renew(self, lease: Lease, **note: Any) -> None:
        """Extend ``lease`` by its TTL.

        Raises:
            LeaseLost: it lapsed (whether or not another took it since).
        """
        try:
            lease.revision = await self._write(
                lease.key, self._value(lease.ttl, note), lease.revision, f"{lease.ttl}s"
            )
        except jse.APIError as err:
            if _wrong_last(err):
                raise LeaseLost(lease.key) from None
            raise

    async def release(self, lease: Lease) -> bool:
        """Give ``lease`` up; False if it had lapsed already (this holder was fenced, or
        no one took it since: see :meth:`holder`)."""
        try:
            await self._js.publish(
                f"$KV.{self._bucket}.{lease.key}",
                b"",
                headers={
                    "KV-Operation": "DEL",
                    "Nats-Expected-Last-Subject-Sequence": str(lease.revision),
                    "Nats-TTL": _RELEASED_TTL,
                },
            )
        except jse.APIError as err:
            if _wrong_last(err):
                return False
            raise
        return True

    async def holder(self, key: str) -> dict[str, Any] | None:
        """The value of the live lease on ``key`` (``owner``, ``until`` and its note), or
        None when no one holds it."""
        try:
            entry = await self._kv.get(key)
        except jse.KeyNotFoundError:
            return None
        try:
            value = json.loads(entry.value or b"{}")
        except ValueError:
            value = None
        return value if isinstance(value, dict) else {}
