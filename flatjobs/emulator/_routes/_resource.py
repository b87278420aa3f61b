"""What every resource's routes share: the platform they serve, and the shape of a route."""

from __future__ import annotations

from typing import ClassVar

from flatjobs.emulator._data import DataStore
from flatjobs.emulator._pubnub import PushServer
from flatjobs.emulator._state import PlatformState

__all__ = ["Resource", "Route"]

Route = tuple[str, str, str, str]
"""(method, path, route name, handler attribute): the route names are what faults select on."""


class Resource:
    """The handlers of one resource's routes (listed in :attr:`routes`), over the jobs and
    events (``state``), the data, and the push channel (``push``, when served)."""

    routes: ClassVar[tuple[Route, ...]] = ()

    def __init__(self, state: PlatformState, data: DataStore, push: PushServer | None) -> None:
        self.state = state
        self.data = data
        self.push = push
