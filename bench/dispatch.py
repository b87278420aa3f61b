"""Dispatch throughput: events/s through ``Listener.dispatch`` with 1..1,000 callbacks.

The registration mix and the events are those of Flatfile's own benchmark
(``js-reference/bench-dispatch.cjs``): a third of the callbacks filter on ``job`` only, a
third on ``job`` and ``context.sheetId``, a third listen on two topics; each event matches
about one callback; callbacks do nothing. The JS listener runs on the same machine in the
same run when Node is available.

    python bench/dispatch.py [--quick] [--no-js]
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any

from _common import js_reference, machine, rate, run_node, table

from flatjobs import FlatfileEvent, Listener

DOMAINS = ["workbook", "sheet", "space", "file"]
SIZES = [1, 10, 100, 1000]


def build(size: int) -> Listener:
    listener = Listener()

    async def noop(event: FlatfileEvent) -> None:
        return None

    for i in range(size):
        domain = DOMAINS[i % 4]
        if i % 3 == 0:
            listener.on("job:ready", {"job": f"{domain}:op{i}"}, noop)
        elif i % 3 == 1:
            listener.on("job:ready", {"job": f"{domain}:op{i}", "context.sheetId": "us_sh_1"}, noop)
        else:
            listener.on(["records:created", "job:ready"], {"job": f"{domain}:op{i}"}, noop)
    return listener


def event(i: int, size: int) -> dict[str, Any]:
    k = i % size
    domain = DOMAINS[k % 4]
    return {
        "id": f"us_evt_{i}",
        "topic": "job:ready",
        "domain": "job",
        "context": {
            "accountId": "us_acc_1",
            "environmentId": "us_env_1",
            "spaceId": "us_sp_1",
            "workbookId": "us_wb_1",
            "sheetId": "us_sh_1",
            "jobId": f"us_jb_{i}",
        },
        "payload": {
            "job": f"{domain}:op{k}",
            "domain": domain,
            "operation": f"op{k}",
            "status": "ready",
            "isPart": False,
            "input": {},
        },
        "namespaces": ["workbook"],
        "createdAt": "2026-11-01T00:00:00.000Z",
    }


def measure(runner: asyncio.Runner, size: int, count: int) -> tuple[float, float, float]:
    """(dispatch events/s, matcher-only events/s, callbacks matched per event)."""
    listener = build(size)
    events = [event(i, size) for i in range(count)]
    matched = sum(len(listener.match(e)) for e in events)

    async def dispatch_all() -> float:
        start = time.perf_counter()
        for e in events:
            await listener.dispatch(e)
        return time.perf_counter() - start

    compiled = listener._compiled()

    def match_all() -> float:
        start = time.perf_counter()
        for e in events:
            compiled.match(e)
        return time.perf_counter() - start

    return rate(count, lambda: runner.run(dispatch_all())), rate(count, match_all), matched / count


def js_rates() -> dict[int, float]:
    folder = js_reference()
    if folder is None:
        return {}
    out = run_node(folder, "bench-dispatch.cjs")
    return {int(m[1]): float(m[2]) for m in re.finditer(r"H=(\d+)\s+events/s median=(\d+)", out)}


def main(quick: bool = False, with_js: bool = True) -> dict[int, float]:
    print(f"dispatch benchmark: {machine()}")
    count = 2000 if quick else 20000
    with asyncio.Runner() as runner:
        ours = {size: measure(runner, size, count) for size in SIZES}
    js = js_rates() if with_js and not quick else {}
    rows = []
    for size in SIZES:
        dispatch, match, per_event = ours[size]
        js_rate = js.get(size)
        rows.append(
            [
                f"{size:,}",
                f"{dispatch:,.0f}",
                f"{match:,.0f}",
                f"{per_event:.2f}",
                f"{js_rate:,.0f}" if js_rate else "n/a",
                f"{dispatch / js_rate:,.1f}x" if js_rate else "n/a",
            ]
        )
    table(
        f"events/s through listener.dispatch, no-op callbacks, {count:,} events, median of 5 runs",
        ["callbacks", "flatjobs dispatch", "matcher only", "matches/event", "JS listener", "ratio"],
        rows,
    )
    return {size: ours[size][0] for size in SIZES}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, with_js="--no-js" not in sys.argv)
