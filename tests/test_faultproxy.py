"""The fault proxy's faults are real: each shows up in aiohttp as the network fault it stands for.

The upstream is a real aiohttp server that records what reached it, so every test can also
say whether the request was forwarded (the state change happened) or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from .faultproxy import FaultProxy, FaultRecord

FIXED_DATE = "Tue, 03 Jun 2025 10:00:00 GMT"  # so that answers compare byte for byte
BIG = bytes(range(256)) * 400  # 100 KiB: several TCP segments


@dataclass
class Upstream:
    """A real server that records (method, path, body) of every request it handles."""

    url: str = ""
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.seen]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.method, request.path, body))
        if request.path == "/big":
            return web.Response(body=BIG, content_type="application/octet-stream")
        if request.path == "/empty":
            return web.Response(status=204)
        if request.path == "/drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if request.path == "/chunked":
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for part in (b"first,", b"second,", b"third"):
                await resp.write(part)
            await resp.write_eof()
            return resp
        echo = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "body": body.decode(),
        }
        headers = {"Retry-After": "7", "X-Upstream": "yes", "Date": FIXED_DATE}
        return web.json_response({"data": echo}, headers=headers)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", up.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    up.url = str(server.make_url("")).rstrip("/")
    yield up
    await server.close()


@pytest.fixture
async def proxy(upstream: Upstream) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(upstream.url, seed=1) as fault_proxy:
        yield fault_proxy


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # The total timeout bounds every test that could otherwise hang on a proxy bug.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client:
        yield client


async def raw(url: str, data: bytes, *, timeout: float = 3) -> bytes:
    """Send raw bytes, read until the server closes; an RST raises ConnectionResetError."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def get(path: str, *, close: bool = True) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: upstream\r\n" + connection + b"\r\n"


DISCONNECTED = (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)


# -- transparent -----------------------------------------------------------------------------


async def test_without_rules_answers_are_byte_exact(upstream: Upstream, proxy: FaultProxy) -> None:
    for path in ("/v1/events?since=2025-01-01T00:00:00Z", "/big", "/chunked", "/empty"):
        direct = await raw(upstream.url, get(path))
        proxied = await raw(proxy.url, get(path))
        assert proxied == direct
    assert b"Retry-After: 7\r\n" in direct or path == "/empty"
    assert proxy.requests == 4
    assert set(proxy.records) == {
        FaultRecord("GET", path, None) for path in ("/v1/events", "/big", "/chunked", "/empty")
    }


async def test_pipelined_requests_on_one_connection(upstream: Upstream, proxy: FaultProxy) -> None:
    burst = get("/a", close=False) + get("/big", close=False) + get("/chunked", close=False)
    burst += get("/c")
    assert await raw(proxy.url, burst) == await raw(upstream.url, burst)
    assert proxy.connections == 1
    assert proxy.requests == 4


async def test_keep_alive_many_requests_one_connection(
    upstream: Upstream, proxy: FaultProxy
) -> None:
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=5)
    ) as client:
        for i in range(40):
            async with client.post(f"{proxy.url}/v1/jobs/us_jb_{i}/ack", json={"i": i}) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
                assert resp.headers["Retry-After"] == "7"
                assert resp.headers["Date"] == FIXED_DATE
                assert resp.headers["X-Upstream"] == "yes"
                assert (await resp.json())["data"]["body"] == json.dumps({"i": i})
            async with client.get(f"{proxy.url}/big") as resp:
                assert await resp.read() == BIG
            async with client.get(f"{proxy.url}/chunked") as resp:
                assert await resp.read() == b"first,second,third"
            async with client.get(f"{proxy.url}/empty") as resp:
                assert resp.status == 204
    assert proxy.connections == 1
    assert proxy.requests == 160
    assert len(upstream.seen) == 160
    assert proxy.injected == {}


async def test_chunked_and_expect_continue_request_bodies(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b'{"a": ', b"1", b"}"):
            yield part

    async with session.post(f"{proxy.url}/v1/chunked-in", data=parts()) as resp:
        assert resp.status == 200
        assert (await resp.json())["data"]["body"] == '{"a": 1}'
    async with session.put(f"{proxy.url}/v1/expect", data=b"x" * 5000, expect100=True) as resp:
        assert resp.status == 200
        assert (await resp.json())["data"]["body"] == "x" * 5000
    async with session.head(f"{proxy.url}/big") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(BIG))
        assert await resp.read() == b""
    assert [(m, p, len(b)) for m, p, b in upstream.seen] == [
        ("POST", "/v1/chunked-in", 8),
        ("PUT", "/v1/expect", 5000),
        ("HEAD", "/big", 0),
    ]


async def test_upstream_down_or_dropping_answers_502(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    async with FaultProxy(f"http://127.0.0.1:{free_port}") as down:
        async with session.get(f"{down.url}/v1/events") as resp:
            assert resp.status == 502
            assert "bad gateway" in (await resp.json())["errors"][0]["message"]
        assert down.upstream_errors == 1
    async with FaultProxy(upstream.url) as dropping:
        async with session.post(f"{dropping.url}/drop", json={}) as resp:
            assert resp.status == 502
        async with session.get(f"{dropping.url}/after") as resp:  # a fresh upstream connection
            assert resp.status == 200
        assert dropping.upstream_errors == 1
    assert upstream.paths() == ["/drop", "/after"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NONSENSE\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
async def test_malformed_requests_get_400_and_are_not_forwarded(
    upstream: Upstream, proxy: FaultProxy, request_bytes: bytes
) -> None:
    answer = await raw(proxy.url, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close\r\n" in answer
    assert upstream.seen == []
    assert proxy.requests == 0


async def test_upstream_url_path_prefix(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    async with (
        FaultProxy(upstream.url + "/v1/") as prefixed,
        session.get(f"{prefixed.url}/events") as resp,
    ):
        assert (await resp.json())["data"]["path"] == "/v1/events"
    assert prefixed.records == [("GET", "/events", None)]


# -- each kind -------------------------------------------------------------------------------


async def test_reset_before_never_reaches_upstream(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.add("reset_before", paths="/v1/jobs/*/ack")
    with pytest.raises(DISCONNECTED):
        await session.post(f"{proxy.url}/v1/jobs/us_jb_1/ack", json={})
    with pytest.raises(ConnectionResetError):  # a real RST, not an orderly FIN
        await raw(proxy.url, b"POST /v1/jobs/x/ack HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    assert upstream.seen == []
    assert proxy.injected == {"reset_before": 2}


async def test_reset_after_reaches_upstream_but_not_the_client(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.add("reset_after")
    with pytest.raises(DISCONNECTED):
        await session.post(f"{proxy.url}/v1/jobs/us_jb_1/ack", json={"n": 1})
    with pytest.raises(ConnectionResetError):
        await raw(proxy.url, get("/v1/jobs/us_jb_1"))
    assert upstream.seen == [
        ("POST", "/v1/jobs/us_jb_1/ack", b'{"n": 1}'),
        ("GET", "/v1/jobs/us_jb_1", b""),
    ]


async def test_aiohttp_retries_idempotent_requests_once_on_a_reused_connection(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    """Worth knowing when writing fault tests: one reset of a GET may never reach the caller."""
    async with session.get(f"{proxy.url}/v1/warm-up") as resp:
        assert resp.status == 200
    proxy.add("reset_before", limit=1)
    async with session.get(f"{proxy.url}/v1/events") as resp:
        assert resp.status == 200
    assert proxy.records == [
        ("GET", "/v1/warm-up", None),
        ("GET", "/v1/events", "reset_before"),
        ("GET", "/v1/events", None),
    ]
    assert proxy.connections == 2


async def test_stall_makes_the_client_timeout_fire(upstream: Upstream, proxy: FaultProxy) -> None:
    proxy.add("stall", limit=1)
    proxy.add("stall", forward=True, limit=1)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.get(f"{proxy.url}/v1/not-forwarded")
        with pytest.raises(TimeoutError):
            await client.get(f"{proxy.url}/v1/forwarded")
        assert time.monotonic() - started < 2
        async with client.get(f"{proxy.url}/v1/fine") as resp:  # both rules used up
            assert resp.status == 200
    assert upstream.paths() == ["/v1/forwarded", "/v1/fine"]


async def test_stall_for_seconds_then_closes_without_answer(proxy: FaultProxy) -> None:
    proxy.add("stall", seconds=0.2)
    started = time.monotonic()
    assert await raw(proxy.url, get("/v1/events")) == b""
    assert 0.15 < time.monotonic() - started < 2


async def test_close_ends_stalled_connections_promptly(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    fault_proxy = FaultProxy(upstream.url)
    await fault_proxy.start()
    fault_proxy.add("stall")
    pending = asyncio.ensure_future(session.get(f"{fault_proxy.url}/v1/events"))
    for _ in range(200):  # until the proxy holds the request (2 s at most)
        if fault_proxy.requests:
            break
        await asyncio.sleep(0.01)
    assert fault_proxy.records == [("GET", "/v1/events", "stall")]
    started = time.monotonic()
    await fault_proxy.close()
    assert time.monotonic() - started < 0.5
    with pytest.raises(DISCONNECTED):
        await pending
    with pytest.raises(aiohttp.ClientConnectorError):  # no longer listening
        await session.get(f"{fault_proxy.url}/v1/events")


async def test_truncate_cuts_the_body(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.add("truncate")
    for path in ("/big", "/v1/jobs/us_jb_1", "/chunked"):
        async with session.get(f"{proxy.url}{path}") as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
    # Nothing to cut in a 204: the head is cut. POST, because aiohttp retries an idempotent
    # request once by itself when a reused connection drops (see the test below).
    with pytest.raises(aiohttp.ClientError):
        await session.post(f"{proxy.url}/empty")
    assert upstream.paths() == ["/big", "/v1/jobs/us_jb_1", "/chunked", "/empty"]


async def test_truncate_keeps_the_real_head(upstream: Upstream, proxy: FaultProxy) -> None:
    proxy.add("truncate", keep=0.25)
    direct = await raw(upstream.url, get("/big"))
    cut = await raw(proxy.url, get("/big"))
    head = direct[: direct.index(b"\r\n\r\n") + 4]
    assert cut.startswith(head)
    assert f"Content-Length: {len(BIG)}\r\n".encode() in head
    assert cut == head + BIG[: len(BIG) // 4]


async def test_garbage_is_200_json_that_does_not_parse(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.add("garbage", size=100)
    async with session.get(f"{proxy.url}/v1/events") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.read()
        assert int(resp.headers["Content-Length"]) == len(body) == 102
        with pytest.raises(ValueError):
            json.loads(body)
        with pytest.raises(ValueError):
            await resp.json()
    assert upstream.paths() == ["/v1/events"]


async def test_html_page(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.add("html", status=502, paths="/v1/gw")
    proxy.add("html")
    async with session.get(f"{proxy.url}/v1/events") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert (await resp.text()).startswith("<!DOCTYPE html>")
    async with session.get(f"{proxy.url}/v1/gw") as resp:
        assert resp.status == 502
        assert resp.content_type == "text/html"
    assert upstream.paths() == ["/v1/events", "/v1/gw"]


async def test_data_null(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.add("data_null", methods="GET")
    async with session.get(f"{proxy.url}/v1/jobs/us_jb_1") as resp:
        assert resp.status == 200
        assert await resp.json() == {"data": None}
    assert upstream.paths() == ["/v1/jobs/us_jb_1"]


async def test_status_with_retry_after_is_not_forwarded(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.add("status", status=503, retry_after=2, limit=1)
    proxy.add("status", status=429, body={"errors": [{"message": "slow down"}]}, limit=1)
    async with session.post(f"{proxy.url}/v1/jobs/us_jb_1/ack", json={}) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "2"
        assert resp.headers["X-Faultproxy-Fault"] == "status"
        assert (await resp.json())["errors"][0]["message"] == "injected fault: 503"
    async with session.post(f"{proxy.url}/v1/jobs/us_jb_1/ack", json={}) as resp:
        assert resp.status == 429
        assert "Retry-After" not in resp.headers
        assert await resp.json() == {"errors": [{"message": "slow down"}]}
    assert upstream.seen == []


async def test_delay_then_normal(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.add("delay", seconds=0.3)
    started = time.monotonic()
    async with session.get(f"{proxy.url}/v1/events") as resp:
        assert resp.headers["Date"] == FIXED_DATE  # the upstream's own answer
        assert (await resp.json())["data"]["path"] == "/v1/events"
    assert 0.3 <= time.monotonic() - started < 2
    assert proxy.injected == {"delay": 1}


async def test_json_answers_the_given_body_after_forwarding(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    job = {"data": {"id": "us_jb_1", "status": "complete"}}
    proxy.add("json", body=job, paths="/v1/jobs/*/ack")
    async with session.post(f"{proxy.url}/v1/jobs/us_jb_1/ack", json={}) as resp:
        assert resp.status == 200
        assert await resp.json() == job
    assert upstream.paths() == ["/v1/jobs/us_jb_1/ack"]


# -- rules ------------------------------------------------------------------------------------


async def statuses(proxy: FaultProxy, client: aiohttp.ClientSession, n: int) -> list[int]:
    codes = []
    for i in range(n):
        async with client.get(f"{proxy.url}/v1/events?i={i}") as resp:
            codes.append(resp.status)
            await resp.read()
    return codes


async def test_rate_is_seeded_and_repeatable(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    runs: dict[int, list[int]] = {}
    for seed in (7, 7, 8):
        async with FaultProxy(upstream.url, seed=seed) as fault_proxy:
            fault_proxy.add("status", status=503, rate=0.5)
            codes = await statuses(fault_proxy, session, 200)
            assert 70 <= fault_proxy.injected["status"] <= 130
            assert codes.count(503) == fault_proxy.injected["status"]
            if seed in runs:
                assert codes == runs[seed]
            runs[seed] = codes
    assert runs[7] != runs[8]


async def test_one_draw_per_rule_keeps_sequences_aligned(upstream: Upstream) -> None:
    """A rule that wins does not shift the draws of the rules after it."""
    sequences = []
    for first_rate in (0.0, 1.0):
        async with (
            FaultProxy(upstream.url, seed=3) as fault_proxy,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client,
        ):
            fault_proxy.add("status", status=500, rate=first_rate, paths="/v1/jobs*")
            fault_proxy.add("status", status=503, rate=0.5)
            await statuses(fault_proxy, client, 30)
            sequences.append([kind for _, _, kind in fault_proxy.records])
    assert sequences[0].count("status") > 0
    assert sequences[0] == sequences[1]  # /v1/events is out of the first rule's scope


async def test_clear_stops_faults_but_keeps_counts(
    proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.add("status", status=500)
    assert await statuses(proxy, session, 3) == [500, 500, 500]
    proxy.clear()
    assert proxy.rules == ()
    assert await statuses(proxy, session, 3) == [200, 200, 200]
    assert proxy.injected == {"status": 3}
    assert proxy.requests == 6


async def test_limit_caps_injections(proxy: FaultProxy, session: aiohttp.ClientSession) -> None:
    rule = proxy.add("status", status=500, limit=2)
    assert await statuses(proxy, session, 5) == [500, 500, 200, 200, 200]
    assert rule.hits == 2


async def test_paths_and_methods_select(
    upstream: Upstream, proxy: FaultProxy, session: aiohttp.ClientSession
) -> None:
    proxy.add("status", status=500, paths="/v1/jobs/*/ack", methods=["post"])
    proxy.add("status", status=502, paths=["/v1/events", "/v1/secrets"])
    calls = [
        ("POST", "/v1/jobs/us_jb_1/ack", 500),
        ("GET", "/v1/jobs/us_jb_1/ack", 200),
        ("POST", "/v1/jobs/us_jb_1/complete", 200),
        ("GET", "/v1/events?since=x&page=2", 502),  # the query is not part of the path
        ("GET", "/v1/secrets", 502),
        ("GET", "/v1/events/us_evt_1", 200),
    ]
    for method, path, status in calls:
        async with session.request(method, f"{proxy.url}{path}") as resp:
            assert (method, path, resp.status) == (method, path, status)
    assert proxy.records == [
        ("POST", "/v1/jobs/us_jb_1/ack", "status"),
        ("GET", "/v1/jobs/us_jb_1/ack", None),
        ("POST", "/v1/jobs/us_jb_1/complete", None),
        ("GET", "/v1/events", "status"),
        ("GET", "/v1/secrets", "status"),
        ("GET", "/v1/events/us_evt_1", None),
    ]
    assert len(upstream.seen) == 3


@pytest.mark.parametrize(
    ("kind", "params", "error", "match"),
    [
        ("boom", {}, ValueError, "unknown fault kind"),
        ("stall", {"second": 1}, TypeError, "no parameter"),
        ("status", {}, TypeError, "needs parameter"),
        ("status", {"status": 204}, ValueError, "status must be"),
        ("truncate", {"keep": 2}, ValueError, "keep must be"),
        ("delay", {"seconds": -1}, ValueError, "seconds must be"),
        ("json", {"body": object()}, TypeError, "not JSON serializable"),
        ("reset_before", {"rate": 1.5}, ValueError, "rate must be"),
    ],
)
def test_add_refuses_mistakes(
    kind: Any, params: dict[str, Any], error: type[Exception], match: str
) -> None:
    fault_proxy = FaultProxy("http://127.0.0.1:1")
    with pytest.raises(error, match=match):
        fault_proxy.add(kind, **params)
    assert fault_proxy.rules == ()


def test_upstream_must_be_http() -> None:
    with pytest.raises(ValueError, match="http://"):
        FaultProxy("https://127.0.0.1:1")
    with pytest.raises(RuntimeError, match="not started"):
        _ = FaultProxy("http://127.0.0.1:1").url
