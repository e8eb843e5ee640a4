"""Shared pytest setup: the --run-slow flag, paths to the shared data sets, two logical CPUs and one directory of
tiny presets for every test process, and the tests that share a fixture kept on one test process."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import tempfile

import pytest

from helpers import SHARED_DATA


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


_PRESETS = pytest.StashKey[str]()  # the presets directory this process made (helpers.tiny_preset), removed at exit


def pytest_unconfigure(config):
    if _PRESETS in config.stash:
        shutil.rmtree(config.stash[_PRESETS], ignore_errors=True)


def pytest_configure(config):
    from helpers import PRESETS_ENV, TEST_CPUS, WITHOUT_TF_ENV

    if PRESETS_ENV not in os.environ:  # the run's first process (xdist's test processes inherit it)
        os.environ[PRESETS_ENV] = config.stash[_PRESETS] = tempfile.mkdtemp(prefix="tfxc-test-presets-")
    if os.environ.get(WITHOUT_TF_ENV):  # a run of tests that never start TensorFlow (tests/suite's probe)
        return
    from tfxc._tf import tf

    # helpers.TEST_CPUS logical CPUs in every test process, set up before TensorFlow's first op: a run of
    # `runtime.cpu_replicas` up to that many (MirroredStrategy on logical CPUs) then needs no process of its
    # own. Single-device runs place their ops on the first, as in a process with one.
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * TEST_CPUS)
    # Collective ops are keyed by (group, instance) process-wide, and every MirroredStrategy numbers its groups
    # from 1 + `_collective_key_base`: a second strategy in one process would meet the first one's instances
    # ("Shape mismatch in the collective instance 100"). TensorFlow's own tests move the base for each strategy
    # (tensorflow/python/distribute/strategy_combinations.py); so does this.
    strategy = tf.distribute.MirroredStrategy
    create = strategy.__init__

    def __init__(self, *args, **kwargs):
        strategy._collective_key_base += 100_000
        create(self, *args, **kwargs)

    strategy.__init__ = __init__


TESTS = os.path.dirname(os.path.abspath(__file__))


def shared_fixtures(item) -> list[str]:
    """The module- and session-scoped fixtures `item` needs that a test file or a sub-directory's conftest
    defines (a model trained and exported once for several tests), as "file::name"."""
    info = getattr(item, "_fixtureinfo", None)
    out = []
    for name, definitions in sorted((info.name2fixturedefs if info else {}).items()):
        for definition in definitions:
            try:
                source = os.path.abspath(inspect.getsourcefile(definition.func))
            except TypeError:
                continue
            if (definition.scope in ("module", "session") and source.startswith(TESTS + os.sep)
                    and source != os.path.join(TESTS, "conftest.py")):
                out.append(f"{os.path.relpath(source, TESTS)}::{name}")
    return out


def group_by_shared_fixtures(items, loadgroup: bool) -> None:
    """Puts the tests that share a module- or session-scoped fixture, directly or through another test that
    shares one, in one xdist group: the whole group runs on one test process (`--dist loadgroup`), so what
    the fixture trains is trained once per run, not once per process that happens to get one of its tests."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    needs = {item.nodeid: shared_fixtures(item) for item in items}
    for keys in needs.values():
        for key in keys[1:]:
            parent[root(key)] = root(keys[0])
    for item in items:
        if needs[item.nodeid]:
            group = re.sub(r"[^\w.-]+", ".", root(needs[item.nodeid][0]))
            item.add_marker(pytest.mark.xdist_group(group))
            if loadgroup and hasattr(item, "_id"):
                # xdist's worker tells the scheduler an item's group by the suffix "@group" of its test id, set
                # with `item._nodeid = ...`; pytest 9 keeps the id in `_id`, so that assignment changes nothing
                # and every test would be scheduled alone. Set it where pytest 9 reads it.
                item._id = type(item._id).parse(f"{item.nodeid}@{group}")


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    if config.pluginmanager.hasplugin("xdist"):
        group_by_shared_fixtures(items, loadgroup=bool(getattr(config.option, "loadgroup", False)))
    if config.getoption("--run-slow"):
        return
    for item in items:
        mark = item.get_closest_marker("slow")
        if mark is not None:
            why = mark.kwargs.get("reason")
            item.add_marker(pytest.mark.skip(reason=f"slow{f' ({why})' if why else ''}: run with --run-slow"))


@pytest.fixture(scope="session")
def shared_data():
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"shared data sets not found at {SHARED_DATA}")
    return SHARED_DATA
