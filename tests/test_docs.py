"""The documentation's code cannot rot: docstring examples run as doctests (and an example
that defines a coroutine must run it), and every Python block of the docs and the README is
executed (definitions run, so decorators validate the handlers they register) and
type-checked with mypy."""

from __future__ import annotations

import doctest
import importlib
import logging
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

ROOT = Path(__file__).parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _modules() -> list[str]:
    import flatjobs

    walked = pkgutil.walk_packages(flatjobs.__path__, "flatjobs.")
    return ["flatjobs", *(i.name for i in walked if not i.name.endswith("__main__"))]


MODULES = _modules()


def blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for n, code in enumerate(BLOCK.findall(page.read_text()), 1):
            found.append((f"{page.relative_to(ROOT)}#{n}", code))
    return found


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module: str) -> None:
    # Examples print nothing but their results: log lines would read as output.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_there_are_docstring_examples_in_every_layer() -> None:
    with_examples = {
        m
        for m in MODULES
        for test in doctest.DocTestFinder().find(importlib.import_module(m))
        if test.examples
    }
    assert {
        "flatjobs",
        "flatjobs._listener",
        "flatjobs._jobs",
        "flatjobs._lifecycle",
        "flatjobs._runner",
        "flatjobs.client._client",
        "flatjobs.emulator",
    } <= with_examples


@pytest.mark.parametrize("module", MODULES)
def test_a_docstring_example_that_defines_a_coroutine_runs_it(module: str) -> None:
    # An example that only defines `async def main()` is never executed, so it can call
    # things that do not exist and still pass: each such example must run what it defines.
    for test in doctest.DocTestFinder().find(importlib.import_module(module)):
        source = "".join(example.source for example in test.examples)
        if "async def" in source:
            assert "asyncio.run(" in source, f"{test.name}: an async example never runs"


def test_there_are_python_blocks_to_check() -> None:
    assert len(blocks()) >= 4


@pytest.mark.parametrize(("where", "code"), blocks(), ids=[w for w, _ in blocks()])
def test_every_python_block_of_the_docs_runs(where: str, code: str) -> None:
    exec(compile(code, where, "exec"), {"__name__": "docs_block"})


def test_every_python_block_of_the_docs_type_checks(tmp_path: Path) -> None:
    files = []
    for n, (_, code) in enumerate(blocks()):
        path = tmp_path / f"block_{n}.py"
        path.write_text(code)
        files.append(str(path))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--follow-imports=silent",
            *files,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout


def _public_members(obj: object) -> list[str]:
    names = []
    for name, member in vars(obj).items():
        if name.startswith("_") or not (
            callable(member) or isinstance(member, property | staticmethod)
        ):
            continue
        names.append(name)
    return names


def test_every_public_name_has_a_docstring() -> None:
    import inspect

    import flatjobs
    import flatjobs.emulator
    import flatjobs.testing

    missing = []
    for module in (flatjobs, flatjobs.emulator, flatjobs.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not (obj.__doc__ or "").strip():
                missing.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                for member in _public_members(obj):
                    attr = inspect.getattr_static(obj, member)
                    target = attr.__func__ if isinstance(attr, staticmethod) else attr
                    if not (getattr(target, "__doc__", None) or "").strip():
                        missing.append(f"{module.__name__}.{name}.{member}")
    assert missing == []


def test_no_page_or_docstring_points_to_documents_users_do_not_have() -> None:
    root = Path(__file__).parent.parent
    places = [root / "README.md", root / "CHANGELOG.md"]
    for folder, pattern in (("flatjobs", "*.py"), ("docs", "*.md"), ("examples", "*.py")):
        places += [p for p in (root / folder).rglob(pattern) if "_build" not in p.parts]
    pointing = [str(p.relative_to(root)) for p in places if "SPEC" in p.read_text()]
    assert pointing == []
