"""The host side, when there is one.

Inside a worker the plugin runs as a WebAssembly component and componentize-py
provides ``wit_world``, the bindings of the plugin's WIT world. On a
developer's machine (``pytest`` against the plain module) there is no host:
logs and progress go to Python's ``logging`` under the ``flowmesh`` logger,
and the capabilities say they need a worker.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

_local = logging.getLogger("flowmesh")

try:
    from componentize_py_types import Err as WitErr
except ImportError:  # plain Python: no host, so no host errors either

    class WitErr(Exception):  # type: ignore[no-redef]
        """Stands in for componentize-py's ``Err`` outside a worker."""

        value: object = None


def _import(interface: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"wit_world.imports.{interface}")
    except ImportError:
        return None


# Imported now, while componentize-py pre-initialises the app at build time:
# a component holds only the modules imported then, so a binding imported
# later would be missing even when the world has it.
_BINDINGS: dict[str, ModuleType | None] = {
    interface: _import(interface) for interface in ("log", "progress", "llm", "containers", "gpu")
}


def in_worker() -> bool:
    """Whether this code runs as a component inside a FlowMesh worker."""
    return _bindings("log") is not None


def _bindings(interface: str) -> ModuleType | None:
    return _BINDINGS.get(interface)


def capability(interface: str) -> ModuleType:
    """The bindings of ``flowmesh:host/<interface>``, or an error that says
    how to get them."""
    module = _bindings(interface)
    if module is not None:
        return module
    from ._errors import Failed

    if in_worker():
        raise Failed(
            f"this plugin's WIT world does not import flowmesh:host/{interface}@0.1.0: "
            f"add `import flowmesh:host/{interface}@0.1.0;` to the world in wit/world.wit and build again"
        )
    raise Failed(
        f"flowmesh:host/{interface} is only available inside a FlowMesh worker; "
        f"in tests, replace flowmesh_sdk.{interface}'s functions (monkeypatch)"
    )


_LEVELS = ("trace", "debug", "info", "warn", "error")
_PY_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def log(level: str, message: str) -> None:
    """Appends one record to the task log (see :mod:`flowmesh_sdk.log`)."""
    module = _bindings("log")
    if module is None:
        _local.log(_PY_LEVELS[level], "%s", message)
        return
    module.log(module.Level[level.upper()], str(message))


def progress(fraction: float, message: str | None = None) -> None:
    """Reports how far the task has come: ``fraction`` is clamped to 0..1
    by the host; ``message`` says what is happening now."""
    module = _bindings("progress")
    if module is None:
        _local.info("progress %.0f%%%s", float(fraction) * 100, f": {message}" if message else "")
        return
    module.report(float(fraction), None if message is None else str(message))
