"""Run only by tests/suite/test_grouping.py (the file name keeps the suite from collecting it): six tests that
share one module-scoped fixture, which writes a line to $PROBE_LOG each time it is built."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def built_once():
    with open(os.environ["PROBE_LOG"], "a") as log:
        log.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}\n")
    return True


@pytest.mark.parametrize("i", range(6))
def test_shares_the_fixture(built_once, i):
    assert built_once
