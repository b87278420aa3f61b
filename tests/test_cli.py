"""The ``flatjobs`` command line."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request

import pytest

from flatjobs.cli import main


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "emulator" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


async def test_emulator_command_serves_the_api() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flatjobs.cli", "emulator", "--port", "0",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
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
