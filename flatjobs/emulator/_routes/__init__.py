"""The ``/v1`` routes, resource by resource: each module holds the handlers of a resource
(a class whose ``routes`` table names them), which turn a request into a call on
:class:`~flatjobs.emulator.PlatformState` (jobs, events, secrets) or
:class:`~flatjobs.emulator.DataStore` (the data) and its answer into a response."""

from __future__ import annotations

from aiohttp import web

from flatjobs.emulator._data import DataStore
from flatjobs.emulator._pubnub import PushServer
from flatjobs.emulator._state import PlatformState

from ._events import EventRoutes, SecretRoutes
from ._files import EntitlementRoutes, FileRoutes
from ._jobs import JobRoutes
from ._records import CommitRoutes, RecordRoutes
from ._resource import Resource
from ._spaces import DocumentRoutes, SpaceRoutes
from ._workbooks import SheetRoutes, WorkbookRoutes

__all__ = ["RESOURCES", "ROUTES", "add_routes"]

RESOURCES: tuple[type[Resource], ...] = (
    JobRoutes,
    EventRoutes,
    SecretRoutes,
    SpaceRoutes,
    DocumentRoutes,
    WorkbookRoutes,
    SheetRoutes,
    RecordRoutes,
    CommitRoutes,
    FileRoutes,
    EntitlementRoutes,
)
ROUTES = tuple(name for resource in RESOURCES for _, _, name, _ in resource.routes)
"""Every route name the emulator serves, for :class:`flatjobs.emulator.Fault` ``routes``."""


def add_routes(
    app: web.Application, state: PlatformState, data: DataStore, push: PushServer | None
) -> None:
    """Serve every resource's routes on ``app``, each under its route name."""
    for resource in RESOURCES:
        handlers = resource(state, data, push)
        for method, path, name, attr in resource.routes:
            app.router.add_route(method, path, getattr(handlers, attr), name=name)
