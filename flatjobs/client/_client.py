"""``FlatfileClient``: configuration, the connection pool, and one request with retries."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Self, TypeVar, overload

import aiohttp
import attrs
import yarl

from flatjobs import _meta
from flatjobs.errors import (
    ConfigurationError,
    FlatfileAPIError,
    FlatfileConnectionError,
    FlatfileError,
)
from flatjobs.log import get_logger, register_secret

from ._events import EventsAPI
from ._files import DocumentsAPI, FilesAPI, SpacesAPI
from ._jobs import JobsAPI
from ._observe import HTTP_INSTRUMENTS, HttpCall
from ._records import RecordsAPI
from ._secrets import SecretsAPI
from ._sheets import SheetsAPI, WorkbooksAPI
from ._transport import (
    RETRYABLE_STATUSES,
    Answer,
    AnswerTooLarge,
    Decoder,
    Endpoint,
    Form,
    RetryPolicy,
    anything,
    decode_body,
    encode_json,
    query,
    read_body,
    retry_after,
    retry_wait,
    unexpected,
)

__all__ = ["DEFAULT_BASE_URL", "FlatfileClient"]

DEFAULT_BASE_URL = "https://platform.flatfile.com/api"
T = TypeVar("T")
_log = get_logger("flatjobs.client")


def _base_url(given: str | None) -> str:
    """The API root from the argument or the environment, checked without ever echoing it:
    a token pasted in the wrong variable must not end up in an error message or a log."""
    env = os.environ
    if given:
        source, value = "the base_url argument", given
    elif env.get("FLATFILE_API_URL"):
        source, value = "FLATFILE_API_URL", env["FLATFILE_API_URL"]
    elif env.get("AGENT_INTERNAL_URL"):
        source, value = "AGENT_INTERNAL_URL", env["AGENT_INTERNAL_URL"]
    else:
        source, value = "the default", DEFAULT_BASE_URL
    hint = "such as https://platform.flatfile.com/api (its value is not shown: it may be a secret)"
    try:
        url = yarl.URL(value.strip())
    except ValueError:
        raise ConfigurationError(f"{source} is not a URL; give an http(s) URL {hint}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"{source} must be an http:// or https:// URL {hint}")
    if url.user is not None or url.password is not None:
        raise ConfigurationError(
            f"{source} must not hold a user name or password; give the token in "
            f"FLATFILE_BEARER_TOKEN instead ({hint.partition('(')[2].rstrip(')')})"
        )
    if url.query_string or url.fragment or "?" in value or "#" in value:
        raise ConfigurationError(
            f"{source} must not have a query string or fragment ('?...', '#...'); give the "
            f"API root {hint}"
        )
    root = str(url).rstrip("/")
    return root if root.endswith("/v1") else root + "/v1"


class FlatfileClient:
    """An async client for Flatfile's REST API. Use it as ``async with``, or call ``close()``.

    >>> import asyncio
    >>> from flatjobs.emulator import Emulator
    >>> from flatjobs.models import JobOutcome
    >>> async def main() -> None:
    ...     async with Emulator() as emulator:        # or FlatfileClient(): from the environment
    ...         job = emulator.trigger("workbook:export")
    ...         async with FlatfileClient(emulator.url, emulator.token) as client:
    ...             await client.jobs.ack(job.id, info="Accepted", progress=0)
    ...             done = await client.jobs.complete(job.id, outcome=JobOutcome(message="Done"))
    ...             print(done.status, done.outcome.message)
    >>> asyncio.run(main())
    complete Done

    Configuration, constructor arguments first, then the environment:

    * base URL: ``FLATFILE_API_URL``, then ``AGENT_INTERNAL_URL``, then
      ``https://platform.flatfile.com/api``; ``/v1`` is appended;
    * token: ``FLATFILE_BEARER_TOKEN``, then ``FLATFILE_API_KEY``;
    * environment id: ``FLATFILE_ENVIRONMENT_ID``.

    Requests that answer 408, 429 or 5xx, that answer 2xx with a body that is not what the
    endpoint returns, that drop the connection or time out are retried with exponential
    backoff and jitter, honouring ``Retry-After`` and ``retry-after-ms``, within
    :class:`RetryPolicy`'s attempts and deadline. Tests switch the waiting off with
    :func:`flatjobs.set_testing`.

    Args:
        base_url: the API root without ``/v1`` (e.g. ``http://127.0.0.1:8080``).
        token: the bearer token. Never logged, never in ``repr`` or an error.
        environment_id: the default for calls that take an environment id.
        session: an ``aiohttp.ClientSession`` to use; it stays yours: the client never
            closes it.
        retry: a :class:`RetryPolicy`.

    Raises:
        ConfigurationError: no token was given and none is in the environment, the token
            holds control characters (white space around it is dropped), or the base URL is
            not a plain http(s) URL.
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
        # A token read from a file or a secret often ends with a newline: not part of it.
        token = token.strip() if isinstance(token, str) else token
        if token and any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
            raise ConfigurationError(
                "the Flatfile API token holds control characters (its value is not shown)"
            )
        if not token:
            raise ConfigurationError(
                "no Flatfile API token: pass token=... or set FLATFILE_BEARER_TOKEN "
                "(or FLATFILE_API_KEY)"
            )
        register_secret(token)
        self.base_url = _base_url(base_url)
        self.environment_id = environment_id or env.get("FLATFILE_ENVIRONMENT_ID") or None
        self.retry = retry or RetryPolicy()
        self._session = session
        self._owns_session = session is None
        self._closed = False
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
        self.records = RecordsAPI(self)
        self.sheets = SheetsAPI(self)
        self.workbooks = WorkbooksAPI(self)
        self.files = FilesAPI(self)
        self.spaces = SpacesAPI(self)
        self.documents = DocumentsAPI(self)

    @property
    def host(self) -> str:
        """The API's host (and port), to name it in log lines and messages."""
        return yarl.URL(self.base_url).host_port_subcomponent or self.base_url

    def __repr__(self) -> str:
        return (
            f"FlatfileClient(base_url={self.base_url!r}, "
            f"environment_id={self.environment_id!r}, token='[redacted]')"
        )

    async def __aenter__(self) -> Self:
        self._closed = False  # `async with` opens a closed client again
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool, if this client created it (a lent session stays open).

        Calls after it raise ``RuntimeError`` (a call a loop left behind must not open a
        pool nobody closes) until the client is entered again: ``async with client``."""
        self._closed = True
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            # A call started after close() (say, a read-ahead a loop left behind) must not
            # open a pool nobody will close.
            raise RuntimeError("this FlatfileClient is closed: use it in `async with client`")
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
                trace_configs=HTTP_INSTRUMENTS.trace_configs() if HTTP_INSTRUMENTS else None,
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
        """Send one call to any endpoint, with retries; returns the decoded JSON answer.

        ``path`` is relative to ``/v1`` and used as given: quote ids with
        :func:`flatjobs.client.segment` (the typed methods do). Raises
        :class:`FlatfileAPIError` for an error status and :class:`FlatfileConnectionError`
        when no answer could be had.
        """
        return await self.call(Endpoint(method, path, "request"), body=body, params=params)

    async def call(
        self,
        endpoint: Endpoint,
        *ids: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        form: Form | None = None,
        decode: Decoder[T] = anything,
        retry: RetryPolicy | None = None,
        max_bytes: int | None = None,
    ) -> T:
        """Send ``endpoint`` (its ``{}`` filled with ``ids``, each quoted) with retries (by
        ``retry``, or the client's policy), and return the answer as ``decode`` reads it.
        ``body`` is sent as JSON; ``form`` as multipart (retried only when it can be sent
        again: a stream read once is sent once). ``max_bytes`` caps the bytes read of the
        answer (after decompression).

        Raises:
            InvalidRequestError: an id or the body cannot be sent (nothing was sent).
            FlatfileAPIError: an error status, after any retries.
            UnexpectedResponseError: a 2xx answer ``decode`` refused, after any retries;
                or an answer longer than ``max_bytes`` (not retried: its reason names the
                limit and the size, its body holds the answer's first KiB).
            FlatfileConnectionError: no answer could be had, after any retries.
        """
        path = endpoint.path(*ids)
        payload = form if form is not None else (encode_json(body) if body is not None else None)
        params_list = query(params) if params else None
        policy = retry or self.retry
        if isinstance(payload, Form) and not payload.replayable:
            policy = attrs.evolve(policy, attempts=1)
        if not HTTP_INSTRUMENTS:
            return await self._send(
                endpoint.method, path, params_list, payload, decode, policy, max_bytes
            )
        call = HttpCall.begin(endpoint.name, endpoint.method)
        started, status = time.perf_counter(), None
        try:
            result = await self._send(
                endpoint.method, path, params_list, payload, decode, policy, max_bytes
            )
            status = 200
            return result
        except FlatfileAPIError as err:
            status = err.status
            raise
        finally:
            call.end(status, time.perf_counter() - started)

    @contextlib.asynccontextmanager
    async def stream(
        self, endpoint: Endpoint, *ids: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open ``endpoint``'s answer as a stream of bytes (a download): ``async with
        client.stream(...) as chunks: async for chunk in chunks``. Retried until the answer
        starts; a failure after that raises :class:`FlatfileConnectionError`.
        """
        path = endpoint.path(*ids)
        shown_path = "/v1" + path
        response = await self._send(
            endpoint.method, path, query(params) if params else None, None, None, self.retry
        )
        try:
            yield _chunks(response, endpoint.method, shown_path)
        finally:
            response.release()

    @overload
    async def _send(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]] | None,
        payload: bytes | Form | None,
        decode: Decoder[T],
        policy: RetryPolicy,
        max_bytes: int | None = None,
    ) -> T: ...

    @overload
    async def _send(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]] | None,
        payload: bytes | Form | None,
        decode: None,
        policy: RetryPolicy,
        max_bytes: int | None = None,
    ) -> aiohttp.ClientResponse: ...

    async def _send(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]] | None,
        payload: bytes | Form | None,
        decode: Decoder[T] | None,
        policy: RetryPolicy,
        max_bytes: int | None = None,
    ) -> T | aiohttp.ClientResponse:
        """One call with retries. With no ``decode``, the answer's response is returned
        open, its body unread, once its status is a success (the caller releases it)."""
        session = self._get_session()
        url = self.base_url + path
        shown_path = "/v1" + path
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
            if (
                remaining < policy.request_timeout
                or not self._owns_session
                or policy.request_timeout != self.retry.request_timeout
            ):
                extra["timeout"] = aiohttp.ClientTimeout(
                    total=min(remaining, policy.request_timeout)
                )
            data, headers = self._payload(payload)
            wait_hint: float | None = None
            response: aiohttp.ClientResponse | None = None
            try:
                response = await session.request(
                    method, url, params=params, data=data, headers=headers, **extra
                )
                status = response.status
                answer_headers = response.headers
                if decode is None and status < 400:
                    return response  # a stream: its body is the caller's to read
                raw = await read_body(response, max_bytes)
            except AnswerTooLarge as big:
                # Not retried: the same call gets the same answer. The rest is not read,
                # so the connection cannot carry another request.
                if response is not None:
                    response.close()
                raise unexpected(
                    status, method, shown_path, decode_body(big.head), str(big), attempt
                ) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                _log.debug(
                    "request failed", method=method, path=shown_path, attempt=attempt, error=reason
                )
                failure: FlatfileError = FlatfileConnectionError(method, shown_path, reason)
                failure.__cause__ = exc
            else:
                elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
                _log.debug(
                    "request",
                    method=method,
                    path=shown_path,
                    status=status,
                    attempt=attempt,
                    duration_ms=elapsed_ms,
                )
                decoded = decode_body(raw)
                if status < 400 and decode is not None:
                    try:
                        return decode(Answer(status, decoded, answer_headers))
                    except ValueError as exc:  # what cattrs and the decoders raise
                        failure = unexpected(status, method, shown_path, decoded, str(exc), attempt)
                else:
                    failure = FlatfileAPIError(status, method, shown_path, decoded, attempt)
                    if status not in RETRYABLE_STATUSES:
                        raise failure
                    wait_hint = retry_after(answer_headers)
            finally:
                if response is not None and (decode is not None or response.status >= 400):
                    response.release()
            if attempt >= policy.attempts:
                raise failure
            wait = retry_wait(policy, attempt, wait_hint)
            if loop.time() + wait >= deadline:
                raise failure
            _log.info(
                "an API call failed; retrying",
                api=self.host,
                error=str(failure),
                attempt=attempt,
                retry_in=round(wait, 2),
            )
            if HTTP_INSTRUMENTS:
                HttpCall.retrying(getattr(failure, "status", None))
            await asyncio.sleep(wait)

    def _payload(self, payload: bytes | Form | None) -> tuple[Any, Mapping[str, str] | None]:
        """The data and headers of one attempt (a multipart form is built afresh each time)."""
        base = None if self._owns_session else self._headers
        if not isinstance(payload, Form):
            return payload, base
        writer = payload.build()
        return writer, {**(base or {}), "Content-Type": writer.content_type}


async def _chunks(response: aiohttp.ClientResponse, method: str, path: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_chunked(64 * 1024):
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise FlatfileConnectionError(method, path, f"the download broke off: {reason}") from exc
