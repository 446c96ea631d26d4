"""A plugin: its task types, and the ``flowmesh:executor`` exports made of
them.

Each task type is a function that takes the spec (a dataclass, or the JSON
object as a dict when the type gives its schema by hand) and, if it wants,
the :class:`Task`; it returns the output as JSON-able data (dicts, lists,
scalars, dataclasses). :meth:`Plugin.export` turns the plugin into the
``Executor`` class componentize-py looks for in the app module.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import traceback
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import _host
from ._errors import Failed, FieldError, InvalidInput, Retryable
from ._schema import from_json, schema_of, to_json

SCRATCH_DIR = Path("/scratch")
"""The task's private scratch directory inside the sandbox, read-write,
removed when the task ends; the only file system a task sees."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Task:
    """The task being executed."""

    id: str
    """Task id, unique in the cluster."""
    task_type: str
    """Its task type."""
    attempt: int
    """1 for the first attempt, then 2, 3, ... on retries."""

    @property
    def scratch_dir(self) -> Path:
        """The task's scratch directory (:data:`SCRATCH_DIR`)."""
        return SCRATCH_DIR


class TaskType:
    """One task type of a plugin; made by :meth:`Plugin.task_type`."""

    def __init__(self, name: str, description: str, run: Callable[..., Any],
                 spec_type: type | None, schema: dict[str, Any]) -> None:
        self.name = name
        self.description = description
        self.schema = schema
        self._run = run
        self._spec_type = spec_type
        self._takes_task = len(inspect.signature(run).parameters) >= 2
        self._validator: Callable[[Any], Any] | None = None

    def validate(self, check: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Decorates the function that checks a spec beyond its schema
        (cross-field rules): it raises :class:`InvalidInput`, or returns a
        list of :class:`FieldError` (empty when the spec is fine). The server
        calls it at submit time; the worker again before ``execute``."""
        self._validator = check
        return check

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the task function itself, as a plain function (tests)."""
        return self._run(*args, **kwargs)

    def read_spec(self, spec: Any) -> Any:
        """The spec as the task function takes it: parsed from JSON text, read
        into the spec dataclass. Raises :class:`InvalidInput`."""
        if isinstance(spec, (str, bytes)):
            try:
                spec = json.loads(spec)
            except ValueError as error:
                raise InvalidInput.at("", f"is not JSON: {error}") from None
        if self._spec_type is None or isinstance(spec, self._spec_type):
            return spec
        return from_json(self._spec_type, spec)

    def check(self, spec: Any) -> list[FieldError]:
        """Every problem of a spec: its shape, then the validator's."""
        try:
            value = self.read_spec(spec)
            if self._validator is not None:
                found = self._validator(value)
                if found:
                    return list(found)
        except InvalidInput as error:
            return list(error.errors)
        return []

    def execute(self, spec: Any, task: Task) -> Any:
        """Checks, runs and returns the JSON-able output."""
        value = self.read_spec(spec)
        errors = self.check(value)
        if errors:
            raise InvalidInput(*errors)
        output = self._run(value, task) if self._takes_task else self._run(value)
        return to_json(output)


class Plugin:
    """A FlowMesh plugin written in Python.

    ::

        plugin = Plugin("text", version="0.1.0", description="Text processing.")

        @dataclass
        class CountSpec:
            text: str

        @plugin.task_type("count", description="Counts words.")
        def count(spec: CountSpec) -> dict:
            return {"words": len(spec.text.split())}

        Executor = plugin.export()   # what componentize-py builds
    """

    def __init__(self, name: str, *, version: str, description: str) -> None:
        if not _NAME.match(name) or name.endswith("-"):
            raise ValueError(f"plugin name {name!r}: use lowercase letters, digits and '-'")
        self.name = name
        self.version = version
        self.description = description
        self.task_types: dict[str, TaskType] = {}

    def task_type(self, name: str, *, description: str,
                  schema: dict[str, Any] | None = None) -> Callable[[Callable[..., Any]], TaskType]:
        """Declares a task type executed by the decorated function.

        The spec's JSON Schema is derived from the dataclass the function's
        first parameter is annotated with; without one, give ``schema`` (a
        JSON Schema as a dict) and the function receives the spec as a dict.
        """
        if not _NAME.match(name) or name.endswith("-"):
            raise ValueError(f"task type {name!r}: use lowercase letters, digits and '-'")
        if name in self.task_types:
            raise ValueError(f"task type {name!r} is declared twice")

        def declare(run: Callable[..., Any]) -> TaskType:
            params = list(inspect.signature(run).parameters)
            if not params:
                raise TypeError(f"{run.__name__}: a task function takes the spec (and optionally the task)")
            try:
                hint = typing.get_type_hints(run).get(params[0])
            except NameError as error:
                raise TypeError(
                    f"{run.__name__}: cannot resolve its annotations ({error}); define the "
                    f"spec dataclass at module level"
                ) from None
            spec_type = hint if dataclasses.is_dataclass(hint) else None
            if schema is not None:
                task_schema = schema
            elif spec_type is not None:
                task_schema = schema_of(spec_type)
            else:
                raise TypeError(
                    f"{run.__name__}: annotate the spec with a dataclass, or give "
                    f"schema= to @task_type({name!r})"
                )
            declared = TaskType(name, description, run, spec_type, task_schema)
            self.task_types[name] = declared
            return declared

        return declare

    # -- The contract, in plain Python (what the exports call; tests call it too).

    def manifest(self) -> dict[str, Any]:
        """What ``describe()`` answers, as plain data."""
        if not self.task_types:
            raise ValueError(f"plugin {self.name!r} declares no task type")
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "task_types": [
                {"name": t.name, "description": t.description, "spec_schema": t.schema}
                for t in self.task_types.values()
            ],
        }

    def _task_type(self, name: str) -> TaskType:
        found = self.task_types.get(name)
        if found is None:
            raise InvalidInput.at("taskType", f"plugin {self.name} does not execute task type {name!r}")
        return found

    def validate(self, task_type: str, spec: Any) -> list[FieldError]:
        """The problems ``validate()`` reports for a spec (JSON text or data)."""
        try:
            return self._task_type(task_type).check(spec)
        except InvalidInput as error:
            return list(error.errors)

    def execute(self, task_type: str, spec: Any, *, id: str = "local", attempt: int = 1) -> Any:
        """Runs one task here, as a worker would, and returns its JSON-able
        output; raises :class:`InvalidInput`, :class:`Failed` or
        :class:`Retryable` as the task would fail."""
        return self._task_type(task_type).execute(spec, Task(id, task_type, attempt))

    def export(self) -> type:
        """The ``Executor`` class for componentize-py: assign it in the app
        module, ``Executor = plugin.export()``."""
        plugin = self

        class Executor:
            def describe(self) -> Any:
                return _wit_manifest(plugin)

            def validate(self, task_type: str, spec: str) -> None:
                errors = plugin.validate(task_type, spec)
                if errors:
                    raise _err([_wit_field_error(e) for e in errors])

            def execute(self, task: Any) -> str:
                return _execute(plugin, task)

        Executor.__qualname__ = Executor.__name__ = "Executor"
        return Executor


def _executor_bindings() -> Any:
    from wit_world.exports import executor

    return executor


def _err(value: Any) -> Exception:
    return _host.WitErr(value)


def _wit_field_error(error: FieldError) -> Any:
    return _executor_bindings().FieldError(error.path, error.message)


def _wit_manifest(plugin: Plugin) -> Any:
    ex = _executor_bindings()
    manifest = plugin.manifest()
    return ex.Manifest(
        manifest["name"],
        manifest["version"],
        manifest["description"],
        [ex.TaskType(t["name"], t["description"], json.dumps(t["spec_schema"]))
         for t in manifest["task_types"]],
    )


def _execute(plugin: Plugin, task: Any) -> str:
    ex = _executor_bindings()
    try:
        output = plugin.execute(task.task_type, task.spec, id=task.id, attempt=task.attempt)
        try:
            return json.dumps(output, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as error:
            raise Failed(f"the task's output is not JSON: {error}") from None
    except InvalidInput as error:
        raise _err(ex.TaskError_InvalidInput([_wit_field_error(e) for e in error.errors])) from None
    except Retryable as error:
        raise _err(ex.TaskError_Retryable(str(error))) from None
    except Failed as error:
        raise _err(ex.TaskError_Failed(str(error))) from None
    except ModuleNotFoundError as error:
        raise _err(ex.TaskError_Failed(
            f"{error}: a component holds only the modules imported while app.py loaded at "
            f"build time; import {error.name!r} at the top of app.py (install it first where "
            f"`flowmesh plugin build` looks: the plugin's folder or its .venv) and build again"
        )) from None
    except Exception as error:  # the plugin's own bug: the user sees its type and message
        _host.log("error", "".join(traceback.format_exception(error)).rstrip())
        raise _err(ex.TaskError_Failed(f"{type(error).__name__}: {error}")) from None
