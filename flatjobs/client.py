"""``FlatfileClient``: an aiohttp client for Flatfile's Jobs, Events and Secrets API.

>>> async def main() -> None:
...     async with FlatfileClient() as client:          # config from the environment
...         job = await client.jobs.ack("us_jb_1", info="Accepted", progress=0)
...         await client.jobs.complete("us_jb_1", outcome=JobOutcome(message="Done"))

Configuration (SPEC §1), constructor arguments first, then the environment:

* base URL: ``FLATFILE_API_URL``, then ``AGENT_INTERNAL_URL``, then
  ``https://platform.flatfile.com/api``; ``/v1`` is appended;
* token: ``FLATFILE_BEARER_TOKEN``, then ``FLATFILE_API_KEY``;
* environment id: ``FLATFILE_ENVIRONMENT_ID``.

Requests that answer 408, 429 or 5xx, drop the connection or time out are retried with
exponential backoff and jitter, honouring ``Retry-After`` and ``retry-after-ms``, within
:class:`RetryPolicy`'s attempts and deadline. Tests switch the waiting off with
:func:`set_testing`.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import email.utils
import json
import os
import random
import time
from collections.abc import Mapping
from typing import Any, Generic, Self, TypeVar

import aiohttp
import attrs

from . import _meta
from .errors import ConfigurationError, FlatfileAPIError, FlatfileConnectionError, FlatfileError
from .logging import get_logger, register_secret
from .models import (
    Event,
    Job,
    JobAckDetails,
    JobCancelDetails,
    JobCompleteDetails,
    JobConfig,
    JobOutcome,
    JobSplitDetails,
    JobUpdate,
    Pagination,
    Secret,
    from_wire,
    to_wire,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "EventsAPI",
    "FlatfileClient",
    "JobsAPI",
    "Page",
    "RetryPolicy",
    "SecretNotFound",
    "SecretsAPI",
    "set_testing",
]

DEFAULT_BASE_URL = "https://platform.flatfile.com/api"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
T = TypeVar("T")
_log = get_logger("flatjobs.client")
_testing = False


def set_testing(testing: bool) -> None:
    """Switch off the waiting between retries, process-wide (retries still happen).

    For test suites, like ``stamina.set_testing``: a test of a 503-then-200 exchange runs
    in milliseconds instead of seconds. The ``flatjobs`` pytest plugin does not call this
    for you; call it in a fixture or ``conftest.py``.
    """
    global _testing
    _testing = testing


class SecretNotFound(FlatfileError, LookupError):
    """No secret of that name exists for the environment (and space/actor) asked."""


def _check_jitter(instance: object, attribute: object, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"RetryPolicy.jitter must be in [0, 1), got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a request is retried.

    Args:
        attempts: total attempts per request, the first included (Flatfile's JS SDK: 3).
        initial_delay: seconds before the first retry; doubled for each retry after it.
        max_delay: a cap on one wait, also applied to ``Retry-After``.
        jitter: a wait is multiplied by a random factor in ``1 ± jitter``.
        deadline: seconds after which no further attempt starts.
        request_timeout: seconds one attempt may take.
    """

    attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    initial_delay: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    max_delay: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    jitter: float = attrs.field(default=0.2, validator=_check_jitter)
    deadline: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    request_timeout: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        if _testing:
            return 0.0
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), self.max_delay))
        base = min(self.initial_delay * 2.0 ** (retry - 1), self.max_delay)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return (when - dt.datetime.now(dt.UTC)).total_seconds()


def _query(params: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, dt.datetime):
            out[key] = to_wire(value)
        else:
            out[key] = str(value)
    return out


@attrs.frozen
class Page(Generic[T]):
    """One page of a list endpoint."""

    items: list[T]
    pagination: Pagination | None = None


class FlatfileClient:
    """An async client for Flatfile's REST API. Use it as ``async with``, or call ``close()``.

    Args:
        base_url: the API root without ``/v1`` (e.g. ``http://127.0.0.1:8080``).
        token: the bearer token. Never logged, never in ``repr``.
        environment_id: the default for calls that take an environment id.
        session: an ``aiohttp.ClientSession`` to use; the caller keeps ownership of it.
        retry: a :class:`RetryPolicy`.

    Raises:
        ConfigurationError: no token was given and none is in the environment.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        environment_id: str | None = None,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        env = os.environ
        token = token or env.get("FLATFILE_BEARER_TOKEN") or env.get("FLATFILE_API_KEY")
        if not token:
            raise ConfigurationError(
                "no Flatfile API token: pass token=... or set FLATFILE_BEARER_TOKEN "
                "(or FLATFILE_API_KEY)"
            )
        register_secret(token)
        root = (
            base_url
            or env.get("FLATFILE_API_URL")
            or env.get("AGENT_INTERNAL_URL")
            or DEFAULT_BASE_URL
        ).rstrip("/")
        if not root.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"the API base URL must start with http:// or https://, got {root!r}"
            )
        self.base_url = root if root.endswith("/v1") else root + "/v1"
        self.environment_id = environment_id or env.get("FLATFILE_ENVIRONMENT_ID") or None
        self.retry = retry or RetryPolicy()
        self._token = token
        self._session = session
        self._owns_session = session is None
        self._headers = {
            "Authorization": f"Bearer {token}",
            "X-Disable-Hooks": "true",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"flatjobs/{_meta.version()} aiohttp/{aiohttp.__version__}",
        }
        self.jobs = JobsAPI(self)
        self.events = EventsAPI(self)
        self.secrets = SecretsAPI(self)

    def __repr__(self) -> str:
        return (
            f"FlatfileClient(base_url={self.base_url!r}, "
            f"environment_id={self.environment_id!r}, token='[redacted]')"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool, if this client created it."""
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise RuntimeError("the aiohttp session passed to FlatfileClient is closed")
            # One pool per client; the limit keeps a burst of jobs from opening hundreds of
            # sockets to the API. Headers and the per-attempt timeout live on the session,
            # so requests do not rebuild them (measurably cheaper per call).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.retry.request_timeout),
            )
        return self._session

    def require_environment(self, environment_id: str | None) -> str:
        """``environment_id`` or the client's own; raises :class:`ConfigurationError` naming ``FLATFILE_ENVIRONMENT_ID`` when neither is set."""
        env_id = environment_id or self.environment_id
        if not env_id:
            raise ConfigurationError(
                "no environment id: pass environment_id=... or set FLATFILE_ENVIRONMENT_ID"
            )
        return env_id

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """Send one API call with retries; returns the whole decoded JSON body.

        ``path`` is relative to ``/v1`` (``"/jobs/us_jb_1/ack"``). Raises
        :class:`FlatfileAPIError` for an error status and :class:`FlatfileConnectionError`
        when no answer could be had.
        """
        session = self._get_session()
        url = self.base_url + path
        shown_path = "/v1" + path
        query = _query(params) if params else None
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        request_headers = None if self._owns_session else self._headers
        policy = self.retry
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.deadline
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            remaining = max(deadline - loop.time(), 0.001)
            # The session's own timeout is the per-attempt one; only a nearer deadline (or a
            # session the caller owns) needs one of its own. Never pass None: aiohttp reads
            # that as "no timeout at all".
            extra: dict[str, Any] = {}
            if remaining < policy.request_timeout or not self._owns_session:
                extra["timeout"] = aiohttp.ClientTimeout(
                    total=min(remaining, policy.request_timeout)
                )
            retry_after: float | None = None
            try:
                async with session.request(
                    method, url, params=query, data=data, headers=request_headers, **extra
                ) as resp:
                    status = resp.status
                    raw = await resp.read()
                    answer_headers = resp.headers
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                _log.debug("request failed", method=method, path=shown_path, attempt=attempt,
                           error=reason)  # fmt: skip
                failure: FlatfileError = FlatfileConnectionError(method, shown_path, reason)
                failure.__cause__ = exc
            else:
                elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
                _log.debug("request", method=method, path=shown_path, status=status,
                           attempt=attempt, duration_ms=elapsed_ms)  # fmt: skip
                decoded = _decode(raw)
                if status < 400:
                    return decoded
                failure = FlatfileAPIError(status, method, shown_path, decoded, attempt)
                if status not in RETRYABLE_STATUSES:
                    raise failure
                retry_after = _retry_after(answer_headers)
            if attempt >= policy.attempts:
                raise failure
            wait = policy.delay(attempt, retry_after)
            if loop.time() + wait >= deadline:
                raise failure
            await asyncio.sleep(wait)

    async def data(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """Like :meth:`request`, returning the envelope's ``data``."""
        decoded = await self.request(method, path, params=params, body=body)
        if isinstance(decoded, Mapping) and "data" in decoded:
            return decoded["data"]
        return decoded


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or JSON nested too deeply to read
        return raw.decode("utf-8", "replace")


def _page(decoded: Any, cls: type[T] | None) -> Page[Any]:
    items = decoded.get("data") if isinstance(decoded, Mapping) else None
    if not isinstance(items, list):
        raise FlatfileError(f"expected a list in the response's `data`, got {type(items).__name__}")
    pagination = decoded.get("pagination")
    return Page(
        items=[from_wire(i, cls) for i in items] if cls is not None else items,
        pagination=from_wire(pagination, Pagination) if isinstance(pagination, Mapping) else None,
    )


def _complete_body(
    details: JobCompleteDetails | None, outcome: JobOutcome | None, info: str | None
) -> dict[str, Any]:
    if details is not None and (outcome is not None or info is not None):
        raise TypeError("pass either a JobCompleteDetails or outcome=/info=, not both")
    return to_wire(details or JobCompleteDetails(outcome=outcome, info=info))  # type: ignore[no-any-return]


class JobsAPI:
    """``client.jobs``: the ``/v1/jobs`` endpoints."""

    def __init__(self, client: FlatfileClient) -> None:
        self._client = client

    async def _job(self, method: str, path: str, body: Any = None) -> Job:
        return from_wire(await self._client.data(method, path, body=body), Job)

    async def get(self, job_id: str) -> Job:
        """``GET /jobs/{id}``."""
        return await self._job("GET", f"/jobs/{job_id}")

    async def list(
        self,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        workbook_id: str | None = None,
        file_id: str | None = None,
        parent_id: str | None = None,
        page_size: int | None = None,
        page_number: int | None = None,
        sort_direction: str | None = None,
        exclude_child_jobs: bool | None = None,
    ) -> Page[Job]:
        """One page of ``GET /jobs`` (the environment defaults to the client's)."""
        params = {
            "environmentId": environment_id or self._client.environment_id,
            "spaceId": space_id,
            "workbookId": workbook_id,
            "fileId": file_id,
            "parentId": parent_id,
            "pageSize": page_size,
            "pageNumber": page_number,
            "sortDirection": sort_direction,
            "excludeChildJobs": exclude_child_jobs,
        }
        return _page(await self._client.request("GET", "/jobs", params=params), Job)

    async def create(self, config: JobConfig) -> Job:
        """``POST /jobs`` with a :class:`JobConfig` (type, operation and source required)."""
        return await self._job("POST", "/jobs", to_wire(config))

    async def update(self, job_id: str, update: JobUpdate) -> Job:
        """``PATCH /jobs/{id}`` with a :class:`JobUpdate`."""
        return await self._job("PATCH", f"/jobs/{job_id}", to_wire(update))

    async def delete(self, job_id: str) -> None:
        """``DELETE /jobs/{id}``."""
        await self._client.request("DELETE", f"/jobs/{job_id}")

    async def ack(
        self,
        job_id: str,
        *,
        info: str | None = None,
        progress: float | None = None,
        estimated_completion_at: dt.datetime | None = None,
    ) -> Job:
        """Acknowledge a ready job, or report progress on an executing one."""
        details = JobAckDetails(
            info=info, progress=progress, estimated_completion_at=estimated_completion_at
        )
        return await self._job("POST", f"/jobs/{job_id}/ack", to_wire(details))

    async def report_progress(
        self,
        job_id: str,
        progress: float,
        *,
        info: str | None = None,
        estimated_completion_at: dt.datetime | None = None,
    ) -> Job:
        """Report progress on an executing job: ``POST /jobs/{id}/ack`` with
        ``{"progress": p, "info"?, "estimatedCompletionAt"?}``, in the order Flatfile's
        job handler sends them."""
        body: dict[str, Any] = {"progress": progress}
        if info is not None:
            body["info"] = info
        if estimated_completion_at is not None:
            body["estimatedCompletionAt"] = to_wire(estimated_completion_at)
        return await self._job("POST", f"/jobs/{job_id}/ack", body)

    async def complete(
        self,
        job_id: str,
        details: JobCompleteDetails | None = None,
        *,
        outcome: JobOutcome | None = None,
        info: str | None = None,
    ) -> Job:
        """``POST /jobs/{id}/complete`` with a :class:`JobCompleteDetails` or ``outcome``/``info``."""
        return await self._job(
            "POST", f"/jobs/{job_id}/complete", _complete_body(details, outcome, info)
        )

    async def fail(
        self,
        job_id: str,
        details: JobCompleteDetails | None = None,
        *,
        outcome: JobOutcome | None = None,
        info: str | None = None,
    ) -> Job:
        """``POST /jobs/{id}/fail`` with a :class:`JobCompleteDetails` or ``outcome``/``info``."""
        return await self._job(
            "POST", f"/jobs/{job_id}/fail", _complete_body(details, outcome, info)
        )

    async def cancel(self, job_id: str, *, info: str | None = None) -> Job:
        """``POST /jobs/{id}/cancel``."""
        return await self._job(
            "POST", f"/jobs/{job_id}/cancel", to_wire(JobCancelDetails(info=info))
        )

    async def retry(self, job_id: str) -> Job:
        """``POST /jobs/{id}/retry``: run a failed job again."""
        return await self._job("POST", f"/jobs/{job_id}/retry")

    async def execute(self, job_id: str) -> None:
        """``POST /jobs/{id}/execute``: make a manual job ready."""
        await self._client.request("POST", f"/jobs/{job_id}/execute")

    async def ack_outcome(self, job_id: str) -> Job:
        """``POST /jobs/{id}/outcome/ack``: as the user dismissing the outcome."""
        return await self._job("POST", f"/jobs/{job_id}/outcome/ack")

    async def split(
        self,
        job_id: str,
        parts: int | builtins.list[dict[str, Any]],
        *,
        run_in_parallel: bool | None = None,
    ) -> Job:
        """Split a job into parts: a count, or one dict of ``partData`` per part."""
        details = JobSplitDetails(parts=parts, run_in_parallel=run_in_parallel)
        return await self._job("POST", f"/jobs/{job_id}/split", to_wire(details))


class EventsAPI:
    """``client.events``: the ``/v1/events`` endpoints."""

    def __init__(self, client: FlatfileClient) -> None:
        self._client = client

    async def list_raw(
        self,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        domain: str | None = None,
        topic: str | None = None,
        since: dt.datetime | None = None,
        page_size: int | None = None,
        page_number: int | None = None,
        include_acknowledged: bool | None = None,
    ) -> Page[Any]:
        """One page of events as raw JSON values, for sources that must survive bad ones."""
        params = {
            "environmentId": self._client.require_environment(environment_id),
            "spaceId": space_id,
            "domain": domain,
            "topic": topic,
            "since": since,
            "pageSize": page_size,
            "pageNumber": page_number,
            "includeAcknowledged": include_acknowledged,
        }
        return _page(await self._client.request("GET", "/events", params=params), None)

    async def list(
        self,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        domain: str | None = None,
        topic: str | None = None,
        since: dt.datetime | None = None,
        page_size: int | None = None,
        page_number: int | None = None,
        include_acknowledged: bool | None = None,
    ) -> Page[Event]:
        """One page of events, read into :class:`flatjobs.Event` models."""
        page = await self.list_raw(
            environment_id=environment_id,
            space_id=space_id,
            domain=domain,
            topic=topic,
            since=since,
            page_size=page_size,
            page_number=page_number,
            include_acknowledged=include_acknowledged,
        )
        return Page([from_wire(e, Event) for e in page.items], page.pagination)

    async def get(self, event_id: str) -> Event:
        """``GET /events/{id}``."""
        return from_wire(await self._client.data("GET", f"/events/{event_id}"), Event)

    async def ack(self, event_id: str) -> None:
        """``POST /events/{id}/ack``: mark the event acknowledged."""
        await self._client.request("POST", f"/events/{event_id}/ack")

    async def create(
        self,
        topic: str,
        *,
        domain: str,
        context: Mapping[str, Any],
        payload: Mapping[str, Any],
        attributes: Mapping[str, Any] | None = None,
    ) -> Event:
        """``POST /events``: emit a custom event."""
        body: dict[str, Any] = {
            "topic": topic,
            "domain": domain,
            "context": dict(context),
            "payload": dict(payload),
        }
        if attributes is not None:
            body["attributes"] = dict(attributes)
        return from_wire(await self._client.data("POST", "/events", body=body), Event)


class SecretsAPI:
    """``client.secrets``: ``GET /v1/secrets``."""

    def __init__(self, client: FlatfileClient) -> None:
        self._client = client

    async def list(
        self,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        actor_id: str | None = None,
    ) -> list[Secret]:
        """The secrets of an environment (and optionally a space and an actor)."""
        params = {
            "environmentId": self._client.require_environment(environment_id),
            "spaceId": space_id,
            "actorId": actor_id,
        }
        data = await self._client.data("GET", "/secrets", params=params)
        return [from_wire(s, Secret) for s in data or []]

    async def get(
        self,
        name: str,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        actor_id: str | None = None,
    ) -> str:
        """The value of the secret ``name``; raises :class:`SecretNotFound`."""
        secrets = await self.list(
            environment_id=environment_id, space_id=space_id, actor_id=actor_id
        )
        for secret in secrets:
            if secret.name == name:
                return secret.value
        raise SecretNotFound(f"secret {name!r} not found")
