"""Fault injection: answer a share of chosen requests with an error, a delay or a drop.

Deterministic under a seed: one random draw per matching rule per request, so the same
sequence of requests meets the same faults.
"""

from __future__ import annotations

import fnmatch
import random
from collections import Counter

import attrs

from flatjobs._seconds import check_seconds

__all__ = ["Fault", "FaultInjector", "FaultPlan"]


def _routes(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _rate(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"Fault.rate must be within 0..1, got {value!r}")


def _seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    check_seconds(f"Fault.{attribute.name}", value)


@attrs.frozen(kw_only=True)
class Fault:
    """One fault rule.

    Args:
        routes: route names or globs (``"jobs.ack"``, ``"jobs.*"``, ``"events.list"``); see
            :data:`flatjobs.emulator.ROUTES`.
        rate: the share of matching requests affected, 0..1.
        status: answer with this status instead of handling the request.
        retry_after: with ``status``, send ``Retry-After`` (seconds).
        latency: seconds to wait before handling (or failing) the request.
        drop: close the connection without an answer, before the request is handled.
        drop_after: handle the request, then close the connection without an answer (the
            change is made but the caller never hears of it).
        limit: inject at most this many times.
    """

    routes: tuple[str, ...] = attrs.field(default=("*",), converter=_routes)
    rate: float = attrs.field(default=1.0, validator=_rate)
    status: int | None = None
    retry_after: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_seconds)
    )
    latency: float = attrs.field(default=0.0, validator=_seconds)
    drop: bool = False
    drop_after: bool = False
    limit: int | None = None

    def matches(self, route: str) -> bool:
        """Whether the rule applies to the route named ``route``."""
        return any(fnmatch.fnmatchcase(route, pattern) for pattern in self.routes)


@attrs.frozen
class FaultPlan:
    """What to do to one request: the sum of the rules that fired."""

    latency: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    drop: bool = False
    drop_after: bool = False
    fired: tuple[Fault, ...] = ()


class FaultInjector:
    """The emulator's fault rules (``emulator.faults``)."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self.rules: list[Fault] = []
        self.injected: Counter[Fault] = Counter()

    def add(self, fault: Fault | None = None, /, **kwargs: object) -> Fault:
        """Add a rule: ``faults.add(routes="jobs.ack", rate=0.2, status=503)``."""
        rule = fault if fault is not None else Fault(**kwargs)  # type: ignore[arg-type]
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()

    def reseed(self, seed: int) -> None:
        """Restart the random sequence from ``seed``."""
        self._rng.seed(seed)

    def plan(self, route: str) -> FaultPlan:
        """What to do to one request of ``route``; draws once per matching rule."""
        latency = 0.0
        status: int | None = None
        retry_after: float | None = None
        drop = drop_after = False
        fired: list[Fault] = []
        for rule in self.rules:
            if not rule.matches(route):
                continue
            draw = self._rng.random()
            if draw >= rule.rate or (rule.limit is not None and self.injected[rule] >= rule.limit):
                continue
            self.injected[rule] += 1
            fired.append(rule)
            latency += rule.latency
            if status is None and not drop and not drop_after:
                if rule.status is not None:
                    status, retry_after = rule.status, rule.retry_after
                drop, drop_after = rule.drop, rule.drop_after
        return FaultPlan(latency, status, retry_after, drop, drop_after, tuple(fired))
