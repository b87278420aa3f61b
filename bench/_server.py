"""A minimal Jobs API for benchmarks, run in its own process: every request answers 200
with the job, ``executing`` (or ``complete``/``failed`` after those calls, as the platform
answers; a read of the job, ``GET /v1/jobs/{id}``, finds it ``ready``), like the JS
reference's server; ``GET /__count`` returns how many requests it has served (and resets
the count)."""

from __future__ import annotations

import json
import sys

from aiohttp import web


def _body(status: str) -> bytes:
    job = {"id": "us_jb_1", "type": "workbook", "operation": "op", "source": "us_wb_1"}
    return json.dumps({"data": {**job, "status": status}}).encode()


BODIES = {"complete": _body("complete"), "fail": _body("failed")}
EXECUTING = _body("executing")
READY = _body("ready")


def main(port: int) -> None:
    count = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal count
        await request.read()
        count += 1
        if request.method == "GET" and request.path.count("/") == 3:  # /v1/jobs/{id}
            body = READY
        else:
            body = BODIES.get(request.path.rpartition("/")[2], EXECUTING)
        return web.Response(body=body, content_type="application/json")

    async def served(request: web.Request) -> web.Response:
        nonlocal count
        value, count = count, 0
        return web.json_response({"count": value})

    app = web.Application()
    app.router.add_get("/__count", served)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        print=lambda *_: print("ready", flush=True),
        access_log=None,
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
