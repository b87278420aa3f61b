"""Adversarial tests of the ``flatjobs`` command: usage errors, first contact, Ctrl-C,
``--reload`` and ``--seed``.

Tests whose comment starts "Was a bug:" failed before the fix they describe; the others are
hostile cases that held from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flatjobs.dev._cli import main
from flatjobs.emulator import Emulator

APP = """
from flatjobs import Jobs

jobs = Jobs()


@jobs.handle("a:b")
async def handle(event, tick):
    return "done"
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLATFILE_")}
    return {**base, **extra}


async def _start(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flatjobs",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


_STARTED = re.compile(r"flatjobs (run|dev): .* on environment ")
"""The start-up line: the command took its options and runs."""


async def _finish(proc: asyncio.subprocess.Process, wait: float) -> tuple[int | None, str]:
    """The exit code (None: it started and ran, or still ran after ``wait`` s; it is then
    stopped) and stderr."""
    assert proc.stderr is not None
    lines: list[str] = []
    started = False
    try:
        async with asyncio.timeout(wait):
            while line := (await proc.stderr.readline()).decode():
                lines.append(line)
                if _STARTED.search(line):
                    started = True
                    break
    except TimeoutError:
        started = True
    if started:
        proc.kill()
    rest = (await proc.communicate())[1].decode()
    return (None if started else proc.returncode), "".join(lines) + rest


def _one_line_error(code: int | None, err: str) -> bool:
    return code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@contextlib.asynccontextmanager
async def _silent_server() -> AsyncIterator[tuple[int, list[socket.socket]]]:
    """A TCP server that accepts connections and never answers; the connections it took."""
    taken: list[socket.socket] = []
    writers: list[asyncio.StreamWriter] = []

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        taken.append(writer.get_extra_info("socket"))
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], taken
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def _line(stream: asyncio.StreamReader | None, pattern: str, timeout: float = 15) -> str:
    assert stream is not None
    async with asyncio.timeout(timeout):
        while line := (await stream.readline()).decode():
            if re.search(pattern, line):
                return line.strip()
    raise AssertionError(f"no line matching {pattern!r} (the process ended)")


# ------------------------------------------------------------------ were bugs


async def test_out_of_range_option_values_are_one_line_usage_errors(
    app: Path, emu: Emulator
) -> None:
    # Was a bug: the CLI caught TargetError, ConfigurationError and SeedError
    # only; option values that argparse accepts as numbers but the library refuses raise a
    # ValueError/OverflowError with a traceback and exit code 1: `--source poll --interval
    # 5` (PollingSource wants interval <= max_interval = 2, a limit the help never states),
    # `--concurrency 0`, `--grace-period -1`, `--ready-grace -1`, `--metrics-port 99999`,
    # and `dev --concurrency 0`. Expected: one line, exit code 2 (or, for --interval 5,
    # simply running); before the fix: a traceback and exit code 1 for each.
    env = _env(**emu.env())
    cases = [
        ("run", str(app), "--source", "poll", "--interval", "5"),
        ("run", str(app), "--concurrency", "0"),
        ("run", str(app), "--grace-period", "-1"),
        ("run", str(app), "--ready-grace", "-1"),
        ("run", str(app), "--lookback", "0"),  # was a bug too: the sweep's ValueError
        ("run", str(app), "--metrics-port", "99999"),
        ("dev", str(app), "--concurrency", "0", "--trigger", "a:b", "--exit-when-idle"),
    ]
    procs = [await _start(*args, env=env, cwd=app.parent) for args in cases]
    results = await asyncio.gather(*(_finish(p, 10) for p in procs))
    bad: dict[str, str] = {}
    for args, (code, err) in zip(cases, results, strict=True):
        if code is None and "--interval" in args:
            continue  # accepted, and it ran: a fix too
        if not _one_line_error(code, err):
            bad[" ".join(args[2:])] = err.strip().splitlines()[-1] if err.strip() else str(code)
    assert bad == {}


async def test_the_emulator_on_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    # Was a bug: `flatjobs emulator` catches SeedError only, so the most
    # common start-up failure, the port already taken (by another emulator: the default is
    # 8080), prints an OSError traceback and exits 1 (an out-of-range --port, an
    # OverflowError, too). Expected: one line naming the port, exit code 2; before the fix: a
    # traceback.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await _start("emulator", "--port", str(port), env=_env(), cwd=tmp_path)
        code, err = await _finish(proc, 10)
    assert _one_line_error(code, err), err[-500:]


async def test_a_token_with_a_trailing_newline_is_a_one_line_error(
    app: Path, emu: Emulator
) -> None:
    # Was a bug: the client put the token in the Authorization header as
    # given; a token read from a file or a Kubernetes secret often ends with "\n", and
    # aiohttp then raises ValueError("Forbidden control character detected in headers")
    # from the first call: `flatjobs run` prints a traceback and exits 1 (the library's
    # callers get a ValueError, not a FlatfileError). Expected: the token refused at
    # construction with a ConfigurationError that does not echo it (exit 2, one line), or
    # stripped; before the fix: a traceback.
    env = _env(**{**emu.env(), "FLATFILE_BEARER_TOKEN": emu.token + "\n"})
    proc = await _start("run", str(app), env=env, cwd=app.parent)
    code, err = await _finish(proc, 10)
    assert emu.token not in err
    assert code is None or _one_line_error(code, err), err[-400:]


async def test_ctrl_c_while_the_api_does_not_answer_yet_exits_without_a_traceback(
    app: Path,
) -> None:
    # Was a bug: the signal handlers are installed only once the runner
    # starts (_runner.run); Ctrl-C before that (during the first contact with an API that
    # is slow or silent, up to 10 s; during a slow import or a big --seed) ends asyncio.run
    # with KeyboardInterrupt and a 40-line traceback. Expected: a one-line "stopped" and an
    # exit (130, or 0 as a later Ctrl-C gives); before the fix: a KeyboardInterrupt traceback.
    async with _silent_server() as (port, taken):
        env = _env(
            FLATFILE_API_URL=f"http://127.0.0.1:{port}",
            FLATFILE_BEARER_TOKEN="sk_x",
            FLATFILE_ENVIRONMENT_ID="us_env_1",
        )
        proc = await _start("run", str(app), env=env, cwd=app.parent)
        async with asyncio.timeout(10):
            while not taken:  # noqa: ASYNC110 - the first contact has started
                await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        code, err = await _finish(proc, 10)
    assert code is not None, "Ctrl-C did not stop it"
    assert "Traceback" not in err, err[-300:]


async def test_an_html_error_page_at_first_contact_is_a_one_line_error(app: Path) -> None:
    # Was a bug: the first-contact error put the error body as it came in
    # the message (errors.py:94-95 keeps its newlines): a FLATFILE_API_URL missing its
    # `/api` path answers 404 with an HTML page, and `flatjobs run` prints that page over 7
    # lines. Expected: one line (the status, the body flattened or cut); before the fix: the page.
    async def not_found(request: web.Request) -> web.Response:
        page = "<html>\n<head><title>404 Not Found</title></head>\n<body>\n</body>\n</html>\n"
        return web.Response(status=404, text=page, content_type="text/html")

    web_app = web.Application()
    web_app.router.add_route("*", "/{path:.*}", not_found)
    async with TestServer(web_app) as server:
        env = _env(
            FLATFILE_API_URL=str(server.make_url("")).rstrip("/"),
            FLATFILE_BEARER_TOKEN="sk_x",
            FLATFILE_ENVIRONMENT_ID="us_env_1",
        )
        proc = await _start("run", str(app), env=env, cwd=app.parent)
        code, err = await _finish(proc, 10)
    assert "404" in err
    assert _one_line_error(code, err), err


async def _dev_with_reload(app: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await _start("dev", "app.py", "--reload", env=_env(), cwd=app.parent)
    first = await _line(proc.stdout, r"emulator on ")
    url = re.search(r"http://[\d.:]+", first)
    assert url is not None
    await asyncio.sleep(0.5)  # watchfiles is watching
    return proc, url.group(0)


async def test_a_reload_whose_import_never_ends_does_not_freeze_the_dev_server(
    app: Path,
) -> None:
    # Was a bug: --reload imported the new code synchronously on the event loop: an
    # edit that loops (or just sleeps, or loads a model) at import freezes the emulator,
    # every running job and the signal handlers: the API stops answering and Ctrl-C is
    # ignored (the process has to be killed). Expected: the emulator still answers while
    # the import runs; before the fix: it does not answer.
    proc, url = await _dev_with_reload(app)
    marker = app.parent / "importing"
    try:
        looping = (
            f"\nimport pathlib\npathlib.Path({str(marker)!r}).touch()\nwhile True:\n    pass\n"
        )
        await asyncio.to_thread(app.write_text, APP + looping)
        async with asyncio.timeout(10):
            while not marker.exists():  # noqa: ASYNC110 - written by another process
                await asyncio.sleep(0.05)

        def panel() -> int:
            with urllib.request.urlopen(url + "/", timeout=2) as resp:
                return int(resp.status)

        try:
            status: Any = await asyncio.to_thread(panel)
        except OSError as exc:
            status = exc
    finally:
        proc.kill()
        await proc.communicate()
    assert status == 200, f"the emulator did not answer while the import ran: {status}"


async def test_a_reload_whose_import_calls_sys_exit_keeps_the_previous_version(
    app: Path,
) -> None:
    # Was a bug: --reload caught Exception only: an edit that raises SystemExit
    # at import (`sys.exit("set API_KEY")`, a stray `exit()`) ends the whole dev server
    # (exit code 1), where the docstring promises that "a change that does not import ...
    # is reported and the previous version keeps running". Expected: "does not load" and
    # the server still running; before the fix: the process exits.
    proc, _ = await _dev_with_reload(app)
    try:
        await asyncio.to_thread(app.write_text, APP + '\nraise SystemExit("set API_KEY first")\n')
        said = await _line(proc.stderr, r"does not load|set API_KEY")
        await asyncio.sleep(0.3)
        running = proc.returncode is None
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()
    assert "does not load" in said, said
    assert running


SEEDS_THAT_CRASH: dict[str, Any] = {
    "workbook id not a string": {"workbooks": [{"name": "w", "id": 5}]},
    "space id a list": {"spaces": [{"name": "s", "id": ["x"]}]},
    "field config not an object": {"workbooks": [{"name": "w", "sheets": [{
        "name": "s", "fields": [{"key": "a", "config": 5, "options": ["x"]}]}]}]},
}  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS_THAT_CRASH.values(), ids=SEEDS_THAT_CRASH.keys())
def test_a_seed_of_the_wrong_shape_is_a_one_line_error(
    tmp_path: Path, seed: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was a bug: the seed loader passed a seed's `id` unchecked to
    # _data.py:_check_id (line 738 calls `.startswith` on it), and _seed.py:263 spreads a
    # field's `config` with `**`: a number or a list for an id, or a `config` that is not an
    # object, raises AttributeError/TypeError instead of SeedError, so `flatjobs emulator
    # --seed` and `flatjobs dev --seed` print a traceback. Expected: SeedError naming where
    # (exit 2, one line); before the fix: AttributeError / TypeError.
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    code = main(["emulator", "--port", "0", "--seed", str(path)])
    assert _one_line_error(code, capsys.readouterr().err)


def test_a_csv_seed_with_a_5000_digit_number_keeps_it_as_text(tmp_path: Path) -> None:
    # Was a bug: `int(text)` for a number field raised ValueError past Python's 4,300-digit
    # limit (a traceback). A cell that does not read as its type is kept as text.
    (tmp_path / "rows.csv").write_text("n\n" + "9" * 5000 + "\n")
    seed = {
        "workbooks": [
            {
                "name": "w",
                "sheets": [
                    {"name": "s", "fields": [{"key": "n", "type": "number"}], "records": "rows.csv"}
                ],
            }
        ]
    }
    (tmp_path / "seed.json").write_text(json.dumps(seed))
    emu = Emulator(seed=tmp_path / "seed.json")
    [record] = emu.records("s")
    assert record["values"]["n"]["value"] == "9" * 5000


# ------------------------------------------------------------------ attacks that hold


@pytest.mark.parametrize(
    "content",
    [
        None,  # no such file
        "{not json",
        "[" * 100_000,
        json.dumps({"spaces": "x"}),
        json.dumps({"workbooks": [{"name": "w", "sheets": [{"name": "s", "records": "no.csv"}]}]}),
        json.dumps(
            {
                "workbooks": [
                    {
                        "name": "w",
                        "sheets": [
                            {"name": "s", "fields": [{"key": "a"}], "records": [{"a": [1]}]}
                        ],
                    }
                ]
            }
        ),
        json.dumps({"files": [{"name": "f", "path": "."}]}),
    ],
    ids=["missing", "not-json", "too-deep", "wrong-shape", "missing-csv", "cell", "dir"],
)
def test_bad_seeds_are_one_line_errors(
    tmp_path: Path, content: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "seed.json"
    if content is not None:
        path.write_text(content)
    code = main(["emulator", "--port", "0", "--seed", str(path)])
    assert _one_line_error(code, capsys.readouterr().err)


def test_a_csv_seed_with_odd_rows_and_a_10_mb_string_loads(tmp_path: Path) -> None:
    rows = 'a,b\r\n1,2,3,4\r\n5\r\n"x\r\ny",\x00z\r\n,\r\n'
    (tmp_path / "rows.csv").write_text(rows, newline="")
    huge = "x" * 10_000_000
    seed = {
        "workbooks": [
            {
                "name": "w",
                "sheets": [
                    {
                        "name": "s",
                        "slug": "s",
                        "fields": [{"key": "a"}, {"key": "b"}],
                        "records": "rows.csv",
                    },
                    {"name": "t", "slug": "t", "fields": [{"key": "a"}], "records": [{"a": huge}]},
                ],
            }
        ]
    }
    (tmp_path / "seed.json").write_text(json.dumps(seed))
    emu = Emulator(seed=tmp_path / "seed.json")
    values = [{k: c["value"] for k, c in r["values"].items()} for r in emu.records("s")]
    assert values == [
        {"a": "1", "b": "2"},
        {"a": "5", "b": None},
        {"a": "x\r\ny", "b": "\x00z"},
        {"a": None, "b": None},
    ]
    assert emu.records("t")[0]["values"]["a"]["value"] == huge


async def test_secrets_in_the_environment_are_never_echoed(app: Path, emu: Emulator) -> None:
    secret = "sk_live_a9f3e1c7b5d2"
    cases = [
        {**emu.env(), "FLATFILE_API_URL": f"http://user:{secret}@127.0.0.1:1"},
        {**emu.env(), "FLATFILE_PUSH_ORIGIN": f"http://127.0.0.1:1/?key={secret}"},
        {**emu.env(), "FLATFILE_BEARER_TOKEN": secret},  # refused: 401
    ]
    procs = [await _start("run", str(app), env=_env(**c), cwd=app.parent) for c in cases]
    for code, err in await asyncio.gather(*(_finish(p, 15) for p in procs)):
        assert secret not in err
        assert _one_line_error(code, err), err[-300:]
