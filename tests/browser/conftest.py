"""The jobs panel in a real headless browser: Playwright for Python driving the system's
Chromium (``apt-get install -y chromium``; ``FLATJOBS_CHROMIUM`` names another executable).

Run by ``nox -s browser``, never by the main suite (``norecursedirs`` in pyproject.toml);
``nox -s browser -- --screenshots`` also rewrites the docs' screenshots of the panel.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright, expect

SCREENSHOTS = Path(__file__).parents[2] / "docs" / "images"

# Auto-waiting expectations, generous for a loaded CI machine: they return as soon as the
# page shows what they expect.
expect.set_options(timeout=15_000)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots",
        action="store_true",
        help=f"write the docs' screenshots of the jobs panel to {SCREENSHOTS}",
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = os.environ.get("FLATJOBS_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "no chromium on PATH: apt-get install -y chromium (or set FLATJOBS_CHROMIUM to a "
            "Chromium executable); Playwright's own browser download is not used"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page; any script error, or a request the emulator refused, fails the test."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    opened = await context.new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    def thrown(error: Error) -> None:
        problems.append(f"{error.name}: {error.message}")

    opened.on("console", console)
    opened.on("pageerror", thrown)
    yield opened
    await context.close()
    assert problems == [], "the page reported errors"
