"""flatjobs: Flatfile job handlers for asyncio Python.

>>> from flatjobs import Jobs, Listener
>>> jobs = Jobs()
>>> @jobs.handle("workbook:export")
... async def export(event, tick):
...     await tick(50, "half way")
...     return "Exported 1,204 rows"
>>> listener = Listener().use(jobs)
"""

from __future__ import annotations

from typing import Any

from .client import (
    EventsAPI as EventsAPI,
)
from .client import (
    FlatfileClient as FlatfileClient,
)
from .client import (
    JobsAPI as JobsAPI,
)
from .client import (
    Page as Page,
)
from .client import (
    RetryPolicy as RetryPolicy,
)
from .client import (
    SecretsAPI as SecretsAPI,
)
from .client import (
    set_testing as set_testing,
)
from .errors import (
    ConfigurationError as ConfigurationError,
)
from .errors import (
    FlatfileAPIError as FlatfileAPIError,
)
from .errors import (
    FlatfileConnectionError as FlatfileConnectionError,
)
from .errors import (
    FlatfileError as FlatfileError,
)
from .errors import (
    InvalidEventError as InvalidEventError,
)
from .errors import (
    InvalidRequestError as InvalidRequestError,
)
from .errors import (
    JobCancelled as JobCancelled,
)
from .errors import (
    JobError as JobError,
)
from .errors import (
    JobTimeout as JobTimeout,
)
from .errors import (
    SecretNotFound as SecretNotFound,
)
from .errors import (
    UnexpectedResponseError as UnexpectedResponseError,
)
from .event import (
    FlatfileEvent as FlatfileEvent,
)
from .jobs import (
    Jobs as Jobs,
)
from .lifecycle import (
    DEFAULT_PROGRESS_INTERVAL as DEFAULT_PROGRESS_INTERVAL,
)
from .lifecycle import (
    JobLifecycle as JobLifecycle,
)
from .lifecycle import (
    JobResult as JobResult,
)
from .lifecycle import (
    job_lifecycle as job_lifecycle,
)
from .lifecycle import (
    observe_jobs as observe_jobs,
)
from .listener import (
    CallbackFailure as CallbackFailure,
)
from .listener import (
    DispatchResult as DispatchResult,
)
from .listener import (
    Listener as Listener,
)
from .models import *  # noqa: F403 - models.__all__ is the list of wire models
from .models import __all__ as _models_all
from .runner import (
    Runner as Runner,
)
from .runner import (
    RunStats as RunStats,
)
from .runner import (
    run as run,
)
from .sources import (
    EventSource as EventSource,
)
from .sources import (
    MemorySource as MemorySource,
)
from .sources import (
    PollingSource as PollingSource,
)
from .tick import (
    Tick as Tick,
)

__all__ = [
    "DEFAULT_PROGRESS_INTERVAL",
    "CallbackFailure",
    "ConfigurationError",
    "DispatchResult",
    "EventsAPI",
    "FlatfileAPIError",
    "FlatfileClient",
    "FlatfileConnectionError",
    "FlatfileError",
    "FlatfileEvent",
    "InvalidEventError",
    "InvalidRequestError",
    "UnexpectedResponseError",
    "JobCancelled",
    "JobError",
    "JobLifecycle",
    "JobResult",
    "JobTimeout",
    "Jobs",
    "JobsAPI",
    "Listener",
    "EventSource",
    "MemorySource",
    "Page",
    "PollingSource",
    "RetryPolicy",
    "RunStats",
    "Runner",
    "SecretNotFound",
    "SecretsAPI",
    "Tick",
    "job_lifecycle",
    "observe_jobs",
    "run",
    "set_testing",
    *_models_all,
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._meta import version

        return version()
    raise AttributeError(f"module 'flatjobs' has no attribute {name!r}")
