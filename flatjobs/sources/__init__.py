"""Event sources: where a runner's events come from.

An :class:`EventSource` is anything that can be iterated with ``async for`` and yields
raw events (wire JSON, possibly malformed: the runner checks them where they enter). Its
optional ``aclose()`` is awaited when the runner stops. A source delivers each event id
once: de-duplication is its job. Those that ship with flatjobs:

* :class:`PushSource` takes events pushed on Flatfile's own channel, the feed filling any
  gap: the lowest latency;
* :class:`PollingSource` polls ``GET /v1/events`` of an environment;
* :class:`MemorySource` yields what a test puts in it.
"""

from flatjobs.client._transport import DEFAULT_MAX_ANSWER_BYTES as DEFAULT_MAX_ANSWER_BYTES

from ._base import Delivery as Delivery
from ._base import EventSource as EventSource
from ._base import SeenIds as SeenIds
from ._base import event_key as event_key
from ._memory import MemorySource as MemorySource
from ._polling import PollingSource as PollingSource
from ._push import DEFAULT_PUSH_ORIGIN as DEFAULT_PUSH_ORIGIN
from ._push import PushSource as PushSource

__all__ = [
    "DEFAULT_MAX_ANSWER_BYTES",
    "DEFAULT_PUSH_ORIGIN",
    "Delivery",
    "EventSource",
    "MemorySource",
    "PollingSource",
    "PushSource",
    "SeenIds",
    "event_key",
]
