"""A Python plugin that misbehaves on purpose, one task type per way.

Every task gets a fresh instance, so each task type is a separate attack on
the sandbox: the worker must fail that task alone, with the error kind a Rust
guest doing the same gets, and keep serving.
"""

from __future__ import annotations

import os
import socket
import sys

from flowmesh_sdk import Plugin, Retryable, log

plugin = Plugin("py-hostile", version="0.1.0", description="Misbehaves on purpose (tests only).")

ANY = {"type": "object"}


@plugin.task_type("py-loop", description="Never returns.", schema=ANY)
def loop(spec: dict) -> dict:
    n = 0
    while True:
        n += 1


@plugin.task_type("py-grow", description="Allocates until something stops it.", schema=ANY)
def grow(spec: dict) -> dict:
    hoard = []
    while True:
        hoard.append(bytearray(8 << 20))


@plugin.task_type("py-raise", description="Raises an exception it does not catch.", schema=ANY)
def explode(spec: dict) -> dict:
    log.info("about to fail")
    return {"ratio": 1 / int(spec.get("zero", 0))}


@plugin.task_type("py-huge-output", description="Returns an output far over the limit.", schema=ANY)
def huge(spec: dict) -> dict:
    return {"blob": "x" * (int(spec.get("megabytes", 8)) << 20)}


@plugin.task_type("py-missing-module", description="Imports a module the component does not hold.", schema=ANY)
def missing(spec: dict) -> dict:
    import numpy  # noqa: F401  (not bundled: the component has the standard library only)

    return {}


@plugin.task_type("py-recurse", description="Recurses without end.", schema=ANY)
def recurse(spec: dict) -> dict:
    sys.setrecursionlimit(1_000_000)

    def down(n: int) -> int:
        return down(n + 1) + 1

    return {"depth": down(0)}


@plugin.task_type("py-retryable", description="Fails in a way worth retrying, then succeeds.", schema=ANY)
def flaky(spec: dict, task) -> dict:
    if task.attempt < 2:
        raise Retryable("the dependency is busy; try again")
    return {"attempt": task.attempt}


@plugin.task_type("py-print", description="Writes to stdout and stderr.", schema=ANY)
def chatty(spec: dict) -> dict:
    print("to stdout")
    print("to stderr", file=sys.stderr)
    return {"printed": 2}


@plugin.task_type("py-sandbox", description="Looks around: environment, files, network.", schema=ANY)
def look_around(spec: dict, task) -> dict:
    seen: dict = {"environ": dict(os.environ), "argv": list(sys.argv)}
    try:
        seen["root"] = sorted(os.listdir("/"))
    except OSError as error:
        seen["root"] = f"{type(error).__name__}"
    try:
        seen["etc_passwd"] = open("/etc/passwd").read()[:20]
    except OSError as error:
        seen["etc_passwd"] = f"{type(error).__name__}"
    try:
        socket.create_connection(("127.0.0.1", 80), timeout=1)
        seen["socket"] = "connected"
    except Exception as error:  # noqa: BLE001 (whatever the sandbox raises)
        seen["socket"] = f"{type(error).__name__}"
    path = task.scratch_dir / "note.txt"
    path.write_text("scratch works")
    seen["scratch"] = path.read_text()
    return seen


Executor = plugin.export()
