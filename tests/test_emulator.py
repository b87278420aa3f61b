"""The emulator follows SPEC §2: state machine, event feed, parts, secrets, auth, faults."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from flatjobs import (
    FlatfileAPIError,
    FlatfileClient,
    FlatfileConnectionError,
    JobOutcome,
    JobStatus,
    RetryPolicy,
)
from flatjobs.emulator import ROUTES, Emulator, Fault
from flatjobs.models import JobConfig, JobUpdate
from flatjobs.testing import client_for


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[FlatfileClient]:
    async with client_for(emu, retry=RetryPolicy(attempts=1)) as c:
        yield c


def topics(emu: Emulator, job_id: str) -> list[str]:
    return [e["topic"] for e in emu.events if e["context"].get("jobId") == job_id]


# ------------------------------------------------------------ setting a job up


async def job_in(emu: Emulator, client: FlatfileClient, status: str) -> str:
    """A job brought to ``status`` through the API, the way a listener would."""
    if status == "created":
        job = await client.jobs.create(
            JobConfig(type="workbook", operation="export", source="us_wb_1")
        )
        return job.id
    job_id = emu.trigger("workbook:export").id
    if status == "ready":
        return job_id
    await client.jobs.ack(job_id, info="Accepted", progress=0)
    if status == "executing":
        return job_id
    if status == "complete":
        await client.jobs.complete(job_id)
    elif status == "failed":
        await client.jobs.fail(job_id, info="boom")
    elif status == "canceled":
        await client.jobs.cancel(job_id)
    return job_id


Call = Callable[[FlatfileClient, str], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "ack": lambda c, j: c.jobs.ack(j, progress=1),
    "complete": lambda c, j: c.jobs.complete(j),
    "fail": lambda c, j: c.jobs.fail(j),
    "cancel": lambda c, j: c.jobs.cancel(j),
    "retry": lambda c, j: c.jobs.retry(j),
    "execute": lambda c, j: c.jobs.execute(j),
    "split": lambda c, j: c.jobs.split(j, 2),
    "outcome_ack": lambda c, j: c.jobs.ack_outcome(j),
}

LEGAL = [
    ("created", "execute", "ready"),
    ("created", "cancel", "canceled"),
    ("ready", "ack", "executing"),
    ("ready", "cancel", "canceled"),
    ("executing", "ack", "executing"),
    ("executing", "complete", "complete"),
    ("executing", "fail", "failed"),
    ("executing", "cancel", "canceled"),
    ("executing", "split", "executing"),
    ("failed", "retry", "ready"),
    ("canceled", "retry", "ready"),
    ("complete", "outcome_ack", "complete"),
    ("failed", "outcome_ack", "failed"),
]
STATUSES = ["created", "ready", "executing", "complete", "failed", "canceled"]
ILLEGAL = [
    (status, call)
    for status in STATUSES
    for call in CALLS
    if not any(s == status and c == call for s, c, _ in LEGAL)
]


@pytest.mark.parametrize(("start", "call", "end"), LEGAL)
async def test_legal_transition(
    emu: Emulator, client: FlatfileClient, start: str, call: str, end: str
) -> None:
    job_id = await job_in(emu, client, start)
    await CALLS[call](client, job_id)
    assert emu.job(job_id).status == end


@pytest.mark.parametrize(("start", "call"), ILLEGAL)
async def test_illegal_transition_answers_4xx_naming_job_status_and_call(
    emu: Emulator, client: FlatfileClient, start: str, call: str
) -> None:
    job_id = await job_in(emu, client, start)
    with pytest.raises(FlatfileAPIError) as info:
        await CALLS[call](client, job_id)
    assert 400 <= info.value.status < 500
    verb = "acknowledge the outcome of" if call == "outcome_ack" else call
    assert f"{verb} job {job_id}" in str(info.value)
    assert start in str(info.value)
    assert emu.job(job_id).status == start


def test_every_call_of_the_state_machine_is_covered() -> None:
    assert len(LEGAL) + len(ILLEGAL) == len(STATUSES) * len(CALLS)


async def test_outcome_can_be_acknowledged_once(emu: Emulator, client: FlatfileClient) -> None:
    job_id = await job_in(emu, client, "complete")
    emu.ack_outcome(job_id)
    with pytest.raises(FlatfileAPIError, match="already acknowledged"):
        await client.jobs.ack_outcome(job_id)


async def test_ack_keeps_progress_info_and_eta_and_start_time(
    emu: Emulator, client: FlatfileClient
) -> None:
    job_id = emu.trigger("sheet:dedupe").id
    eta = dt.datetime(2026, 11, 22, 13, 0, tzinfo=dt.UTC)
    await client.jobs.ack(job_id, info="Accepted", progress=0)
    job = await client.jobs.ack(job_id, progress=40, info="rows", estimated_completion_at=eta)
    assert (job.progress, job.info, job.estimated_completion_at) == (40, "rows", eta)
    assert job.started_at is not None
    assert job.finished_at is None


async def test_complete_keeps_outcome_and_finish_time(
    emu: Emulator, client: FlatfileClient
) -> None:
    job_id = await job_in(emu, client, "executing")
    await client.jobs.complete(job_id, outcome=JobOutcome(message="Done", heading="Yay"))
    job = emu.job(job_id)
    assert job.outcome == JobOutcome(message="Done", heading="Yay")
    assert job.finished_at is not None
    assert job.progress == 100


async def test_retry_resets_the_job_and_emits_ready_again(
    emu: Emulator, client: FlatfileClient
) -> None:
    job_id = await job_in(emu, client, "failed")
    job = await client.jobs.retry(job_id)
    assert (job.status, job.outcome, job.progress) == ("ready", None, 0)
    assert topics(emu, job_id)[-1] == "job:ready"


async def test_progress_outside_0_100_is_rejected(emu: Emulator, client: FlatfileClient) -> None:
    job_id = await job_in(emu, client, "executing")
    # Sent raw: the client itself refuses such a progress before sending it.
    with pytest.raises(FlatfileAPIError, match=r"progress must be a whole number .* got 1e\+300"):
        await client.request("POST", f"/jobs/{job_id}/ack", body={"progress": 1e300})


async def test_patch_updates_but_refuses_estimated_completion_at(
    emu: Emulator, client: FlatfileClient
) -> None:
    job_id = await job_in(emu, client, "executing")
    job = await client.jobs.update(job_id, JobUpdate(metadata={"k": 1}, info="x"))
    assert (job.metadata, job.info) == ({"k": 1}, "x")
    with pytest.raises(FlatfileAPIError, match="estimatedCompletionAt is not a JobUpdate field"):
        await client.request(
            "PATCH", f"/jobs/{job_id}", body={"estimatedCompletionAt": "2026-01-01T00:00:00Z"}
        )


async def test_create_requires_type_operation_and_source(client: FlatfileClient) -> None:
    with pytest.raises(FlatfileAPIError, match=r"missing required field.*source"):
        await client.request("POST", "/jobs", body={"type": "workbook", "operation": "x"})


async def test_a_created_job_waits_for_execute_unless_immediate(
    emu: Emulator, client: FlatfileClient
) -> None:
    manual = await client.jobs.create(
        JobConfig(type="space", operation="configure", source="us_sp_1")
    )
    assert manual.status == "created"
    immediate = await client.jobs.create(
        JobConfig(type="space", operation="configure", source="us_sp_1", trigger="immediate")
    )
    assert immediate.status == "ready"
    assert topics(emu, manual.id) == ["job:created"]
    assert topics(emu, immediate.id) == ["job:created", "job:ready"]


async def test_delete_and_unknown_job(emu: Emulator, client: FlatfileClient) -> None:
    job_id = await job_in(emu, client, "ready")
    await client.jobs.delete(job_id)
    assert topics(emu, job_id)[-1] == "job:deleted"
    with pytest.raises(FlatfileAPIError, match=f"job {job_id} not found") as info:
        await client.jobs.get(job_id)
    assert info.value.status == 404


async def test_list_jobs_filters_and_pages(emu: Emulator, client: FlatfileClient) -> None:
    ids = [emu.trigger("workbook:export").id for _ in range(5)]
    await client.jobs.ack(ids[0], progress=0)
    await client.jobs.split(ids[0], 2)
    page = await client.jobs.list(page_size=2, page_number=3, exclude_child_jobs=True)
    assert [j.id for j in page.items] == ids[4:]
    assert page.pagination is not None
    assert (page.pagination.page_count, page.pagination.total_count) == (3, 5)
    parts = await client.jobs.list(parent_id=ids[0])
    assert len(parts.items) == 2


# ------------------------------------------------------------ the event feed


async def test_job_events_carry_the_payload_shape_of_spec(
    emu: Emulator, client: FlatfileClient
) -> None:
    job_id = emu.trigger("sheet:dedupe", input={"key": "email"}, source="us_sh_9").id
    await client.jobs.ack(job_id, info="Accepted", progress=0)
    await client.jobs.complete(job_id, outcome=JobOutcome(message="ok"))
    emu.ack_outcome(job_id)
    assert topics(emu, job_id) == [
        "job:created",
        "job:ready",
        "job:updated",
        "job:completed",
        "job:outcome-acknowledged",
    ]
    ready = emu.events[1]
    assert ready["domain"] == "job"
    assert ready["payload"] == {
        "job": "sheet:dedupe",
        "domain": "sheet",
        "operation": "dedupe",
        "status": "ready",
        "isPart": False,
        "input": {"key": "email"},
    }
    ctx = ready["context"]
    assert (ctx["jobId"], ctx["sheetId"], ctx["environmentId"]) == (
        job_id,
        "us_sh_9",
        emu.environment_id,
    )
    assert ctx["actionName"] == "sheet:dedupe"
    assert emu.events[3]["payload"]["status"] == "complete"


async def test_failed_job_emits_job_failed_with_info(emu: Emulator, client: FlatfileClient) -> None:
    job_id = await job_in(emu, client, "failed")
    failed = emu.events[-1]
    assert failed["topic"] == "job:failed"
    assert failed["payload"]["info"] == "boom"
    assert failed["context"]["jobId"] == job_id


async def test_feed_is_in_order_and_pages(emu: Emulator, client: FlatfileClient) -> None:
    for _ in range(4):
        emu.trigger("workbook:export")  # 2 events each
    first = await client.events.list(page_size=3, page_number=1)
    rest = await client.events.list(page_size=3, page_number=2)
    last = await client.events.list(page_size=3, page_number=3)
    ids = [e.id for e in first.items + rest.items + last.items]
    assert ids == [e["id"] for e in emu.events]
    assert first.pagination is None  # as the platform: the events list has no pagination


async def test_feed_filters_by_since_topic_domain_and_space(
    emu: Emulator, client: FlatfileClient
) -> None:
    emu.trigger("workbook:export")
    await asyncio.sleep(0.01)
    cut = dt.datetime.now(dt.UTC)
    await asyncio.sleep(0.01)
    second = emu.trigger("workbook:export")
    after = await client.events.list(since=cut)
    assert [e.context.job_id for e in after.items] == [second.id, second.id]
    ready = await client.events.list(topic="job:ready")
    assert len(ready.items) == 2
    assert (await client.events.list(domain="space")).items == []
    assert (await client.events.list(space_id="other")).items == []
    assert len((await client.events.list(space_id="us_sp_emulator")).items) == 4


async def test_acknowledged_events_are_hidden_unless_asked_for(
    emu: Emulator, client: FlatfileClient
) -> None:
    emu.trigger("workbook:export")
    first = emu.events[0]["id"]
    await client.events.ack(first)
    assert first not in [e.id for e in (await client.events.list()).items]
    everything = await client.events.list(include_acknowledged=True)
    acked = next(e for e in everything.items if e.id == first)
    assert acked.acknowledged_at is not None
    assert (await client.events.get(first)).acknowledged_by == "us_usr_emulator"


async def test_events_can_be_created_and_need_their_fields(
    emu: Emulator, client: FlatfileClient
) -> None:
    context = {"accountId": "us_acc_1", "environmentId": emu.environment_id, "spaceId": "s"}
    event = await client.events.create(
        "custom:ping", domain="space", context=context, payload={"n": 1}
    )
    assert emu.events[-1]["id"] == event.id
    assert event.context.environment_id == emu.environment_id
    with pytest.raises(FlatfileAPIError, match=r"missing required field.*payload"):
        await client.request("POST", "/events", body={"topic": "a", "domain": "b", "context": {}})


async def test_feed_requires_an_environment(emu: Emulator) -> None:
    async with client_for(emu) as c:
        with pytest.raises(FlatfileAPIError, match="environmentId is required"):
            await c.request("GET", "/events")


@pytest.mark.parametrize("environment", ["us_env_emulatr", "us_env_emulator/../x?y=1", " "])
async def test_the_feed_of_an_environment_the_emulator_does_not_hold_is_404(
    emu: Emulator, environment: str
) -> None:
    # As the platform: a mistyped environment id is refused, not an empty feed forever.
    emu.trigger("a:b")
    async with client_for(emu, retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(FlatfileAPIError) as info:
            await c.events.list_raw(environment_id=environment)
        assert await c.events.list_raw(environment_id=emu.environment_id)
    assert info.value.status == 404
    assert info.value.body["errors"][0]["key"] == "environmentId"
    assert info.value.detail == (
        f"environment {environment!r} not found (this emulator's is {emu.environment_id})"
    )


# ------------------------------------------------------------ multi-part jobs


@pytest.mark.parametrize(
    ("parts", "expected"),
    [(3, [{"part": 0, "total": 3}, {"part": 1, "total": 3}, {"part": 2, "total": 3}]),
     ([{"rows": "a"}, {"rows": "b"}], [{"rows": "a"}, {"rows": "b"}])],
)  # fmt: skip
async def test_split_creates_ready_parts_with_part_data_and_parent(
    emu: Emulator, client: FlatfileClient, parts: Any, expected: list[dict[str, Any]]
) -> None:
    parent = await job_in(emu, client, "executing")
    await client.jobs.split(parent, parts, run_in_parallel=True)
    children = [j for j in emu.jobs() if j.parent_id == parent]
    assert [j.part_data for j in children] == expected
    assert all(j.status == "ready" for j in children)
    ready = [e for e in emu.events if e["topic"] == "job:ready" and e["payload"]["isPart"]]
    assert [e["context"]["jobId"] for e in ready] == [j.id for j in children]
    assert emu.job(parent).part_execution == "parallel"


@pytest.mark.parametrize("bad", [0, -1, [], [1], "3", True, None])
async def test_split_rejects_bad_parts(emu: Emulator, client: FlatfileClient, bad: Any) -> None:
    parent = await job_in(emu, client, "executing")
    with pytest.raises(FlatfileAPIError, match="parts must be a positive integer"):
        await client.request("POST", f"/jobs/{parent}/split", body={"parts": bad})


@pytest.mark.parametrize("shape", ["counts", "list"])
async def test_parts_completed_is_emitted_on_the_parent_when_the_last_part_ends(shape: Any) -> None:
    async with Emulator(parts_shape=shape) as emu, client_for(emu) as client:
        parent = await job_in(emu, client, "executing")
        await client.jobs.split(parent, 3, run_in_parallel=True)
        a, b, c = (j.id for j in emu.jobs() if j.parent_id == parent)
        for part in (a, b, c):
            await client.jobs.ack(part, progress=0)
        await client.jobs.complete(a)
        await client.jobs.fail(b)
        assert "job:parts-completed" not in topics(emu, parent)
        await client.jobs.cancel(c)
        event = emu.events[-1]
        assert (event["topic"], event["context"]["jobId"]) == ("job:parts-completed", parent)
        parts = event["payload"]["parts"]
        if shape == "counts":
            assert parts == {"total": 3, "completed": 1, "failed": 1, "canceled": 1}
        else:
            assert [(p["partId"], p["status"]) for p in parts] == [
                (a, "complete"),
                (b, "failed"),
                (c, "canceled"),
            ]
        assert emu.job(parent).status == "executing"  # the listener must end the parent


# ------------------------------------------------------------ secrets and auth


async def test_secrets_by_environment_space_and_actor(
    emu: Emulator, client: FlatfileClient
) -> None:
    emu.add_secret("db", "env-pw")
    emu.add_secret("db", "space-pw", space_id="us_sp_1")
    emu.add_secret("api", "actor-key", actor_id="us_usr_1")
    assert await client.secrets.get("db") == "env-pw"
    assert await client.secrets.get("db", space_id="us_sp_1") == "space-pw"
    assert await client.secrets.get("api", actor_id="us_usr_1") == "actor-key"
    assert {s.name for s in await client.secrets.list()} == {"db"}


async def test_requests_without_the_token_get_401(emu: Emulator) -> None:
    async with FlatfileClient(emu.url, "sk_wrong_token") as c:
        with pytest.raises(FlatfileAPIError, match="Unauthorized") as info:
            await c.jobs.list()
    assert info.value.status == 401
    async with aiohttp.ClientSession() as session, session.get(f"{emu.url}/v1/jobs") as resp:
        assert resp.status == 401


@pytest.mark.parametrize("authorization", [None, "Bearer sk_wrong_token"])
async def test_a_large_body_without_the_token_is_refused_before_it_is_read(
    emu: Emulator, authorization: str | None
) -> None:
    # Was a bug: the whole body (up to 128 MB on a records route) was read into memory
    # before the token was checked, so 8 anonymous 100 MB uploads cost 859 MB. Here the
    # client sends 1 MB of the 100 MB it announces, then waits: only an answer given before
    # the body is read can arrive.
    declared = 100 * 1024**2
    sent = 1024**2
    head = (
        "POST /v1/sheets/us_sh_1/records HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\n"
        + (f"Authorization: {authorization}\r\n" if authorization else "")
        + f"Content-Length: {declared}\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection(emu.host, emu.port)
    try:
        writer.write(head.encode() + b"[" + b" " * (sent - 1))
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status, *headers = answer.decode().split("\r\n")
    assert status == "HTTP/1.1 401 Unauthorized"
    assert "Connection: close" in headers  # the rest of the body is no next request
    assert [(r.route, r.status, r.json) for r in emu.requests] == [("records.insert", 401, None)]


async def test_unknown_route_and_bad_json_get_json_errors(
    emu: Emulator, client: FlatfileClient
) -> None:
    with pytest.raises(FlatfileAPIError) as info:
        await client.request("GET", "/nothing-here")
    assert info.value.status == 404
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        job_id = emu.trigger("a:b").id
        async with session.post(f"{emu.url}/v1/jobs/{job_id}/ack", data=b"{nope") as resp:
            assert resp.status == 400
            assert "not valid JSON" in (await resp.json())["errors"][0]["message"]


async def test_every_request_is_recorded(emu: Emulator, client: FlatfileClient) -> None:
    job_id = emu.trigger("a:b").id
    await client.jobs.ack(job_id, info="Accepted", progress=0)
    with pytest.raises(FlatfileAPIError):
        await client.jobs.retry(job_id)
    assert [(r.method, r.route, r.json, r.status) for r in emu.requests] == [
        ("POST", "jobs.ack", {"info": "Accepted", "progress": 0}, 200),
        ("POST", "jobs.retry", None, 400),
    ]
    assert emu.calls(job_id)[0] == (
        "POST",
        f"/v1/jobs/{job_id}/ack",
        {"info": "Accepted", "progress": 0},
    )


# ------------------------------------------------------------ faults


async def _fault_pattern(seed: int) -> list[int | None]:
    async with (
        Emulator(fault_seed=seed) as emu,
        client_for(emu, retry=RetryPolicy(attempts=1)) as c,
    ):
        emu.faults.add(routes="jobs.get", rate=0.5, status=503)
        job_id = emu.trigger("a:b").id
        for _ in range(30):
            with contextlib.suppress(FlatfileAPIError):
                await c.jobs.get(job_id)
        return [r.status for r in emu.requests]


async def test_faults_are_deterministic_under_a_seed() -> None:
    first, again, other = await _fault_pattern(7), await _fault_pattern(7), await _fault_pattern(8)
    assert first == again
    assert first != other
    assert 5 < first.count(503) < 25


async def test_fault_kinds(emu: Emulator) -> None:
    job_id = emu.trigger("a:b").id
    emu.faults.add(routes="jobs.ack", status=429, retry_after=3, limit=1)
    async with FlatfileClient(emu.url, emu.token, retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(FlatfileAPIError) as info:
            await c.jobs.ack(job_id, progress=0)
        assert info.value.status == 429
        await c.jobs.ack(job_id, progress=0)  # the limit of one was reached

        emu.faults.add(routes=["jobs.complete"], drop=True, limit=1)
        with pytest.raises(FlatfileConnectionError):
            await c.jobs.complete(job_id)
        assert emu.job(job_id).status == "executing"  # dropped before it was handled

        emu.faults.add(routes="jobs.complete", drop_after=True, limit=1)
        with pytest.raises(FlatfileConnectionError):
            await c.jobs.complete(job_id)
        assert emu.job(job_id).status == "complete"  # handled, answer lost
    assert [r.status for r in emu.requests] == [429, 200, None, None]


async def test_retry_after_from_a_fault_reaches_the_client(emu: Emulator) -> None:
    emu.faults.add(routes="jobs.get", status=429, retry_after=2, limit=1)
    emu.trigger("a:b")
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as s,
        s.get(f"{emu.url}/v1/jobs/us_jb_0000001") as resp,
    ):
        assert (resp.status, resp.headers["Retry-After"]) == (429, "2")


async def test_latency_fault_delays_but_answers(emu: Emulator, client: FlatfileClient) -> None:
    emu.faults.add(routes="jobs.*", latency=0.05)
    job_id = emu.trigger("a:b").id
    assert (await client.jobs.get(job_id)).id == job_id
    assert len(emu.faults.injected) == 1


def test_fault_rate_is_validated() -> None:
    with pytest.raises(ValueError, match=r"rate must be within 0\.\.1"):
        Fault(rate=2)


def test_route_names_are_listed() -> None:
    assert {"jobs.ack", "jobs.complete", "jobs.fail", "events.list"} <= set(ROUTES)


# ------------------------------------------------------------ helpers


async def test_wait_for_resolves_on_the_status_and_times_out_clearly(
    emu: Emulator, client: FlatfileClient
) -> None:
    job_id = emu.trigger("a:b").id
    waiter = asyncio.create_task(emu.wait_for(job_id, [JobStatus.EXECUTING]))
    await asyncio.sleep(0)
    await client.jobs.ack(job_id, progress=0)
    assert (await waiter).status == "executing"
    with pytest.raises(TimeoutError, match=f"job {job_id} did not reach .* within 0.05s"):
        await emu.wait_for(job_id, timeout=0.05)


def test_a_job_name_must_have_domain_and_operation() -> None:
    with pytest.raises(ValueError, match="'<domain>:<operation>', got 'export'"):
        Emulator().trigger("export")


async def test_url_before_start_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = Emulator().url


async def test_token_is_not_in_repr(emu: Emulator) -> None:
    assert emu.token not in repr(emu)


async def test_stored_events_are_served_in_time_order_whatever_they_hold(emu: Emulator) -> None:
    emu.trigger("a:b")
    past = {
        "id": "us_evt_past",
        "topic": "x:y",
        "context": {"environmentId": emu.environment_id},
        "createdAt": "2020-01-01T00:00:00.000Z",
    }
    emu.store_event(past)
    emu.store_event("not even an object")
    async with client_for(emu) as client:
        page = await client.events.list_raw()
    assert page.items[0] == "not even an object"  # unreadable: sorts first, served as is
    assert page.items[1]["id"] == "us_evt_past"
    assert [e["topic"] for e in page.items[2:]] == ["job:created", "job:ready"]


# ------------------------------------------------------------------ as the platform answers


async def test_the_events_list_has_no_pagination_and_ten_events_a_page(emu: Emulator) -> None:
    for _ in range(8):
        emu.trigger("a:b")  # 16 events
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {emu.token}"}) as s:
        url = f"{emu.url}/v1/events?environmentId={emu.environment_id}"
        async with s.get(url) as resp:
            body = await resp.json()
        async with s.get(url + "&pageNumber=2") as resp:
            second = await resp.json()
    assert set(body) == {"data"}
    assert len(body["data"]) == 10
    assert len(second["data"]) == 6


async def test_timestamps_have_milliseconds_as_the_platform_writes_them(emu: Emulator) -> None:
    emu.trigger("a:b")
    stamp = emu.events[-1]["createdAt"]
    assert len(stamp) == len("2026-11-22T12:00:00.000Z")
    assert stamp.endswith("Z")
    assert stamp[-5] == "."


@pytest.mark.parametrize("progress", [33.5, -1, 101, True, "50"])
async def test_progress_must_be_a_whole_number_from_0_to_100(
    emu: Emulator, client: FlatfileClient, progress: Any
) -> None:
    job_id = await job_in(emu, client, "executing")
    with pytest.raises(FlatfileAPIError, match="progress must be a whole number from 0 to 100"):
        await client.request("POST", f"/jobs/{job_id}/ack", body={"progress": progress})
    with pytest.raises(FlatfileAPIError, match="progress must be a whole number"):
        await client.request("PATCH", f"/jobs/{job_id}", body={"progress": progress})


async def test_nan_anywhere_in_a_body_is_refused(emu: Emulator) -> None:
    job_id = emu.trigger("a:b").id
    headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as s:
        url = f"{emu.url}/v1/jobs/{job_id}/ack"
        async with s.post(url, data=b'{"info": "x", "outcome": {"n": NaN}}') as resp:
            status, body = resp.status, await resp.json()
    assert status == 400
    assert "NaN" in body["errors"][0]["message"]
    assert emu.job(job_id).status == "ready"


async def test_create_and_patch_validate_status_mode_trigger_and_progress(
    emu: Emulator, client: FlatfileClient
) -> None:
    base = {"type": "workbook", "operation": "export", "source": "us_wb_1"}
    for bad in ({"status": "finished"}, {"mode": "loud"}, {"trigger": "later"}, {"progress": 1.5}):
        with pytest.raises(FlatfileAPIError, match="must be"):
            await client.request("POST", "/jobs", body={**base, **bad})
    job_id = await job_in(emu, client, "executing")
    with pytest.raises(FlatfileAPIError, match="status must be one of"):
        await client.request("PATCH", f"/jobs/{job_id}", body={"status": "paused"})


async def test_a_status_changed_by_patch_goes_through_the_state_machine(
    emu: Emulator, client: FlatfileClient
) -> None:
    job_id = await job_in(emu, client, "executing")
    job = await client.jobs.update(job_id, JobUpdate(status="complete"))
    assert job.status == "complete"
    assert job.finished_at is not None
    assert topics(emu, job_id)[-1] == "job:completed"
    with pytest.raises(FlatfileAPIError, match="cannot go from complete to executing"):
        await client.jobs.update(job_id, JobUpdate(status="executing"))


async def test_post_events_needs_an_object_payload_and_an_account_and_environment(
    emu: Emulator, client: FlatfileClient
) -> None:
    context = {"accountId": "us_acc_1", "environmentId": emu.environment_id}
    with pytest.raises(FlatfileAPIError, match="payload must be an object"):
        await client.request(
            "POST",
            "/events",
            body={"topic": "a:b", "domain": "space", "context": context, "payload": [1]},
        )
    with pytest.raises(FlatfileAPIError, match="context needs accountId"):
        await client.events.create(
            "a:b", domain="space", context={"environmentId": emu.environment_id}, payload={}
        )
    event = await client.events.create("a:b", domain="space", context=context, payload={"n": 1})
    assert event.payload == {"n": 1}


async def test_job_events_carry_the_jobs_actor(emu: Emulator, client: FlatfileClient) -> None:
    created = await client.jobs.create(
        JobConfig(type="workbook", operation="export", source="us_wb_1", trigger="immediate")
    )
    ready = next(e for e in emu.events if e["topic"] == "job:ready")
    assert ready["context"]["jobId"] == created.id
    assert ready["context"]["actorId"] == created.created_by


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_bearer_scheme_is_accepted_in_any_case(emu: Emulator, scheme: str) -> None:
    headers = {"Authorization": f"{scheme} {emu.token}"}
    url = f"{emu.url}/v1/jobs?environmentId={emu.environment_id}"
    async with aiohttp.ClientSession(headers=headers) as s, s.get(url) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("record", [True, False])
async def test_an_oversized_body_gets_a_json_413_and_is_recorded(record: bool) -> None:
    async with Emulator(record=record) as emu:
        job_id = emu.trigger("a:b").id
        headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as s:
            body = io.BytesIO(b'{"info": "' + b"x" * 2_000_000 + b'"}')
            async with s.post(f"{emu.url}/v1/jobs/{job_id}/ack", data=body) as resp:
                status, answer = resp.status, await resp.json()
        recorded = [(r.route, r.status) for r in emu.requests]
    assert status == 413
    assert "larger than" in answer["errors"][0]["message"]
    assert recorded == ([("jobs.ack", 413)] if record else [])


async def test_a_request_whose_body_never_arrives_is_timed_out() -> None:
    async with Emulator(body_timeout=0.3) as emu:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        writer.write(
            f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {emu.token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 408")


async def test_sequential_parts_are_ready_one_at_a_time_in_order(
    emu: Emulator, client: FlatfileClient
) -> None:
    parent = await job_in(emu, client, "executing")
    await client.jobs.split(parent, 3)
    parts = sorted((j for j in emu.jobs() if j.parent_id == parent), key=lambda j: j.part or 0)
    assert [p.status for p in parts] == ["ready", "created", "created"]
    for index in range(3):
        part = emu.job(parts[index].id)
        assert part.status == "ready"
        await client.jobs.ack(part.id, progress=0)
        await client.jobs.complete(part.id)
    assert topics(emu, parent)[-1] == "job:parts-completed"


async def test_a_second_split_and_a_huge_one_are_refused(
    emu: Emulator, client: FlatfileClient
) -> None:
    parent = await job_in(emu, client, "executing")
    with pytest.raises(FlatfileAPIError, match="at most 1000 parts"):
        await client.jobs.split(parent, 50_000)
    await client.jobs.split(parent, 2, run_in_parallel=True)
    with pytest.raises(FlatfileAPIError, match="has already been split"):
        await client.jobs.split(parent, 2)


async def test_ack_refreshes_updated_at_and_jobs_list_newest_first(
    emu: Emulator, client: FlatfileClient
) -> None:
    job_id = await job_in(emu, client, "executing")
    before = emu.job(job_id).updated_at
    await asyncio.sleep(0.01)
    await client.jobs.ack(job_id, progress=5)
    assert emu.job(job_id).updated_at > before  # type: ignore[operator]
    newer = emu.trigger("a:b").id
    page = await client.jobs.list(sort_direction="desc", page_size=1)
    assert [j.id for j in page] == [newer]
    assert page.pagination is not None
    assert page.pagination.page_count == 2
