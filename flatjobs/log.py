"""Logging: structlog loggers under the ``flatjobs`` namespace, secret redaction, bounds.

flatjobs never puts a secret in a log line on purpose. As a second line of defence every
secret flatjobs reads is registered here: the token a :class:`flatjobs.FlatfileClient` is
given, the push channel's token, and every value read through ``client.secrets`` (so
``event.secrets()`` too). :func:`redact_text` replaces each of them, anything that looks
like ``Bearer <token>``, and the value of a credential in a URL's query (``auth=``,
``token=``, ``key=``...), wherever flatjobs lets text out: log lines, exception messages,
span attributes, and a failed job's outcome and info (where a handler's own words stay as
written: only registered secrets and bearer tokens are hidden there). flatjobs' own
loggers always redact; add :func:`redact_tokens` (a structlog processor) to your own
chain to protect your log lines too::

    structlog.configure(processors=[..., format_exc_info, flatjobs.log.redact_tokens, ...])

flatjobs' own log lines also cut every text value at :data:`MAX_LOGGED_CHARS`, so an event
with a megabyte-long id or topic cannot write megabytes of logs. A traceback is not a
value: it keeps every frame and its exception line (each line is bounded, not the whole).

A library does not decide its host's logging. Until structlog is configured (by your
application, or by ``flatjobs run``/``dev``), flatjobs' lines go to the standard library's
:mod:`logging`, under loggers named ``flatjobs.*``: with logging left alone, that is warnings
and errors on stderr, and nothing else. Configure either to see more::

    logging.basicConfig(level=logging.INFO)        # flatjobs' info lines, as text
    logging.getLogger("flatjobs.client").setLevel(logging.DEBUG)   # and every HTTP call
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote

import structlog

__all__ = [
    "MAX_LOGGED_CHARS",
    "REDACTED",
    "get_logger",
    "redact_head",
    "redact_text",
    "redact_tokens",
    "redact_value",
    "register_secret",
    "shorten",
]

REDACTED = "[redacted]"
MAX_LOGGED_CHARS = 500
"""Text values in flatjobs' log lines are cut to this many characters (and each line of a
traceback, which is never cut as a whole)."""
# "Bearer" and a credential: eight or more token characters, at least one of them a digit,
# so "a valid bearer token is required" keeps its words.
_BEARER = re.compile(r"(?i)(bearer\s+)(?=[\w.~+/=-]*\d)[\w.~+/=-]{8,}")
# The value of a credential in a URL's query (PubNub's `auth`, OAuth's `access_token`,
# API keys, signatures), up to the next parameter, quote, space or fragment.
_QUERY_CREDENTIAL = re.compile(
    r"(?i)([?&;](?:auth|(?:access_|refresh_|id_|auth_)?token|(?:api_?)?key|apikey"
    r"|(?:client_)?secret|password|sig|signature)=)[^&;#\s'\"<>]+"
)
# Registered secrets, longest first (a secret inside a longer one must not leave the
# longer one's ends behind), as a tuple replaced whole: a thread registering one while
# another redacts never changes what the other iterates. Strings cannot be weakly
# referenced, so this is bounded by the number of distinct secrets a process reads.
_secrets: tuple[str, ...] = ()
_registering = threading.Lock()  # two threads registering at once must not lose one
_registered: set[str] = set()  # the values as given: a value read again costs one lookup
# How far past a cut a registered secret or a bearer token may reach: text is redacted
# that far beyond it, so no cut can leave the beginning of a secret behind.
_margin = 256
# A traceback longer than this keeps its first and last half of it, and says what it cut.
_TRACEBACK_LINES = 400


def register_secret(value: str) -> None:
    """Have :func:`redact_text` hide ``value`` wherever it appears: as it is, stripped, and
    as a ``repr``, JSON or a URL's query writes it.

    Values shorter than 4 characters are ignored: they would redact ordinary words.
    """
    global _secrets, _margin
    if not isinstance(value, str):
        raise TypeError(f"a secret must be a string, got {type(value).__name__}")
    if value in _registered:
        return
    forms = {
        form
        for text in (value, value.strip())
        for form in (text, repr(text)[1:-1], json.dumps(text)[1:-1], quote(text, ""))
    }
    with _registering:
        _registered.add(value)
        new = {form for form in forms if len(form) >= 4} - set(_secrets)
        if new:
            _secrets = tuple(sorted({*_secrets, *new}, key=len, reverse=True))
            _margin = max(_margin, len(_secrets[0]))


def redact_text(text: str, *, urls: bool = True) -> str:
    """``text`` with every registered secret, bearer token and (unless ``urls`` is false)
    credential in a URL's query replaced by :data:`REDACTED`.

    Cheap when there is nothing to hide: one substring search per registered secret, and
    a pattern only over text that holds ``earer`` or a query's ``=``.
    """
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "earer" in text:
        text = _BEARER.sub(rf"\g<1>{REDACTED}", text)
    if urls and "=" in text and ("?" in text or "&" in text or ";" in text):
        text = _QUERY_CREDENTIAL.sub(rf"\g<1>{REDACTED}", text)
    return text


def redact_head(text: str, limit: int, *, urls: bool = True) -> tuple[str, bool]:
    """The beginning of ``text`` that shows its first ``limit`` characters, redacted, and
    whether it is the whole of ``text``. Only that much is read: a megabyte costs no more
    than a line, and no secret that starts before ``limit`` is left half there."""
    end = limit + _margin
    if len(text) <= end:
        return redact_text(text, urls=urls), True
    return redact_text(text[:end], urls=urls), False


def shorten(text: str, limit: int = MAX_LOGGED_CHARS, *, length: int | None = None) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut (of ``length``, the
    length of the original text when ``text`` is already a prefix of it)."""
    length = len(text) if length is None else length
    if length <= limit:
        return text
    return f"{text[:limit]}…[{length - limit} more characters]"


def redact_value(value: Any, *, limit: int | None = None) -> Any:
    """``value`` with secrets redacted from every text in it (and each text cut to
    ``limit`` characters when given); dicts, lists and tuples are copied, not changed."""
    if isinstance(value, str):
        if limit is None:
            return redact_text(value)
        head, whole = redact_head(value, limit)
        return shorten(head, limit, length=len(head) if whole else len(value))
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


def _redact_traceback(text: str) -> str:
    """A rendered traceback, redacted: every line kept (each one bounded), unless there
    are hundreds, when the first and the last (the frame that raised, and the exception)
    stay and the middle is cut."""
    lines = text.splitlines()
    half = _TRACEBACK_LINES // 2
    if len(lines) > _TRACEBACK_LINES:
        lines[half:-half] = [f"[{len(lines) - 2 * half} lines of the traceback cut]"]
    return "\n".join(_redact_value(line) for line in lines)


# The keys under which structlog's processors render a traceback (format_exc_info) and a
# stack (StackInfoRenderer) as text.
_TRACEBACK_KEYS = frozenset({"exception", "stack"})


def redact_tokens(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact secrets from every value, and bound each value (a
    rendered traceback keeps all its frames)."""
    for key, value in event_dict.items():
        if key == "exc_info" and isinstance(value, BaseException):
            continue  # rendered later by format_exc_info; the message is redacted there
        if key in _TRACEBACK_KEYS and isinstance(value, str):
            event_dict[key] = _redact_traceback(value)
        else:
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
            text += "\n" + _redact_traceback("".join(traceback.format_exception(exc)).rstrip())
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
