"""Run every benchmark and print its table: ``python bench/run.py [--quick] [--no-js]``.

Flatfile's JS packages run beside the dispatch and lifecycle figures when Node is available.
"""

from __future__ import annotations

import sys

import dispatch
import latency
import lifecycle
import memory
import records
import ticks
from _common import machine


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    with_js = "--no-js" not in argv
    print(f"flatjobs benchmarks on {machine()}")
    print("command: python3 -m nox -s bench" + (" -- " + " ".join(argv) if argv else ""))
    dispatch.main(quick=quick, with_js=with_js)
    lifecycle.main(quick=quick, with_js=with_js)
    ticks.main(quick=quick)
    memory.main(quick=quick)
    latency.main(quick=quick)
    records.main(quick=quick)


if __name__ == "__main__":
    main(sys.argv[1:])
