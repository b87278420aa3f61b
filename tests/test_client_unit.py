"""Narrow client unit tests with aioresponses (a mock at the HTTP seam).

aioresponses 0.7.9 breaks on aiohttp 3.14 (SPEC §7), so these run in their own nox
session with a test-only ``aiohttp<3.14`` constraint; everything else is tested against
real local servers.
"""

from __future__ import annotations

import aiohttp
import pytest
from aioresponses import aioresponses

from flatjobs import FlatfileAPIError, FlatfileClient, FlatfileConnectionError, RetryPolicy

pytestmark = pytest.mark.aioresponses
BASE = "http://flatfile.test"


async def test_timeout_then_success_is_retried() -> None:
    with aioresponses() as mocked:
        mocked.get(f"{BASE}/v1/jobs/j", exception=TimeoutError())
        mocked.get(f"{BASE}/v1/jobs/j", payload={"data": {"id": "j"}})
        async with FlatfileClient(BASE, "tok3n") as client:
            assert (await client.jobs.get("j")).id == "j"


async def test_persistent_connection_errors_surface_as_connection_error() -> None:
    with aioresponses() as mocked:
        for _ in range(2):
            mocked.post(f"{BASE}/v1/jobs/j/ack", exception=aiohttp.ServerDisconnectedError())
        async with FlatfileClient(BASE, "tok3n", retry=RetryPolicy(attempts=2)) as client:
            with pytest.raises(FlatfileConnectionError, match="ServerDisconnectedError") as info:
                await client.jobs.ack("j", progress=1)
    assert isinstance(info.value.__cause__, aiohttp.ServerDisconnectedError)


async def test_non_json_error_body_is_kept_as_text() -> None:
    with aioresponses() as mocked:
        mocked.get(f"{BASE}/v1/jobs/j", status=404, body="not here")
        async with FlatfileClient(BASE, "tok3n") as client:
            with pytest.raises(FlatfileAPIError, match="answered 404: not here"):
                await client.jobs.get("j")
