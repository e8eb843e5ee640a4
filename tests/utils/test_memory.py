"""peak_rss_gb reports the process's own peak, not the parent's size at the fork."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import numpy as np
from helpers import REPO

CHILD = ("import runpy; print(runpy.run_path({path!r})['peak_rss_gb']())")


def test_child_of_a_large_process_reports_its_own_peak():
    ballast = np.ones(2**26)  # 512 MiB resident in this (parent) process
    path = os.path.join(REPO, "tfxc", "utils", "memory.py")
    out = subprocess.run([sys.executable, "-c", CHILD.format(path=path)], capture_output=True, text=True,
                         check=True, timeout=60)
    child_gb = float(out.stdout)
    assert ballast.sum() == 2**26
    # ru_maxrss of the child would be at least this process's size (what the old measure reported).
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20 > 0.5
    assert 0.001 < child_gb < 0.2


def test_own_allocation_is_counted():
    from tfxc.utils.memory import peak_rss_gb

    before = peak_rss_gb()
    ballast = np.ones(2**25)  # 256 MiB more than anything this process held before, once touched
    ballast += 1
    assert peak_rss_gb() >= before
    assert peak_rss_gb() > ballast.nbytes / 2**30
