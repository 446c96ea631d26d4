"""The SDK as plain Python: schemas from dataclasses, reading specs back with
field paths, the errors a task raises, and the contract in plain data."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pytest

from flowmesh_sdk import (
    Failed,
    FieldError,
    InvalidInput,
    Plugin,
    Retryable,
    Task,
    in_worker,
    log,
    progress,
    schema_of,
)
from flowmesh_sdk._schema import from_json, to_json


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Inner:
    x: int
    tags: list[str] = field(default_factory=list)


@dataclass
class Spec:
    """A spec with one of everything."""

    name: str = field(metadata={"description": "Who.", "minLength": 1})
    count: int = field(default=1, metadata={"minimum": 1})
    ratio: float = 0.5
    loud: bool = False
    colour: Colour = Colour.RED
    mode: Literal["a", "b"] = "a"
    inner: Optional[Inner] = None
    items: list[Inner] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)
    anything: Any = None


def test_the_schema_follows_the_dataclass():
    schema = schema_of(Spec)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name"]
    assert schema["description"] == "A spec with one of everything."
    props = schema["properties"]
    assert props["name"] == {"type": "string", "description": "Who.", "minLength": 1}
    assert props["count"] == {"type": "integer", "minimum": 1, "default": 1}
    assert props["ratio"]["type"] == "number"
    assert props["loud"]["type"] == "boolean"
    assert props["colour"] == {"enum": ["red", "blue"], "default": "red"}
    assert props["mode"]["enum"] == ["a", "b"]
    assert props["inner"]["type"] == ["object", "null"]
    assert props["inner"]["required"] == ["x"]
    assert props["items"]["items"]["properties"]["tags"]["items"] == {"type": "string"}
    assert props["extra"]["additionalProperties"] == {"type": "integer"}
    assert props["anything"] == {"default": None}
    json.dumps(schema)


def test_a_spec_is_read_back_into_the_dataclass():
    spec = from_json(Spec, {"name": "n", "colour": "blue", "inner": {"x": 2},
                            "items": [{"x": 1, "tags": ["t"]}], "extra": {"k": 3}, "count": 2.0})
    assert spec.colour is Colour.BLUE
    assert spec.inner == Inner(2)
    assert spec.items == [Inner(1, ["t"])]
    assert spec.count == 2 and isinstance(spec.count, int)
    assert to_json(spec)["colour"] == "blue"


def test_every_problem_is_named_by_its_path():
    with pytest.raises(InvalidInput) as raised:
        from_json(Spec, {"count": "x", "colour": "green", "items": [{"x": 1}, {"tags": [1]}],
                         "extra": {"k": "v"}, "unknown": 1, "loud": 1})
    paths = [e.path for e in raised.value.errors]
    assert paths == ["unknown", "name", "count", "loud", "colour", "items[1].x",
                     "items[1].tags[0]", "extra.k"]
    messages = {e.path: e.message for e in raised.value.errors}
    assert messages["name"] == "is required"
    assert messages["count"] == "must be an integer, not a string"
    assert messages["loud"] == "must be a boolean, not an integer"
    assert "'red', 'blue'" in messages["colour"]


@dataclass
class Bad:
    when: set[int]


def test_unsupported_types_are_refused_when_the_plugin_is_defined():
    with pytest.raises(TypeError, match="no JSON Schema"):
        schema_of(Bad)


def test_a_spec_class_defined_in_a_function_is_refused_with_what_to_do():
    plugin = Plugin("p", version="0", description="")

    @dataclass
    class Local:
        a: int

    with pytest.raises(TypeError, match="module level"):
        @plugin.task_type("local", description="")
        def local(spec: Local) -> dict:
            return {}


@dataclass
class Add:
    a: int
    b: int


def make_plugin() -> Plugin:
    plugin = Plugin("demo", version="1.2.3", description="Demo.")

    @plugin.task_type("add", description="Adds.")
    def add(spec: Add, task: Task) -> dict:
        log.info(f"adding on attempt {task.attempt}")
        progress(0.5, "half way")
        return {"sum": spec.a + spec.b, "task": task.id}

    @add.validate
    def _check(spec: Add) -> list[FieldError]:
        return [FieldError("b", "must not be negative")] if spec.b < 0 else []

    @plugin.task_type("raw", description="Takes a dict.", schema={"type": "object"})
    def raw(spec: dict) -> Any:
        if spec.get("fail") == "retry":
            raise Retryable("busy")
        if spec.get("fail") == "now":
            raise Failed("no")
        return spec

    return plugin


def test_the_manifest_lists_the_task_types():
    manifest = make_plugin().manifest()
    assert manifest["name"] == "demo" and manifest["version"] == "1.2.3"
    assert [t["name"] for t in manifest["task_types"]] == ["add", "raw"]
    assert manifest["task_types"][0]["spec_schema"]["required"] == ["a", "b"]


def test_execute_checks_the_spec_then_runs():
    plugin = make_plugin()
    assert plugin.execute("add", '{"a": 1, "b": 2}', id="t1") == {"sum": 3, "task": "t1"}
    assert plugin.validate("add", {"a": 1, "b": -1}) == [FieldError("b", "must not be negative")]
    assert [e.path for e in plugin.validate("add", '{"a": 1}')] == ["b"]
    assert [e.path for e in plugin.validate("add", "not json")] == [""]
    assert [e.path for e in plugin.validate("nope", {})] == ["taskType"]
    with pytest.raises(InvalidInput):
        plugin.execute("add", {"a": 1, "b": -1})
    with pytest.raises(Retryable, match="busy"):
        plugin.execute("raw", {"fail": "retry"})
    with pytest.raises(Failed, match="no"):
        plugin.execute("raw", {"fail": "now"})
    assert plugin.execute("raw", {"x": [1]}) == {"x": [1]}


def test_declarations_are_checked():
    plugin = Plugin("p", version="0", description="")
    with pytest.raises(ValueError, match="lowercase"):
        plugin.task_type("Bad_Name", description="")
    with pytest.raises(TypeError, match="annotate the spec"):
        @plugin.task_type("untyped", description="")
        def untyped(spec):
            return spec
    with pytest.raises(ValueError, match="declares no task type"):
        plugin.manifest()
    with pytest.raises(ValueError):
        Plugin("Nope", version="0", description="")


def test_outside_a_worker_logs_go_to_logging_and_capabilities_say_so(caplog):
    from flowmesh_sdk import llm

    assert not in_worker()
    with caplog.at_level("DEBUG", logger="flowmesh"):
        make_plugin().execute("add", {"a": 1, "b": 1})
    assert "adding on attempt 1" in caplog.text
    assert "progress 50%: half way" in caplog.text
    with pytest.raises(Failed, match="only available inside a FlowMesh worker"):
        llm.models()


def test_the_export_is_a_class_named_executor():
    executor = make_plugin().export()
    assert executor.__name__ == "Executor"
    assert {"describe", "validate", "execute"} <= set(dir(executor))
