"""Instruments: what flatjobs tells whoever watches it run (metrics, traces, leases).

An :class:`Instrument` receives a call at each point of an event's and a job's life. Its
methods do nothing by default; subclass it, override what you need, and add it with
:func:`add_instrument`. The Prometheus and OpenTelemetry integrations
(:mod:`flatjobs.prometheus`, :mod:`flatjobs.otel`), the health server's readiness, and the
distributed mode's lease keeper are instruments.

Instruments are called synchronously on the event loop, on the hot path: keep them cheap,
and never let them raise (what they raise is logged and dropped). flatjobs calls them
through :data:`INSTRUMENTS`, the registry: one typed method per hook, so a misspelt hook
is a type error. With no instrument added, the hot path pays one truth test per point.

The hooks come in three kinds:

* points: ``event_received``, ``event_invalid``, ``event_duplicate``, ``event_dispatched``,
  ``event_forwarded``, ``job_started``, ``job_alive``, ``job_ended``, ``job_orphaned``,
  ``progress_sent``, ``http_retry``, ``http_call``;
* scopes, opened and closed in the same task, so that what happens between them happens
  "inside" (a tracer makes spans of them, the inner ones children of the outer):
  ``dispatch_started``/``dispatch_ended`` around one event's dispatch,
  ``job_received``/``job_left`` around one job's lifecycle, and ``http_started``/
  ``http_call`` around one API call (its retries included);
* ``aiohttp_trace_configs``, asked once per HTTP session a :class:`flatjobs.FlatfileClient`
  opens.

For one job handled through a runner, the calls come in this order::

    event_received, event_dispatched,
    dispatch_started
        job_received
            http_started, http_call          (the ack)
            job_alive, job_started
            progress_sent, job_alive ...     (the body's progress, heartbeats)
            http_started, http_call          (complete or fail)
            job_ended
        job_left
    dispatch_ended

>>> class Count(Instrument):
...     def __init__(self) -> None:
...         self.jobs = 0
...     def job_started(self, job_id: str, job_name: str | None) -> None:
...         self.jobs += 1
>>> remove = add_instrument(Count())
>>> remove()
"""

from flatjobs.client._observe import HttpCall as HttpCall
from flatjobs.observe._instruments import INSTRUMENTS as INSTRUMENTS
from flatjobs.observe._instruments import Instrument as Instrument
from flatjobs.observe._instruments import Instruments as Instruments
from flatjobs.observe._instruments import add_instrument as add_instrument
from flatjobs.observe._instruments import event_age as event_age
from flatjobs.observe._instruments import forward as forward
from flatjobs.observe._instruments import instruments as instruments
from flatjobs.observe._instruments import job_outcome as job_outcome
from flatjobs.observe._instruments import label as label
from flatjobs.observe._instruments import observe_jobs as observe_jobs

__all__ = [
    "INSTRUMENTS",
    "HttpCall",
    "Instrument",
    "Instruments",
    "add_instrument",
    "event_age",
    "forward",
    "instruments",
    "job_outcome",
    "label",
    "observe_jobs",
]
