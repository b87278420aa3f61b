"""``opentelemetry-instrument`` turns flatjobs' spans on by itself (an entry point).

``opentelemetry-instrument flatjobs run app:listener`` (from ``opentelemetry-distro``)
configures the SDK from ``OTEL_*`` variables and calls every installed instrumentor's
``instrument()``; this is flatjobs', registered as the ``flatjobs`` entry point of the
``opentelemetry_instrumentor`` group. It lives apart from :mod:`flatjobs.otel` because
``BaseInstrumentor`` is slow to import.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from . import otel

__all__ = ["FlatjobsInstrumentor"]


class FlatjobsInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Adds :class:`flatjobs.otel.OpenTelemetry` while instrumented."""

    _remove: Callable[[], None] | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """No package beyond flatjobs itself."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        self._remove = otel.instrument(kwargs.get("tracer_provider"))

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None
