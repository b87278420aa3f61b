"""What a job ends with: the ``complete`` body for what a handler returned, the ``fail``
body for what it raised, and the messages flatjobs itself fails jobs with.

Every text here is what an end user reads in Flatfile's UI: it is redacted (no registered
secret, no bearer token) and bounded (:data:`MAX_MESSAGE_CHARS`) before it is sent.
"""

from __future__ import annotations

from typing import Any, Final

from flatjobs.errors import JobError, JobTimeout
from flatjobs.log import redact_head
from flatjobs.models import JobCompleteDetails, JobOutcome, Next, evolve, to_wire

__all__ = [
    "DEFAULT_COMPLETION",
    "MAX_MESSAGE_CHARS",
    "ORPHAN_MESSAGE",
    "STOPPED_MESSAGE",
    "CompletionValue",
    "completion_details",
    "failure_details",
    "retry_failure",
]

MAX_MESSAGE_CHARS: Final = 2000
"""``info``, outcome ``message`` and ``heading`` are cut to this many characters (with an
ellipsis), so an exception with a huge message can still fail its job."""
STOPPED_MESSAGE: Final = "The listener stopped before the job finished. Retry to run it again."
"""What a job is failed with when its listener stops before the job finished."""
ORPHAN_MESSAGE: Final = (
    "The worker running this job stopped before it finished. Retry to run it again."
)
"""What a job is failed with when the worker running it stopped (an orphan)."""
_MINIMAL_CHARS: Final = 200

CompletionValue = JobCompleteDetails | JobOutcome | str | None
"""What a job may complete with: details, an outcome, a message, or None for the default."""

DEFAULT_COMPLETION: Final = JobCompleteDetails(outcome=JobOutcome(message="Job complete"))
"""What a job completes with when its handler returns nothing (Flatfile's default)."""
DEFAULT_COMPLETION_WIRE: Final = to_wire(DEFAULT_COMPLETION)
"""Its wire form, built once: the hot path sends it as it is."""


def completion_details(value: CompletionValue) -> JobCompleteDetails:
    """The ``complete`` body for what a handler returned or gave to ``complete_with``.

    Raises:
        TypeError: ``value`` is none of the accepted types (named in the message).
    """
    if value is None:
        return DEFAULT_COMPLETION
    if isinstance(value, JobCompleteDetails):
        return value
    if isinstance(value, JobOutcome):
        return JobCompleteDetails(outcome=value)
    if isinstance(value, str):
        return JobCompleteDetails(outcome=JobOutcome(message=value))
    raise TypeError(
        "a job completes with None, a message string, a JobOutcome or a JobCompleteDetails, "
        f"got {type(value).__name__} {value!r:.100}"
    )


def cut(text: str | None, limit: int = MAX_MESSAGE_CHARS) -> str | None:
    """``text`` with registered secrets and bearer tokens redacted, cut to ``limit``
    characters (the last an ellipsis). A handler's words stay as written otherwise."""
    if text is None:
        return None
    head, whole = redact_head(text, limit, urls=False)
    if whole and len(head) <= limit:
        return head
    return head[: limit - 1] + "…"


def message_of(exc: BaseException) -> str:
    """What the end user reads for an exception: a :class:`JobError`'s message as the
    handler wrote it; a timeout as the limit the job ran into; anything else as its type
    and text (``KeyError: 'email'``), with credentials in URLs redacted too, since nobody
    chose to show it. Bounded and redacted by :func:`cut` after."""
    if isinstance(exc, JobTimeout):  # its own text names the job: the user knows which
        unit = "second" if exc.timeout == 1 else "seconds"
        return f"The job timed out after {exc.timeout:g} {unit} and was stopped."
    name = type(exc).__name__
    try:
        text = str(exc.message if isinstance(exc, JobError) else exc)
    except Exception:  # an exception whose __str__ raises
        return name
    if isinstance(exc, JobError):
        return text.strip() or name
    text = redact_head(text, MAX_MESSAGE_CHARS)[0].strip()
    return f"{name}: {text}" if text else name


def failure_details(exc: BaseException) -> JobCompleteDetails:
    """The ``fail`` body for an exception: what the user reads of it (see
    :func:`message_of`), as info and outcome; its texts redacted and bounded, ready to send."""
    message = cut(message_of(exc))
    if isinstance(exc, JobError):
        outcome = JobOutcome(
            acknowledge=True,
            heading=cut(exc.heading, _MINIMAL_CHARS),
            message=message,
            next=exc.next,
        )
        return JobCompleteDetails(info=cut(exc.info) or message, outcome=outcome)
    return JobCompleteDetails(info=message, outcome=JobOutcome(acknowledge=True, message=message))


def retry_failure(message: str) -> JobCompleteDetails:
    """The ``fail`` body for a failure that is not the handler's (a stop, an orphan, an API
    that would not take a call): ``message`` and a Retry button."""
    return failure_details(JobError(message, next=Next.retry("Retry")))


def bounded(details: JobCompleteDetails) -> JobCompleteDetails:
    """``details`` with its texts redacted and cut to :data:`MAX_MESSAGE_CHARS` (the heading
    to fewer)."""
    outcome = details.outcome
    if outcome is not None:
        message, heading = cut(outcome.message), cut(outcome.heading, _MINIMAL_CHARS)
        if message != outcome.message or heading != outcome.heading:
            outcome = evolve(outcome, message=message, heading=heading)
    info = cut(details.info)
    if outcome is details.outcome and info == details.info:
        return details
    return evolve(details, info=info, outcome=outcome)


def minimal(details: JobCompleteDetails) -> dict[str, Any]:
    """The smallest ``fail`` body that still tells the user something: short plain text."""
    text = (details.outcome.message if details.outcome else None) or details.info or "Failed"
    short = cut(text, _MINIMAL_CHARS) or "Failed"
    return {"info": short, "outcome": {"acknowledge": True, "message": short}}
