"""Globs with ``@flatfile/listener``'s semantics: compiled once, and found without being tried.

Topics, and filter values that are strings, are ``:``-globs; filter keys are ``.``-globs
(see :mod:`flatjobs.events._filters`). A glob splits on its separator; ``*`` and ``?``
stay inside one segment; a whole ``**`` segment matches zero or more segments; ``a**b``
acts as ``a*b``; ``\\`` escapes the next character. Where the JavaScript library has
quirks, flatjobs is plain and says so:

* doubled or trailing separators are literal here (``job::ready`` matches only the text
  ``job::ready``; the JS library treats it as ``job:ready`` and lets ``job`` match ``job:``);
* consecutive ``**`` segments act as one, so ``**:**`` matches everything (the JS
  library's ``**:**`` matches nothing).

A ``:``-glob is found by its anchor (:func:`anchor`): the literal text all its matches
start or end with (``job:*`` by ``job:``, ``*:ready`` by ``:ready``). A :class:`GlobIndex`
holds many globs by their anchors, so a text costs a few dict lookups, not a test of each
glob.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Generic, TypeAlias, TypeVar

__all__ = [
    "Anchor",
    "GlobIndex",
    "TopicMatcher",
    "anchor",
    "glob_test",
    "glob_to_regex",
    "is_literal",
]

P = TypeVar("P")
Anchor: TypeAlias = tuple[str, str]
"""How a glob is found: ``("=", text)``, ``("<", prefix)`` or ``(">", suffix)``."""

_GLOB_CHARS: Final = frozenset("*?\\")
_GLOBSTAR: Final = object()
_LITERAL_RUN: Final = re.compile(r"[^*?\\]*", re.DOTALL)


def is_literal(pattern: str) -> bool:
    """Whether ``pattern`` has no glob characters: it matches only its own text."""
    return not (_GLOB_CHARS & set(pattern))


def _segment_regex(segment: str, wild: str) -> str:
    out: list[str] = []
    chars = iter(segment)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, None)
            if nxt is not None:
                out.append(re.escape(nxt))
        elif ch == "?":
            out.append(wild)
        elif ch == "*":
            out.append(wild + "*")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def glob_to_regex(pattern: str, sep: str) -> str:
    """The regular expression (for ``re.fullmatch``) of a glob over ``sep`` segments."""
    esep = re.escape(sep)
    wild = f"[^{esep}]"
    parts: list[object] = []
    for segment in pattern.split(sep):
        if segment == "**":
            if parts and parts[-1] is _GLOBSTAR:
                continue
            parts.append(_GLOBSTAR)
        else:
            parts.append(segment)
    if parts == [_GLOBSTAR]:
        return ".*"
    regex: list[str] = []
    for i, part in enumerate(parts):
        if part is _GLOBSTAR:
            # Leading: zero or more "segment + sep"; elsewhere: zero or more "sep + segment".
            regex.append(f"(?:{wild}*{esep})*" if i == 0 else f"(?:{esep}{wild}*)*")
            continue
        leading_globstar_before = i == 1 and parts[0] is _GLOBSTAR
        if i > 0 and not leading_globstar_before:
            regex.append(esep)
        regex.append(_segment_regex(str(part), wild))
    return "".join(regex)


def glob_test(pattern: str, sep: str) -> Callable[[str], bool]:
    """A predicate for one glob; literal patterns compare by equality."""
    if is_literal(pattern):
        return pattern.__eq__
    compiled = re.compile(glob_to_regex(pattern, sep), re.DOTALL)
    return lambda text: compiled.fullmatch(text) is not None


# --------------------------------------------------------------------------- anchors


def _literal_start(segments: Iterable[str]) -> str:
    """The text every match of a ``:``-glob starts with: its whole literal segments and their
    separators, then the literal run that starts the first segment that is not literal. A
    ``**`` segment stops it before its separator, since it may match no segment at all.
    Given the segments reversed and each one reversed, it reads the text every match ends
    with, reversed (``*``, ``?`` and ``\\`` stop it from either end)."""
    out: list[str] = []
    for i, segment in enumerate(segments):
        if segment == "**":
            break
        if i:
            out.append(":")
        run = _LITERAL_RUN.match(segment)
        assert run is not None  # it matches the empty text at least
        out.append(run[0])
        if run.end() < len(segment):
            break
    return "".join(out)


def anchor(pattern: str) -> Anchor | None:
    """How a ``:``-glob is found without being tried: ``("=", text)`` for a literal pattern,
    ``("<", prefix)`` or ``(">", suffix)`` for the longer literal text every match starts or
    ends with, or None when matches need not share one (``**``, ``*:*``)."""
    if is_literal(pattern):
        return "=", pattern
    prefix = _literal_start(pattern.split(":"))
    suffix = _literal_start(pattern[::-1].split(":"))[::-1]
    if prefix and len(prefix) >= len(suffix):
        return "<", prefix
    if suffix:
        return ">", suffix
    return None


class GlobIndex(Generic[P]):
    """``:``-globs, each with a payload, found without trying each glob.

    :meth:`collect` gives the payloads of every glob that may match a text: literal globs by
    equality, the others by the literal text all their matches start or end with (one dict
    lookup per distinct length of those texts), and those with none every time. It may give
    a glob that does not match (``job:*`` for ``job:a:b``): callers test what it gives.
    """

    __slots__ = (
        "_anywhere",
        "_exact",
        "_prefix_lengths",
        "_prefixes",
        "_suffix_lengths",
        "_suffixes",
    )

    def __init__(self) -> None:
        self._exact: dict[str, list[P]] = {}
        self._prefixes: dict[str, list[P]] = {}
        self._prefix_lengths: list[int] = []  # the distinct lengths of the prefixes, in order
        self._suffixes: dict[str, list[P]] = {}
        self._suffix_lengths: list[int] = []
        self._anywhere: list[P] = []

    def add(self, anchor: Anchor | None, payload: P) -> None:
        """Add a glob by its anchor (see :func:`anchor`)."""
        if anchor is None:
            self._anywhere.append(payload)
            return
        side, text = anchor
        if side == "=":
            self._exact.setdefault(text, []).append(payload)
            return
        by_text, lengths = (
            (self._prefixes, self._prefix_lengths)
            if side == "<"
            else (self._suffixes, self._suffix_lengths)
        )
        if len(text) not in lengths:
            bisect.insort(lengths, len(text))
        by_text.setdefault(text, []).append(payload)

    def collect(self, text: str, out: list[P]) -> None:
        """Append to ``out`` the payloads of the globs that may match ``text``."""
        hits = self._exact.get(text)
        if hits:
            out.extend(hits)
        if self._prefix_lengths:
            by_text = self._prefixes
            size = len(text)
            for n in self._prefix_lengths:
                if n > size:
                    break
                hits = by_text.get(text[:n])
                if hits:
                    out.extend(hits)
        if self._suffix_lengths:
            by_text = self._suffixes
            size = len(text)
            for n in self._suffix_lengths:
                if n > size:
                    break
                hits = by_text.get(text[-n:])
                if hits:
                    out.extend(hits)
        if self._anywhere:
            out.extend(self._anywhere)


# --------------------------------------------------------------------------- topics


class TopicMatcher:
    """Compiled topic patterns: a string or a list of strings, any of which may match.

    ``literals`` holds the patterns without glob characters and ``globs`` the others, each
    with its compiled test, so a dispatcher can index its callbacks by pattern.
    """

    __slots__ = ("globs", "literals", "patterns")

    def __init__(self, topics: str | Sequence[str]) -> None:
        if isinstance(topics, str):
            patterns: tuple[str, ...] = (topics,)
        elif isinstance(topics, Sequence) and all(isinstance(t, str) for t in topics):
            patterns = tuple(topics)
        else:
            raise TypeError(
                f"topics must be a string or a list of strings, got {type(topics).__name__} {topics!r}"
            )
        self.patterns = patterns
        normalised = [p or "**" for p in patterns]  # "" acts as "**", as in @flatfile/listener
        self.literals = frozenset(p for p in normalised if is_literal(p))
        self.globs: dict[str, Callable[[str], bool]] = {
            p: glob_test(p, ":") for p in normalised if not is_literal(p)
        }

    def __call__(self, topic: Any) -> bool:
        if not isinstance(topic, str) or not topic:
            return False
        if topic in self.literals:
            return True
        return any(test(topic) for test in self.globs.values())

    def __repr__(self) -> str:
        return f"TopicMatcher({list(self.patterns)!r})"
