"""The GPUs assigned to the running task (``flowmesh:host/gpu``).

A plugin that uses this module imports the interface in its world
(``import flowmesh:host/gpu@0.1.0;`` in ``wit/world.wit``); only workers where
NVML found devices run it. A task that requests GPUs
(``resources.hardware.gpu``) gets whole devices, exclusively.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _host
from ._errors import Failed


@dataclass(frozen=True)
class Device:
    """One GPU as NVML reports it."""

    index: int
    uuid: str
    name: str
    memory_total_bytes: int
    memory_free_bytes: int
    utilization_percent: int


def assigned() -> list[Device]:
    """The devices assigned to this task, with fresh readings; empty when the
    task requested no GPU."""
    gpu = _host.capability("gpu")
    try:
        devices = gpu.assigned()
    except _host.WitErr as error:
        raise Failed(f"NVML failed: {getattr(error.value, 'value', error.value)}") from None
    return [
        Device(d.index, d.uuid, d.name, d.memory_total_bytes, d.memory_free_bytes,
               d.utilization_percent)
        for d in devices
    ]
