"""The ``flatjobs`` command line, including the README's main command exactly as written."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from flatjobs._cli import TargetError, load_target, main
from flatjobs.emulator import Emulator

ROOT = Path(__file__).parent.parent
APP = "tests/apps/slow.py"


async def flatjobs(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flatjobs",
        *args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def readme_main_command() -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```console\n(.*?)\n```", readme, re.S)
    assert len(blocks) >= 2, "the README's first screen gives two commands"
    return str(blocks[0]).strip()


def readme_sample_output() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"```text\n(flatjobs dev: .*?)\n```", readme, re.S)
    assert found, "the README shows what its main command prints"
    return found.group(1).splitlines()


_PROGRESS = re.compile(r"^  (\S+)\s+\[[#.]+\]\s+[\d.]+%  (.*)$")


def _shape(lines: list[str]) -> tuple[str, str, dict[str, list[str]], set[tuple[str, str]]]:
    """The first and last lines, each job's other lines in order, and each job's progress
    lines with their numbers blanked (how many progress lines show depends on timing)."""
    head = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", lines[0])
    steps: dict[str, list[str]] = {}
    progress: set[tuple[str, str]] = set()
    for line in lines[1:-1]:
        if found := _PROGRESS.match(line):
            progress.add((found.group(1), re.sub(r"\d", "#", found.group(2))))
        else:
            steps.setdefault(line.split()[0], []).append(line)
    return head, lines[-1], steps, progress


def test_readme_main_command_prints_what_the_readme_shows() -> None:
    command = readme_main_command()
    assert "flatjobs dev examples/quickstart.py" in command
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PIP_QUIET": "1", "PIP_ROOT_USER_ACTION": "ignore"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    printed = _shape(done.stdout.strip().splitlines())
    shown = _shape(readme_sample_output())
    assert printed[:3] == shown[:3]  # first line, summary, each job's steps: exactly
    assert shown[3] <= printed[3]  # the README's progress lines, as this run printed them
    assert done.stderr == ""  # nothing else, at dev's default log level


def test_readme_test_command_is_the_one_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    test_command = re.findall(r"```console\n(.*?)\n```", readme, re.S)[1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("command", [[], ["run"], ["dev"], ["emulator"]])
def test_help_on_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: flatjobs" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_here:listener", "cannot import 'no_such_module_here'"),
        ("tests/apps/missing.py", "no such file: tests/apps/missing.py"),
        (f"{APP}:nothing", "has no attribute 'nothing'"),
        (f"{APP}:not_a_listener", "is a int, not a flatjobs Listener or Jobs"),
        (":x", "names no module"),
    ],
)
def test_a_bad_target_is_a_one_line_error_with_exit_code_2(
    target: str, message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["run", target]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flatjobs run: error: ")
    assert message in err
    assert len(err.splitlines()) == 1


def test_missing_configuration_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    for name in ("FLATFILE_BEARER_TOKEN", "FLATFILE_API_KEY", "FLATFILE_ENVIRONMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    assert main(["run", APP]) == 2
    assert "FLATFILE_BEARER_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("FLATFILE_BEARER_TOKEN", "sk_x_123")
    assert main(["run", APP]) == 2
    assert "FLATFILE_ENVIRONMENT_ID" in capsys.readouterr().err


def test_load_target_finds_listener_or_jobs_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    listener = load_target(APP)  # no `listener` attribute: `jobs` is wrapped
    assert [n.rsplit(".", 1)[-1] for n in listener.callbacks()] == ["slow", "crash", "stubborn"]
    assert load_target("examples/quickstart.py:listener").callbacks()
    with pytest.raises(TargetError):
        load_target(f"{APP}:SECONDS")


async def test_dev_exits_1_when_a_job_fails_unexpectedly() -> None:
    code, out, _ = await flatjobs("dev", APP, "--trigger", "workbook:crash", "--exit-when-idle")
    assert code == 1
    assert "FAILED the handler has a bug" in out
    assert "1 job(s): 0 complete, 1 failed (1 unexpectedly)" in out


async def test_dev_exits_1_for_a_job_no_callback_handles() -> None:
    code, out, _ = await flatjobs("dev", APP, "--trigger", "space:unknown", "--exit-when-idle")
    assert code == 1
    assert "no callback of tests/apps/slow.py handles this job" in out


async def sigterm_with_jobs_in_flight(
    emu: Emulator, job_seconds: float, grace: float
) -> tuple[int, str, list[str]]:
    """Start `flatjobs run`, get 50 jobs executing, send SIGTERM; (exit code, stderr, ids)."""
    env = {**os.environ, **emu.env(), "SLOW_JOB_SECONDS": str(job_seconds)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flatjobs",
        "run",
        APP,
        "--grace-period",
        str(grace),
        "--interval",
        "0.05",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    ids = [emu.trigger("workbook:slow").id for _ in range(50)]
    for job_id in ids:
        await emu.wait_for(job_id, ["executing"], timeout=30)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode(), ids


async def test_run_drains_in_flight_jobs_on_sigterm() -> None:
    async with Emulator() as emu:
        code, err, ids = await sigterm_with_jobs_in_flight(emu, job_seconds=1.0, grace=20)
        statuses = {emu.job(i).status for i in ids}
    assert code == 0, err[-2000:]
    assert statuses == {"complete"}
    assert emu.token not in err


async def test_run_fails_jobs_with_a_retry_when_the_grace_period_runs_out() -> None:
    async with Emulator() as emu:
        code, err, ids = await sigterm_with_jobs_in_flight(emu, job_seconds=60, grace=0.5)
        jobs = [emu.job(i) for i in ids]
    assert code == 0, err[-2000:]
    assert {j.status for j in jobs} == {"failed"}
    assert all(j.outcome is not None and j.outcome.next is not None for j in jobs)
    assert "grace period over" in err
    assert emu.token not in err


async def test_emulator_command_serves_the_api() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flatjobs", "emulator", "--port", "0", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("flatjobs emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        request = urllib.request.Request(
            f"{url}/v1/jobs?environmentId=us_env_emulator",
            headers={"Authorization": "Bearer sk_emulator_local"},
        )
        body = await asyncio.to_thread(
            lambda: json.load(urllib.request.urlopen(request, timeout=10))
        )
        assert body["data"] == []
    finally:
        proc.terminate()
        await proc.wait()


async def test_run_from_the_folder_of_the_listener_imports_it_by_module_name(
    tmp_path: Path,
) -> None:
    (tmp_path / "my_listener.py").write_text(
        "from flatjobs import Jobs, Listener\n"
        "jobs = Jobs()\n"
        "@jobs.handle('workbook:hello')\n"
        "async def hello(event, tick):\n"
        "    return 'hello from my folder'\n"
        "listener = Listener().use(jobs)\n"
    )
    console_script = Path(sys.executable).parent / "flatjobs"
    assert console_script.exists()
    async with Emulator() as emu:
        env = {**os.environ, **emu.env()}
        env.pop("PYTHONPATH", None)
        proc = await asyncio.create_subprocess_exec(
            str(console_script),
            "run",
            "my_listener:listener",
            "--interval",
            "0.05",
            cwd=tmp_path,
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            job = emu.trigger("workbook:hello")
            done = await emu.wait_for(job.id, timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert "ModuleNotFoundError" not in err.decode()
    assert done.status == "complete"
    assert done.outcome is not None
    assert done.outcome.message == "hello from my folder"
    assert proc.returncode == 0


async def test_sigterm_with_a_body_that_ignores_cancellation_still_exits_and_fails_the_job() -> (
    None
):
    async with Emulator() as emu:
        env = {**os.environ, **emu.env()}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flatjobs",
            "run",
            APP,
            "--grace-period",
            "0.2",
            "--interval",
            "0.05",
            cwd=ROOT,
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        job = emu.trigger("workbook:stubborn")
        await emu.wait_for(job.id, ["executing"], timeout=30)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)  # it exits: bounded in time
        ended = emu.job(job.id)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert ended.status == "failed"
    assert ended.outcome is not None
    assert ended.outcome.next is not None
    assert "ignore cancellation" in err.decode()
