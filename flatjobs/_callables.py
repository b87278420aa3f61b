"""What counts as a callback: the one rule ``Listener.on`` and ``Jobs.handle`` share."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["callable_name", "is_async_callable"]


def is_async_callable(obj: Any) -> bool:
    """True for an ``async def`` function, a method, or an object whose ``__call__`` is
    ``async def`` (a ``functools.partial`` of any of them included)."""
    while hasattr(obj, "func") and hasattr(obj, "args"):  # functools.partial
        obj = obj.func
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(type(obj), "__call__", None)  # noqa: B004 - the class's, not the instance's
    return callable(obj) and not isinstance(obj, type) and inspect.iscoroutinefunction(call)


def callable_name(func: Callable[..., Any]) -> str:
    """``module.qualname`` of a callable, for logs and :meth:`Listener.match`."""
    target: Any = func
    while hasattr(target, "func") and hasattr(target, "args"):
        target = target.func
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module and module != "__main__" else str(name)
