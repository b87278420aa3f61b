"""Wire models of Flatfile's Jobs and Events API, and the one converter that reads and writes them.

Every model is an immutable attrs class with snake_case attributes; :data:`converter` maps
them to and from the camelCase JSON the API speaks. Parsing is lenient, because
Flatfile adds topics, statuses and fields over time:

* an enum value flatjobs does not know is kept as a plain ``str`` (``JobStatus`` members are
  ``str`` too, so ``job.status == "complete"`` works either way);
* a field flatjobs does not know is kept in the model's ``extra`` mapping and written back
  unchanged;
* an optional field that is ``None`` is omitted on the wire, never sent as ``null`` (a
  ``null`` received is read as absent).

>>> from flatjobs.models import JobOutcome, Next, to_wire
>>> to_wire(JobOutcome(message="Done", next=Next.retry(label="Again")))
{'message': 'Done', 'next': {'type': 'retry', 'label': 'Again'}}

The models of the jobs and events API are in ``_jobs.py``; those of the data a job works on
(records, sheets, workbooks, files, spaces, documents) in ``_data.py``; a job's progress
report, checked once, in ``_progress.py``; the converter in ``_converter.py``. This package
imports nothing else of flatjobs.
"""

from __future__ import annotations

from ._converter import converter as converter
from ._converter import evolve as evolve
from ._converter import from_wire as from_wire
from ._converter import to_wire as to_wire
from ._data import Action as Action
from ._data import CellValue as CellValue
from ._data import Commit as Commit
from ._data import Document as Document
from ._data import DocumentConfig as DocumentConfig
from ._data import Field as Field
from ._data import FieldConstraint as FieldConstraint
from ._data import FieldType as FieldType
from ._data import File as File
from ._data import FileMode as FileMode
from ._data import FileStatus as FileStatus
from ._data import MessageType as MessageType
from ._data import RecordCounts as RecordCounts
from ._data import Sheet as Sheet
from ._data import SheetConfig as SheetConfig
from ._data import Space as Space
from ._data import SpaceConfig as SpaceConfig
from ._data import ValidationMessage as ValidationMessage
from ._data import Workbook as Workbook
from ._data import WorkbookConfig as WorkbookConfig
from ._data import WorkbookUpdate as WorkbookUpdate
from ._jobs import TERMINAL_STATUSES as TERMINAL_STATUSES
from ._jobs import AnyNext as AnyNext
from ._jobs import ClearFiltersNext as ClearFiltersNext
from ._jobs import Context as Context
from ._jobs import DownloadNext as DownloadNext
from ._jobs import Event as Event
from ._jobs import EventDomain as EventDomain
from ._jobs import FileRef as FileRef
from ._jobs import FilesNext as FilesNext
from ._jobs import IdNext as IdNext
from ._jobs import Job as Job
from ._jobs import JobAckDetails as JobAckDetails
from ._jobs import JobCancelDetails as JobCancelDetails
from ._jobs import JobCompleteDetails as JobCompleteDetails
from ._jobs import JobConfig as JobConfig
from ._jobs import JobEventPayload as JobEventPayload
from ._jobs import JobMode as JobMode
from ._jobs import JobOutcome as JobOutcome
from ._jobs import JobPartExecution as JobPartExecution
from ._jobs import JobPartResult as JobPartResult
from ._jobs import JobPartsCounts as JobPartsCounts
from ._jobs import JobSplitDetails as JobSplitDetails
from ._jobs import JobStatus as JobStatus
from ._jobs import JobTrigger as JobTrigger
from ._jobs import JobType as JobType
from ._jobs import JobUpdate as JobUpdate
from ._jobs import Next as Next
from ._jobs import Origin as Origin
from ._jobs import OutcomeAudience as OutcomeAudience
from ._jobs import OutcomeTrigger as OutcomeTrigger
from ._jobs import OutcomeTriggerType as OutcomeTriggerType
from ._jobs import Pagination as Pagination
from ._jobs import RetryNext as RetryNext
from ._jobs import Secret as Secret
from ._jobs import SnapshotNext as SnapshotNext
from ._jobs import Subscription as Subscription
from ._jobs import UnknownNext as UnknownNext
from ._jobs import UrlNext as UrlNext
from ._jobs import ViewNext as ViewNext
from ._jobs import WaitNext as WaitNext
from ._jobs import source_context as source_context
from ._progress import ProgressUpdate as ProgressUpdate

__all__ = [
    "TERMINAL_STATUSES",
    "Action",
    "AnyNext",
    "CellValue",
    "ClearFiltersNext",
    "Commit",
    "Context",
    "Document",
    "DocumentConfig",
    "DownloadNext",
    "Event",
    "EventDomain",
    "Field",
    "FieldConstraint",
    "FieldType",
    "File",
    "FileMode",
    "FileRef",
    "FileStatus",
    "FilesNext",
    "IdNext",
    "Job",
    "JobAckDetails",
    "JobCancelDetails",
    "JobCompleteDetails",
    "JobConfig",
    "JobEventPayload",
    "JobMode",
    "JobOutcome",
    "JobPartExecution",
    "JobPartResult",
    "JobPartsCounts",
    "JobSplitDetails",
    "JobStatus",
    "JobTrigger",
    "JobType",
    "JobUpdate",
    "MessageType",
    "Next",
    "Origin",
    "OutcomeAudience",
    "OutcomeTrigger",
    "OutcomeTriggerType",
    "Pagination",
    "ProgressUpdate",
    "RecordCounts",
    "RetryNext",
    "Secret",
    "Sheet",
    "SheetConfig",
    "SnapshotNext",
    "Space",
    "SpaceConfig",
    "Subscription",
    "UnknownNext",
    "UrlNext",
    "ValidationMessage",
    "ViewNext",
    "WaitNext",
    "Workbook",
    "WorkbookConfig",
    "WorkbookUpdate",
    "converter",
    "evolve",
    "from_wire",
    "source_context",
    "to_wire",
]
