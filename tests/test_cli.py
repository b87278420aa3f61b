"""The ``flatjobs`` command line, including the README's main command exactly as written."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flatjobs.dev._cli import main
from flatjobs.dev._target import TargetError, load_target
from flatjobs.emulator import Emulator

ROOT = Path(__file__).parent.parent
APP = "tests/apps/slow.py"


async def flatjobs(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, clean: bool = False
) -> tuple[int, str, str]:
    """Run the command; ``env`` adds to this process's environment (replaces it: ``clean``)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flatjobs",
        *args,
        cwd=ROOT,
        env=dict(env or {}) if clean else {**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:  # never left behind a test
        proc.kill()
        await proc.wait()
        raise
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


_NATS = ["--nats", "nats://127.0.0.1:1"]  # never reached: the settings are refused first


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (
            [],
            {},
            "no Flatfile API token: set FLATFILE_BEARER_TOKEN (or FLATFILE_API_KEY) to a "
            "secret key of the environment",
        ),
        (
            [],
            {"FLATFILE_BEARER_TOKEN": " \n"},
            "no Flatfile API token: set FLATFILE_BEARER_TOKEN (or FLATFILE_API_KEY) to a "
            "secret key of the environment",
        ),
        (
            [],
            {"FLATFILE_API_KEY": "sk_x_123"},
            "no environment id: set FLATFILE_ENVIRONMENT_ID or pass --environment-id",
        ),
        (
            [*_NATS, "--max-deliver", "0"],
            {"FLATFILE_BEARER_TOKEN": "sk_x_123", "FLATFILE_ENVIRONMENT_ID": "us_env_1"},
            "--max-deliver must be a whole number 1..1000000, got 0",
        ),
        (
            [*_NATS, "--partitions", "2000"],
            {"FLATFILE_BEARER_TOKEN": "sk_x_123", "FLATFILE_ENVIRONMENT_ID": "us_env_1"},
            "--partitions must be a whole number 1..1024, got 2000",
        ),
        (
            [*_NATS, "--nats-replicas", "7"],
            {"FLATFILE_BEARER_TOKEN": "sk_x_123", "FLATFILE_ENVIRONMENT_ID": "us_env_1"},
            "--nats-replicas must be a whole number 1..5, got 7",
        ),
        (
            [*_NATS, "--nats-stream", "a.b"],
            {"FLATFILE_BEARER_TOKEN": "sk_x_123", "FLATFILE_ENVIRONMENT_ID": "us_env_1"},
            "--nats-stream must be 1 to 64 letters, digits, '_' or '-', got 'a.b'",
        ),
    ],
    ids=[
        "no-token",
        "blank-token",
        "no-environment",
        "max-deliver",
        "partitions",
        "replicas",
        "stream",
    ],
)
def test_configuration_errors_name_the_command_s_variables_and_options(
    args: list[str],
    env: dict[str, str],
    said: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Was a bug: they named the library's keywords ("pass environment_id=...",
    # "max_deliver must be"), which the command does not take.
    monkeypatch.chdir(ROOT)
    for name in ("FLATFILE_BEARER_TOKEN", "FLATFILE_API_KEY", "FLATFILE_ENVIRONMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["run", APP, *args]) == 2
    assert capsys.readouterr().err == f"flatjobs run: error: {said}\n"


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
    assert "FAILED RuntimeError: the handler has a bug" in out
    assert "1 job(s): 0 complete, 1 failed (1 unexpectedly)" in out


async def test_dev_exits_1_for_a_job_no_callback_handles() -> None:
    code, out, _ = await flatjobs("dev", APP, "--trigger", "space:unknown", "--exit-when-idle")
    assert code == 1
    assert "no callback of tests/apps/slow.py handles this job" in out


async def test_dev_names_the_job_meant_by_a_mistyped_trigger() -> None:
    code, out, _ = await flatjobs("dev", APP, "--trigger", "workbook:slwo", "--exit-when-idle")
    assert code == 1
    assert (
        "  workbook:slwo                no callback of tests/apps/slow.py handles this job: "
        "did you mean workbook:slow?"
    ) in out.splitlines()


async def test_dev_without_a_seed_says_so_when_a_job_fails_on_its_made_up_sheet() -> None:
    # Was a bug: all it said was "sheet 'us_sh_emulator' not found".
    args = ["examples/quickstart.py", "--trigger", "sheet:validate", "--exit-when-idle"]
    code, out, _ = await flatjobs("dev", *args)
    assert code == 1
    lines = out.splitlines()
    failed = next(n for n, line in enumerate(lines) if "FAILED" in line)
    assert "sheet 'us_sh_emulator' not found" in lines[failed]
    assert lines[failed + 1] == (
        "  sheet:validate               the emulator holds no sheet: this job was about the "
        "made-up us_sh_emulator; pass --seed FILE to give it a sheet to work on"
    )
    code, out, _ = await flatjobs("dev", *args, "--seed", "examples/data/contacts.json")
    assert "--seed" not in out  # seeded: it ran on the seeded sheet


@pytest.mark.parametrize("job", ["workbook:slow", "workbook:stubborn"])
async def test_dev_timeout_bounds_the_whole_run_whatever_the_grace_period(job: str) -> None:
    # Was a bug: --timeout 8 took 39 s, the jobs still running being given the grace period
    # (and a body ignoring its cancellation kept the process alive for ever).
    code, out, err = await flatjobs(
        "dev",
        APP,
        "--trigger",
        job,
        "--exit-when-idle",
        "--timeout",
        "1",
        "--grace-period",
        "3600",
        env={"SLOW_JOB_SECONDS": "3600"},
        timeout=60,  # a bound on this test, far below the grace period
    )
    assert code == 1, err[-2000:]
    lines = out.splitlines()
    assert (
        lines[-1] == "1 job(s): 0 complete, 1 failed (1 unexpectedly), 1 stopped at the 1s timeout"
    )
    assert lines[-2] == (
        f"  {job:<28} FAILED The listener stopped before the job finished. Retry to run it "
        "again.  [Retry]"
    )


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("push_port", [None, "given"])
async def test_the_emulator_s_push_port_is_the_next_one_or_the_one_given(
    push_port: str | None,
) -> None:
    # A fixed push port keeps the FLATFILE_PUSH_ORIGIN a user exported true across restarts.
    port, other = _free_port(), _free_port()
    args = ["--port", str(port)] + (["--push-port", str(other)] if push_port else [])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flatjobs", "emulator", *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 20)).decode() for _ in range(6)]
    finally:
        proc.terminate()
        await proc.wait()
    want = other if push_port else port + 1
    assert f"  export FLATFILE_PUSH_ORIGIN=http://127.0.0.1:{want}\n" in lines


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


# ------------------------------------------------------------ a CLI that explains itself


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dev", APP, "--trigger", "nocolon"], "takes DOMAIN:OPERATION, such as workbook:export"),
        (["dev", APP, "--trigger", "a:b:c"], "got 'a:b:c'"),
        (["dev", APP, "--trigger", "a:b", "--input", "{bad json"], "is not JSON"),
        (["dev", APP, "--trigger", "a:b", "--input", "[1, 2]"], "must be a JSON object"),
        (["run", APP, "--source", "carrier-pigeon"], "invalid choice: 'carrier-pigeon'"),
        (
            ["run", APP, "--nats", "nats://127.0.0.1:9", "--ack-wait", "inf"],
            "argument --ack-wait: must be from 2 to 86400, got inf",
        ),
        (
            ["run", APP, "--nats", "nats://127.0.0.1:9", "--ack-wait", "1e300"],
            "argument --ack-wait: must be from 2 to 86400, got 1e300",
        ),
        (["run", APP, "--concurrency", "many"], "is not a number: 'many'"),
        (["run", APP, "--concurrency", "0"], "must be 1 or more, got 0"),
        (["emulator", "--port", "99999"], "must be from 0 to 65535, got 99999"),
        (["run", APP, "--grace-period", "inf"], "must be from 0 to 31622400, got inf"),
        (["run", APP, "--since", "yesterday"], "is not an ISO 8601 time"),
        (["run", APP, "--since", "2999-01-01T00:00:00Z"], "is in the future"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"flatjobs {argv[0]}: error: ")
    assert message in err
    assert "Traceback" not in err


def test_an_attribute_typo_is_answered_with_the_name_meant(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["run", "examples/quickstart.py:listner"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "flatjobs run: error: examples/quickstart.py has no attribute 'listner': "
        "did you mean 'listener'?"
    )


def test_dev_exit_when_idle_with_nothing_to_trigger_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["dev", APP, "--exit-when-idle"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flatjobs dev: error: nothing to do: --exit-when-idle")
    assert len(err.splitlines()) == 1


async def test_run_says_at_start_what_it_listens_to() -> None:
    async with Emulator() as emu:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flatjobs",
            "run",
            APP,
            cwd=ROOT,
            env={**os.environ, **emu.env()},
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode().strip()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    assert line == (
        f"flatjobs run: {APP} on environment {emu.environment_id} at 127.0.0.1:{emu.port}; "
        "events pushed from 127.0.0.1, the feed filling gaps; sweep every 60s"
    )
    assert proc.returncode == 0


@pytest.mark.parametrize("variable", ["FLATFILE_BEARER_TOKEN", "FLATFILE_API_KEY"])
async def test_a_refused_token_exits_2_naming_the_variable(variable: str) -> None:
    async with Emulator() as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLATFILE_")}
        env.update(emu.env())
        del env["FLATFILE_BEARER_TOKEN"]
        env[variable] = "sk_wrong_token_123"
        code, _, err = await flatjobs("run", APP, env=env, clean=True)
    assert code == 2
    assert err.strip() == (
        f"flatjobs run: error: the Flatfile API at 127.0.0.1:{emu.port} refused the token "
        f"(401): set {variable} to a valid secret key"
    )
    assert "sk_wrong_token_123" not in err


async def test_a_forbidden_environment_exits_2_naming_the_variable() -> None:
    async def forbidden(request: web.Request) -> web.Response:
        return web.json_response({"errors": [{"message": "Forbidden"}]}, status=403)

    app = web.Application()
    app.router.add_get("/v1/events", forbidden)
    async with TestServer(app) as server:
        env = {
            "FLATFILE_API_URL": str(server.make_url("")),
            "FLATFILE_BEARER_TOKEN": "sk_1234",
            "FLATFILE_ENVIRONMENT_ID": "us_env_other",
        }
        code, _, err = await flatjobs("run", APP, env=env)
    assert code == 2
    assert "may not read environment us_env_other" in err
    assert "(403): check FLATFILE_ENVIRONMENT_ID (or --environment-id)" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("given", ["variable", "flag"])
@pytest.mark.parametrize("source", ["push", "poll"])
async def test_a_mistyped_environment_id_exits_2_naming_the_setting(
    given: str, source: str
) -> None:
    # Was a bug: the runner started, the feed of an environment nobody has stayed empty,
    # and nothing ever happened.
    async with Emulator() as emu:
        env = {**emu.env()}
        args = ["run", APP, "--source", source]
        if given == "variable":
            env["FLATFILE_ENVIRONMENT_ID"] = "us_env_emulatr"
        else:
            args += ["--environment-id", "us_env_emulatr"]
        code, _, err = await flatjobs(*args, env=env)
    assert code == 2
    assert err.strip() == (
        f"flatjobs run: error: the Flatfile API at 127.0.0.1:{emu.port} knows no environment "
        "'us_env_emulatr' (404: environment 'us_env_emulatr' not found (this emulator's is "
        f"{emu.environment_id})): check FLATFILE_ENVIRONMENT_ID (or --environment-id)"
    )


async def _connects(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def test_serve_health_listens_on_the_loopback_by_default() -> None:
    from flatjobs import serve_health

    async with serve_health(0, metrics=False) as server:
        assert server.host == "127.0.0.1"
        assert await _connects("127.0.0.1", server.port)
        assert not await _connects("127.0.0.2", server.port)


@pytest.mark.parametrize(
    ("given", "everywhere"), [([], False), (["0.0.0.0"], True)], ids=["default", "everywhere"]
)
async def test_the_health_server_listens_on_the_loopback_unless_told_otherwise(
    given: list[str], everywhere: bool
) -> None:
    # Was a bug: --metrics-host defaulted to 0.0.0.0, serving /metrics to every network
    # the machine is on. 127.0.0.2 is another address of this machine: reached only when
    # the server listens on every address.
    async with Emulator() as emu:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flatjobs",
            "run",
            APP,
            "--log-level",
            "info",
            "--metrics-port",
            "0",
            *(["--metrics-host", *given] if given else []),
            cwd=ROOT,
            env={**os.environ, **emu.env()},
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        try:
            line = await _said(proc.stderr, "", "health server listening")
            found = re.search(r"address=(\S+):(\d+)", line)
            assert found is not None, line
            port = int(found[2])
            assert found[1] == ("0.0.0.0" if everywhere else "127.0.0.1")
            assert await _connects("127.0.0.1", port)
            assert await _connects("127.0.0.2", port) is everywhere
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.communicate(), 30)


async def test_an_api_out_of_reach_exits_2_naming_the_variable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "FLATFILE_API_URL": f"http://127.0.0.1:{port}",
        "FLATFILE_BEARER_TOKEN": "sk_1234",
        "FLATFILE_ENVIRONMENT_ID": "us_env_1",
    }
    code, _, err = await flatjobs("run", APP, env=env)
    assert code == 2
    last = err.strip().splitlines()[-1]  # after the retries' log lines
    assert last.startswith(
        f"flatjobs run: error: cannot reach the Flatfile API at 127.0.0.1:{port}"
    )
    assert last.endswith("check FLATFILE_API_URL")


async def _said(stream: asyncio.StreamReader, start: str, holding: str = "") -> str:
    """The next line of ``stream`` that starts with ``start`` and holds ``holding`` (log
    lines may come between)."""
    async with asyncio.timeout(30):
        while line := (await stream.readline()).decode():
            if line.startswith(start) and holding in line:
                return line.strip()
    raise AssertionError(f"no line starting {start!r}")


@pytest.mark.parametrize("command", ["run", "dev"])
async def test_ctrl_c_says_at_once_what_it_waits_for_and_a_second_stops_now(
    command: str,
) -> None:
    async with Emulator() as emu:
        env = {**os.environ, **emu.env(), "SLOW_JOB_SECONDS": "60"}
        args = ["run", APP] if command == "run" else ["dev", APP, "--trigger", "workbook:slow"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flatjobs",
            *args,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        if command == "run":  # against this emulator: trigger, and wait until it runs
            await _said(proc.stderr, "flatjobs run: ")  # the start-up line: it listens
            emu.trigger("workbook:slow")
            async with asyncio.timeout(30):
                while not emu.jobs("executing"):  # noqa: ASYNC110 - another process runs it
                    await asyncio.sleep(0.02)
        else:  # dev triggers on its own emulator, and shows the job's progress
            await _said(proc.stdout, "  workbook:slow", "working")
        proc.send_signal(signal.SIGINT)
        first = await _said(proc.stderr, f"flatjobs {command}: stopping")
        proc.send_signal(signal.SIGINT)
        second = await _said(proc.stderr, f"flatjobs {command}: stopping")
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert first == (
        f"flatjobs {command}: stopping: no new events are taken; waiting up to 30s for "
        "1 running job(s) (Ctrl-C again to stop now)"
    )
    assert second == (
        f"flatjobs {command}: stopping now: 1 running job(s) are failed with a Retry button"
    )
    assert proc.returncode == 0
    if command == "run":
        assert [j.status for j in emu.jobs()] == ["failed"]
    else:
        assert re.search(r"workbook:slow\s+FAILED", out.decode())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_the_emulator_command_stops_cleanly_on_sigterm_and_sigint(sig: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flatjobs",
        "emulator",
        "--port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 30)  # listening
    proc.send_signal(sig)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert out.decode().strip().endswith("flatjobs emulator: stopped")
    assert err == b""
