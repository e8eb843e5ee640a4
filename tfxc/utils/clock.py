"""How long this process has existed (start-up cost: interpreter, imports, data checks, building, tracing)."""

from __future__ import annotations

import os
import time

_IMPORTED_AT = time.time()  # the fallback where /proc is missing: counts from tfxc's first import


def process_age_s() -> float:
    """Seconds since this process started (Linux: from /proc, so the interpreter's start-up counts too)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            # Field 22 (starttime, clock ticks after boot); the command name (field 2) may hold spaces.
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time() - _IMPORTED_AT
