"""Exceptions raised by flatjobs.

Every exception derives from :class:`FlatfileError`, so ``except flatjobs.FlatfileError``
catches anything flatjobs raises on purpose. Messages name the bad value and say what to do;
none of them ever contains an API token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .log import redact_text, redact_value

if TYPE_CHECKING:
    from .models import AnyNext

__all__ = [
    "ConfigurationError",
    "FlatfileAPIError",
    "FlatfileConnectionError",
    "FlatfileError",
    "InvalidEventError",
    "InvalidRequestError",
    "JobAlreadyRunning",
    "JobCancelled",
    "JobError",
    "JobSkipped",
    "JobTimeout",
    "SecretNotFound",
    "UnexpectedResponseError",
]


class FlatfileError(Exception):
    """Base class of every exception flatjobs raises."""


class ConfigurationError(FlatfileError):
    """Required configuration (a token, a base URL, an environment id) is missing or invalid."""


class InvalidEventError(FlatfileError, ValueError):
    """An event is malformed: not a mapping, or missing a field flatjobs needs.

    Raised by :meth:`flatjobs.Listener.dispatch`; the runner logs it and skips the event.
    """


class InvalidRequestError(FlatfileError, ValueError):
    """A request could not be sent as asked: an id that is not one URL segment, or a body
    JSON cannot carry (NaN, Infinity). Nothing was sent; the message names the value."""


class FlatfileAPIError(FlatfileError):
    """The Flatfile API answered with an error status (after any retries).

    Attributes:
        status: the HTTP status code.
        method: the HTTP method of the request.
        path: the request path, e.g. ``/v1/jobs/us_jb_1/ack`` (no query, no host).
        body: the parsed JSON error body, or the response text when it was not JSON,
            with any token redacted and long text cut short.
        attempts: how many times the request was sent. More than one means an earlier
            attempt may have been applied even though its answer was lost.
    """

    def __init__(self, status: int, method: str, path: str, body: Any, attempts: int = 1) -> None:
        self.status = status
        self.method = method
        self.path = path
        # The server's text may echo a token back: nothing kept here ever carries one.
        self.body = redact_value(body, limit=_BODY_LIMIT)
        self.attempts = attempts
        super().__init__(f"{method} {path} answered {status}: {self.detail}")

    @property
    def detail(self) -> str:
        """The server's own explanation, taken from Flatfile's error body when present."""
        body = self.body
        if isinstance(body, Mapping):
            errors = body.get("errors")
            if isinstance(errors, list) and errors:
                messages = [
                    str(e.get("message"))
                    for e in errors
                    if isinstance(e, Mapping) and "message" in e
                ]
                if messages:
                    return "; ".join(messages)
            for key in ("message", "error"):
                if isinstance(body.get(key), str):
                    return str(body[key])
        text = str(body).strip() if body is not None else ""
        return text[:500] if text else "(empty body)"


class UnexpectedResponseError(FlatfileAPIError):
    """The API answered with a success status, but not with what the endpoint returns
    (``{"data": null}``, an HTML page, a truncated or garbled body). It is retried like a
    server error; this is raised when the retries are spent.

    Attributes:
        reason: what was wrong with the answer.
    """

    def __init__(
        self, status: int, method: str, path: str, body: Any, reason: str, attempts: int = 1
    ) -> None:
        self.reason = reason
        super().__init__(status, method, path, body, attempts)
        self.args = (
            f"{method} {path} answered {status} with an unexpected body: {redact_text(reason)}",
        )


class FlatfileConnectionError(FlatfileError):
    """No answer could be had from the API (connection refused or dropped, or timed out),
    after any retries. ``__cause__`` holds the last underlying error."""

    def __init__(self, method: str, path: str, reason: str) -> None:
        self.method = method
        self.path = path
        self.reason = reason
        super().__init__(redact_text(f"{method} {path} failed: {reason}"))


_BODY_LIMIT = 10_000  # characters of an error body kept on the exception


class SecretNotFound(FlatfileError, LookupError):
    """No secret of that name exists for the environment (and space/actor) asked."""


class JobError(FlatfileError):
    """Raise inside a job handler to fail the job with an outcome the end user sees.

    >>> from flatjobs import JobError, Next
    >>> raise JobError("The file has no email column", next=Next.retry("Try again"))
    Traceback (most recent call last):
    ...
    flatjobs.errors.JobError: The file has no email column

    Args:
        message: shown to the user as the outcome message, and sent as the job's ``info``
            unless ``info`` is given.
        heading: the outcome heading.
        next: a ``next`` action for the outcome's button (see :class:`flatjobs.Next`).
        info: the job's ``info`` text, when it should differ from ``message``.
    """

    def __init__(
        self,
        message: str,
        *,
        heading: str | None = None,
        next: AnyNext | None = None,
        info: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.heading = heading
        self.next = next
        self.info = info


class JobCancelled(FlatfileError):
    """The platform canceled the job while its handler ran.

    Raised out of :func:`flatjobs.job_lifecycle`; no complete or fail call is sent, since
    the job has already ended on the platform.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} was canceled on the platform")


class JobSkipped(FlatfileError):
    """A job was not run: it is not in a state to be (already running, already ended, no
    longer ready). Raised on entering :func:`flatjobs.job_lifecycle`; ``Jobs`` logs it."""

    def __init__(self, job_id: str, reason: str) -> None:
        self.job_id = job_id
        self.reason = reason
        super().__init__(f"job {job_id} was not run: {reason}")


class JobAlreadyRunning(JobSkipped):
    """A job's lifecycle is already running in this process: a duplicate event for it is
    not run again. Raised before any API call."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id, "it is already running in this process")


class JobTimeout(FlatfileError, TimeoutError):
    """A job handler ran longer than its ``timeout``; the job was failed."""

    def __init__(self, job_id: str, timeout: float) -> None:
        self.job_id = job_id
        self.timeout = timeout
        super().__init__(f"job {job_id} timed out after {timeout:g} seconds")
