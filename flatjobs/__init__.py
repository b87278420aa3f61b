"""flatjobs: Flatfile job handlers for asyncio Python.

>>> import asyncio
>>> from flatjobs import Jobs, Listener
>>> from flatjobs.emulator import Emulator
>>> from flatjobs.testing import run_job
>>> jobs = Jobs()
>>> @jobs.handle("workbook:export")
... async def export(event, tick):
...     await tick(50, "half way")
...     return "Exported 1,204 rows"
>>> listener = Listener().use(jobs)
>>> async def main() -> None:
...     async with Emulator() as emulator:       # a local Flatfile, for tests and development
...         job = await run_job(listener, emulator, "workbook:export")
...     print(job.status, job.outcome.message)
>>> asyncio.run(main())
complete Exported 1,204 rows

What a handler needs is here. The wire models (every field of a job, an event, an
outcome's ``next`` variants...) are in :mod:`flatjobs.models`; the HTTP client's building
blocks in :mod:`flatjobs.client`; the local emulator in :mod:`flatjobs.emulator`; test
helpers in :mod:`flatjobs.testing`; event sources in :mod:`flatjobs.sources`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import FlatfileClient as FlatfileClient
from .client import Record as Record
from .client import RecordPage as RecordPage
from .client import RetryPolicy as RetryPolicy
from .client import set_testing as set_testing
from .errors import ConfigurationError as ConfigurationError
from .errors import FlatfileAPIError as FlatfileAPIError
from .errors import FlatfileConnectionError as FlatfileConnectionError
from .errors import FlatfileError as FlatfileError
from .errors import InvalidEventError as InvalidEventError
from .errors import InvalidRequestError as InvalidRequestError
from .errors import JobAlreadyRunning as JobAlreadyRunning
from .errors import JobCancelled as JobCancelled
from .errors import JobError as JobError
from .errors import JobSkipped as JobSkipped
from .errors import JobTimeout as JobTimeout
from .errors import SecretNotFound as SecretNotFound
from .errors import UnexpectedResponseError as UnexpectedResponseError
from .events._event import FlatfileEvent as FlatfileEvent
from .jobs._lifecycle import job_lifecycle as job_lifecycle
from .jobs._outcomes import MAX_MESSAGE_CHARS as MAX_MESSAGE_CHARS
from .jobs._outcomes import ORPHAN_MESSAGE as ORPHAN_MESSAGE
from .jobs._outcomes import STOPPED_MESSAGE as STOPPED_MESSAGE
from .jobs._outcomes import failure_details as failure_details
from .jobs._registry import Jobs as Jobs
from .jobs._tick import Tick as Tick
from .listener._listener import Listener as Listener
from .models import Job as Job
from .models import JobCompleteDetails as JobCompleteDetails
from .models import JobOutcome as JobOutcome
from .models import JobStatus as JobStatus
from .models import Next as Next
from .observe._instruments import observe_jobs as observe_jobs
from .observe._results import DispatchResult as DispatchResult
from .observe._results import JobResult as JobResult
from .running._runner import Runner as Runner
from .running._runner import RunStats as RunStats
from .running._runner import run as run
from .running._sweep import Reconciler as Reconciler
from .sources import EventSource as EventSource
from .sources import MemorySource as MemorySource
from .sources import PollingSource as PollingSource
from .sources import PushSource as PushSource

if TYPE_CHECKING:  # at run time, imported on first use (see __getattr__)
    from ._health import HealthServer as HealthServer
    from ._health import serve_health as serve_health

__all__ = [  # noqa: RUF022 - grouped by what a user is doing, then sorted
    # listening and jobs
    "DispatchResult",
    "FlatfileEvent",
    "JobResult",
    "Jobs",
    "Listener",
    "Tick",
    "job_lifecycle",
    "observe_jobs",
    # what a job ends with
    "MAX_MESSAGE_CHARS",
    "ORPHAN_MESSAGE",
    "STOPPED_MESSAGE",
    "failure_details",
    "Job",
    "JobCompleteDetails",
    "JobError",
    "JobOutcome",
    "JobStatus",
    "Next",
    # running
    "EventSource",
    "MemorySource",
    "PollingSource",
    "PushSource",
    "Reconciler",
    "RunStats",
    "Runner",
    "run",
    "serve_health",
    "HealthServer",
    # the API
    "FlatfileClient",
    "Record",
    "RecordPage",
    "RetryPolicy",
    "set_testing",
    # errors
    "ConfigurationError",
    "FlatfileAPIError",
    "FlatfileConnectionError",
    "FlatfileError",
    "InvalidEventError",
    "InvalidRequestError",
    "JobAlreadyRunning",
    "JobCancelled",
    "JobSkipped",
    "JobTimeout",
    "SecretNotFound",
    "UnexpectedResponseError",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._meta import version

        return version()
    if name in ("HealthServer", "serve_health"):  # imported on first use: aiohttp.web
        from . import _health

        return getattr(_health, name)
    raise AttributeError(f"module 'flatjobs' has no attribute {name!r}")
