"""The terminal display of ``flatjobs dev``: a progress bar per job, then its outcome.

On a terminal the bars are redrawn in place; otherwise (a pipe, CI) each change is a line.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any, TextIO

from flatjobs.events._event import job_id_of
from flatjobs.events._topics import JOB_READY
from flatjobs.models import DownloadNext, FilesNext, IdNext, Job, JobStatus, RetryNext, UrlNext

__all__ = ["ProgressDisplay"]

BAR = 24


def _bar(progress: float) -> str:
    filled = round(BAR * max(0.0, min(progress, 100.0)) / 100)
    return "[" + "#" * filled + "." * (BAR - filled) + "]"


def _button(job: Job) -> str:
    outcome = job.outcome
    nxt = outcome.next if outcome else None
    if nxt is None:
        return ""
    label = getattr(nxt, "label", None)
    if isinstance(nxt, DownloadNext):
        return f"  [{label or 'Download'}: {nxt.url}]"
    if isinstance(nxt, UrlNext):
        return f"  [{label or 'Open'}: {nxt.url}]"
    if isinstance(nxt, RetryNext):
        return f"  [{label or 'Retry'}]"
    if isinstance(nxt, IdNext | FilesNext):
        return f"  [{label or 'Go'}]"
    return f"  [{label or type(nxt).__name__}]"


class ProgressDisplay:
    """Shows the jobs of an emulator as they progress; fed with its raw events."""

    def __init__(self, lookup: Any, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self._lookup = lookup  # job id -> Job (the emulator's state)
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self._lines: dict[str, str] = {}
        self._order: list[str] = []
        self._drawn = 0
        self.ended: dict[str, Job] = {}

    def _name(self, job: Job) -> str:
        name = job.job_name
        return f"{name} part {int(job.part or 0) + 1}" if job.parent_id else name

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own, above the bars."""
        self._set(None, text)

    def on_event(self, event: dict[str, Any]) -> None:
        topic = event.get("topic", "")
        job_id = job_id_of(event)
        if not topic.startswith("job:") or not job_id:
            return
        try:
            job: Job = self._lookup(job_id)
        except Exception:
            return  # deleted meanwhile
        if topic == "job:created":
            return
        if topic == JOB_READY:
            self._set(job_id, f"  {self._name(job):<28} ready")
        elif topic == "job:updated" and job.status == JobStatus.EXECUTING:
            info = f"  {job.info}" if job.info else ""
            eta = ""
            if job.estimated_completion_at is not None:
                left = (job.estimated_completion_at - dt.datetime.now(dt.UTC)).total_seconds()
                eta = f"  ETA {max(0.0, left):.1f}s" if left < 10 else f"  ETA {left:.0f}s"
            progress = float(job.progress or 0)
            self._set(
                job_id, f"  {self._name(job):<28} {_bar(progress)} {progress:5.1f}%{info}{eta}"
            )
        elif topic in ("job:completed", "job:failed") or job.status == JobStatus.CANCELED:
            self.ended[job_id] = job
            mark = {"complete": "ok", "failed": "FAILED"}.get(str(job.status), str(job.status))
            message = job.outcome.message if job.outcome and job.outcome.message else job.info
            text = f"  {self._name(job):<28} {mark:<6} {message or ''}{_button(job)}"
            self._set(job_id, text, final=True)

    def _set(self, key: str | None, text: str, final: bool = False) -> None:
        if not self.tty:
            if key is None or self._lines.get(key) != text:
                self._write(text)
            if key is not None:
                self._lines[key] = text
            return
        if key is None:
            self._erase()
            self._write(text)
        else:
            if key not in self._lines:
                self._order.append(key)
            self._lines[key] = text
            self._erase()
        for k in self._order:
            self._write(self._lines[k])
        self._drawn = len(self._order)

    def _erase(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}A\x1b[J")
            self._drawn = 0
