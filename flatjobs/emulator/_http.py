"""What the emulator's routes share: answers (the ``data`` envelope, pages, downloads), a
request's JSON body (parsed once), its query, and multipart forms."""

from __future__ import annotations

import contextvars
import email.message
import email.parser
import email.utils
import json
import math
import re
import urllib.parse
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from ._checks import Params
from ._errors import EmulatorError
from ._feed import RawJSON

__all__ = [
    "INFLATED",
    "PARSED",
    "Handler",
    "answer",
    "answer_fast",
    "body_bytes",
    "download",
    "dumps",
    "form",
    "inflate",
    "json_body",
    "page",
    "paging",
    "params",
    "parse_json",
    "parsed_body",
    "raw_list",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_PAGE_SIZE = 1000


def dumps(value: Any) -> str:
    """Compact JSON, as the platform writes it."""
    return json.dumps(value, separators=(",", ":"))


def answer(value: Any, status: int = 200) -> web.Response:
    """``{"data": value}``."""
    return web.json_response({"data": value}, status=status, dumps=dumps)


def answer_fast(value: Any) -> web.Response:
    """``{"data": value}`` for the data store's answers, built fresh by the store and so
    free of cycles: the encoder's cycle check (a fifth of the time of a page of 10,000
    records) is skipped."""
    text = json.dumps({"data": value}, separators=(",", ":"), check_circular=False)
    return web.Response(text=text, content_type="application/json")


def paging(query: Mapping[str, str], default_size: int) -> tuple[int, int]:
    """``(pageSize, pageNumber)`` from a query, checked."""
    try:
        size = int(query.get("pageSize", default_size))
        number = int(query.get("pageNumber", 1))
    except ValueError as exc:
        raise EmulatorError(400, f"pageSize and pageNumber must be integers: {exc}") from exc
    if not 1 <= size <= MAX_PAGE_SIZE or number < 1:
        raise EmulatorError(
            400,
            f"pageSize must be within 1..{MAX_PAGE_SIZE} and pageNumber >= 1, got {size} and "
            f"{number}",
        )
    return size, number


def page(items: list[Any], query: Mapping[str, str], default_size: int) -> web.Response:
    """A list with ``pagination``, as ``GET /jobs`` answers."""
    size, number = paging(query, default_size)
    start = (number - 1) * size
    body = {
        "data": items[start : start + size],
        "pagination": {
            "currentPage": number,
            "pageCount": max(1, math.ceil(len(items) / size)),
            "totalCount": len(items),
        },
    }
    return web.json_response(body, dumps=dumps)


def raw_list(items: list[Any]) -> web.Response:
    """``{"data": [...]}`` whose items may be JSON text stored as it came (a hostile event
    nested too deeply for ``json.dumps``); no ``pagination``, as the events list answers."""
    parts = [i.text if isinstance(i, RawJSON) else dumps(i) for i in items]
    return web.Response(text='{"data":[' + ",".join(parts) + "]}", content_type="application/json")


def download(content: bytes, content_type: str, name: str) -> web.Response:
    """A download: the bytes as they are, named for a browser's save dialog."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "download"
    quoted = urllib.parse.quote(name, safe="")
    return web.Response(
        body=content,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{fallback}"; '
            f"filename*=UTF-8''{quoted}",
        },
    )


# ----------------------------------------------------------- requests

# The body the middleware parsed for the recording, handed to the handler it calls (in the
# same task), so that a large batch of records is parsed once.
PARSED: contextvars.ContextVar[tuple[Any] | None] = contextvars.ContextVar(
    "flatjobs_emulator_body", default=None
)


# The body the middleware inflated (a request sent with Content-Encoding: gzip), handed to
# the handler it calls: aiohttp's own cache holds the body as it came.
INFLATED: contextvars.ContextVar[bytes | None] = contextvars.ContextVar(
    "flatjobs_emulator_inflated", default=None
)
_STEP = 1024**2
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """A body sent with ``Content-Encoding`` (``gzip``, as Flatfile's record hook writes
    back, or ``deflate``), inflated a part at a time and never past ``limit`` bytes: a
    small body that would inflate to gigabytes is refused (413) once it passes the limit.

    Raises:
        EmulatorError: 413 past the limit, 400 for a body that does not inflate, 415 for
            an encoding other than gzip, deflate or identity.
    """
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return raw
    wbits = _ENCODINGS.get(name)
    if wbits is None:
        raise EmulatorError(
            415, f"Content-Encoding {encoding!r:.40} is not supported: send gzip or deflate"
        )
    inflater = zlib.decompressobj(wbits)
    out = bytearray()
    pending = raw
    try:
        while pending and not inflater.eof:
            # A megabyte at a time: the body is never held twice over.
            out += inflater.decompress(pending, min(_STEP, limit + 1 - len(out)))
            if len(out) > limit:
                raise EmulatorError(413, f"the request body inflates to more than {limit} bytes")
            pending = inflater.unconsumed_tail
        if not inflater.eof:
            raise EmulatorError(400, f"the request body ({name}) is cut short")
    except zlib.error as exc:
        raise EmulatorError(400, f"the request body does not inflate as {name}: {exc}") from exc
    return bytes(out)


async def body_bytes(request: web.Request) -> bytes:
    """The request's body, inflated when it came with a ``Content-Encoding``."""
    inflated = INFLATED.get()
    return inflated if inflated is not None else await request.read()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (NaN and Infinity are not numbers)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: valid JSON, but an answer could not write it back
        raise ValueError(f"{text[:40]} is too large a number")
    return value


def parse_json(raw: bytes) -> Any:
    """A request body as JSON; NaN and Infinity (also as ``1e999``) are refused."""
    if not raw:
        return None
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise EmulatorError(400, f"request body is not valid JSON: {exc}") from exc


def parsed_body(raw: bytes) -> Any:
    """The body the middleware parsed already, else ``raw`` parsed now."""
    parsed = PARSED.get()
    return parsed[0] if parsed is not None else parse_json(raw)


async def json_body(request: web.Request) -> Any:
    """The request's JSON body (``None`` when empty)."""
    return parsed_body(await body_bytes(request))


def params(request: web.Request) -> Params:
    """The query, each name with all its values (``ids=a&ids=b``)."""
    query = request.query
    return {key: query.getall(key) for key in query}


def form(content_type: str, raw: bytes) -> list[tuple[str, str | None, str | None, bytes]]:
    """Each part of a ``multipart/form-data`` body: (name, file name, content type, bytes).

    Parsed here from the body already read (the middleware reads every body once, with a
    deadline and a size limit), byte-exact: a file's content is never decoded."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise EmulatorError(400, "POST /files takes a multipart/form-data body with a boundary")
    parts = []
    for chunk in raw.split(b"--" + boundary.encode("latin-1"))[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        chunk = chunk.removeprefix(b"\r\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise EmulatorError(400, "a multipart part has no blank line after its headers")
        # Browsers and SDKs send names as raw UTF-8 in these headers.
        text = head.decode("utf-8", "replace")
        headers = email.parser.HeaderParser().parsestr(text + "\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if name is None:
            continue
        parts.append(
            (
                email.utils.collapse_rfc2231_value(name),
                headers.get_filename(),
                headers.get_content_type() if headers.get("content-type") else None,
                content.removesuffix(b"\r\n"),
            )
        )
    return parts
