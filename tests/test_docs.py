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
        "flatjobs.listener._listener",
        "flatjobs.jobs._registry",
        "flatjobs.jobs._lifecycle",
        "flatjobs.running._runner",
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


# ------------------------------------------------------------ what a reader copies

INCLUDE = re.compile(r"```\{literalinclude\} (\S+)\n((?::[\w-]+:.*\n)*)```")
INCLUDE_OPTIONS = {"language", "lines", "start-after", "end-before", "pyobject"}


def _lines(spec: str, count: int) -> list[int]:
    """The line numbers (1-based) a ``:lines:`` option selects, as Sphinx reads it."""
    chosen: list[int] = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        start = int(first) if first else 1
        end = (int(last) if last else count) if dash else start
        chosen.extend(range(start, min(end, count) + 1))
    return chosen


def _shown(source: str, options: dict[str, str]) -> str:
    """What a literalinclude with ``options`` shows of ``source``."""
    unknown = set(options) - INCLUDE_OPTIONS
    assert not unknown, f"this test does not know the option(s) {unknown}: teach it"
    text = source
    if "pyobject" in options:
        import ast

        (node,) = [
            n for n in ast.parse(source).body if getattr(n, "name", None) == options["pyobject"]
        ]
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        text = "".join(source.splitlines(keepends=True)[start - 1 : node.end_lineno])
    if "lines" in options:
        lines = text.splitlines(keepends=True)
        text = "".join(lines[n - 1] for n in _lines(options["lines"], len(lines)))
    if "start-after" in options:
        text = text.split(options["start-after"], 1)[1].split("\n", 1)[1]
    if "end-before" in options:
        text = text.split(options["end-before"], 1)[0].rsplit("\n", 1)[0] + "\n"
    return text


def includes() -> list[tuple[str, str]]:
    """Each Python literalinclude of the docs: (where, the code it shows)."""
    found = []
    for page in PAGES:
        for path, block in INCLUDE.findall(page.read_text()):
            options = dict(re.findall(r":([\w-]+):[ \t]*(.*)", block))
            if options.get("language", "python") != "python":
                continue
            source = (page.parent / path).resolve().read_text()
            found.append((f"{page.relative_to(ROOT)}:{path}", _shown(source, options)))
    return found


def test_there_are_includes_to_check() -> None:
    assert len(includes()) >= 4


@pytest.mark.parametrize(("where", "code"), includes(), ids=[w for w, _ in includes()])
def test_every_included_piece_of_code_compiles_and_uses_what_it_imports(
    where: str, code: str
) -> None:
    # Was a bug: getting-started showed lines 1-75 of a test module, which ended in the middle
    # of a dict (a SyntaxError once copied) and imported modules those lines never used.
    import ast

    tree = ast.parse(compile(code, where, "exec", flags=ast.PyCF_ONLY_AST))
    imported = {
        (alias.asname or alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
        for alias in node.names
    }
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert imported <= used, f"{where} imports what it never uses: {sorted(imported - used)}"


def test_the_getting_started_tests_pass_as_the_page_tells_to_set_them_up(
    tmp_path: Path,
) -> None:
    # The "Test it" section copied into a new project: its pytest configuration, its
    # conftest.py and test_quickstart.py beside the quickstart and its data.
    page = (ROOT / "docs" / "getting-started.md").read_text()
    section = page.split("## Test it", 1)[1].split("\n## ", 1)[0]
    (config,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    (tmp_path / "pyproject.toml").write_text(config)
    named = dict(re.findall(r"in `(\w+\.py)`.*?\n```\{literalinclude\} (\S+)", section, re.S))
    assert set(named) == {"conftest.py", "test_quickstart.py"}, named
    for name, path in named.items():
        (tmp_path / name).write_text((ROOT / "docs" / path).resolve().read_text())
    (tmp_path / "quickstart.py").write_text((ROOT / "examples" / "quickstart.py").read_text())
    (tmp_path / "data").mkdir()
    for data in (ROOT / "examples" / "data").iterdir():
        (tmp_path / "data" / data.name).write_bytes(data.read_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith("2 passed")


def test_the_seed_how_to_s_seed_loads_as_shown(tmp_path: Path) -> None:
    import asyncio
    import json

    from flatjobs.emulator import Emulator

    page = (ROOT / "docs" / "howto" / "seed.md").read_text()
    (seed,) = re.findall(r"```json\n(.*?)```", page, re.S)
    (table,) = re.findall(r"```text\n(.*?)```", page, re.S)
    paths = re.findall(r'"records": "([^"]+)"', seed)
    assert paths == ["contacts.csv"]
    (tmp_path / "seed.json").write_text(seed)
    (tmp_path / paths[0]).write_text(table)

    async def load() -> tuple[int, int]:
        async with Emulator(seed=tmp_path / "seed.json") as emu:
            return len(emu.records("contacts")), len(emu.records("notes"))

    contacts, notes = asyncio.run(load())
    assert contacts == len(table.strip().splitlines()) - 1  # the header row
    assert notes == len(json.loads(seed)["spaces"][0]["workbooks"][0]["sheets"][1]["records"])


def test_the_configuration_page_says_what_help_says_of_the_emulator_s_push_port() -> None:
    # Was a bug: the page said the emulator picks a new push port each time it starts;
    # --help (and the emulator) take the port after --port, so that it stays the same.
    import argparse

    from flatjobs.dev._args import make_parser

    (commands,) = [a for a in make_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    (push_port,) = [a for a in commands.choices["emulator"]._actions if a.dest == "push_port"]
    assert push_port.help is not None
    assert "the port after --port" in push_port.help
    page = " ".join((ROOT / "docs" / "howto" / "configuration.md").read_text().split())
    assert "The push channel listens on the port after the API's" in page
    assert "`--push-port` chooses another" in page
    assert "new push port each time" not in page
