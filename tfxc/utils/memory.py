"""Peak resident memory of this process."""

from __future__ import annotations

import resource


def peak_rss_gb() -> float:
    """This process's peak resident set size in GiB.

    Reads VmHWM from /proc/self/status where it exists. ru_maxrss is not
    used first because Linux carries it across execve: a process started
    by a large parent reports at least the parent's size at the fork.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 2**20
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def current_rss_bytes() -> int:
    """This process's resident set size now, in bytes (VmRSS; 0 where /proc is not there)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024
    except (OSError, StopIteration, ValueError):
        return 0
