"""The ``TARGET`` argument of ``flatjobs run`` and ``flatjobs dev``: the Listener or Jobs it names.

``package.module:attr`` or ``path/to/file.py:attr``; without ``:attr``, ``listener`` then
``jobs`` are looked up.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from pathlib import Path

from flatjobs.jobs._registry import Jobs
from flatjobs.listener._listener import Listener

__all__ = ["TargetError", "load_target", "names_a_file"]


class TargetError(Exception):
    """The TARGET argument does not name a Listener or Jobs."""


def names_a_file(module_part: str) -> bool:
    """Whether the part of a TARGET before ``:`` is a file's path, not a module's name."""
    return module_part.endswith(".py") or "/" in module_part or "\\" in module_part


def load_target(spec: str) -> Listener:
    """The Listener named by ``spec`` (a Jobs registry is installed on a new Listener).

    Raises:
        TargetError: naming what is wrong with ``spec``.
    """
    module_part, _, attr = spec.partition(":")
    if not module_part:
        raise TargetError(f"{spec!r} names no module: use package.module:attr or file.py:attr")
    try:
        if names_a_file(module_part):
            path = Path(module_part)
            if not path.is_file():
                raise TargetError(f"no such file: {module_part}")
            name = f"_flatjobs_target_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise TargetError(f"cannot load {module_part} as a Python module")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            # As `python -m` does: a module beside the user is importable by its name.
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_part)
    except TargetError:
        raise
    except Exception as exc:
        raise TargetError(f"cannot import {module_part!r}: {type(exc).__name__}: {exc}") from exc
    names = [attr] if attr else ["listener", "jobs"]
    for name in names:
        if hasattr(module, name):
            target = getattr(module, name)
            break
    else:
        wanted = " or ".join(map(repr, names))
        close = difflib.get_close_matches(names[0], [n for n in vars(module) if n[:1] != "_"])
        hint = f": did you mean {close[0]!r}?" if close else ""
        raise TargetError(f"{module_part} has no attribute {wanted}{hint}")
    if isinstance(target, Jobs):
        return Listener().use(target)
    if isinstance(target, Listener):
        return target
    raise TargetError(
        f"{module_part}:{name} is a {type(target).__name__}, not a flatjobs Listener or Jobs"
    )
