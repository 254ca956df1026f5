"""What machine a benchmark ran on, for its JSON: numbers mean little without it.

The development VM moved to a faster host between sessions (same 2 cores, about 2.5x less
CPU time per render and per training step), which only the CPU model line showed.
"""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name and its widest vector units, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    units = [unit for unit in ("avx2", "avx512f", "amx_tile") if unit in flags]
    name = fields.get("model name") or platform.processor() or platform.machine()
    return f"{name} ({', '.join(units)})" if units else name


def describe() -> dict:
    """CPU model, CPU count, Python and the load average right now."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average": load}
