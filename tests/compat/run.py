"""Flatfile's own SDKs and plugins against the emulator: ``python tests/compat/run.py``
(``nox -s compat``).

For each SDK a fresh emulator is started in this process, seeded from ``seed.json`` beside
this file, with one job triggered as a user clicking the workbook's Submit action; the ids go
to the script in ``FF_*`` variables, beside the emulator's own ``FLATFILE_API_URL`` and
``FLATFILE_BEARER_TOKEN``:

* ``compat.py``: Flatfile's Python SDK (``flatfile`` 1.0.0, installed in this interpreter),
  run with ``-X dev -W error``;
* ``compat.cjs``: Flatfile's JS client (``@flatfile/api``, pinned by ``package-lock.json``,
  installed with ``npm ci`` into a temporary folder reused while the lockfile is the same),
  run by Node, with its strict re-parse of every answer.

Then Flatfile's listener plugins (record hooks, space configuration, the delimiter and xlsx
extractors, pinned by the same lockfile) run their scenarios against fresh emulators:
``plugins.py`` (Python, asserting the emulator's state) and ``plugins.cjs`` (Node). The xlsx
scenario writes its file with openpyxl (installed by the nox session).

Options: ``--python-only``, ``--js-only`` (the JS client), ``--plugins-only``, ``--scenario
TEXT`` (only the plugin scenarios whose name holds TEXT; repeatable), ``--node-modules DIR``
(a folder whose ``node_modules`` has the packages, instead of ``npm ci``), ``--npm-cache
DIR`` (where ``npm ci`` installs, reused while the lockfile is the same; the temporary
directory by default). Exits 1 when any
call or scenario fails, and 2 when Node, npm, the Python SDK or openpyxl is missing: a check
that cannot run is not a check that passed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flatjobs.emulator import Emulator

HERE = Path(__file__).resolve().parent
SEED = HERE / "seed.json"
TIMEOUT = 120.0
"""Seconds one SDK's script may take (each takes a few)."""
PLUGINS_TIMEOUT = 600.0
"""Seconds the plugins' scenarios may take together (they take some twenty)."""
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")
PACKAGES = ("@flatfile/api", "@flatfile/listener", "@flatfile/plugin-record-hook")
"""Packages a given ``--node-modules`` folder must hold (the lockfile's, in short)."""


class Unavailable(Exception):
    """An SDK cannot be run here: the message says what is missing and how to get it."""


def js_modules(given: str | None, cache: str | None = None) -> Path:
    """A folder with the ``node_modules`` ``package-lock.json`` pins: ``given``, or one
    installed with ``npm ci`` under ``cache`` (the temporary directory without one), reused
    while the lockfile is the same."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None:
        raise Unavailable(
            "node is not on PATH: the JS half of the check needs Node 18 or newer "
            "(apt-get install -y nodejs npm), or run with --python-only"
        )
    if given is not None:
        folder = Path(given).resolve()  # the scripts run in this folder, not the caller's
        for package in PACKAGES:
            if not (folder / "node_modules" / package).is_dir():
                raise Unavailable(f"{folder}/node_modules/{package} does not exist")
        return folder
    if npm is None:
        raise Unavailable("npm is not on PATH (apt-get install -y npm)")
    lock = (HERE / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (HERE / "package.json").read_bytes()).hexdigest()[:12]
    folder = Path(cache or tempfile.gettempdir()).resolve() / f"flatjobs-compat-js-{digest}"
    done = folder / "npm-ci.done"  # written once npm ci succeeded: a partial install is redone
    if done.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(HERE / name, folder / name)
    print(f"npm ci in {folder}", flush=True)
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise Unavailable(f"npm ci failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    done.write_text("ok\n")
    return folder


async def run_one(label: str, argv: list[str], extra_env: dict[str, str]) -> tuple[int, int]:
    """Run one SDK's script against a fresh seeded emulator, or the plugins' scenarios
    (which start emulators of their own): (passed, failed)."""
    if label == "plugins":
        return await run_script(label, argv, {**os.environ, **extra_env}, PLUGINS_TIMEOUT)
    async with Emulator(seed=SEED, record=False) as emu:
        seeded = emu.seeded
        workbook = seeded.workbooks["Contacts"]
        job = emu.trigger_action(workbook, "submit")
        sheet = seeded.sheets["contacts"]
        record_ids = [r["id"] for r in emu.records(sheet)]
        env = {
            **os.environ,
            **emu.env(),
            **extra_env,
            "FF_ENVIRONMENT_ID": emu.environment_id,
            "FF_ACCOUNT_ID": emu.state.account_id,
            "FF_SPACE_ID": seeded.spaces["Compat"],
            "FF_WORKBOOK_ID": workbook,
            "FF_SHEET_ID": sheet,
            "FF_FILE_ID": seeded.files["contacts.csv"],
            "FF_DOCUMENT_ID": seeded.documents["Welcome"],
            "FF_JOB_ID": job.id,
            "FF_RECORD_IDS": ",".join(record_ids),
        }
        return await run_script(label, argv, env, TIMEOUT)


async def run_script(
    label: str, argv: list[str], env: dict[str, str], timeout: float
) -> tuple[int, int]:
    """Run a script that prints ``N passed, M failed`` last: (passed, failed)."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=HERE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    summary: tuple[int, int] | None = None
    try:
        async with asyncio.timeout(timeout):
            async for raw in process.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                print(f"[{label}] {line}", flush=True)
                found = SUMMARY.match(line)
                if found:
                    summary = (int(found[1]), int(found[2]))
            code = await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        print(f"[{label}] timed out after {timeout:g} s", flush=True)
        return (summary or (0, 0))[0], max(1, (summary or (0, 0))[1])
    seconds = time.monotonic() - started
    if summary is None:
        print(f"[{label}] exited {code} without its 'N passed, M failed' line", flush=True)
        return 0, 1
    passed, failed = summary
    if code != 0 and failed == 0:
        print(f"[{label}] exited {code} although every call passed", flush=True)
        failed = 1
    print(f"[{label}] {passed} passed, {failed} failed in {seconds:.1f} s", flush=True)
    return passed, failed


async def run_all(runs: list[tuple[str, list[str], dict[str, str]]]) -> dict[str, tuple[int, int]]:
    return {label: await run_one(label, command, env) for label, command, env in runs}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--python-only", action="store_true")
    only.add_argument("--js-only", action="store_true")
    only.add_argument("--plugins-only", action="store_true")
    parser.add_argument("--scenario", action="append", metavar="TEXT")
    parser.add_argument("--node-modules", metavar="DIR")
    parser.add_argument("--npm-cache", metavar="DIR")
    args = parser.parse_args(argv)
    runs: list[tuple[str, list[str], dict[str, str]]] = []
    try:
        if not (args.js_only or args.plugins_only):
            if importlib.util.find_spec("flatfile") is None:
                raise Unavailable(
                    f"Flatfile's Python SDK is not installed in {sys.executable} "
                    "(pip install flatfile==1.0.0 httpx; nox -s compat does)"
                )
            python = [sys.executable, "-X", "dev", "-W", "error", str(HERE / "compat.py")]
            runs.append(("python", python, {}))
        if not args.python_only:
            folder = js_modules(args.node_modules, args.npm_cache)
            node = shutil.which("node")
            assert node is not None
            version = subprocess.run(
                [node, "--version"], capture_output=True, text=True, check=True
            ).stdout.strip()
            if int(version.lstrip("v").split(".")[0]) < 18:
                raise Unavailable(f"node {version} is too old: the JS client needs Node 18+")
            print(f"node {version}, Flatfile's packages from {folder}", flush=True)
            if not args.plugins_only:
                env = {"FF_API_MODULE_DIR": str(folder / "node_modules")}
                runs.append(("js", [node, str(HERE / "compat.cjs")], env))
            if not args.js_only:
                if importlib.util.find_spec("openpyxl") is None:
                    raise Unavailable(
                        f"openpyxl is not installed in {sys.executable}: the xlsx scenario "
                        "writes its file with it (pip install openpyxl; nox -s compat does)"
                    )
                scenarios = [a for text in args.scenario or () for a in ("--scenario", text)]
                command = [sys.executable, str(HERE / "plugins.py"), "--node-modules"]
                runs.append(("plugins", [*command, str(folder / "node_modules"), *scenarios], {}))
    except Unavailable as exc:
        print(f"compat: cannot run: {exc}", file=sys.stderr, flush=True)
        return 2
    totals = asyncio.run(run_all(runs))
    print("\nFlatfile's SDKs and plugins against the emulator:")
    for label, (passed, failed) in totals.items():
        print(f"  {label}: {passed} passed, {failed} failed")
    passed = sum(p for p, _ in totals.values())
    failed = sum(f for _, f in totals.values())
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
