"""The `text` FlowMesh plugin: text processing with the standard library.

Three task types:

- ``text-stats``: characters, words, lines and sentences of a text, and its
  most frequent words;
- ``regex-extract``: every match of a regular expression, with its groups;
- ``json-reshape``: a new JSON object made of values picked from a document
  by paths (``items[*].name``, ``meta.owner``).

Built into a component with ``flowmesh plugin build`` (componentize-py); run
as plain Python by its tests (``test_app.py``).
"""

from __future__ import annotations

import heapq  # noqa: F401  Counter.most_common imports it when called: a component holds only modules imported at build time
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from flowmesh_sdk import FieldError, InvalidInput, Plugin, Task, log, progress

plugin = Plugin(
    "text",
    version="0.1.0",
    description="Text processing with the Python standard library: statistics, regular expressions, JSON reshaping.",
)

MAX_TEXT = 1 << 20
"""The longest text a task takes, in characters (1 Mi)."""

_WORD = re.compile(r"\w+(?:['’-]\w+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


@dataclass
class StatsSpec:
    """Spec of a `text-stats` task."""

    text: str = field(metadata={"description": "The text to measure.", "maxLength": MAX_TEXT})
    top: int = field(default=10, metadata={
        "description": "How many of the most frequent words to list (0 for none).",
        "minimum": 0, "maximum": 1000,
    })
    case_sensitive: bool = field(default=False, metadata={
        "description": "Count `The` and `the` as different words.",
    })


@plugin.task_type("text-stats", description="Counts characters, words, lines and sentences, and lists the most frequent words.")
def text_stats(spec: StatsSpec) -> dict[str, Any]:
    words = _WORD.findall(spec.text)
    counted = Counter(words if spec.case_sensitive else (w.lower() for w in words))
    lines = spec.text.splitlines()
    log.info(f"{len(words)} words in {len(lines)} lines")
    return {
        "characters": len(spec.text),
        "words": len(words),
        "distinct_words": len(counted),
        "lines": len(lines),
        "blank_lines": sum(1 for line in lines if not line.strip()),
        "sentences": len(_SENTENCE_END.findall(spec.text)),
        "top_words": [{"word": w, "count": n} for w, n in counted.most_common(spec.top)] if spec.top else [],
    }


@dataclass
class ExtractSpec:
    """Spec of a `regex-extract` task."""

    pattern: str = field(metadata={"description": "A Python regular expression.", "minLength": 1, "maxLength": 10_000})
    text: str = field(metadata={"description": "The text to search.", "maxLength": MAX_TEXT})
    ignore_case: bool = field(default=False, metadata={"description": "Match letters of either case."})
    multiline: bool = field(default=False, metadata={"description": "`^` and `$` match at every line."})
    max_matches: int = field(default=1000, metadata={
        "description": "Stop after this many matches.", "minimum": 1, "maximum": 100_000,
    })


def _compile(spec: ExtractSpec) -> re.Pattern[str]:
    flags = (re.IGNORECASE if spec.ignore_case else 0) | (re.MULTILINE if spec.multiline else 0)
    try:
        return re.compile(spec.pattern, flags)
    except re.error as error:
        raise InvalidInput.at("pattern", f"is not a valid regular expression: {error}") from None


@plugin.task_type("regex-extract", description="Lists every match of a regular expression in a text, with its groups.")
def regex_extract(spec: ExtractSpec) -> dict[str, Any]:
    pattern = _compile(spec)
    matches = []
    truncated = False
    for found in pattern.finditer(spec.text):
        if len(matches) == spec.max_matches:
            truncated = True
            break
        matches.append({
            "match": found.group(0),
            "start": found.start(),
            "end": found.end(),
            "groups": list(found.groups()),
            "named": found.groupdict(),
        })
    return {"count": len(matches), "truncated": truncated, "matches": matches}


@regex_extract.validate
def _check_pattern(spec: ExtractSpec) -> None:
    _compile(spec)


@dataclass
class ReshapeSpec:
    """Spec of a `json-reshape` task."""

    data: Any = field(metadata={"description": "The JSON document to pick values from."})
    fields: dict[str, str] = field(metadata={
        "description": "Output field → path into `data`: names and indexes (`a.b[0].c`), `[*]` for every item of a list.",
        "minProperties": 1, "maxProperties": 1000,
    })
    missing: Literal["null", "error"] = field(default="null", metadata={
        "description": "What a path that is not in `data` gives: null, or an error.",
    })


_STEP = re.compile(r"\.?([A-Za-z_][\w-]*)|\[(\d+|\*)\]|\[\"([^\"]*)\"\]")


def parse_path(path: str) -> list[str | int | None]:
    """``a.b[0][*]["x y"]`` → ``["a", "b", 0, None, "x y"]`` (None: every item)."""
    steps: list[str | int | None] = []
    at = 0
    while at < len(path):
        found = _STEP.match(path, at)
        if not found or found.end() == at or (at == 0 and path.startswith(".")):
            raise ValueError(f"cannot read the path from character {at + 1}: {path[at:at + 20]!r}")
        name, index, quoted = found.groups()
        if name is not None:
            steps.append(name)
        elif quoted is not None:
            steps.append(quoted)
        else:
            steps.append(None if index == "*" else int(index))
        at = found.end()
    if not steps:
        raise ValueError("is empty")
    return steps


class _Missing(Exception):
    pass


def _pick(value: Any, steps: list[str | int | None]) -> Any:
    if not steps:
        return value
    step, rest = steps[0], steps[1:]
    if step is None:
        if not isinstance(value, list):
            raise _Missing
        return [_pick(item, rest) for item in value]
    if isinstance(step, int):
        if not isinstance(value, list) or step >= len(value):
            raise _Missing
        return _pick(value[step], rest)
    if not isinstance(value, dict) or step not in value:
        raise _Missing
    return _pick(value[step], rest)


@plugin.task_type("json-reshape", description="Builds a JSON object from values picked out of a document by paths.")
def json_reshape(spec: ReshapeSpec, task: Task) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, (name, path) in enumerate(spec.fields.items()):
        try:
            out[name] = _pick(spec.data, parse_path(path))
        except _Missing:
            if spec.missing == "error":
                raise InvalidInput.at(f"fields.{name}", f"{path!r} is not in data") from None
            out[name] = None
        progress((number + 1) / len(spec.fields))
    return out


@json_reshape.validate
def _check_paths(spec: ReshapeSpec) -> list[FieldError]:
    errors = []
    for name, path in spec.fields.items():
        try:
            parse_path(path)
        except ValueError as error:
            errors.append(FieldError(f"fields.{name}", f"{path!r} {error}"))
    return errors


Executor = plugin.export()
