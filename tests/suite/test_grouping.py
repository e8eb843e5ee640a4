"""The suite's grouping (tests/conftest.py): tests sharing a module- or session-scoped fixture run on one
test process under `--dist loadgroup`, so the fixture is built once a run. pytest 9 keeps a test's id where
xdist 3.8 does not set it; without the conftest's workaround the six probe tests spread over both processes
and the fixture is built twice."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import WITHOUT_TF_ENV

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shared_fixture_probe.py")


def test_tests_sharing_a_module_fixture_build_it_on_one_process_once(tmp_path):
    log = tmp_path / "built.log"
    env = {**os.environ, "PROBE_LOG": str(log), WITHOUT_TF_ENV: "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", PROBE, "-p", "no:cacheprovider", "-q",
                           "--numprocesses=2", "--dist=loadgroup", "-o", "addopts="],
                          cwd=os.path.dirname(os.path.dirname(PROBE)), env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "6 passed" in proc.stdout, proc.stdout[-3000:]
    assert len(log.read_text().splitlines()) == 1, log.read_text()
