"""Dispatch throughput: events/s through ``Listener.dispatch`` with 1..1,000 callbacks,
then the cost per event of glob callbacks (1..10,000) beside literal ones.

The first registration mix and its events are those of Flatfile's own benchmark
(``js-reference/bench-dispatch.cjs``): a third of the callbacks filter on ``job`` only, a
third on ``job`` and ``context.sheetId``, a third listen on two topics; each event matches
about one callback; callbacks do nothing. The glob mix (``js-reference/bench-globs.cjs``
for the JS listener) registers callbacks on glob topics with glob ``job`` values, in four
shapes: ``"job:*"`` with ``{"job": "app<k>:*"}``, ``"*:ready"`` with
``{"job": "*:op<k>"}``, ``"job:**"`` with ``{"job": "workbook:op<k>-*",
"context.sheetId": "us_sh_*"}``, and ``["records:*", "job:*"]`` with ``{"job": "file:op<k>?"}``;
each event matches exactly one, and every event is a new one (nothing is cached between
events). The JS listener runs on the same machine in the same run when Node is available.

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
GLOB_SIZES = [1, 10, 100, 1000, 10000]
GLOB_JOBS = ["app{k}:export", "sheet:op{k}", "workbook:op{k}-fast", "file:op{k}s"]
"""The job of the event for glob callback ``k`` (by its shape, ``k % 4``)."""


async def noop(event: FlatfileEvent) -> None:
    return None


def build(size: int) -> Listener:
    listener = Listener()
    for i in range(size):
        domain = DOMAINS[i % 4]
        if i % 3 == 0:
            listener.on("job:ready", {"job": f"{domain}:op{i}"}, noop)
        elif i % 3 == 1:
            listener.on("job:ready", {"job": f"{domain}:op{i}", "context.sheetId": "us_sh_1"}, noop)
        else:
            listener.on(["records:created", "job:ready"], {"job": f"{domain}:op{i}"}, noop)
    return listener


def build_globs(size: int) -> Listener:
    listener = Listener()
    for k in range(size):
        shape = k % 4
        if shape == 0:
            listener.on("job:*", {"job": f"app{k}:*"}, noop)
        elif shape == 1:
            listener.on("*:ready", {"job": f"*:op{k}"}, noop)
        elif shape == 2:
            listener.on("job:**", {"job": f"workbook:op{k}-*", "context.sheetId": "us_sh_*"}, noop)
        else:
            listener.on(["records:*", "job:*"], {"job": f"file:op{k}?"}, noop)
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


def glob_event(i: int, size: int) -> dict[str, Any]:
    """The ``i``-th event of the glob mix: it matches glob callback ``k`` alone, ``k``
    stepping through every callback (not only the first ones) however few events run."""
    k = i * 7919 % size
    raw = event(i, size)
    job = GLOB_JOBS[k % 4].format(k=k)
    domain, _, operation = job.partition(":")
    raw["payload"].update(job=job, domain=domain, operation=operation)
    return raw


def measure(
    runner: asyncio.Runner, listener: Listener, events: list[dict[str, Any]]
) -> tuple[float, float, float]:
    """(dispatch events/s, matcher-only events/s, callbacks matched per event)."""
    count = len(events)
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


def js_rates(script: str) -> dict[int, float]:
    folder = js_reference()
    if folder is None:
        return {}
    out = run_node(folder, script)
    return {int(m[1]): float(m[2]) for m in re.finditer(r"H=(\d+)\s+events/s median=(\d+)", out)}


def main(quick: bool = False, with_js: bool = True) -> dict[int, float]:
    print(f"dispatch benchmark: {machine()}")
    count = 2000 if quick else 20000
    with asyncio.Runner() as runner:
        ours = {
            size: measure(runner, build(size), [event(i, size) for i in range(count)])
            for size in SIZES
        }
    js = js_rates("bench-dispatch.cjs") if with_js and not quick else {}
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
    globs(count, with_js and not quick)
    return {size: ours[size][0] for size in SIZES}


def globs(count: int, with_js: bool) -> None:
    """The cost per event of glob callbacks beside literal ones (the first mix), in µs."""
    rows = []
    js = js_rates("bench-globs.cjs") if with_js else {}
    with asyncio.Runner() as runner:
        for size in GLOB_SIZES:
            # Fewer events with many callbacks, so that a linear matcher still ends.
            n = max(100, count * 100 // max(size, 100))
            literal = measure(runner, build(size), [event(i, size) for i in range(n)])
            glob = measure(runner, build_globs(size), [glob_event(i, size) for i in range(n)])
            js_rate = js.get(size)
            rows.append(
                [
                    f"{size:,}",
                    f"{n:,}",
                    f"{1e6 / literal[0]:,.1f}",
                    f"{1e6 / glob[0]:,.1f}",
                    f"{1e6 / glob[1]:,.1f}",
                    f"{glob[2]:.2f}",
                    f"{1e6 / js_rate:,.0f}" if js_rate else "n/a",
                    f"{glob[0] / js_rate:,.1f}x" if js_rate else "n/a",
                ]
            )
    table(
        "µs per event through listener.dispatch, glob callbacks beside literal ones, "
        "every event new, median of 5 runs",
        [
            "callbacks",
            "events",
            "literal dispatch",
            "glob dispatch",
            "glob matcher only",
            "matches/event",
            "JS listener, globs",
            "ratio",
        ],
        rows,
    )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, with_js="--no-js" not in sys.argv)
