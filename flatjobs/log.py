"""Logging: structlog loggers under the ``flatjobs`` namespace, token redaction, bounds.

flatjobs never puts a token in a log line on purpose. As a second line of defence every
token a :class:`flatjobs.FlatfileClient` is given is registered here, and
:func:`redact_tokens` (a structlog processor) replaces any registered token, and anything
that looks like ``Bearer <token>``, in every log event. flatjobs' own loggers always run it;
add it to your own structlog chain to protect your log lines too::

    structlog.configure(processors=[flatjobs.log.redact_tokens, *your_processors])

flatjobs' own log lines also cut every text value at :data:`MAX_LOGGED_CHARS`, so an event
with a megabyte-long id or topic cannot write megabytes of logs.

A library does not decide its host's logging. Until structlog is configured (by your
application, or by ``flatjobs run``/``dev``), flatjobs' lines go to the standard library's
:mod:`logging`, under loggers named ``flatjobs.*``: with logging left alone, that is warnings
and errors on stderr, and nothing else. Configure either to see more::

    logging.basicConfig(level=logging.INFO)        # flatjobs' info lines, as text
    logging.getLogger("flatjobs.client").setLevel(logging.DEBUG)   # and every HTTP call
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = [
    "MAX_LOGGED_CHARS",
    "REDACTED",
    "get_logger",
    "redact_text",
    "redact_tokens",
    "redact_value",
    "register_secret",
    "shorten",
]

REDACTED = "[redacted]"
MAX_LOGGED_CHARS = 500
"""Text values in flatjobs' log lines are cut to this many characters."""
# "Bearer" and a credential: eight or more token characters, at least one of them a digit,
# so "a valid bearer token is required" keeps its words.
_BEARER = re.compile(r"(?i)(bearer\s+)(?=[\w.~+/=-]*\d)[\w.~+/=-]{8,}")
# A set of secret strings; strings cannot be weakly referenced, so the set is bounded by the
# number of distinct tokens a process ever configures, which is tiny.
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Have :func:`redact_tokens` hide ``value`` wherever it appears in a log event."""
    if len(value) >= 4:  # shorter strings would redact ordinary words
        _secrets.add(value)


def redact_text(text: str) -> str:
    """Return ``text`` with every registered secret and bearer token replaced."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "earer" in text:
        text = _BEARER.sub(rf"\g<1>{REDACTED}", text)
    return text


def shorten(text: str, limit: int = MAX_LOGGED_CHARS, *, length: int | None = None) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut (of ``length``, the
    length of the original text when ``text`` is already a prefix of it)."""
    length = len(text) if length is None else length
    if length <= limit:
        return text
    return f"{text[:limit]}…[{length - limit} more characters]"


def redact_value(value: Any, *, limit: int | None = None) -> Any:
    """``value`` with tokens redacted from every text in it (and each text cut to
    ``limit`` characters when given); dicts, lists and tuples are copied, not changed."""
    if isinstance(value, str):
        if limit is None:
            return redact_text(value)
        # Redact a generous prefix only: a megabyte of text costs no more than a line.
        return shorten(redact_text(value[: limit * 2]), limit, length=len(value))
    if isinstance(value, BaseException):
        return redact_value(_describe(value), limit=limit)
    if isinstance(value, dict):
        return {k: redact_value(v, limit=limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v, limit=limit) for v in value)
    return value


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # an exception whose __str__ raises still gets a line
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _redact_value(value: Any) -> Any:
    return redact_value(value, limit=MAX_LOGGED_CHARS)


def redact_tokens(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace registered tokens and ``Bearer ...`` values."""
    for key, value in event_dict.items():
        if key == "exc_info" and isinstance(value, BaseException):
            continue  # rendered later by format_exc_info; the message is redacted there
        event_dict[key] = _redact_value(value)
    return event_dict


_DEBUG = logging.DEBUG
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}  # fmt: skip


def _debug_enabled(name: str) -> bool:
    """Whether a debug line of logger ``name`` would be emitted.

    Without structlog configured, the standard library's logger decides. Native filtering
    loggers answer ``is_enabled_for`` without an instance; any other wrapper is assumed to
    want the line (it decides itself).
    """
    if not structlog.is_configured():
        return logging.getLogger(name).isEnabledFor(_DEBUG)
    wrapper = structlog.get_config()["wrapper_class"]
    check = getattr(wrapper, "is_enabled_for", None)
    if check is None:
        return True
    try:
        return bool(check(None, _DEBUG))
    except Exception:  # a wrapper whose check needs a real instance (stdlib's)
        return True


class _RedactingLogger:
    """Wraps structlog so redaction runs whatever the user configured.

    Binding is lazy (a dict merge) and a debug line that the configured level drops
    costs one check: the client logs every request at debug level.
    """

    __slots__ = ("_context", "_name")

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context = context or {}

    def bind(self, **kw: Any) -> _RedactingLogger:
        return _RedactingLogger(self._name, {**self._context, **kw})

    def _log(self, level: str, event: str, kw: dict[str, Any]) -> None:
        if not structlog.is_configured():
            self._log_std(_LEVELS[level], event, kw)
            return
        exc = kw.get("exc_info")
        if isinstance(exc, BaseException):
            kw.setdefault("error", _describe(exc))
        fields = _redact_value({**self._context, **kw})
        if exc is not None:
            # The exception itself, so renderers can format its traceback; put
            # `format_exc_info` before `redact_tokens` to have the traceback redacted too.
            fields["exc_info"] = exc
        getattr(structlog.get_logger(self._name), level)(_redact_value(event), **fields)

    def _log_std(self, level: int, event: str, kw: dict[str, Any]) -> None:
        """The line, as text, through the standard library's logger of the same name."""
        std = logging.getLogger(self._name)
        if not std.isEnabledFor(level):
            return
        exc = kw.pop("exc_info", None)
        if exc is True:
            exc = sys.exc_info()[1]
        if isinstance(exc, BaseException):
            kw.setdefault("error", _describe(exc))
        fields = _redact_value({**self._context, **kw})
        text = " ".join([_redact_value(event), *(f"{k}={v!r}" for k, v in fields.items())])
        if isinstance(exc, BaseException):
            text += "\n" + redact_text("".join(traceback.format_exception(exc)).rstrip())
        std.log(level, "%s", text)

    def debug(self, event: str, **kw: Any) -> None:
        if _debug_enabled(self._name):
            self._log("debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._log("info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._log("warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._log("error", event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        kw.setdefault("exc_info", True)
        self._log("error", event, kw)


def get_logger(name: str) -> _RedactingLogger:
    """A structlog logger named ``name`` (``flatjobs.client``, ...) that redacts tokens."""
    return _RedactingLogger(name)
