"""What ships: the sdist and the wheel carry the licence they declare."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_the_sdist_and_the_wheel_carry_the_mit_licence(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hatchling",
            "build",
            "-t",
            "sdist",
            "-t",
            "wheel",
            "-d",
            str(tmp_path),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (sdist,) = tmp_path.glob("*.tar.gz")
    (wheel,) = tmp_path.glob("*.whl")
    with tarfile.open(sdist) as archive:
        licence = next(m for m in archive.getmembers() if m.name.endswith("/LICENSE"))
        extracted = archive.extractfile(licence)
        assert extracted is not None
        assert b"MIT License" in extracted.read()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        licence_name = next(n for n in names if n.endswith("licenses/LICENSE"))
        assert b"MIT License" in archive.read(licence_name)
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: MIT" in metadata
    assert "py.typed" in " ".join(names)
    # The emulator's jobs panel is package data: the page it serves at its root URL.
    panel = {f"flatjobs/emulator/panel/{name}" for name in ("index.html", "panel.js", "panel.css")}
    assert panel <= set(names)


def test_the_readme_test_command_runs_on_any_supported_python_and_a_session_runs_them_all() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", "-s", "tests", "tests_pythons"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    sessions = json.loads(listed.stdout)
    tests = [s for s in sessions if s["name"] == "tests"]
    assert tests
    assert all(s["python"] is None for s in tests)
    every = {s["python"] for s in sessions if s["name"] == "tests_pythons"}
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    supported = {
        c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r".*Python :: 3\.\d+", c)
    }
    assert every == supported == {"3.11", "3.12", "3.13"}
    assert "tests_pythons" in (ROOT / ".ci" / "run").read_text()
