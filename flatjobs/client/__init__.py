"""``FlatfileClient``: an aiohttp client for Flatfile's REST API.

The client owns every URL: each API group builds its paths through
:class:`~flatjobs.client.Endpoint`, which quotes every id as one path segment.
"""

from ._client import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._client import FlatfileClient as FlatfileClient
from ._events import EventsAPI as EventsAPI
from ._jobs import JobsAPI as JobsAPI
from ._secrets import SecretsAPI as SecretsAPI
from ._transport import Endpoint as Endpoint
from ._transport import Page as Page
from ._transport import RetryPolicy as RetryPolicy
from ._transport import segment as segment
from ._transport import set_testing as set_testing

__all__ = [
    "DEFAULT_BASE_URL",
    "Endpoint",
    "EventsAPI",
    "FlatfileClient",
    "JobsAPI",
    "Page",
    "RetryPolicy",
    "SecretsAPI",
    "segment",
    "set_testing",
]
