"""Property-based tests of the config loader: a mutated config file or value gives a valid config or a
ConfigError that names the file (and the line, for invalid JSON), never another exception; whatever loads
holds only text that can be written as UTF-8 (no lone surrogates from `\\ud800` escapes)."""

from __future__ import annotations

import json
import math
import os

from helpers import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfxc.config import ExperimentConfig, load_config
from tfxc.config.loading import to_dict
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
                                                b"\"x\": 1,", b"\"epochs\": 2,", b"\\ud800", b"\\udfff",
                                                b"\\ud83d\\ude00"]))
        else:
            del data[at:at + draw(st.integers(1, 6))]
    return bytes(data)


# Text with lone surrogates (what `"\\udc80"` in a JSON file decodes to), which st.text leaves out.
SURROGATE_TEXT = st.text(st.characters(categories=["Cs"]) | st.sampled_from("ab.1/\u00e9"), min_size=1, max_size=4)
TEXT = st.text(max_size=8) | SURROGATE_TEXT
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
                           | TEXT, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6)


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
    # ... and is text: its strings become paths and file contents, which must encode.
    json.dumps(to_dict(config), ensure_ascii=False).encode("utf-8")


@FUZZ
@given(content=byte_mutations())
def test_mutated_config_files(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    check(path)


@FUZZ
@given(where=st.sampled_from(PATHS), value=JSON_VALUES, rename=st.booleans())
def test_mutated_config_values(tmp_path, where, value, rename):
    # ensure_ascii (the default) writes a lone surrogate as its JSON escape, as a user's file would hold it.
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
@given(where=st.sampled_from(PATHS), value=SURROGATE_TEXT | st.lists(SURROGATE_TEXT, min_size=1, max_size=2))
def test_strings_with_surrogate_escapes(tmp_path, where, value):
    tree = json.loads(ORIGINAL)
    node = tree
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tree))  # a lone surrogate is written as its `\\udXXX` escape
    check(path)


@FUZZ
@given(assignment=st.text(alphabet=st.sampled_from("abcdeghilmnoprstuvwxyz_.=[]{}\"0123456789-,: \\\udc80"),
                          max_size=30)
       | st.sampled_from(["trainer.epochs=", "=3", "trainer..epochs=3", "trainer=3", "model.head={}",
                          "model.head.name=[1]", "eval.ks=[]", "data.dir=x", "runtime=null",
                          # a non-UTF-8 byte in argv reaches Python as a surrogate escape (\udc80 for b"\x80")
                          "data.train=\udc80.txt", 'data.dir="\\ud800"', 'data.x\udc80=1']))
def test_arbitrary_set_overrides(assignment):
    try:
        config = load_config(None, ["data.dir=d", assignment])
    except ConfigError as e:
        assert str(e), assignment
        return
    assert isinstance(config, ExperimentConfig)
    json.dumps(to_dict(config), ensure_ascii=False).encode("utf-8")
