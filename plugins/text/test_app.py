"""Tests of the `text` plugin as plain Python (no server, no worker)."""

import pytest

from app import parse_path, plugin
from flowmesh_sdk import InvalidInput


def test_text_stats():
    out = plugin.execute("text-stats", {"text": "Go, go, GO!\nStop.", "top": 1})
    assert out["words"] == 4
    assert out["sentences"] == 2
    assert out["top_words"] == [{"word": "go", "count": 3}]
    out = plugin.execute("text-stats", {"text": "Go go", "case_sensitive": True})
    assert out["distinct_words"] == 2


def test_regex_extract_and_its_validation():
    out = plugin.execute("regex-extract", {"pattern": r"\d+", "text": "1 22 333", "max_matches": 2})
    assert [m["match"] for m in out["matches"]] == ["1", "22"]
    assert out["truncated"] is True
    errors = plugin.validate("regex-extract", {"pattern": "a(", "text": ""})
    assert [e.path for e in errors] == ["pattern"]


def test_paths():
    assert parse_path('a.b[0][*]["x y"]') == ["a", "b", 0, None, "x y"]
    for bad in ["", ".a", "a..b", "a[", "a[x]"]:
        with pytest.raises(ValueError):
            parse_path(bad)


def test_json_reshape():
    data = {"rows": [{"id": 1}, {"id": 2}], "n": {"m": None}}
    out = plugin.execute("json-reshape", {"data": data, "fields": {"ids": "rows[*].id", "m": "n.m", "x": "rows[5]"}})
    assert out == {"ids": [1, 2], "m": None, "x": None}
    with pytest.raises(InvalidInput) as raised:
        plugin.execute("json-reshape", {"data": data, "fields": {"x": "rows[5]"}, "missing": "error"})
    assert raised.value.errors[0].path == "fields.x"
    assert [e.path for e in plugin.validate("json-reshape", {"data": 1, "fields": {"y": "a..b"}})] == ["fields.y"]
