"""A TCP-level HTTP fault proxy: real network faults between a client and a real server.

Status-code faults (the emulator's, ``aioresponses``) only prove that a client reads an error
answer. Real networks also reset connections, go silent, cut bodies short and put HTML or
garbage where JSON belongs; those faults surface as different exceptions in different places
of aiohttp (at connect, while reading the head, while reading the body, at decode time). This
proxy produces them on a real socket, so tests exercise the same code paths production does::

    async with FaultProxy(emulator_url, seed=1) as proxy:
        proxy.add("reset_after", rate=0.3, paths="/v1/jobs/*/ack")
        proxy.add("stall", rate=0.1, methods="GET", limit=2)
        async with FlatfileClient(proxy.url, token) as client:
            ...
        proxy.clear()  # the faults end; the rest of the test checks recovery

The proxy speaks HTTP/1.1 itself over asyncio streams (no HTTP library in the middle can
"helpfully" repair anything): each accepted client connection gets its own upstream
connection, requests are forwarded as the client sent them and answers come back byte for byte
unless a fault rule says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import random
import socket
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from fnmatch import fnmatchcase
from types import TracebackType
from typing import Any, Final, Literal, NamedTuple, Self, get_args
from urllib.parse import unquote, urlsplit

__all__ = ["FaultKind", "FaultProxy", "FaultRecord", "FaultRule"]

FaultKind = Literal[
    "reset_before",
    "reset_after",
    "stall",
    "truncate",
    "garbage",
    "html",
    "data_null",
    "status",
    "delay",
    "json",
]
"""What a rule does to a request it picks; see :meth:`FaultProxy.add`."""

KINDS: Final[frozenset[str]] = frozenset(get_args(FaultKind))

# Parameters each kind accepts (a typo must fail loudly, not silently inject the default).
_PARAMS: Final[dict[str, frozenset[str]]] = {
    "reset_before": frozenset(),
    "reset_after": frozenset(),
    "stall": frozenset({"seconds", "forward"}),
    "truncate": frozenset({"keep"}),
    "garbage": frozenset({"size"}),
    "html": frozenset({"status"}),
    "data_null": frozenset(),
    "status": frozenset({"status", "retry_after", "body"}),
    "delay": frozenset({"seconds"}),
    "json": frozenset({"body", "status"}),
}
_REQUIRED: Final[dict[str, frozenset[str]]] = {
    "status": frozenset({"status"}),
    "delay": frozenset({"seconds"}),
    "json": frozenset({"body"}),
}

_LIMIT: Final = 1 << 20  # longest head or chunk-size line read; bodies are not limited
_CRLF: Final = b"\r\n"
_HEAD_END: Final = b"\r\n\r\n"
_SERVER: Final = "flatjobs-faultproxy"
_FAULT_HEADER: Final = "X-Faultproxy-Fault"
_HTML_PAGE: Final = (
    b"<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head>\n"
    b"<body><h1>Service temporarily unavailable</h1>\n"
    b"<p>The upstream did not answer in time. Please try again later.</p>\n"
    b"<hr><center>flatjobs-faultproxy</center></body></html>\n"
)


class FaultRecord(NamedTuple):
    """One request the proxy saw: what was asked and which fault (if any) it got.

    A tuple, so tests can compare against plain ``(method, path, kind)`` tuples.
    """

    method: str
    path: str
    kind: str | None


@dataclass(eq=False)
class FaultRule:
    """A fault and the requests it may pick; returned by :meth:`FaultProxy.add`.

    ``hits`` counts the requests this rule actually faulted, so a test can check one rule
    without adding up :attr:`FaultProxy.injected`.
    """

    kind: str
    rate: float
    paths: tuple[str, ...]
    methods: frozenset[str] | None
    limit: int | None
    params: dict[str, Any]
    hits: int = field(default=0, init=False)

    def selects(self, method: str, path: str) -> bool:
        """Whether a request is in this rule's scope (and the rule is not used up)."""
        if self.limit is not None and self.hits >= self.limit:
            return False
        if self.methods is not None and method not in self.methods:
            return False
        return any(fnmatchcase(path, pattern) for pattern in self.paths)


class _BadMessage(Exception):
    """An HTTP message the proxy cannot frame; the client gets ``status``, the upstream 502."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


class _UpstreamError(Exception):
    """No usable answer from the upstream: the client gets a 502."""


@dataclass
class _Request:
    method: str
    path: str  # percent-decoded, without the query: what rules match against
    raw: bytes  # head and body, exactly as they go upstream
    keep_alive: bool


@dataclass
class _Response:
    status: int
    head: bytes
    body: bytes  # as framed on the wire (still chunked when it came chunked)
    close: bool  # the upstream connection ends after this answer


@dataclass(eq=False)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None = None
    up_reader: asyncio.StreamReader | None = None
    up_writer: asyncio.StreamWriter | None = None


def _parse_fields(lines: list[bytes]) -> list[tuple[str, str]]:
    fields = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():  # also refuses obs-fold lines
            raise _BadMessage(f"malformed header line {line[:80]!r}")
        fields.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
    return fields


def _tokens(fields: list[tuple[str, str]], name: str) -> list[str]:
    return [
        token.strip().lower()
        for key, value in fields
        if key == name
        for token in value.split(",")
        if token.strip()
    ]


def _content_length(fields: list[tuple[str, str]]) -> int | None:
    values = {v.strip() for k, value in fields if k == "content-length" for v in value.split(",")}
    if not values:
        return None
    if len(values) > 1 or not all(v.isdigit() for v in values):
        raise _BadMessage(f"bad Content-Length {sorted(values)!r}")
    return int(values.pop())


def _is_chunked(fields: list[tuple[str, str]]) -> bool:
    codings = _tokens(fields, "transfer-encoding")
    if not codings:
        return False
    if codings[-1] != "chunked":
        raise _BadMessage(f"unsupported Transfer-Encoding {codings!r}", 501)
    if _content_length(fields) is not None:
        raise _BadMessage("both Transfer-Encoding and Content-Length")
    return True


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body, raw (size lines, extensions and trailers kept) so it forwards unchanged."""
    parts: list[bytes] = []
    while True:
        line = await reader.readuntil(_CRLF)
        parts.append(line)
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
            raise _BadMessage(f"bad chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if size == 0:
            while True:  # trailer fields, up to the empty line
                trailer = await reader.readuntil(_CRLF)
                parts.append(trailer)
                if trailer == _CRLF:
                    return b"".join(parts)
        data = await reader.readexactly(size + 2)
        if not data.endswith(_CRLF):
            raise _BadMessage("chunk data not followed by CRLF")
        parts.append(data)


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The next message head, or None when the peer closed cleanly between messages."""
    try:
        head = await reader.readuntil(_HEAD_END)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise _BadMessage("connection closed inside a message head") from None
    except asyncio.LimitOverrunError:
        raise _BadMessage("message head too large", 431) from None
    return head.lstrip(_CRLF)  # RFC 9112 §2.2: ignore empty lines before a request line


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _answer(
    status: int,
    body: bytes,
    content_type: str,
    *,
    close: bool,
    head_only: bool = False,
    extra: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A complete response made by the proxy itself (faults, 400s, 502s)."""
    lines = [
        f"HTTP/1.1 {status} {_reason(status)}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        f"Date: {formatdate(usegmt=True)}",
        f"Server: {_SERVER}",
        *(f"{name}: {value}" for name, value in extra),
    ]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def _error_body(message: str) -> bytes:
    """The Flatfile API's error envelope, so clients parse proxy errors like real ones."""
    return json.dumps({"errors": [{"key": "faultproxy", "message": message}]}).encode()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP RST: SO_LINGER (on, 0 s), then close without flushing."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """A local HTTP/1.1 proxy in front of ``upstream_url`` that breaks chosen requests.

    Use it as an async context manager; point the client at :attr:`url`. Without rules it is a
    transparent keep-alive proxy (answers reach the client byte for byte). Rules added with
    :meth:`add` pick requests by path glob, method and rate; the draws come from a
    ``random.Random(seed)``, so a given seed and request sequence always fault the same
    requests, and a failing test can be replayed.

    Counters: :attr:`requests` (every request read), :attr:`injected` (faults by kind),
    :attr:`records` (one :class:`FaultRecord` per request), :attr:`connections` (client
    connections accepted, which shows whether a client reused its connections) and
    :attr:`upstream_errors` (requests answered 502 because the upstream failed).
    """

    def __init__(self, upstream_url: str, *, seed: int = 0) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the upstream must be an http:// URL, got {upstream_url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"the upstream URL takes no query or fragment: {upstream_url!r}")
        self.upstream_url = upstream_url
        self.seed = seed
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/").encode("latin-1")
        self._rng = random.Random(seed)  # rule draws only: content never shifts the sequence
        self._bytes_rng = random.Random(f"{seed}:garbage")
        self._rules: list[FaultRule] = []
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._closing = False
        self._errors: list[BaseException] = []
        self._url: str | None = None
        self.requests = 0
        self.connections = 0
        self.upstream_errors = 0
        self.injected: Counter[str] = Counter()
        self.records: list[FaultRecord] = []

    # -- public API -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the base URL to give the client instead of upstream's."""
        if self._url is None:
            raise RuntimeError("the FaultProxy is not started: use `async with FaultProxy(...)`")
        return self._url

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        """The active rules, in the order they are tried."""
        return tuple(self._rules)

    def add(
        self,
        kind: FaultKind,
        *,
        rate: float = 1.0,
        paths: str | Iterable[str] = "*",
        methods: str | Iterable[str] | None = None,
        limit: int | None = None,
        **params: Any,
    ) -> FaultRule:
        """Fault a share of the requests to ``paths`` (``fnmatch`` globs on the path, no query).

        Every request draws once per rule in scope; the first rule (in the order added) whose
        draw is below its ``rate`` faults it. ``methods`` restricts to those HTTP methods;
        ``limit`` caps how many requests the rule faults in all. Kinds and their ``params``:

        * ``reset_before``: RST the client connection; the upstream never sees the request.
        * ``reset_after``: the upstream handles the request, then the client gets an RST
          instead of the answer (the change happened, the client cannot know).
        * ``stall`` (``seconds=None``, ``forward=False``): say nothing, keep the connection open
          for ``seconds`` (``None``: until the client or the proxy closes), then close it;
          with ``forward=True`` the upstream handles the request first.
        * ``truncate`` (``keep=0.5``): the real status line and headers (real Content-Length),
          then only ``keep`` of the body, then FIN. An empty body cuts the head instead.
        * ``garbage`` (``size=64``): ``200 application/json`` with random non-JSON bytes.
        * ``html`` (``status=200``): an HTML error page, as a captive portal or a load
          balancer sends.
        * ``data_null``: ``200 {"data": null}``.
        * ``status`` (``status``, ``retry_after=None``, ``body=None``): that status with an
          error envelope (or ``body``, any JSON value), without forwarding; ``retry_after``
          (seconds or an HTTP date) adds a ``Retry-After`` header.
        * ``delay`` (``seconds``): wait, then proxy normally.
        * ``json`` (``body``, ``status=200``): ``body`` as the answer, after the upstream
          handled the request: a 2xx that is not what the endpoint returns.

        All but ``reset_before``, ``status`` and (by default) ``stall`` forward the request, so
        the upstream's state changes as it would have. Proxy-made answers carry an
        ``X-Faultproxy-Fault`` header naming the kind, for debugging.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(KINDS)}")
        unknown = params.keys() - _PARAMS[kind]
        if unknown:
            raise TypeError(
                f"fault {kind!r} takes no parameter(s) {sorted(unknown)}; "
                f"it takes {sorted(_PARAMS[kind]) or 'none'}"
            )
        missing = _REQUIRED.get(kind, frozenset()) - params.keys()
        if missing:
            raise TypeError(f"fault {kind!r} needs parameter(s) {sorted(missing)}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate!r}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit!r}")
        _check_params(kind, params)
        rule = FaultRule(
            kind=kind,
            rate=rate,
            paths=(paths,) if isinstance(paths, str) else tuple(paths),
            methods=(
                None
                if methods is None
                else frozenset(
                    m.upper() for m in ((methods,) if isinstance(methods, str) else methods)
                )
            ),
            limit=limit,
            params=dict(params),
        )
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule: from the next request on, the proxy is transparent.

        Counters are kept, so a test can still check what was injected before.
        """
        self._rules.clear()

    async def start(self) -> Self:
        """Listen on 127.0.0.1 on a free port; ``async with`` calls this."""
        if self._server is not None or self._closing:
            raise RuntimeError("a FaultProxy starts once")
        self._server = await asyncio.start_server(
            self._accept, host="127.0.0.1", port=0, limit=_LIMIT
        )
        port = self._server.sockets[0].getsockname()[1]
        self._url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        """Stop listening and drop every connection now, stalled ones included.

        Raises :class:`RuntimeError` if the proxy itself failed on some request (a bug here
        must fail the test, not pass as a "network fault").
        """
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        conns = list(self._conns)
        for conn in conns:
            conn.writer.transport.abort()
            if conn.up_writer is not None:
                conn.up_writer.transport.abort()
        tasks = [conn.task for conn in conns if conn.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        if self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"FaultProxy failed {len(errors)} time(s)") from errors[0]

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.close()
        except RuntimeError:
            if exc is None:
                raise  # otherwise the test's own failure is the one to see

    # -- connections ------------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback (not a coroutine), so the task exists and is tracked before
        # close() can run: no connection can escape teardown.
        if self._closing:
            writer.transport.abort()
            return
        self.connections += 1
        conn = _Conn(reader, writer)
        conn.task = asyncio.get_running_loop().create_task(self._serve(conn))
        self._conns.add(conn)
        conn.task.add_done_callback(lambda task: self._done(conn, task))

    def _done(self, conn: _Conn, task: asyncio.Task[None]) -> None:
        self._conns.discard(conn)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._errors.append(exc)

    async def _serve(self, conn: _Conn) -> None:
        try:
            while not self._closing:
                try:
                    request = await self._read_request(conn)
                except _BadMessage as exc:
                    body = _error_body(f"bad request: {exc}")
                    await self._send(
                        conn, _answer(exc.status, body, "application/json", close=True)
                    )
                    break
                if request is None or not await self._handle(conn, request):
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away (or was reset by a fault): nothing left to do
        finally:
            await self._close_upstream(conn)
            conn.writer.close()
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()

    async def _send(self, conn: _Conn, data: bytes) -> None:
        conn.writer.write(data)
        await conn.writer.drain()

    async def _read_request(self, conn: _Conn) -> _Request | None:
        head = await _read_head(conn.reader)
        if head is None:
            return None
        lines = head[: -len(_HEAD_END)].split(_CRLF)
        words = lines[0].split(b" ")
        if len(words) != 3 or not words[2].startswith(b"HTTP/1."):
            raise _BadMessage(f"malformed request line {lines[0][:80]!r}")
        method, target, version = (w.decode("latin-1") for w in words)
        fields = _parse_fields(lines[1:])
        chunked = _is_chunked(fields)
        length = _content_length(fields) or 0
        connection = _tokens(fields, "connection")
        keep_alive = "close" not in connection and (
            version != "HTTP/1.0" or "keep-alive" in connection
        )
        out = lines
        if "100-continue" in _tokens(fields, "expect"):
            # Answer the interim response here and hide Expect from the upstream: the proxy
            # needs the whole body before it can decide on a fault.
            await self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            out = [lines[0]] + [
                line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() != b"expect"
            ]
        if self._prefix and target.startswith("/"):
            out = [b" ".join([words[0], self._prefix + words[1], words[2]]), *out[1:]]
        body = (
            await _read_chunked(conn.reader) if chunked else await conn.reader.readexactly(length)
        )
        split = urlsplit(target)
        path = unquote(split.path) if target.startswith("/") or split.scheme else target
        raw = _CRLF.join(out) + _HEAD_END + body
        return _Request(method=method.upper(), path=path, raw=raw, keep_alive=keep_alive)

    # -- one request ------------------------------------------------------------------------

    def _choose(self, request: _Request) -> FaultRule | None:
        chosen: FaultRule | None = None
        for rule in self._rules:
            if not rule.selects(request.method, request.path):
                continue
            draw = self._rng.random()  # drawn even once a rule won: same seed, same sequence
            if chosen is None and draw < rule.rate:
                chosen = rule
        self.requests += 1
        if chosen is not None:
            chosen.hits += 1
            self.injected[chosen.kind] += 1
        self.records.append(
            FaultRecord(request.method, request.path, chosen.kind if chosen else None)
        )
        return chosen

    async def _handle(self, conn: _Conn, request: _Request) -> bool:
        """Answer (or fault) one request; True when the client connection stays open."""
        rule = self._choose(request)
        kind = rule.kind if rule is not None else None
        params = rule.params if rule is not None else {}
        keep = request.keep_alive
        head_only = request.method == "HEAD"
        mark = ((_FAULT_HEADER, kind),) if kind is not None else ()

        if kind == "reset_before":
            _reset(conn.writer)
            return False
        if kind == "status":
            body = params.get("body")
            retry_after = params.get("retry_after")
            data = (
                _error_body(f"injected fault: {params['status']}")
                if body is None
                else json.dumps(body).encode()
            )
            extra = (*mark, ("Retry-After", str(retry_after))) if retry_after is not None else mark
            answer = _answer(
                params["status"],
                data,
                "application/json",
                close=not keep,
                head_only=head_only,
                extra=extra,
            )
            await self._send(conn, answer)
            return keep
        if kind == "stall" and not params.get("forward", False):
            await self._stall(conn, params.get("seconds"))
            return False
        if kind == "delay":
            await asyncio.sleep(params["seconds"])

        try:
            response = await self._forward(conn, request)
        except _UpstreamError as exc:
            self.upstream_errors += 1
            body = _error_body(f"bad gateway: {exc}")
            answer = _answer(502, body, "application/json", close=not keep, head_only=head_only)
            await self._send(conn, answer)
            return keep

        if kind == "reset_after":
            _reset(conn.writer)
            return False
        if kind == "stall":
            await self._stall(conn, params.get("seconds"))
            return False
        if kind == "truncate":
            await self._send(conn, _truncated(response, params.get("keep", 0.5)))
            return False
        made = self._made_answer(kind, params)
        if made is not None:
            status, data, content_type = made
            answer = _answer(
                status, data, content_type, close=not keep, head_only=head_only, extra=mark
            )
            await self._send(conn, answer)
            return keep
        await self._send(conn, response.head + response.body)
        return keep and not response.close

    def _made_answer(
        self, kind: str | None, params: dict[str, Any]
    ) -> tuple[int, bytes, str] | None:
        if kind == "garbage":
            # "<" is no JSON text in any encoding and "\xff" is no UTF-8: never parses.
            return (
                200,
                b"<\xff" + self._bytes_rng.randbytes(params.get("size", 64)),
                "application/json",
            )
        if kind == "html":
            return params.get("status", 200), _HTML_PAGE, "text/html; charset=utf-8"
        if kind == "data_null":
            return 200, b'{"data": null}', "application/json"
        if kind == "json":
            return (
                params.get("status", 200),
                json.dumps(params["body"]).encode(),
                "application/json",
            )
        return None

    async def _stall(self, conn: _Conn, seconds: float | None) -> None:
        """Say nothing until ``seconds`` pass or the client leaves; the caller then closes."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while await conn.reader.read(65536):
                    pass  # discard whatever the client sends; EOF means it gave up

    # -- upstream ---------------------------------------------------------------------------

    async def _forward(self, conn: _Conn, request: _Request) -> _Response:
        """Send the request on this client connection's upstream connection; read the answer.

        Never retried: a second attempt could apply a non-idempotent request twice, and the
        proxy must not hide what the upstream did.
        """
        if conn.up_reader is not None and (conn.up_reader.at_eof() or _upstream_gone(conn)):
            await self._close_upstream(conn)  # the upstream closed it while idle
        try:
            if conn.up_reader is None or conn.up_writer is None:
                conn.up_reader, conn.up_writer = await asyncio.open_connection(
                    self._host, self._port, limit=_LIMIT
                )
            conn.up_writer.write(request.raw)
            await conn.up_writer.drain()
            response = await _read_response(conn.up_reader, request.method)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            await self._close_upstream(conn)
            raise _UpstreamError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        except _BadMessage as exc:
            await self._close_upstream(conn)
            raise _UpstreamError(f"malformed answer: {exc}") from exc
        except _UpstreamError:
            await self._close_upstream(conn)
            raise
        if response.close:
            await self._close_upstream(conn)
        return response

    async def _close_upstream(self, conn: _Conn) -> None:
        writer, conn.up_reader, conn.up_writer = conn.up_writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _upstream_gone(conn: _Conn) -> bool:
    return conn.up_writer is None or conn.up_writer.is_closing()


async def _read_response(reader: asyncio.StreamReader, method: str) -> _Response:
    while True:
        head = await _read_head(reader)
        if head is None:
            raise _UpstreamError("the upstream closed the connection without answering")
        lines = head[: -len(_HEAD_END)].split(_CRLF)
        words = lines[0].split(b" ", 2)
        if len(words) < 2 or not words[0].startswith(b"HTTP/1.") or not words[1].isdigit():
            raise _BadMessage(f"malformed status line {lines[0][:80]!r}")
        status = int(words[1])
        if not 100 <= status < 200 or status == 101:
            break  # interim answers (100, 103) are dropped: the client never asked for them
    fields = _parse_fields(lines[1:])
    connection = _tokens(fields, "connection")
    close = "close" in connection or (words[0] == b"HTTP/1.0" and "keep-alive" not in connection)
    if method == "HEAD" or status in (101, 204, 304):
        body = b""
    elif _is_chunked(fields):
        body = await _read_chunked(reader)
    elif (length := _content_length(fields)) is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()  # framed by the end of the connection
        close = True
    return _Response(status=status, head=head, body=body, close=close)


def _truncated(response: _Response, keep: float) -> bytes:
    """The real head and a cut body; with no body to cut, a cut head."""
    if not response.body:
        return response.head[: len(response.head) // 2]
    size = min(int(len(response.body) * keep), len(response.body) - 1)
    return response.head + response.body[:size]


def _check_params(kind: str, params: dict[str, Any]) -> None:
    seconds = params.get("seconds")
    if seconds is not None and (not isinstance(seconds, int | float) or seconds < 0):
        raise ValueError(f"{kind}: seconds must be a number >= 0, got {seconds!r}")
    keep = params.get("keep", 0.5)
    if not isinstance(keep, int | float) or not 0.0 <= keep <= 1.0:
        raise ValueError(f"{kind}: keep must be in [0, 1], got {keep!r}")
    size = params.get("size", 64)
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"{kind}: size must be an int >= 0, got {size!r}")
    status = params.get("status", 200)
    if not isinstance(status, int) or not 200 <= status <= 599 or status in (204, 205, 304):
        # 204/205/304 cannot carry the body these faults send
        raise ValueError(f"{kind}: status must be an int in [200, 599] with a body, got {status!r}")
    if "body" in params:
        json.dumps(params["body"])  # fails now, not inside the proxy mid-test
