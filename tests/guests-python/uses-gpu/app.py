"""A Python plugin that reads its assigned GPUs (flowmesh:host/gpu)."""

from __future__ import annotations

from flowmesh_sdk import Plugin, gpu

plugin = Plugin("py-gpu", version="0.1.0", description="Lists its GPUs (tests only).")


@plugin.task_type("py-gpu", description="Lists the GPUs assigned to the task.", schema={"type": "object"})
def devices(spec: dict) -> list:
    return [f"{d.uuid} {d.name} {d.memory_total_bytes >> 30} GiB" for d in gpu.assigned()]


Executor = plugin.export()
