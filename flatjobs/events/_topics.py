"""The topics flatjobs acts on, named once. Flatfile's topics are open-ended: any other
topic is delivered and matched like these, only flatjobs itself never spells it."""

from __future__ import annotations

from typing import Final

__all__ = [
    "COMMIT_COMPLETED",
    "COMMIT_CREATED",
    "FILE_CREATED",
    "JOB_PARTS_COMPLETED",
    "JOB_READY",
    "JOB_RUNNING_TOPICS",
]

JOB_READY: Final = "job:ready"
"""A job is ready to run: its handler acknowledges it, runs its body and ends it."""
JOB_PARTS_COMPLETED: Final = "job:parts-completed"
"""Every part of a split job has ended: its parent's handler ends the parent."""
JOB_RUNNING_TOPICS: Final = (JOB_READY, JOB_PARTS_COMPLETED)
"""The topics whose dispatch runs a job's lifecycle: one job at a time each."""
COMMIT_CREATED: Final = "commit:created"
"""Records of a sheet were written: record hooks run on the commit."""
COMMIT_COMPLETED: Final = "commit:completed"
"""A commit was completed (its hooks are done)."""
FILE_CREATED: Final = "file:created"
"""A file was uploaded: extractors turn it into a workbook."""
