"""Run every benchmark and print its table: ``python bench/run.py [--quick] [--no-js]``."""

from __future__ import annotations

import sys

import dispatch
import lifecycle
from _common import machine


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    with_js = "--no-js" not in argv
    print(f"flatjobs benchmarks on {machine()}")
    dispatch.main(quick=quick, with_js=with_js)
    lifecycle.main(quick=quick, with_js=with_js)


if __name__ == "__main__":
    main(sys.argv[1:])
