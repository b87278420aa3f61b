"""Shared helpers for the benchmarks: timing, tables, and Flatfile's JS reference."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent

# Logging is left alone, as in an application that uses flatjobs as a library: flatjobs is
# quiet by default (warnings and errors only), so the figures are what such a user gets.
JS_REFERENCE = HERE / "js-reference"


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, {time.strftime('%Y-%m-%d')}"
    )


def rate(count: int, run: Callable[[], float], rounds: int = 6) -> float:
    """Median of ``count / seconds`` over ``rounds`` runs, the first (warm-up) dropped."""
    rates = [count / run() for _ in range(rounds)][1:]
    return statistics.median(rates)


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


def js_reference() -> Path | None:
    """A folder with Flatfile's JS packages installed (``npm ci``), or None with a reason
    printed. Installed once per lockfile into the temp directory and reused."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        print("JS reference: skipped (node/npm not on PATH)")
        return None
    lock = (JS_REFERENCE / "package-lock.json").read_bytes()
    target = (
        Path(tempfile.gettempdir()) / f"flatjobs-js-ref-{hashlib.sha256(lock).hexdigest()[:12]}"
    )
    if not (target / "node_modules" / "@flatfile" / "listener").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(JS_REFERENCE, target)
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=target,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            print(f"JS reference: skipped (npm ci failed: {result.stderr.strip()[:200]})")
            return None
    # The scripts are copied every time: a script added since the install runs too.
    for script in JS_REFERENCE.glob("*.cjs"):
        shutil.copy2(script, target)
    return target


def run_node(folder: Path, script: str, *args: str, env: dict[str, str] | None = None) -> str:
    node = shutil.which("node")
    assert node is not None
    result = subprocess.run(
        [node, script, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
        check=True,
    )
    return result.stdout
