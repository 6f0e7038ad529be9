"""The project's error hierarchy.

Every error a user can cause derives from :class:`BatchJobsError` and says, in one line,
what was wrong and what to do. The CLI prints ``str(err)`` and exits non-zero; it never
shows a traceback for these.
"""

from __future__ import annotations


class BatchJobsError(Exception):
    """Base of every error the project raises on purpose."""

    exit_code: int = 2


class BadInputError(BatchJobsError):
    """The user's data (a backlog, a labels file, a request) is not what it must be."""


class BadConfigError(BatchJobsError):
    """An option, a policy pack or a config file is invalid."""


class CommitConflictError(BatchJobsError):
    """A Delta commit kept conflicting with concurrent writers after all retries."""

    exit_code = 3


class ModelNotFoundError(BatchJobsError):
    """A model URI does not resolve to a loadable model."""
