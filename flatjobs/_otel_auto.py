"""``opentelemetry-instrument`` turns flatjobs' spans on by itself (an entry point).

``opentelemetry-instrument flatjobs run app:listener`` (from ``opentelemetry-distro``)
configures the SDK from ``OTEL_*`` variables and calls every installed instrumentor's
``instrument()``; this is flatjobs', registered as the ``flatjobs`` entry point of the
``opentelemetry_instrumentor`` group. It lives apart from :mod:`flatjobs.otel` because
``BaseInstrumentor`` is slow to import.

The launcher also turns on OpenTelemetry's aiohttp instrumentation, for every session of
the process, without arguments: its spans would show the push source's long-poll URL, and
in it the channel's token. :func:`filter_urls`, an ``opentelemetry_post_instrument`` entry
point, has it filter every URL through :func:`flatjobs.otel.url_filter` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from . import otel

__all__ = ["FlatjobsInstrumentor", "filter_urls"]


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


def filter_urls() -> None:
    """Once the launcher has run every instrumentor: when aiohttp's is on, instrument it
    again, the same but for a ``url_filter`` that redacts credentials and secrets."""
    found = otel._aiohttp_instrumentation()
    if found is None:
        return
    instrumentor = found[0]()
    if not instrumentor.is_instrumented_by_opentelemetry:
        return  # off (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS): nothing shows a URL
    # The launcher passed no arguments, so nothing but the filter changes; the dependency
    # check passed already, as it was instrumented. No session exists yet to miss it.
    instrumentor.uninstrument()
    instrumentor.instrument(url_filter=otel.url_filter, skip_dep_check=True)
