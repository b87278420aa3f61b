"""Developer tasks. ``python3 -m nox -s tests`` runs the suite on a fresh machine.

Sessions: tests (two parametrizations, see below), lint, typecheck, bench.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
@nox.parametrize("suite", ["main", "aioresponses"])
def tests(session: nox.Session, suite: str) -> None:
    """The test suite.

    ``main`` runs everything against the newest aiohttp. ``aioresponses`` runs the narrow
    aioresponses unit tests under a test-only ``aiohttp<3.14`` constraint, because
    aioresponses 0.7.9 breaks on aiohttp 3.14 (SPEC §7); users' aiohttp is never capped.
    """
    if suite == "main":
        session.install("-e", ".[tests]")
        session.run("pytest", "-m", "not aioresponses", *session.posargs)
    else:
        session.install("-e", ".[tests]", "-c", "tests/constraints-aioresponses.txt")
        session.run("pytest", "-m", "aioresponses", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, tests, benchmarks and examples."""
    session.install("-e", ".[typing]", "nox")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks, printing tables; Flatfile's JS packages run beside them when Node is
    available. ``nox -s bench -- --quick`` for a fast smoke run."""
    session.install("-e", ".")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site (Sphinx, MyST, furo) with warnings as errors."""
    session.install("-e", ".", "sphinx>=7.2", "myst-parser>=2", "furo>=2024.1")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
