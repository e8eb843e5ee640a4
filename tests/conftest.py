"""Shared pytest setup: the --run-slow flag and paths to the shared data sets."""

from __future__ import annotations

import os

import pytest

from helpers import SHARED_DATA


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data():
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"shared data sets not found at {SHARED_DATA}")
    return SHARED_DATA
