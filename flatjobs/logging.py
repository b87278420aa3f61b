"""Logging: structlog loggers under the ``flatjobs`` namespace, and token redaction.

flatjobs never puts a token in a log line on purpose. As a second line of defence every
token a :class:`flatjobs.FlatfileClient` is given is registered here, and
:func:`redact_tokens` (a structlog processor) replaces any registered token, and anything
that looks like ``Bearer <token>``, in every log event. flatjobs' own loggers always run it;
add it to your own structlog chain to protect your log lines too::

    structlog.configure(processors=[flatjobs.logging.redact_tokens, *your_processors])
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["REDACTED", "get_logger", "redact_text", "redact_tokens", "register_secret"]

REDACTED = "[redacted]"
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")
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


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


def redact_tokens(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace registered tokens and ``Bearer ...`` values."""
    for key, value in event_dict.items():
        if key == "exc_info" and isinstance(value, BaseException):
            continue  # rendered later by format_exc_info; the message is redacted there
        event_dict[key] = _redact_value(value)
    return event_dict


class _RedactingLogger:
    """Wraps a structlog bound logger so redaction runs whatever the user configured."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def bind(self, **kw: Any) -> _RedactingLogger:
        return _RedactingLogger(self._inner.bind(**_redact_value(kw)))

    def _log(self, level: str, event: str, kw: dict[str, Any]) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, BaseException):
            kw["error"] = redact_text(f"{type(exc).__name__}: {exc}")
        getattr(self._inner, level)(redact_text(event), **_redact_value(kw))

    def debug(self, event: str, **kw: Any) -> None:
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
    return _RedactingLogger(structlog.get_logger(name))
