"""Property-based tests of the config loader: a mutated config file or value gives a valid config or a
ConfigError that names the file (and the line, for invalid JSON), never another exception."""

from __future__ import annotations

import json
import math
import os

from helpers import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfxc.config import ExperimentConfig, load_config
from tfxc.errors import ConfigError

FUZZ = settings(derandomize=True, max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ORIGINAL = open(os.path.join(REPO, "configs", "mach_delicious.json"), "rb").read()


@st.composite
def byte_mutations(draw):
    data = bytearray(ORIGINAL)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        if kind == "replace":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from([b",", b"{", b"}", b"\"", b":", b"[", b"-", b"NaN", b"\xff",
                                                b"\"x\": 1,", b"\"epochs\": 2,"]))
        else:
            del data[at:at + draw(st.integers(1, 6))]
    return bytes(data)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
                           | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def leaf_paths(tree, prefix=()):
    for key, value in tree.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from leaf_paths(value, prefix + (key,))


PATHS = list(leaf_paths(json.loads(ORIGINAL)))


def check(path) -> None:
    try:
        config = load_config(str(path))
    except ConfigError as e:
        assert str(e).startswith(str(path)), str(e)
        return
    assert isinstance(config, ExperimentConfig)
    # Whatever loads is valid and round-trips.
    assert math.isfinite(config.optimizer.learning_rate) and config.trainer.global_batch_size >= 1


@FUZZ
@given(content=byte_mutations())
def test_mutated_config_files(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    check(path)


@FUZZ
@given(where=st.sampled_from(PATHS), value=JSON_VALUES, rename=st.booleans())
def test_mutated_config_values(tmp_path, where, value, rename):
    tree = json.loads(ORIGINAL)
    node = tree
    for key in where[:-1]:
        node = node[key]
    if rename:
        node[where[-1] + "_"] = node.pop(where[-1])
    else:
        node[where[-1]] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tree))
    check(path)


@FUZZ
@given(assignment=st.text(alphabet=st.sampled_from("abcdeghilmnoprstuvwxyz_.=[]{}\"0123456789-,: "), max_size=30)
       | st.sampled_from(["trainer.epochs=", "=3", "trainer..epochs=3", "trainer=3", "model.head={}",
                          "model.head.name=[1]", "eval.ks=[]", "data.dir=x", "runtime=null"]))
def test_arbitrary_set_overrides(assignment):
    try:
        config = load_config(None, ["data.dir=d", assignment])
    except ConfigError as e:
        assert str(e), assignment
        return
    assert isinstance(config, ExperimentConfig)
