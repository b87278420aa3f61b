"""How a request travels: endpoints and their URLs, JSON bodies, retries, and answer checks.

Everything here is shared by the API groups (``client.jobs``, ``client.records``...), so
each rule is written once:

* an :class:`Endpoint` builds its path from a template, quoting every id it is given as
  one path segment, so an id taken from an event (``"us_jb_1/cancel?"``) can never reach
  another endpoint;
* a body is JSON with NaN and Infinity refused, naming the field;
* an answer is checked by a *decoder* before it counts: a 2xx whose body is not what the
  endpoint returns (``{"data": null}``, an HTML page, truncated JSON) is an
  :class:`~flatjobs.UnexpectedResponseError`, retried like a 5xx;
* retries follow a :class:`RetryPolicy`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
import os
import re
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Generic, Protocol, TypeVar

import aiohttp
import attrs

from flatjobs._seconds import YEAR, backoff, check_seconds, seconds
from flatjobs.errors import InvalidRequestError, UnexpectedResponseError
from flatjobs.log import register_secret
from flatjobs.models import Pagination, from_wire, to_wire

__all__ = [
    "DEFAULT_MAX_ANSWER_BYTES",
    "RETRYABLE_STATUSES",
    "Answer",
    "AnswerTooLarge",
    "Endpoint",
    "Form",
    "Page",
    "RetryPolicy",
    "encode_json",
    "query",
    "read_body",
    "retry_after",
    "retry_wait",
    "segment",
    "set_testing",
]

T = TypeVar("T")
RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
_testing = False


class _TestingSwitch:
    """What :func:`set_testing` returns: usable as a context manager that restores."""

    def __init__(self, previous: bool) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        global _testing
        _testing = self._previous


def set_testing(testing: bool) -> _TestingSwitch:
    """Switch off the waiting between retries, process-wide (retries still happen).

    For test suites, like ``stamina.set_testing``: a test of a 503-then-200 exchange runs
    in milliseconds instead of seconds. Call it in a fixture, or use it as a context
    manager that puts the previous setting back::

        with flatjobs.set_testing(True):
            ...
    """
    global _testing
    previous, _testing = _testing, testing
    return _TestingSwitch(previous)


def _check_jitter(instance: object, attribute: object, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"RetryPolicy.jitter must be in [0, 1), got {value!r}")


def _seconds_field(*, positive: bool) -> Any:
    """An attrs validator: the field is a number of seconds (see :func:`check_seconds`)."""

    def check(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
        check_seconds(f"RetryPolicy.{attribute.name}", value, positive=positive)

    return check


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a request is retried.

    Every duration is a number of seconds from 0 (above 0 for ``deadline`` and
    ``request_timeout``) to a year: NaN, infinity and negatives are refused.

    Args:
        attempts: total attempts per request, the first included (Flatfile's JS SDK: 3).
        initial_delay: seconds before the first retry; doubled for each retry after it.
        max_delay: a cap on one wait, also applied to ``Retry-After``.
        jitter: a wait is multiplied by a random factor in ``1 ± jitter``.
        deadline: seconds after which no further attempt starts.
        request_timeout: seconds one attempt may take.
    """

    attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    initial_delay: float = attrs.field(default=1.0, validator=_seconds_field(positive=False))
    max_delay: float = attrs.field(default=30.0, validator=_seconds_field(positive=False))
    jitter: float = attrs.field(default=0.2, validator=_check_jitter)
    deadline: float = attrs.field(default=60.0, validator=_seconds_field(positive=True))
    request_timeout: float = attrs.field(default=60.0, validator=_seconds_field(positive=True))

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based): what the server asked
        (``retry_after``), at most ``max_delay``; else (or if what it asked is no number
        of seconds: NaN, infinite, negative) the backoff."""
        if _testing:
            return 0.0
        asked = seconds(retry_after, longest=self.max_delay)
        if asked is not None:
            return asked
        return backoff(retry, self.initial_delay, self.max_delay, self.jitter)


def retry_wait(policy: RetryPolicy, retry: int, retry_after: float | None) -> float:
    """What ``policy.delay`` answers, checked: the one door of every wait between attempts,
    whatever a subclass of :class:`RetryPolicy` computes. A wait past a year is a year
    (past any deadline: the caller gives up).

    Raises:
        ValueError: the policy answered no number of seconds (NaN, infinite, negative).
    """
    wanted = policy.delay(retry, retry_after)
    wait = seconds(wanted)
    if wait is None:
        raise ValueError(
            f"{type(policy).__name__}.delay() returned {wanted!r:.80}, which is no number "
            "of seconds to wait"
        )
    return wait


# Retry-After's seconds are digits (RFC 9110); a fraction is taken too. `float()` alone
# would also read "nan", "inf", "-1" and "1e400": no waits, ignored like any garbage.
_DECIMAL: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), or
    None when neither holds a wait. A header that holds none (``nan``, ``-1``, ``inf``,
    garbage) is ignored; a date in the past means now; a huge wait is cut to a year (the
    policy cuts it further, to its ``max_delay``)."""
    ms = _decimal(headers.get("retry-after-ms"))
    if ms is not None:
        return seconds(min(ms / 1000, YEAR))
    value = headers.get("Retry-After")
    if value is None:
        return None
    number = _decimal(value)
    if number is not None:
        return seconds(min(number, YEAR))  # digits too many for a float are inf: cut
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, its local offset unknown (RFC 5322)
        when = when.replace(tzinfo=dt.UTC)
    return seconds(min(max((when - dt.datetime.now(dt.UTC)).total_seconds(), 0.0), YEAR))


def _decimal(text: str | None) -> float | None:
    """``text`` as a number if it is written in digits (``"120"``, ``"1.5"``)."""
    if text is None or not _DECIMAL.fullmatch(text := text.strip()):
        return None
    return float(text)


# --------------------------------------------------------------------------- URLs


def segment(value: str, what: str = "id") -> str:
    """``value`` quoted as exactly one URL path segment.

    Raises:
        InvalidRequestError: ``value`` is not a string, is empty, or is ``.`` or ``..``
            (which a URL would resolve to another path).
    """
    if not isinstance(value, str) or value in ("", ".", ".."):
        raise InvalidRequestError(
            f"{what} must be a non-empty string and not '.' or '..', got {value!r:.80}"
        )
    return urllib.parse.quote(value, safe="")


@attrs.frozen
class Endpoint:
    """One API endpoint: its method, its path template under ``/v1`` and its name.

    ``name`` (``"jobs.ack"``) labels the endpoint in logs and metrics without ids; the
    emulator uses the same names for its routes.

    >>> Endpoint("POST", "/jobs/{}/ack", "jobs.ack").path("us_jb_1/cancel?")
    '/jobs/us_jb_1%2Fcancel%3F/ack'
    """

    method: str
    template: str
    name: str

    def path(self, *ids: str) -> str:
        """The path with each of ``ids`` quoted into its ``{}``."""
        if not ids:
            return self.template
        return self.template.format(*(segment(i) for i in ids))


def query(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query pairs: ``None`` dropped, booleans as ``true``/``false``, datetimes in ISO 8601,
    and a list repeated as one pair per item (``ids=a&ids=b``), as Flatfile's SDKs send."""
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, bool):
                out.append((key, "true" if item else "false"))
            elif isinstance(item, dt.datetime):
                out.append((key, to_wire(item)))
            else:
                out.append((key, str(item)))
    return out


# --------------------------------------------------------------------------- bodies


def encode_json(body: Any) -> bytes:
    """``body`` as compact JSON; NaN and Infinity are refused, naming where they are.

    Raises:
        InvalidRequestError: the body holds NaN or Infinity, or a value JSON cannot hold.
    """
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        where = _non_finite(body, "body")
        raise InvalidRequestError(
            f"cannot send {where}: NaN and Infinity are not JSON numbers"
        ) from None
    except (TypeError, RecursionError) as exc:
        raise InvalidRequestError(f"cannot send the request body as JSON: {exc}") from None


def _non_finite(value: Any, where: str) -> str:
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"{path} = {item}"
        if isinstance(item, Mapping):
            stack.extend((v, f"{path}.{k}") for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
    return where


class Form:
    """A multipart body, built afresh for each attempt.

    Args:
        fields: plain text parts, in order (``None`` values are left out).
        file: ``(name, content, content_type)`` of the file part named ``file``; content is
            bytes or a path (both can be sent again), or an async iterable of bytes (sent
            once: a request with it is not retried).
        json_parts: parts holding JSON text, one per item, all under ``json_name``.
    """

    def __init__(
        self,
        fields: Mapping[str, str | None],
        file: tuple[str, bytes | os.PathLike[str] | AsyncIterable[bytes], str] | None = None,
        *,
        json_name: str = "actions",
        json_parts: list[Any] | None = None,
    ) -> None:
        self.fields = {k: v for k, v in fields.items() if v is not None}
        self.file = file
        self.json_name = json_name
        self.json_parts = json_parts or []

    @property
    def replayable(self) -> bool:
        """Whether the body can be sent again (no one-shot stream in it)."""
        return self.file is None or isinstance(self.file[1], bytes | os.PathLike)

    def build(self) -> aiohttp.MultipartWriter:
        """The body of one attempt."""
        # The parts in the order Flatfile's own SDK sends them: the fields, the file, then
        # one text part of JSON per item.
        writer = aiohttp.MultipartWriter("form-data")
        for name, value in self.fields.items():
            part = writer.append(value)
            part.set_content_disposition("form-data", name=name)
        if self.file is not None:
            name, content, content_type = self.file
            payload: Any = content
            if isinstance(content, os.PathLike):
                payload = open(content, "rb")  # noqa: SIM115 - aiohttp reads and closes it
            part = writer.append(payload, {"Content-Type": content_type})
            # The name as browsers and Flatfile's SDK send it: UTF-8, only '"', CR and LF
            # escaped (aiohttp's own quoting would percent-encode every space and accent).
            safe = name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
            part.set_content_disposition(
                "form-data", quote_fields=False, name="file", filename=safe
            )
        for item in self.json_parts:
            part = writer.append(encode_json(item).decode())
            part.set_content_disposition("form-data", name=self.json_name)
        return writer


# --------------------------------------------------------------------------- answers


@attrs.frozen
class Answer:
    """A success answer as a decoder sees it: the status, the body decoded (JSON when it
    is JSON, else text), and the headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def server_time(self) -> dt.datetime | None:
        """The server's clock when it answered (its ``Date`` header), if it sent one."""
        value = self.headers.get("Date")
        if not value:
            return None
        try:
            return email.utils.parsedate_to_datetime(value).astimezone(dt.UTC)
        except (TypeError, ValueError, OverflowError):  # no date, or none a datetime holds
            return None


Decoder = Callable[[Answer], T]
"""Reads a success answer into what the caller gets; raises ``ValueError`` when the answer
is not what the endpoint returns (the request is then retried)."""


DEFAULT_MAX_ANSWER_BYTES: Final = 16 * 1024 * 1024
"""The default cap on an answer a listener reads without asking for it in pages (a push
answer, a page of the events feed): 16 MiB, far above any real one."""
_CHUNK: Final = 64 * 1024
_HEAD: Final = 1024  # bytes of a refused answer kept, to tell which it was


class AnswerTooLarge(Exception):
    """An answer longer than its reader's limit; only its first bytes were read."""

    def __init__(self, limit: int, read: int, declared: int | None, head: bytes) -> None:
        self.limit = limit
        self.read = read
        """Bytes read (decompressed) when it was refused."""
        self.declared = declared
        """Its ``Content-Length``, when it had one."""
        self.head = head
        """Its first bytes (up to 1 KiB)."""
        size = (
            f"its Content-Length says {declared:,}"
            if declared is not None and declared > limit
            else f"{read:,} bytes came before it was cut off"
        )
        super().__init__(f"the answer is larger than the limit of {limit:,} bytes: {size}")


async def read_body(response: aiohttp.ClientResponse, limit: int | None) -> bytes:
    """The body of ``response``, reading at most ``limit`` bytes of it (after any
    decompression, so a compressed bomb counts at its real size); all of it when None.

    Raises:
        AnswerTooLarge: the body is longer than ``limit`` (or its ``Content-Length`` says
            so): nothing more is read; the caller closes the connection.
    """
    if limit is None:
        return await response.read()
    declared = response.content_length
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit or (declared is not None and declared > limit and len(body) >= _HEAD):
            raise AnswerTooLarge(limit, len(body), declared, bytes(body[:_HEAD]))
    if declared is not None and declared > limit:
        raise AnswerTooLarge(limit, len(body), declared, bytes(body[:_HEAD]))
    return bytes(body)


def decode_body(raw: bytes) -> Any:
    """A body as JSON when it is JSON, else as text (kept for error messages)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to read
        return raw.decode("utf-8", "replace")


def envelope(answer: Any) -> Any:
    """The ``data`` of a ``{"data": ...}`` answer (an :class:`Answer` or its body)."""
    if isinstance(answer, Answer):
        answer = answer.body
    if not isinstance(answer, Mapping):
        raise ValueError(f"expected a JSON object with `data`, got {_kind(answer)}")
    if "data" not in answer:
        raise ValueError("the answer has no `data`")
    return answer["data"]


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "text that is not JSON" if value else "an empty body"
    if value is None:
        return "an empty body"
    return f"a JSON {type(value).__name__}"


def data_object(cls: type[T]) -> Decoder[T]:
    """Decoder: ``data`` is an object read into ``cls``."""

    def decode(answer: Answer) -> T:
        data = envelope(answer)
        if not isinstance(data, Mapping):
            raise ValueError(f"expected `data` to be an object, got {_kind(data)}")
        return from_wire(data, cls)

    return decode


def data_list(cls: type[T] | None) -> Decoder[list[T]]:
    """Decoder: ``data`` is a list whose items are read into ``cls`` (kept raw if None)."""

    def decode(answer: Answer) -> list[T]:
        data = envelope(answer)
        if not isinstance(data, list):
            raise ValueError(f"expected `data` to be a list, got {_kind(data)}")
        return [from_wire(i, cls) for i in data] if cls is not None else data

    return decode


def secret_fields(field: str, decode: Decoder[T]) -> Decoder[T]:
    """Decoder: ``decode``, after registering for redaction the text under ``field`` of the
    ``data`` object, or of each object in a ``data`` list (a token, a secret's value):
    before anything, a malformed answer's error included, can show it."""

    def registering(answer: Answer) -> T:
        data = answer.body.get("data") if isinstance(answer.body, Mapping) else None
        for item in data if isinstance(data, list) else [data]:
            value = item.get(field) if isinstance(item, Mapping) else None
            if isinstance(value, str):
                register_secret(value)
        return decode(answer)

    return registering


def success(answer: Answer) -> None:
    """Decoder for answers that only confirm: an object, its ``data.success`` not false."""
    if answer.body is None:
        return  # an empty 2xx answer confirms too
    data = envelope(answer)
    if isinstance(data, Mapping) and data.get("success") is False:
        raise ValueError("the answer says success: false")


def anything(answer: Answer) -> Any:
    """Decoder that accepts any answer: its body as it is."""
    return answer.body


@attrs.frozen
class Page(Generic[T]):
    """One page of a list endpoint: iterate it, or read ``items`` and ``pagination``.

    >>> page = Page(["a", "b"])
    >>> len(page), list(page)
    (2, ['a', 'b'])

    ``server_time`` is the server's clock when it answered (its ``Date`` header), when sent.
    """

    items: list[T]
    pagination: Pagination | None = None
    server_time: dt.datetime | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def page_of(cls: type[T] | None) -> Decoder[Page[T]]:
    """Decoder: a list answer with optional ``pagination``."""
    items = data_list(cls)

    def decode(answer: Answer) -> Page[T]:
        body = answer.body
        pagination = body.get("pagination") if isinstance(body, Mapping) else None
        return Page(
            items(answer),
            from_wire(pagination, Pagination) if isinstance(pagination, Mapping) else None,
            answer.server_time,
        )

    return decode


def unexpected(
    status: int, method: str, path: str, body: Any, reason: str, attempts: int
) -> UnexpectedResponseError:
    """The error for an answer a decoder refused."""
    return UnexpectedResponseError(status, method, path, body, reason, attempts)


class Caller(Protocol):
    """What an API group (``client.jobs``, ``client.records``...) needs of the client that
    holds it: the calls, and the default environment. :class:`~flatjobs.FlatfileClient` is
    one; the groups know it by this alone, so the client's module and theirs do not import
    each other."""

    environment_id: str | None

    def require_environment(self, environment_id: str | None) -> str:
        """``environment_id``, or the client's, or :class:`~flatjobs.ConfigurationError`."""
        ...

    async def call(
        self,
        endpoint: Endpoint,
        *ids: str,
        params: Mapping[str, Any] | None = ...,
        body: Any = ...,
        form: Form | None = ...,
        decode: Decoder[T] = ...,
        retry: RetryPolicy | None = ...,
        max_bytes: int | None = ...,
    ) -> T:
        """Send ``endpoint`` and return its answer as ``decode`` reads it."""
        ...

    def stream(
        self, endpoint: Endpoint, *ids: str, params: Mapping[str, Any] | None = ...
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Open ``endpoint``'s answer as a stream of bytes."""
        ...
