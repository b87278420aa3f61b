"""``flatjobs dev --reload``: new code for new events, without dropping the subscription.

When a Python file under the watched folder changes, the target is imported again, from
fresh modules, and handed to the runner: events taken from then on go to the new
listener; jobs already running finish on the code they started with; the event source
(its push subscription, its memory of delivered events) is never touched. A change that
does not import (a syntax error, an exception at import) is reported and the previous
version keeps running, its modules restored.

It needs ``watchfiles`` (the ``reload`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

from flatjobs.client import FlatfileClient
from flatjobs.errors import ConfigurationError
from flatjobs.running._runner import Runner

from ._target import names_a_file

__all__ = ["Reloader", "watched_folder"]


def watched_folder(target: str) -> Path:
    """The folder whose Python files make up the target: a file target's own folder, the
    working directory for a module target."""
    module_part = target.partition(":")[0]
    if names_a_file(module_part):
        return Path(module_part).resolve().parent
    return Path.cwd().resolve()


def _library_folders() -> list[Path]:
    """Where installed code lives (never reloaded, even under the watched folder)."""
    paths = sysconfig.get_paths()
    folders = {Path(paths[key]).resolve() for key in ("purelib", "platlib", "stdlib")}
    folders.add(Path(__file__).resolve().parent)  # flatjobs itself, installed editable or not
    return sorted(folders)


def _forget(folder: Path) -> dict[str, ModuleType]:
    """Take the modules loaded from ``folder`` (the user's code) out of ``sys.modules``, so
    importing the target again runs them again; returns them, to put back on failure."""
    libraries = _library_folders()
    forgotten: dict[str, ModuleType] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        if path.is_relative_to(folder) and not any(path.is_relative_to(f) for f in libraries):
            forgotten[name] = sys.modules.pop(name)
    return forgotten


class Reloader:
    """Watches the target's folder and swaps a runner's listener on each change.

    Args:
        target: the ``TARGET`` argument (``module:attr`` or ``file.py:attr``).
        say: where to report, a line at a time.
        load: how to load the target (``flatjobs.dev._target.load_target``).

    Raises:
        ConfigurationError: watchfiles is not installed.
    """

    def __init__(
        self, target: str, say: Callable[[str], None], load: Callable[[str], object]
    ) -> None:
        self.target = target
        self.say = say
        self.load = load
        self.folder = watched_folder(target)
        self._watchfiles = _watchfiles()  # missing: said now, not once running
        self.reloads = 0
        """Successful reloads so far."""
        self.import_timeout = 30.0
        """Seconds an import may take before the previous version is kept."""

    async def reload(
        self, runner: Runner, client: FlatfileClient, changed: Iterable[str] = ()
    ) -> bool:
        """Import the target again; on success ``runner``'s new events go to it (bound to
        ``client``).

        The import runs in a thread of its own, so code that takes long to import (or never
        ends) does not stop the emulator, the jobs running, or Ctrl-C; after
        :attr:`import_timeout` seconds it is given up on (its thread left behind)."""
        from flatjobs.listener._listener import Listener

        names = sorted({Path(p).name for p in changed})
        what = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        saved = _forget(self.folder)
        try:
            listener = await asyncio.wait_for(
                asyncio.shield(_in_thread(self.load, self.target)), self.import_timeout
            )
        except TimeoutError:
            reason = f"its import still runs after {self.import_timeout:g}s"
        except Exception as exc:  # SystemExit at import too: see _in_thread
            reason = str(exc)
        else:
            reason = ""
        if reason:
            sys.modules.update(saved)  # the previous version's modules, as they were
            self.say(
                f"{what or 'a file'} changed, but the new code does not load ({reason}); "
                "the previous version keeps running"
            )
            return False
        assert isinstance(listener, Listener)
        listener.client = client
        runner.listener = listener
        self.reloads += 1
        self.say(
            f"reloaded {self.target} ({what or 'changed'}): new events go to the new "
            "code; running jobs finish on the code they started with"
        )
        return True

    async def watch(self, runner: Runner, client: FlatfileClient, stop: asyncio.Event) -> None:
        """Reload on every change of a Python file in :attr:`folder`, until ``stop`` is set."""
        watchfiles = self._watchfiles
        async for changes in watchfiles.awatch(
            self.folder, watch_filter=watchfiles.PythonFilter(), stop_event=stop
        ):
            await self.reload(runner, client, (path for _, path in changes))


def _in_thread(load: Callable[[str], object], target: str) -> asyncio.Future[object]:
    """``load(target)`` in a daemon thread (one that never ends cannot hold the process's
    exit); its result or exception, whatever it raises, in the future returned."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[object] = loop.create_future()

    def settle(result: object, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        result: object = None
        error: BaseException | None = None
        try:
            result = load(target)
        except Exception as exc:
            error = exc
        except BaseException as exc:  # `sys.exit()` at import ends the import, not dev
            error = RuntimeError(f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="flatjobs-reload", daemon=True).start()
    return future


def _watchfiles() -> ModuleType:
    try:
        import watchfiles
    except ImportError:
        raise ConfigurationError(
            "--reload needs watchfiles: pip install -e '.[reload]' in a checkout of flatjobs"
        ) from None
    return watchfiles
