"""OCI containers on the worker's Docker daemon (``flowmesh:host/containers``).

A plugin that uses this module imports the interface in its world
(``import flowmesh:host/containers@0.1.0;`` in ``wit/world.wit``); only
workers whose Docker probe succeeded run it. The worker's policy holds:
allow-listed images only, no privileged mode, no host mounts but the task's
scratch directory, no network unless the worker allows it.

A failing daemon raises :class:`~flowmesh_sdk.Retryable`; every other refusal
:class:`~flowmesh_sdk.Failed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from . import _host
from ._errors import Failed, Retryable


@dataclass(frozen=True)
class RunResult:
    """How a container ended."""

    exit_code: int
    oom_killed: bool
    elapsed_ms: int


def run(image: str, command: Iterable[str] = (), *, entrypoint: Iterable[str] = (),
        env: Mapping[str, str] | None = None, workdir: str | None = None,
        scratch_mount: str | None = None, memory_bytes: int | None = None,
        cpus: float | None = None, timeout_ms: int | None = None,
        network: bool = False) -> RunResult:
    """Runs a container to completion; its output streams into the task log."""
    containers = _host.capability("containers")
    request = containers.RunRequest(
        image,
        list(entrypoint),
        list(command),
        [containers.EnvVar(k, v) for k, v in (env or {}).items()],
        workdir,
        scratch_mount,
        memory_bytes,
        cpus,
        timeout_ms,
        network,
    )
    try:
        result = containers.run(request)
    except _host.WitErr as error:
        raise _error(error.value) from None
    return RunResult(result.exit_code, result.oom_killed, result.elapsed_ms)


def _error(value: Any) -> Exception:
    kind = type(value).__name__.removeprefix("ContainerError_")
    detail = getattr(value, "value", None)
    text = {
        "ImageNotAllowed": f"image {detail} is not on this worker's allow-list",
        "ImageNotFound": f"image {detail} is not on this worker and cannot be pulled",
        "InvalidRequest": f"the container request is invalid: {detail}",
        "TimedOut": "the container was killed at its timeout",
        "Cancelled": "the task was cancelled while its container ran",
        "Daemon": f"the Docker daemon failed: {detail}",
    }.get(kind, f"the container failed: {value}")
    return Retryable(text) if kind == "Daemon" else Failed(text)
