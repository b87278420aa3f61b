"""The installed version, read once from the package metadata."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version


@functools.cache
def version() -> str:
    try:
        return _dist_version("flatjobs")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
