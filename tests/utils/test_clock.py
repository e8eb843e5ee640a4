"""The process age behind the start-up log line."""

from __future__ import annotations

import subprocess
import sys
import time

from tfxc.utils.clock import process_age_s


def test_process_age_grows_with_the_clock_and_starts_near_zero_in_a_new_process():
    first = process_age_s()
    time.sleep(0.2)
    assert 0.15 < process_age_s() - first < 5
    out = subprocess.run([sys.executable, "-c", "from tfxc.utils.clock import process_age_s; print(process_age_s())"],
                         capture_output=True, text=True, check=True, timeout=60)
    assert 0 <= float(out.stdout) < 10              # the interpreter's start-up, not this test run's age
