"""How a task says it did not succeed.

Raise one of these from ``validate`` or ``execute``; the SDK turns it into
the ``task-error`` variant of the WIT contract. Any other exception becomes
``failed`` with its type and message, and its traceback goes to the task log.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """A problem with one field of a spec.

    ``path`` is the field inside the plugin-owned spec, ``messages[0].role``
    style; empty for the spec as a whole. ``message`` says what is wrong and
    what to do about it.
    """

    path: str
    message: str


class TaskError(Exception):
    """Base of the errors a task raises on purpose."""


class InvalidInput(TaskError):
    """The spec is invalid: retrying cannot help.

    Carries one :class:`FieldError` per problem, which the user sees with the
    path prefixed by ``spec.``.
    """

    def __init__(self, *errors: FieldError) -> None:
        if not errors:
            errors = (FieldError("", "the spec is invalid"),)
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(f"{e.path or 'spec'}: {e.message}" for e in self.errors))

    @classmethod
    def at(cls, path: str, message: str) -> "InvalidInput":
        """One problem, at ``path``."""
        return cls(FieldError(path, message))


class Failed(TaskError):
    """The task failed for good: retrying cannot help."""


class Retryable(TaskError):
    """The task failed for a reason that may pass (a busy endpoint, a flaky
    dependency): the server may run it again, within the task's retry policy."""
