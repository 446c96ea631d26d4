"""Structured task logs: each call appends one record to the running task's
log, which whoever watches the task sees live (``flowmesh task watch``, the
console). The worker caps a task's log volume and marks it truncated past
the cap. ``print`` works too: stdout and stderr become log records.
"""

from . import _host


def trace(message: str) -> None:
    """A ``trace`` record."""
    _host.log("trace", message)


def debug(message: str) -> None:
    """A ``debug`` record."""
    _host.log("debug", message)


def info(message: str) -> None:
    """An ``info`` record."""
    _host.log("info", message)


def warn(message: str) -> None:
    """A ``warn`` record."""
    _host.log("warn", message)


def error(message: str) -> None:
    """An ``error`` record."""
    _host.log("error", message)
