"""Helpers for testing Flatfile listeners and job handlers, and flatjobs' pytest plugin.

The plugin is registered by entry point when flatjobs is installed; its fixtures need
pytest-asyncio (they are skipped from registration without it, so your other tests are
never affected). Fixtures:

``flatfile_emulator``
    a running :class:`flatjobs.emulator.Emulator` (one per test).
``flatfile_client``
    a :class:`flatjobs.FlatfileClient` bound to that emulator.

Helpers: :func:`make_event` builds a realistic raw event; :func:`capture_logs` (structlog's)
captures flatjobs' log lines so you can assert on them; :func:`run_job` plays a user
clicking an action and returns the job once your listener has finished it.

A complete test of a handler::

    from flatjobs import Jobs, Listener
    from flatjobs.testing import run_job

    jobs = Jobs()

    @jobs.handle("workbook:export")
    async def export(event, tick):
        await tick(50, "half way")
        return "Exported"

    async def test_export_completes(flatfile_emulator):
        job = await run_job(Listener().use(jobs), flatfile_emulator, "workbook:export")
        assert job.status == "complete"
        assert job.outcome.message == "Exported"
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from structlog.testing import capture_logs

from .client import FlatfileClient
from .emulator import TERMINAL, Emulator
from .lifecycle import CompletionValue, _check_progress, _eta, completion_details
from .models import Job, JobCompleteDetails

if TYPE_CHECKING:
    import pytest

    from .listener import Listener

__all__ = ["RecordingTick", "capture_logs", "make_event", "run_job"]

_ids = itertools.count(1)

_CONTEXT_KEY = {"sheet": "sheetId", "workbook": "workbookId", "file": "fileId",
                "document": "documentId", "space": "spaceId"}  # fmt: skip


def make_event(
    topic: str = "job:ready",
    *,
    job: str | None = None,
    job_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    payload: Mapping[str, Any] | None = None,
    input: Mapping[str, Any] | None = None,
    is_part: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """A realistic raw event (wire JSON), ids filled in.

    For a job topic, give ``job="workbook:export"``: the payload gets ``job``, ``domain``,
    ``operation``, ``status`` and ``isPart``, and the context a ``jobId`` and the id of the
    job's source (``workbookId``, ``sheetId``, ...). ``context`` and ``payload`` entries
    override the generated ones; other keyword arguments become top-level fields.

    >>> make_event(job="sheet:dedupe")["payload"]["job"]
    'sheet:dedupe'
    """
    n = next(_ids)
    ctx: dict[str, Any] = {
        "accountId": "us_acc_test",
        "environmentId": "us_env_test",
        "spaceId": "us_sp_test",
        "workbookId": "us_wb_test",
        "actorId": "us_usr_test",
    }
    body: dict[str, Any] = {}
    domain = topic.split(":", 1)[0]
    if job is not None:
        job_domain, _, operation = job.partition(":")
        ctx[_CONTEXT_KEY.get(job_domain, "workbookId")] = f"us_{job_domain[:2]}_test"
        ctx["jobId"] = job_id or f"us_jb_test{n:05d}"
        ctx["actionName"] = job
        body = {"job": job, "domain": job_domain, "operation": operation,
                "status": "ready" if topic == "job:ready" else "executing", "isPart": is_part}  # fmt: skip
        if input is not None:
            body["input"] = dict(input)
    elif job_id is not None:
        ctx["jobId"] = job_id
    ctx.update(context or {})
    body.update(payload or {})
    return {
        "id": f"us_evt_test{n:05d}",
        "topic": topic,
        "domain": domain,
        "context": ctx,
        "payload": body,
        "createdAt": "2026-11-22T12:00:00.000Z",
        **fields,
    }


class RecordingTick:
    """A stand-in for :class:`flatjobs.Tick` in unit tests of a handler called directly.

    It validates and records progress like the real one, without any API::

        tick = RecordingTick()
        result = await export(FlatfileEvent(make_event(job="workbook:export")), tick)
        assert tick.updates[-1].progress == 90
    """

    def __init__(self, job_id: str = "us_jb_test") -> None:
        self.job_id = job_id
        self.updates: list[ProgressUpdate] = []
        self.completion: JobCompleteDetails | None = None
        self.cancelled = False

    def __call__(
        self,
        progress: float,
        info: str | None = None,
        *,
        eta: dt.datetime | dt.timedelta | None = None,
    ) -> Awaitable[None]:
        self.updates.append(ProgressUpdate(_check_progress(progress), info, _eta(eta)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def complete_with(self, value: CompletionValue) -> None:
        """Record what the job would complete with."""
        self.completion = completion_details(value)


@attrs.frozen
class ProgressUpdate:
    """One ``tick(...)`` call a :class:`RecordingTick` saw."""

    progress: float
    info: str | None
    eta: dt.datetime | None


async def run_job(
    listener: Listener,
    emulator: Emulator,
    job: str,
    *,
    input: Mapping[str, Any] | None = None,
    source: str | None = None,
    timeout: float = 10.0,
) -> Job:
    """Trigger ``job`` on the emulator as a user would and feed every event the emulator
    emits to ``listener``, one at a time, until the job has ended; return the final job.

    Events of parts and ``job:parts-completed`` flow too, so multi-part jobs finish. The
    listener's client is bound to the emulator for the duration of the call.

    Raises:
        TimeoutError: the job had not ended within ``timeout`` seconds.
    """
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    emulator.state.on_event(queue.put_nowait)
    try:
        created = emulator.trigger(job, input=input, source=source)
        async with asyncio.timeout(timeout), listener.bound(emulator.client()):
            while not (emulator.job(created.id).status in TERMINAL and queue.empty()):
                await listener.dispatch(await queue.get())
        return emulator.job(created.id)
    except TimeoutError:
        status = emulator.job(created.id).status
        raise TimeoutError(f"job {job} ({created.id}) had not ended after {timeout:g}s: "
                           f"it is {status}") from None  # fmt: skip
    finally:
        emulator.state.off_event(queue.put_nowait)


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixtures need pytest-asyncio
    _HAVE_PYTEST_ASYNCIO = False
else:
    _HAVE_PYTEST_ASYNCIO = True

if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def flatfile_emulator() -> AsyncIterator[Emulator]:
        """A running emulator; see :class:`flatjobs.emulator.Emulator`."""
        async with Emulator() as emu:
            yield emu

    @pytest_asyncio.fixture
    async def flatfile_client(flatfile_emulator: Emulator) -> AsyncIterator[FlatfileClient]:
        """A :class:`flatjobs.FlatfileClient` bound to ``flatfile_emulator``."""
        async with flatfile_emulator.client() as client:
            yield client


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "flatjobs: tests of Flatfile job handlers")
