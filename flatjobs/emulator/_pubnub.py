"""The emulator's push channel: PubNub's subscribe protocol, on a port of its own.

Flatfile publishes every event on PubNub channels (``environment.<id>``, ``space.<id>``);
``GET /v1/subscription`` hands out a subscribe key and a token. This serves the part of
PubNub's REST protocol a subscriber uses, so that flatjobs' push source and PubNub's own
SDKs receive the emulator's events:

* ``GET /v2/subscribe/{key}/{channels}/0?tt=&tr=&uuid=&auth=``: ``tt`` missing or ``0``
  answers at once with the current timetoken; otherwise the messages published after
  ``tt`` on those channels, at once when there are some, else when one is published or the
  hold time is over (an empty answer);
* ``GET /v2/presence/sub-key/{key}/channel/{channels}/heartbeat`` and ``/leave``;
* ``GET /time/0``.

Timetokens are 17-digit counts of 100 ns since the epoch, sent as strings, strictly
increasing. Each channel keeps a short buffer (100 messages, 20 minutes), as PubNub does:
a subscriber that was away longer misses what overflowed, which is why flatjobs fills gaps
from the events feed. A token that expired, or that was never issued, is a 403.
"""

from __future__ import annotations

import asyncio
import collections
import json
import secrets
import time
from collections.abc import Iterable
from typing import Any, Final

from aiohttp import web

from flatjobs._seconds import check_seconds

__all__ = ["PushServer"]

REGION: Final = 4  # any non-zero region: PubNub's JS SDK refuses a falsy one
BUFFER: Final = 100
BUFFER_SECONDS: Final = 20 * 60


def _now_tt() -> int:
    return time.time_ns() // 100


class PushServer:
    """PubNub's subscribe protocol over the emulator's events (see the module docstring).

    Args:
        subscribe_key: the key ``GET /v1/subscription`` hands out.
        hold: seconds a long-poll is held before an empty answer (PubNub: 280).
        ttl: minutes a token lives (as ``GET /v1/subscription`` says); fractions allowed,
            so tests can watch tokens expire.
    """

    def __init__(
        self, subscribe_key: str = "sub-c-emulator", *, hold: float = 20.0, ttl: float = 15.0
    ) -> None:
        check_seconds("hold", hold)
        check_seconds("ttl", ttl, unit="minutes")
        self.subscribe_key = subscribe_key
        self.hold = hold
        self.ttl = ttl
        self._tokens: dict[str, float] = {}  # token -> when it expires (monotonic)
        self._buffers: dict[str, collections.deque[tuple[int, float, str]]] = {}
        self._last_tt = 0
        self._wakeup = asyncio.Event()  # set, and replaced, on every publish
        self.published = 0
        self.subscribes = 0
        """Subscribe calls answered (handshakes included)."""
        self.denied = 0
        """Subscribe and presence calls refused for their token."""
        self.heartbeats = 0
        """Presence heartbeats answered (200)."""
        self.leaves = 0
        """Presence leaves answered (200)."""

    # ----------------------------------------------------------- tokens

    def issue_token(self) -> str:
        """A new token, good for :attr:`ttl` minutes."""
        token = "pn_" + secrets.token_urlsafe(16)
        self._tokens[token] = time.monotonic() + self.ttl * 60
        return token

    def revoke(self, token: str | None = None) -> None:
        """Expire one token now, or every token (the next calls with it are refused)."""
        for known in [token] if token else list(self._tokens):
            self._tokens[known] = 0.0

    def _valid(self, token: str | None) -> bool:
        return token is not None and self._tokens.get(token, 0.0) > time.monotonic()

    # ----------------------------------------------------------- publishing

    def _next_tt(self) -> int:
        self._last_tt = max(_now_tt(), self._last_tt + 1)
        return self._last_tt

    def publish(self, channels: Iterable[str], message: Any) -> None:
        """Publish ``message`` (an event, or anything JSON can write) on ``channels``;
        waiting subscribers get it."""
        self.publish_json(channels, json.dumps(message))

    def publish_json(self, channels: Iterable[str], text: str) -> None:
        """Publish a message given as JSON text, sent as it is (tests use it to publish
        what :func:`json.dumps` would not write: nesting thousands deep, say)."""
        timetoken = self._next_tt()
        stamp = time.monotonic()
        for channel in channels:
            buffer = self._buffers.setdefault(channel, collections.deque(maxlen=BUFFER))
            buffer.append((timetoken, stamp, text))
        self.published += 1
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _after(self, channels: list[str], timetoken: int) -> list[tuple[int, str, str]]:
        horizon = time.monotonic() - BUFFER_SECONDS
        found = [
            (tt, channel, message)
            for channel in channels
            for tt, stamp, message in self._buffers.get(channel, ())
            if tt > timetoken and stamp >= horizon
        ]
        return sorted(found, key=lambda item: item[0])[:BUFFER]

    # ----------------------------------------------------------- the protocol

    def app(self) -> web.Application:
        """The aiohttp application serving the protocol."""
        app = web.Application()
        # Channels come quoted as one segment; "/" in one (a quoted "%2F") is part of it.
        app.router.add_get("/v2/subscribe/{key}/{channels:.+}/0", self._subscribe)
        app.router.add_get(
            "/v2/presence/sub-key/{key}/channel/{channels}/heartbeat", self._heartbeat
        )
        app.router.add_get("/v2/presence/sub-key/{key}/channel/{channels}/leave", self._leave)
        app.router.add_get("/time/0", self._time)
        return app

    def _refusal(self, request: web.Request) -> web.Response | None:
        channels = request.match_info["channels"].split(",")
        if request.match_info["key"] != self.subscribe_key:
            return web.json_response(
                {
                    "message": "Invalid Subscribe Key",
                    "error": True,
                    "service": "Access Manager",
                    "status": 400,
                    "payload": {"channels": channels},
                },
                status=400,
            )
        if not self._valid(request.query.get("auth")):
            self.denied += 1
            return web.json_response(
                {
                    "message": "Forbidden",
                    "payload": {"channels": channels},
                    "error": True,
                    "service": "Access Manager",
                    "status": 403,
                },
                status=403,
            )
        return None

    async def _subscribe(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        channels = [c for c in request.match_info["channels"].split(",") if c]
        try:
            timetoken = int(request.query.get("tt") or 0)
        except ValueError:
            return web.json_response(
                {"message": "Invalid timetoken", "error": True, "status": 400}, status=400
            )
        self.subscribes += 1
        if timetoken == 0:  # a handshake: where to start from
            return self._answer(self._next_tt(), [])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold
        while not (found := self._after(channels, timetoken)):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return self._answer(max(self._next_tt(), timetoken), [])
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                continue
        return self._answer(found[-1][0], found)

    def _answer(self, timetoken: int, found: list[tuple[int, str, str]]) -> web.Response:
        # Messages are kept as JSON text and spliced in, as written when published.
        key = json.dumps(self.subscribe_key)
        messages = ",".join(
            f'{{"a":"1","f":0,"i":"flatfile","p":{{"t":"{tt}","r":{REGION}}},'
            f'"k":{key},"c":{json.dumps(channel)},"d":{text}}}'
            for tt, channel, text in found
        )
        body = f'{{"t":{{"t":"{timetoken}","r":{REGION}}},"m":[{messages}]}}'
        return web.Response(text=body, content_type="application/json")

    async def _heartbeat(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.heartbeats += 1
        return web.json_response({"status": 200, "message": "OK", "service": "Presence"})

    async def _leave(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.leaves += 1
        return web.json_response(
            {"status": 200, "message": "OK", "action": "leave", "service": "Presence"}
        )

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response([self._next_tt()])
