"""Iterating a sheet of 200,000 records: flatjobs' ``client.records.iterate`` beside
Flatfile's Python SDK (``AsyncFlatfile``) paging the same sheet on the same emulator.

The emulator runs in a process of its own, seeded once through its Python API (10,000
records a batch); each client runs in a fresh process of its own, so that its peak memory
is its own. A record has 5 fields (``firstName`` required and empty in one record of ten,
``lastName``, ``email``, ``age`` a number, ``status`` an enum); the default answer, what
both loops ask for, gives each cell as ``{value, valid, updatedAt}``.

* flatjobs: ``async for record in client.records.iterate(sheet_id, page_size=...)``, reading
  a value of each record; the whole sheet, and its first pages (to compare with the SDK on
  the same records, and to show that its peak memory does not grow with the sheet).
* the SDK: the loop of Flatfile's own helper (``GET /sheets/{id}/counts``, then
  ``records.get(page_size=..., page_number=n)`` for each page), reading the same value. It
  parses about a thousand such records a second, so it reads the first pages only
  (``SDK_RECORDS``) unless ``--sdk-whole`` is given: the whole sheet takes minutes a page
  size, and is then compared with flatjobs' whole-sheet rows.

Records/s are timed from the first request to the last record, imports and start-up left
out. Peak memory is the client process's peak resident set (``VmHWM``, reset after
start-up) above its resident set after start-up ("at start": imports and client made).

    python bench/records.py [--quick] [--sdk-whole]

Flatfile's SDK is a bench-only dependency (``nox -s bench`` installs ``flatfile==1.0.0``);
without it the SDK rows say "SDK not installed".
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import machine, table

HERE = Path(__file__).resolve()
FIELDS: list[dict[str, Any]] = [
    {"key": "firstName", "label": "First name", "required": True},
    {"key": "lastName", "label": "Last name"},
    {"key": "email", "label": "Email"},
    {"key": "age", "label": "Age", "type": "number"},
    {"key": "status", "label": "Status", "type": "enum", "options": ["active", "inactive"]},
]
SHEET: dict[str, Any] = {"name": "People", "slug": "people", "fields": FIELDS}
BATCH = 10_000
SDK_RECORDS = 20_000
"""How many records the SDK reads (its first pages)."""


# ----------------------------------------------------------- the processes


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not available (Linux only)")


def _reset_peak() -> None:
    """Reset VmHWM to the current resident set (Linux: ``5`` to clear_refs)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _figures(count: int, seconds: float, base: int, chars: int) -> dict[str, Any]:
    peak = _status("VmHWM")
    return {"records": count, "seconds": seconds, "base": base, "peak": peak, "chars": chars}


def _row(i: int) -> dict[str, dict[str, Any]]:
    return {
        "firstName": {"value": f"First{i}" if i % 10 else None},
        "lastName": {"value": f"Last{i}"},
        "email": {"value": f"user{i}@example.com"},
        "age": {"value": 20 + i % 60},
        "status": {"value": "active" if i % 3 else "inactive"},
    }


async def _serve(count: int) -> None:
    """The emulator process: seed, print where it is, serve until stdin closes."""
    from flatjobs.emulator import Emulator

    emu = Emulator(record=False)
    seeded = emu.seed({"workbooks": [{"name": "Bench", "sheets": [SHEET]}]})
    sheet = seeded.sheets["people"]
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        emu.data.insert_records(sheet, [_row(i) for i in range(start, min(count, start + BATCH))])
    seconds = time.perf_counter() - started
    async with emu:
        line = {"url": emu.url, "token": emu.token, "sheet": sheet, "seed_s": seconds}
        print(json.dumps(line), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def _flatjobs(url: str, token: str, sheet: str, page_size: int, limit: int) -> dict[str, Any]:
    from flatjobs import FlatfileClient

    async with FlatfileClient(url, token) as client:
        base = _status("VmRSS")
        _reset_peak()
        count = chars = 0
        started = time.perf_counter()
        records = client.records.iterate(sheet, page_size=page_size)
        async with contextlib.aclosing(records):
            async for record in records:
                value = record.get("firstName")
                if isinstance(value, str):
                    chars += len(value)
                count += 1
                if count == limit:
                    break
        seconds = time.perf_counter() - started
    return _figures(count, seconds, base, chars)


async def _sdk(url: str, token: str, sheet: str, page_size: int, limit: int) -> dict[str, Any]:
    import httpx
    from flatfile import AsyncFlatfile

    # Our own httpx client, closed on the way out (the SDK never closes the one it makes),
    # and a timeout (the SDK sets none on a client it is given).
    async with httpx.AsyncClient(timeout=300) as http:
        client = AsyncFlatfile(token=token, base_url=url + "/v1", httpx_client=http, timeout=300)
        base = _status("VmRSS")
        _reset_peak()
        count = chars = 0
        started = time.perf_counter()
        # Flatfile's own helper: the counts first, then every page.
        total = (await client.sheets.get_record_counts(sheet)).data.counts.total
        pages = max(1, math.ceil(min(total, limit or total) / page_size))
        for number in range(1, pages + 1):
            answer = await client.records.get(sheet, page_size=page_size, page_number=number)
            for record in answer.data.records:
                cell = record.values.get("firstName")
                if cell is not None and isinstance(cell.value, str):
                    chars += len(cell.value)
                count += 1
        seconds = time.perf_counter() - started
    return _figures(count, seconds, base, chars)


# ----------------------------------------------------------- the parent


def sdk_installed() -> bool:
    return importlib.util.find_spec("flatfile") is not None


@contextlib.contextmanager
def emulator(count: int) -> Iterator[dict[str, Any]]:
    """An emulator process holding a sheet of ``count`` records."""
    process = subprocess.Popen(
        [sys.executable, str(HERE), "serve", str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator process ended ({process.wait()}) before serving")
        yield json.loads(line)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(side: str, where: dict[str, Any], page_size: int, limit: int) -> dict[str, Any]:
    """One client, in a fresh process: its figures (``limit`` 0: the whole sheet)."""
    args = [where["url"], where["token"], where["sheet"], str(page_size), str(limit)]
    result = subprocess.run(
        [sys.executable, str(HERE), side, *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{side} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["rate"] = figures["records"] / figures["seconds"]
    figures["memory"] = max(0, figures["peak"] - figures["base"])
    return figures


def _row_of(name: str, size: int, m: dict[str, Any] | None) -> list[str]:
    if m is None:
        return [name, f"{size:,}", "SDK not installed", "", "", "", ""]
    return [
        name,
        f"{size:,}",
        f"{m['records']:,}",
        f"{m['seconds']:.1f} s",
        f"{m['rate']:,.0f}",
        f"{m['memory'] / 2**20:.1f} MB",
        f"{m['base'] / 2**20:.0f} MB",
    ]


def main(quick: bool = False, sdk_whole: bool = False) -> None:
    print(f"records benchmark: {machine()}")
    count = 20_000 if quick else 200_000
    sdk_count = 2_000 if quick else SDK_RECORDS
    sdk_limit = 0 if sdk_whole else sdk_count  # 0: the whole sheet
    sizes = (1_000,) if quick else (1_000, 10_000)
    with_sdk = sdk_installed()
    rows: list[list[str]] = []
    ratios: list[list[str]] = []
    with emulator(count) as where:
        print(
            f"emulator: {count:,} records x {len(FIELDS)} fields seeded in {where['seed_s']:.1f} s"
        )
        for size in sizes:
            whole = measure("flatjobs", where, size, 0)
            first = measure("flatjobs", where, size, sdk_count)
            sdk = measure("sdk", where, size, sdk_limit) if with_sdk else None
            same = whole if sdk_whole else first  # what the SDK read, read by flatjobs
            rows.append(_row_of("flatjobs iterate", size, whole))
            rows.append(_row_of("flatjobs iterate", size, first))
            rows.append(_row_of("SDK AsyncFlatfile", size, sdk))
            if sdk is not None:
                if sdk["chars"] != same["chars"]:
                    raise RuntimeError("flatjobs and the SDK read different values")
                speed = same["rate"] / sdk["rate"]
                memory = sdk["memory"] / max(1, same["memory"])
                ratios.append([f"{size:,}", f"{speed:.1f}x", f"{memory:.1f}x"])
    table(
        f"iterating a sheet of {count:,} records x 5 fields, cells {{value, valid, updatedAt}}",
        ["client", "page size", "records read", "time", "records/s", "peak memory", "at start"],
        rows,
    )
    if ratios:
        table(
            "flatjobs vs the SDK on the same "
            + ("whole sheet" if sdk_whole else f"first {sdk_count:,} records"),
            ["page size", "records/s, flatjobs / SDK", "peak memory, SDK / flatjobs"],
            ratios,
        )
    else:
        print("SDK not installed: pip install flatfile==1.0.0 (nox -s bench installs it)")


def _child(argv: list[str]) -> None:
    if argv[0] == "serve":
        asyncio.run(_serve(int(argv[1])))
        return
    side, url, token, sheet, page_size, limit = argv
    run = _flatjobs if side == "flatjobs" else _sdk
    print(json.dumps(asyncio.run(run(url, token, sheet, int(page_size), int(limit)))))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("serve", "flatjobs", "sdk"):
        _child(sys.argv[1:])
    else:
        main(quick="--quick" in sys.argv, sdk_whole="--sdk-whole" in sys.argv)
