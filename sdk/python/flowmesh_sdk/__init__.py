"""Write FlowMesh executor plugins in Python.

A FlowMesh plugin is a WebAssembly component that exports the
``flowmesh:executor`` interface. componentize-py builds one from a Python
module and a WIT world; this package is what that module is written with:

- :class:`Plugin` declares the plugin and, with :meth:`Plugin.task_type`, its
  task types: a function each, whose spec is a dataclass (its JSON Schema,
  which the server checks submitted specs against, is derived from it) or a
  dict with a hand-written schema;
- a task type's ``validate`` checks what a schema cannot (cross-field rules);
- :class:`InvalidInput`, :class:`Failed` and :class:`Retryable` are how a task
  fails on purpose; any other exception fails it with its type and message;
- :mod:`flowmesh_sdk.log` and :func:`progress` report to whoever watches;
- :mod:`flowmesh_sdk.llm`, :mod:`flowmesh_sdk.containers` and
  :mod:`flowmesh_sdk.gpu` call the worker's capabilities, when the plugin's
  world imports them;
- ``Executor = plugin.export()`` in the app module is what componentize-py
  builds into the component.

A task runs in a fresh sandbox: its scratch directory at :data:`SCRATCH_DIR`,
no environment, no network, no other files. The same module runs as plain
Python, so ``pytest`` tests it without a worker (``plugin.execute(...)``).
"""

from . import log
from ._errors import Failed, FieldError, InvalidInput, Retryable, TaskError
from ._host import in_worker, progress
from ._plugin import SCRATCH_DIR, Plugin, Task, TaskType
from ._schema import schema_of

__all__ = [
    "Failed",
    "FieldError",
    "InvalidInput",
    "Plugin",
    "Retryable",
    "SCRATCH_DIR",
    "Task",
    "TaskError",
    "TaskType",
    "in_worker",
    "log",
    "progress",
    "schema_of",
]

__version__ = "0.1.0"
