"""``FlatfileClient``: an aiohttp client for Flatfile's REST API.

The client owns every URL: each API group builds its paths through
:class:`~flatjobs.client.Endpoint`, which quotes every id as one path segment.
"""

from ._client import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._client import FlatfileClient as FlatfileClient
from ._events import EventsAPI as EventsAPI
from ._files import DocumentsAPI as DocumentsAPI
from ._files import FilesAPI as FilesAPI
from ._files import SpacesAPI as SpacesAPI
from ._jobs import JobsAPI as JobsAPI
from ._record import Record as Record
from ._records import RecordPage as RecordPage
from ._records import RecordsAPI as RecordsAPI
from ._records import UpdateResult as UpdateResult
from ._secrets import SecretsAPI as SecretsAPI
from ._sheets import SheetsAPI as SheetsAPI
from ._sheets import WorkbooksAPI as WorkbooksAPI
from ._transport import Endpoint as Endpoint
from ._transport import Page as Page
from ._transport import RetryPolicy as RetryPolicy
from ._transport import segment as segment
from ._transport import set_testing as set_testing

__all__ = [
    "DEFAULT_BASE_URL",
    "DocumentsAPI",
    "Endpoint",
    "EventsAPI",
    "FilesAPI",
    "FlatfileClient",
    "JobsAPI",
    "Page",
    "Record",
    "RecordPage",
    "RecordsAPI",
    "RetryPolicy",
    "SecretsAPI",
    "SheetsAPI",
    "SpacesAPI",
    "UpdateResult",
    "WorkbooksAPI",
    "segment",
    "set_testing",
]
