"""FlatfileClient against a real local aiohttp server: exact wire form, config, retries."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
import yarl
from structlog.testing import capture_logs

import flatjobs
from flatjobs import (
    ConfigurationError,
    FlatfileAPIError,
    FlatfileClient,
    FlatfileConnectionError,
    JobCompleteDetails,
    JobOutcome,
    JobStatus,
    Next,
    RetryPolicy,
    SecretNotFound,
    UnexpectedResponseError,
)
from flatjobs.models import JobConfig, JobUpdate

from .conftest import JOB_BODY, TOKEN, RecordingServer

pytestmark = pytest.mark.usefixtures("recorder")


@attrs.frozen(kw_only=True)
class SpyPolicy(RetryPolicy):
    """A retry policy that records what it was asked to wait, and waits not at all."""

    asked: list[tuple[int, float | None]] = attrs.field(factory=list)

    def delay(self, retry: int, retry_after: float | None) -> float:
        self.asked.append((retry, retry_after))
        return 0.0


async def test_sends_the_headers_of_spec_section_1(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    await rclient.jobs.get("us_jb_1")
    headers = recorder.requests[0].headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["X-Disable-Hooks"] == "true"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith(f"flatjobs/{flatjobs.__version__}")


EXAMPLE_OUTCOME = JobOutcome(message="Done", next=Next.retry("Again"))
WHEN = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("call", "method", "path", "body"),
    [
        (lambda c: c.jobs.get("j1"), "GET", "/v1/jobs/j1", None),
        (lambda c: c.jobs.create(JobConfig(type="workbook", operation="export", source="us_wb_1")),
         "POST", "/v1/jobs", {"type": "workbook", "operation": "export", "source": "us_wb_1"}),
        (lambda c: c.jobs.update("j1", JobUpdate(progress=5, info="x")),
         "PATCH", "/v1/jobs/j1", {"progress": 5, "info": "x"}),
        (lambda c: c.jobs.delete("j1"), "DELETE", "/v1/jobs/j1", None),
        (lambda c: c.jobs.ack("j1", info="Accepted", progress=0),
         "POST", "/v1/jobs/j1/ack", {"info": "Accepted", "progress": 0}),
        (lambda c: c.jobs.ack("j1", progress=30), "POST", "/v1/jobs/j1/ack", {"progress": 30}),
        (lambda c: c.jobs.ack("j1", progress=30, estimated_completion_at=WHEN),
         "POST", "/v1/jobs/j1/ack", {"progress": 30, "estimatedCompletionAt": "2026-11-22T12:00:00.000Z"}),
        (lambda c: c.jobs.complete("j1", outcome=EXAMPLE_OUTCOME), "POST", "/v1/jobs/j1/complete",
         {"outcome": {"message": "Done", "next": {"type": "retry", "label": "Again"}}}),
        (lambda c: c.jobs.complete("j1", JobCompleteDetails(info="i")),
         "POST", "/v1/jobs/j1/complete", {"info": "i"}),
        (lambda c: c.jobs.fail("j1", info="boom", outcome=JobOutcome(acknowledge=True, message="boom")),
         "POST", "/v1/jobs/j1/fail", {"outcome": {"acknowledge": True, "message": "boom"}, "info": "boom"}),
        (lambda c: c.jobs.cancel("j1", info="stop"), "POST", "/v1/jobs/j1/cancel", {"info": "stop"}),
        (lambda c: c.jobs.cancel("j1"), "POST", "/v1/jobs/j1/cancel", {}),
        (lambda c: c.jobs.retry("j1"), "POST", "/v1/jobs/j1/retry", None),
        (lambda c: c.jobs.execute("j1"), "POST", "/v1/jobs/j1/execute", None),
        (lambda c: c.jobs.ack_outcome("j1"), "POST", "/v1/jobs/j1/outcome/ack", None),
        (lambda c: c.jobs.split("j1", 3), "POST", "/v1/jobs/j1/split", {"parts": 3}),
        (lambda c: c.jobs.split("j1", [{"a": 1}], run_in_parallel=True), "POST", "/v1/jobs/j1/split",
         {"parts": [{"a": 1}], "runInParallel": True}),
        (lambda c: c.events.ack("e1"), "POST", "/v1/events/e1/ack", None),
        (lambda c: c.events.create("custom:thing", domain="space", context={"spaceId": "s"},
                                   payload={"a": 1}),
         "POST", "/v1/events", {"topic": "custom:thing", "domain": "space",
                                "context": {"spaceId": "s"}, "payload": {"a": 1}}),
    ],
)  # fmt: skip
async def test_each_call_sends_exact_method_path_and_body(
    recorder: RecordingServer, rclient: FlatfileClient, call: Any, method: str, path: str, body: Any
) -> None:
    if path.startswith("/v1/events"):
        recorder.script.append((200, {"data": {"id": "e1", "topic": "custom:thing"}}))
    await call(rclient)
    assert recorder.calls() == [(method, path, body)]


async def test_ack_returns_the_typed_job(rclient: FlatfileClient) -> None:
    job = await rclient.jobs.ack("us_jb_1", progress=1)
    assert job.status is JobStatus.EXECUTING
    assert job.job_name == "workbook:export"


async def test_list_jobs_sends_camel_case_query_and_reads_pagination(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script.append(
        (
            200,
            {
                "data": [{"id": "a"}, {"id": "b"}],
                "pagination": {"currentPage": 2, "pageCount": 3, "totalCount": 5},
            },
        )
    )
    page = await rclient.jobs.list(
        space_id="us_sp_1", page_size=2, page_number=2, exclude_child_jobs=True
    )
    assert [j.id for j in page.items] == ["a", "b"]
    assert page.pagination is not None
    assert page.pagination.total_count == 5
    assert recorder.requests[0].query == {
        "environmentId": "us_env_1",
        "spaceId": "us_sp_1",
        "pageSize": "2",
        "pageNumber": "2",
        "excludeChildJobs": "true",
    }


async def test_list_events_sends_since_topic_domain_and_paging(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script.append((200, {"data": [{"id": "e", "topic": "canvas:created", "x": 1}]}))
    page = await rclient.events.list(
        since=WHEN,
        topic="job:ready",
        domain="job",
        space_id="sp",
        page_size=50,
        page_number=1,
        include_acknowledged=True,
    )
    assert page.items[0].topic == "canvas:created"
    assert recorder.requests[0].path == "/v1/events"
    assert recorder.requests[0].query == {
        "environmentId": "us_env_1",
        "spaceId": "sp",
        "domain": "job",
        "topic": "job:ready",
        "since": "2026-11-22T12:00:00.000Z",
        "pageSize": "50",
        "pageNumber": "1",
        "includeAcknowledged": "true",
    }


async def test_get_event(recorder: RecordingServer, rclient: FlatfileClient) -> None:
    recorder.script.append((200, {"data": {"id": "e9", "topic": "job:ready"}}))
    assert (await rclient.events.get("e9")).id == "e9"
    assert recorder.calls() == [("GET", "/v1/events/e9", None)]


async def test_secrets_are_looked_up_by_name_for_environment_space_and_actor(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script.append(
        (200, {"data": [{"name": "db", "value": "pw"}, {"name": "x", "value": "y"}]})
    )
    assert await rclient.secrets.get("db", space_id="sp", actor_id="us_usr_1") == "pw"
    assert recorder.requests[0].query == {
        "environmentId": "us_env_1",
        "spaceId": "sp",
        "actorId": "us_usr_1",
    }
    recorder.script.append((200, {"data": []}))
    with pytest.raises(SecretNotFound, match="'missing'"):
        await rclient.secrets.get("missing")


# --------------------------------------------------------------- configuration


def test_configuration_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLATFILE_API_URL", "http://127.0.0.1:9/api/")
    monkeypatch.setenv("AGENT_INTERNAL_URL", "http://ignored")
    monkeypatch.setenv("FLATFILE_API_KEY", "sk_fallback")
    monkeypatch.setenv("FLATFILE_ENVIRONMENT_ID", "us_env_9")
    client = FlatfileClient()
    assert client.base_url == "http://127.0.0.1:9/api/v1"
    assert client.environment_id == "us_env_9"
    assert client._headers["Authorization"] == "Bearer sk_fallback"


def test_constructor_arguments_win_and_bearer_token_beats_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLATFILE_BEARER_TOKEN", "sk_bearer")
    monkeypatch.setenv("FLATFILE_API_KEY", "sk_key")
    monkeypatch.delenv("FLATFILE_API_URL", raising=False)
    monkeypatch.setenv("AGENT_INTERNAL_URL", "http://agent:1")
    assert FlatfileClient()._headers["Authorization"] == "Bearer sk_bearer"
    assert FlatfileClient().base_url == "http://agent:1/v1"
    assert FlatfileClient("http://mine").base_url == "http://mine/v1"


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLATFILE_API_URL", "AGENT_INTERNAL_URL"):
        monkeypatch.delenv(name, raising=False)
    assert FlatfileClient(token="t0k3n").base_url == "https://platform.flatfile.com/api/v1"


def test_missing_token_raises_configuration_error_naming_both_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLATFILE_BEARER_TOKEN", raising=False)
    monkeypatch.delenv("FLATFILE_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match=r"FLATFILE_BEARER_TOKEN.*FLATFILE_API_KEY"):
        FlatfileClient("http://127.0.0.1:1")


def test_bad_base_url_is_a_configuration_error_that_does_not_echo_it() -> None:
    with pytest.raises(ConfigurationError, match="must be an http:// or https:// URL") as info:
        FlatfileClient("ftp://x", "tok3n")
    assert "ftp://x" not in str(info.value)


async def test_list_events_without_environment_is_a_configuration_error(
    recorder: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLATFILE_ENVIRONMENT_ID", raising=False)
    async with FlatfileClient(recorder.url, TOKEN) as client:
        with pytest.raises(ConfigurationError, match="FLATFILE_ENVIRONMENT_ID"):
            await client.events.list()
    assert recorder.requests == []


async def test_token_is_never_in_repr_errors_or_logs(recorder: RecordingServer) -> None:
    recorder.script.append((400, {"errors": [{"message": f"bad token {TOKEN}"}]}))
    client = FlatfileClient(recorder.url, TOKEN)
    assert TOKEN not in repr(client)
    with capture_logs() as logs:
        with pytest.raises(FlatfileAPIError) as info:
            await client.jobs.get("j")
        flatjobs.log.get_logger("t").error("oops", detail=str(info.value), header=f"Bearer {TOKEN}")
    await client.close()
    assert logs
    assert TOKEN not in repr(logs)
    assert "[redacted]" in repr(logs)


async def test_one_connection_pool_is_reused(rclient: FlatfileClient) -> None:
    await rclient.jobs.get("a")
    session = rclient._session
    await rclient.jobs.get("b")
    assert rclient._session is session


async def test_a_session_passed_in_is_used_and_not_closed(recorder: RecordingServer) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with FlatfileClient(recorder.url, TOKEN, session=session) as client:
            await client.jobs.get("a")
        assert not session.closed
    assert len(recorder.requests) == 1


# --------------------------------------------------------------- errors and retries


async def test_api_error_carries_status_method_path_and_body(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script.append((400, {"errors": [{"key": "status", "message": "job is complete"}]}))
    with pytest.raises(FlatfileAPIError) as info:
        await rclient.jobs.complete("j1")
    err = info.value
    assert (err.status, err.method, err.path) == (400, "POST", "/v1/jobs/j1/complete")
    assert err.body == {"errors": [{"key": "status", "message": "job is complete"}]}
    assert str(err) == "POST /v1/jobs/j1/complete answered 400: job is complete"


async def test_400_is_not_retried(recorder: RecordingServer, rclient: FlatfileClient) -> None:
    recorder.script.append((400, {"errors": [{"message": "no"}]}))
    with pytest.raises(FlatfileAPIError):
        await rclient.jobs.get("j1")
    assert len(recorder.requests) == 1


async def test_503_twice_then_200_succeeds_on_the_third_attempt(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script += [(503, {}), (503, {})]
    job = await rclient.jobs.ack("us_jb_1", progress=5)
    assert job.id == "us_jb_1"
    assert len(recorder.requests) == 3
    assert all(r.json == {"progress": 5} for r in recorder.requests)


async def test_a_retried_call_is_logged_with_the_api_host_and_the_path(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script += [(503, {})]
    with capture_logs() as logs:
        await rclient.jobs.get("us_jb_1")
    (retry,) = [e for e in logs if e["event"] == "an API call failed; retrying"]
    assert retry["api"] == yarl.URL(recorder.url).host_port_subcomponent
    assert "/v1/jobs/us_jb_1" in retry["error"]
    assert retry["log_level"] == "info"


async def test_429_with_retry_after_waits_what_the_server_asks(recorder: RecordingServer) -> None:
    policy = SpyPolicy()
    recorder.script += [(429, {}, {"Retry-After": "7"}), (429, {}, {"retry-after-ms": "250"})]
    async with FlatfileClient(recorder.url, TOKEN, retry=policy) as client:
        await client.jobs.get("j")
    assert policy.asked == [(1, 7.0), (2, 0.25)]


async def test_retry_after_as_an_http_date_is_honoured(recorder: RecordingServer) -> None:
    policy = SpyPolicy()
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    recorder.script.append((503, {}, {"Retry-After": when.strftime("%a, %d %b %Y %H:%M:%S GMT")}))
    async with FlatfileClient(recorder.url, TOKEN, retry=policy) as client:
        await client.jobs.get("j")
    ((_, waited),) = policy.asked
    assert waited is not None
    assert 25 < waited <= 30


async def test_a_dropped_connection_is_retried(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script.append("drop")
    job = await rclient.jobs.get("us_jb_1")
    assert job.id == "us_jb_1"
    assert len(recorder.requests) == 2


async def test_gives_up_after_the_attempts_with_the_last_error(recorder: RecordingServer) -> None:
    recorder.script += [(500, {}), (502, {}), (503, {"errors": [{"message": "down"}]}), (200, {})]
    async with FlatfileClient(recorder.url, TOKEN, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(FlatfileAPIError, match="answered 503: down"):
            await client.jobs.get("j")
    assert len(recorder.requests) == 3


async def test_a_deadline_gives_up_before_the_attempts_run_out(recorder: RecordingServer) -> None:
    recorder.script += [(503, {}, {"Retry-After": "5"})] * 5
    # The server asks for 5 s; with a 2 s deadline the client stops rather than wait past it.
    flatjobs.set_testing(False)
    policy = RetryPolicy(attempts=10, deadline=2.0)
    async with FlatfileClient(recorder.url, TOKEN, retry=policy) as client:
        with pytest.raises(FlatfileAPIError, match="503"):
            await client.jobs.get("j")
    assert len(recorder.requests) == 1


async def test_connection_refused_raises_connection_error_after_retries() -> None:
    async with FlatfileClient("http://127.0.0.1:1", TOKEN, retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(FlatfileConnectionError, match="GET /v1/jobs/j failed"):
            await client.jobs.get("j")


def test_backoff_doubles_with_bounded_jitter_and_is_capped() -> None:
    flatjobs.set_testing(False)
    policy = RetryPolicy(initial_delay=1.0, max_delay=3.0, jitter=0.2)
    for _ in range(50):
        assert 0.8 <= policy.delay(1, None) <= 1.2
        assert 1.6 <= policy.delay(2, None) <= 2.4
        assert 2.4 <= policy.delay(3, None) <= 3.6
    assert policy.delay(1, 100.0) == 3.0


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


def test_set_testing_switches_waits_off() -> None:
    assert RetryPolicy().delay(3, 10.0) == 0.0


# --------------------------------------------------------------- every answer is checked


@pytest.mark.parametrize(
    "answer",
    [{"data": None}, {"nothing": 1}, [1, 2], "<html>busy</html>", {"data": "text"}, {"data": []}],
)
async def test_a_2xx_that_is_not_a_job_is_retried_then_raised(
    recorder: RecordingServer, rclient: FlatfileClient, answer: Any
) -> None:
    recorder.script += [(200, answer)] * 3
    with pytest.raises(
        UnexpectedResponseError, match="answered 200 with an unexpected body"
    ) as info:
        await rclient.jobs.get("us_jb_1")
    assert len(recorder.requests) == 3  # retried like a server error
    assert info.value.attempts == 3
    assert isinstance(info.value, FlatfileAPIError)


async def test_a_garbled_answer_then_a_good_one_succeeds(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script.append((200, {"data": None}))
    job = await rclient.jobs.ack("us_jb_1", progress=1)
    assert job.status == "executing"
    assert len(recorder.requests) == 2


async def test_an_answer_saying_success_false_is_an_error(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    recorder.script += [(200, {"data": {"success": False}})] * 3
    with pytest.raises(UnexpectedResponseError, match="success: false"):
        await rclient.jobs.delete("us_jb_1")


async def test_a_page_iterates_and_has_a_length(
    recorder: RecordingServer, rclient: FlatfileClient
) -> None:
    two = [{**JOB_BODY["data"], "id": f"us_jb_{n}"} for n in (1, 2)]
    recorder.script.append((200, {"data": two, "pagination": {"currentPage": 1}}))
    page = await rclient.jobs.list()
    assert len(page) == 2
    assert [job.id for job in page] == ["us_jb_1", "us_jb_2"]


async def test_set_testing_restores_the_previous_setting_as_a_context_manager() -> None:
    flatjobs.set_testing(False)
    with flatjobs.set_testing(True):
        assert RetryPolicy().delay(1, 10.0) == 0.0
    assert RetryPolicy().delay(1, 10.0) == 10.0
