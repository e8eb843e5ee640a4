"""The Python API's guards: a fit into a directory in use changes nothing, non-finite features are refused
with the row and column (and any input, fuzzed, ranks or is refused in one error), and the README's
documented paths (`fit` with the recipe on text, `val_percent` 0, evaluating from another directory) run."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.sparse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers import run_cli, tiny_config
from test_api import CONFIG, synthetic

import tfxc
from tfxc.errors import DataError, TfxcError
from tfxc.model_dir import ModelDir

ONE_EPOCH = {**CONFIG, "trainer": {**CONFIG["trainer"], "epochs": 1}}


def test_a_fit_into_a_directory_in_use_changes_nothing(tmp_path):
    """D1 (API): the lock comes before the sources are written and converted."""
    (x, y), _ = synthetic(num_train=200, num_test=10)
    model_dir = str(tmp_path / "m")
    lock = ModelDir(model_dir).lock("a tfxc.fit run")  # another fit, training
    try:
        with pytest.raises(TfxcError, match="is in use by a tfxc.fit run"):
            tfxc.fit(x, y, config=ONE_EPOCH, model_dir=model_dir)
    finally:
        lock.release()
    assert sorted(os.listdir(model_dir)) == [".lock"]  # no sources/, no tfrecords/


def test_a_second_fit_on_other_arrays_is_refused_and_the_first_data_stays(tmp_path):
    """D4 (API): a refused fit keeps the model's conversion; a fit with the original arrays resumes."""
    (x, y), (xt, yt) = synthetic(num_train=200, num_test=50)
    model_dir = str(tmp_path / "m")
    model = tfxc.fit(x, y, config=ONE_EPOCH, model_dir=model_dir)
    stats = open(os.path.join(model_dir, "tfrecords", "stats.json")).read()
    x2 = x.copy()
    x2.data = x2.data * 2.0  # same shape, other data
    with pytest.raises(TfxcError, match="trained on other data"):
        tfxc.fit(x2, y, config=ONE_EPOCH, model_dir=model_dir)
    assert open(os.path.join(model_dir, "tfrecords", "stats.json")).read() == stats
    again = tfxc.fit(x, y, config=ONE_EPOCH, model_dir=model_dir)  # nothing left to train: the same model
    np.testing.assert_array_equal(again.predict(xt, k=3).ids, model.predict(xt, k=3).ids)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    (x, y), (xt, yt) = synthetic(num_train=300, num_test=60)
    model_dir = str(tmp_path_factory.mktemp("api") / "m")
    tfxc.fit(x, y, config=ONE_EPOCH, model_dir=model_dir, X_test=xt, Y_test=yt)
    return model_dir, xt, yt


@pytest.mark.parametrize("backend", ["model_dir", "saved_model"])
def test_non_finite_features_are_refused_with_the_row_and_column(trained, tmp_path, backend):
    """D2: NaN, inf and float64 values beyond float32's range; before, the model directory ranked garbage."""
    model_dir, xt, yt = trained
    model = tfxc.load(model_dir if backend == "model_dir" else tfxc.load(model_dir).export(str(tmp_path / "sm")))
    clean = model.predict(xt[:3], k=3).ids
    x = xt[:3].copy().astype(np.float64)
    x.data[x.indptr[1]] = np.nan  # row 1's first value
    with pytest.raises(DataError, match=r"row 1, column \d+: the value is NaN"):
        model.predict(x, k=3)
    x.data[:] = 1e39  # finite in float64, infinite in float32
    with pytest.raises(DataError, match=r"row 0, column \d+: the value is infinite"):
        model.evaluate(x, yt[:3])
    dense = xt[:3].toarray()
    dense[2, 0] = -np.inf
    with pytest.raises(DataError, match=r"row 2, column 0"):
        model.predict(dense, k=3)
    np.testing.assert_array_equal(model.predict(xt[:3], k=3).ids, clean)


def test_evaluate_sizes_labels_by_the_model_and_refuses_ids_beyond_it(trained):
    """Labels are as wide as the model's label space (data.csr.labels_csr, the readers' rule): lists, names and
    matrices of any width within it agree, and an id the model cannot know is named instead of miscounted."""
    model_dir, xt, yt = trained
    model = _loaded(model_dir)
    lists = [yt.indices[yt.indptr[i]:yt.indptr[i + 1]].tolist() for i in range(yt.shape[0])]
    names = [[model.label_names[i] for i in row] for row in lists]
    wider = scipy.sparse.csr_matrix(yt)
    wider.resize((yt.shape[0], model.num_labels + 10))
    expected = model.evaluate(xt, yt)
    assert model.evaluate(xt, lists) == model.evaluate(xt, names) == model.evaluate(xt, wider) == expected
    with pytest.raises(DataError, match=rf"Y, row 1: label id {model.num_labels} is out of range \[0, "
                                        rf"{model.num_labels}\)"):
        model.evaluate(xt[:2], [[0], [model.num_labels]])


def test_the_recipe_fits_text_without_ids(tmp_path):
    """Item 12: `fit({"recipe": True}, texts, labels)` once failed on the validation split's missing ids."""
    texts = [f"{word} {other} words here" for word in ("red", "green", "blue") for other in range(40)]
    labels = [[word] for word in ("red", "green", "blue") for _ in range(40)]
    model = tfxc.fit(texts, labels, config={"recipe": True, "trainer": {"epochs": 2}}, model_dir=str(tmp_path / "m"))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["data"]["val_percent"] == 10 and config["trainer"]["select_metric"]
    assert model.predict(["red 3 words here"], k=1).labels[0] == ["red"]


def test_the_recipe_without_a_validation_split_selects_nothing(tmp_path):
    """Item 12: `"val_percent": 0` with the recipe trains on all of train instead of failing."""
    (x, y), _ = synthetic(num_train=300, num_test=10)
    tfxc.fit(x, y, config={"recipe": True, "data": {"val_percent": 0}, "trainer": {"epochs": 1}},
             model_dir=str(tmp_path / "m"))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["data"]["val_percent"] == 0 and not config["trainer"]["select_metric"]
    assert not config["trainer"]["patience"]


def test_a_model_trained_with_relative_paths_evaluates_from_another_directory(tmp_path):
    """Item 12: config.json keeps absolute data paths, so `tfxc.evaluate --model-dir M` works from anywhere."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    config = json.loads(open(tiny_config(tmp_path, trainer={"train_steps": 8})).read())
    config["data"]["dir"] = "data"  # relative to where training runs
    (here / "c.json").write_text(json.dumps(config))
    run_cli("tfxc.train", "--config", "c.json", "--model-dir", "m", cwd=str(here))
    stored = json.loads((here / "m" / "config.json").read_text())
    assert stored["data"]["dir"] == str(here / "data")
    result = run_cli("tfxc.evaluate", "--model-dir", str(here / "m"), "--json", cwd=str(elsewhere))
    assert "P@1" in json.loads(result.stdout.strip().splitlines()[-1])
    # The original command still resumes: the stored absolute path is the relative one it gave.
    assert "resumed from" in run_cli("tfxc.train", "--config", "c.json", "--model-dir", "m", cwd=str(here)).stderr


# Derandomized: the same examples every run; a failure reproduces.
FUZZ = settings(derandomize=True, max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ODD_VALUES = st.sampled_from([np.nan, np.inf, -np.inf, 1e39, -1e39, 1e-45, -0.0, 3.4e38, 0.0, 1.0, -2.5])


@st.composite
def feature_inputs(draw):
    """What a caller may hand `predict`: dense or sparse, float32/float64/int, odd values in random cells,
    0 to 6 rows, as wide as the model or narrower or wider, or not a matrix at all."""
    kind = draw(st.sampled_from(["dense", "csr", "coo", "list", "vector", "strings", "empty"]))
    rows, width = draw(st.integers(0, 6)), draw(st.sampled_from([400, 399, 401, 10, 1000]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    x = np.where(rng.random((rows, width)) < 0.05, rng.random((rows, width)), 0.0)
    for _ in range(draw(st.integers(0, 3))):
        if rows:
            x[rng.integers(rows), rng.integers(width)] = draw(ODD_VALUES)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or 1e39 cast to an integer or float32 is the point
        x = x.astype(draw(st.sampled_from([np.float32, np.float64, np.int64])))
    if kind == "dense":
        return x
    if kind in ("csr", "coo"):
        return scipy.sparse.csr_matrix(x) if kind == "csr" else scipy.sparse.coo_matrix(x)
    if kind == "list":
        return x.tolist()
    if kind == "vector":
        return x.ravel()
    if kind == "strings":
        return ["some words"] * rows
    return np.zeros((rows, 0))


@FUZZ
@given(x=feature_inputs(), k=st.integers(1, 60))
def test_any_feature_input_ranks_or_is_refused_in_one_error(trained, x, k):
    """The API's inputs, fuzzed: a ranking with finite scores and valid ids, or a TfxcError/ValueError
    naming what is wrong; never a NaN score, an id out of range or another exception."""
    model = _loaded(trained[0])
    try:
        pred = model.predict(x, k=k)
    except (TfxcError, ValueError) as e:
        assert str(e)
        return
    assert pred.ids.shape[1] == min(k, model.num_labels) and np.isfinite(pred.scores).all()
    assert ((pred.ids >= 0) & (pred.ids < model.num_labels)).all()


_LOADED = {}


def _loaded(model_dir):
    if model_dir not in _LOADED:
        _LOADED[model_dir] = tfxc.load(model_dir)
    return _LOADED[model_dir]
