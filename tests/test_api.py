"""The Python API: the README example runs; fit/predict/evaluate agree with the CLIs on the same data; text
in, label names out; a SavedModel answers like the model directory; bad inputs are clear errors."""

from __future__ import annotations

import csv
import json
import os
import re

import numpy as np
import pytest
import scipy.sparse
from helpers import REPO, run_cli

import tfxc
from tfxc.errors import DataError


def test_the_readme_example_runs(shared_data, tmp_path, monkeypatch, capsys):
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    section = readme.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('"runs/', f'"{tmp_path}/').replace("../shared/data", shared_data)
    monkeypatch.chdir(REPO)
    exec(compile(code, "README.md (Python API)", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    # fit first reports the recipe it resolved the thin config with: a heading, then indented reasons.
    assert out[0] == "tfxc.fit: the recipe (tfxc.recipe):" and "time (estimated" in "\n".join(out)
    printed = [line for line in out if not line.startswith(("tfxc.fit: ", "  "))]
    assert printed[0].startswith("[") and 0 < float(printed[-1]) <= 100


def synthetic(num_train=600, num_test=150, seed=5):
    from tfxc.config import load_config
    from tfxc.data.csr import rows_to_csr
    from tfxc.data.synthetic import SyntheticXmc

    cfg = load_config(None, ["data.dir=unused", f"data.synthetic.num_train={num_train}",
                             f"data.synthetic.num_test={num_test}", "data.synthetic.num_features=400",
                             "data.synthetic.num_labels=50", f"data.synthetic.seed={seed}"]).data.synthetic
    gen = SyntheticXmc(cfg)
    return [rows_to_csr(gen.rows(split), gen.num_features, gen.num_labels) for split in ("train", "test")]


CONFIG = {"model": {"encoder": {"name": "sparse_bow", "embedding_dim": 32}, "head": {"name": "one_vs_all"}},
          "optimizer": {"name": "adam", "learning_rate": 0.01},
          "trainer": {"global_batch_size": 64, "epochs": 3, "steps_per_loop": 9, "log_every_steps": 9,
                      "checkpoint_every_steps": 27}}


def test_fit_predict_evaluate_agree_with_training_and_the_saved_model(tmp_path):
    (x, y), (xt, yt) = synthetic()
    model_dir = str(tmp_path / "model")
    model = tfxc.fit(x, y, config=CONFIG, model_dir=model_dir, X_test=xt, Y_test=yt)
    assert (model.num_features, model.num_labels) == (400, 50)
    # The API's evaluation of the test pair equals the trainer's final evaluation of the converted split.
    trained = json.loads(open(os.path.join(model_dir, "metrics.json")).read())
    evaluated = model.evaluate(xt, yt)
    for key in ("P@1", "P@5", "nDCG@5", "PSP@5", "R@5"):
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-9), key
    assert evaluated["P@1"] > 30  # learnable synthetic labels; chance is about 2 %

    pred = model.predict(xt, k=4)
    assert pred.ids.shape == pred.scores.shape == (150, 4) and pred.ids.dtype == np.int64
    assert np.all(np.diff(pred.scores, axis=1) <= 0) and pred.labels[0] == [str(i) for i in pred.ids[0]]
    csr = model.predict(xt, k=4, as_csr=True)
    assert csr.shape == (150, 50) and csr.nnz == 600
    np.testing.assert_allclose(csr[np.arange(150)[:, None], pred.ids].toarray(), pred.scores)
    # Lists of label ids work as well as a matrix; dense features as well as sparse.
    lists = [yt.indices[yt.indptr[i]:yt.indptr[i + 1]].tolist() for i in range(yt.shape[0])]
    assert model.evaluate(xt.toarray(), lists)["P@1"] == pytest.approx(evaluated["P@1"])

    served = tfxc.load(model.export(str(tmp_path / "saved")))
    again = served.predict(xt, k=4)
    np.testing.assert_allclose(again.scores, pred.scores, rtol=1e-5, atol=1e-6)
    assert (again.ids == pred.ids).mean() > 0.99
    assert served.evaluate(xt, yt)["PSP@5"] == pytest.approx(evaluated["PSP@5"], abs=0.05)

    # A second fit on the same data resumes the finished model instead of converting and training again.
    assert tfxc.fit(x, y, config=CONFIG, model_dir=model_dir, X_test=xt, Y_test=yt).evaluate(xt, yt) == evaluated


def test_text_in_label_names_out(shared_data, tmp_path):
    records = [json.loads(line) for line in open(f"{shared_data}/banking77/train.jsonl")][:3000]
    texts, labels = [r["text"] for r in records], [r["labels"] for r in records]
    config = {**CONFIG, "model": {"encoder": {"name": "sparse_bow", "embedding_dim": 64},
                                  "head": {"name": "softmax"}},
              "trainer": {**CONFIG["trainer"], "epochs": 8}}
    model = tfxc.fit(texts, labels, config=config, model_dir=str(tmp_path / "model"))
    pred = model.predict(["I still have not received my new card, when will it arrive?"], k=3)
    assert "card_arrival" in pred.labels[0], pred.labels
    assert model.evaluate(texts[:500], labels[:500])["P@1"] > 50  # seen points, names mapped through the vocab
    with pytest.raises(DataError, match="unknown label name 'no_such_intent'"):
        model.evaluate(texts[:1], [["no_such_intent"]])


def test_a_text_encoder_reads_strings_in_the_model_dir_and_the_saved_model(shared_data, tmp_path):
    records = [json.loads(line) for line in open(f"{shared_data}/banking77/train.jsonl")][:3000]
    texts, labels = [r["text"] for r in records], [r["labels"] for r in records]
    config = {**CONFIG, "model": {"encoder": {"name": "text_cnn", "embedding_dim": 32, "num_filters": 32,
                                              "kernel_sizes": [1, 2], "vocabulary_size": 2000},
                                  "head": {"name": "softmax"}},
              "trainer": {**CONFIG["trainer"], "epochs": 6}}
    model = tfxc.fit(texts, labels, config=config, model_dir=str(tmp_path / "model"))
    assert model.input_kind == "text"
    queries = ["I still have not received my new card, when will it arrive?", "my card got declined at the shop"]
    pred = model.predict(queries, k=3)
    assert pred.ids.shape == (2, 3) and "card_arrival" in pred.labels[0], pred.labels
    # Batches of any size tokenise to any padded length and rank the same.
    one_by_one = model.predict(texts[:40], k=3, batch_size=7)
    together = model.predict(texts[:40], k=3)
    np.testing.assert_allclose(one_by_one.scores, together.scores, rtol=1e-5, atol=1e-6)
    assert model.evaluate(texts[:500], labels[:500])["P@1"] > 50

    served = tfxc.load(model.export(str(tmp_path / "saved")))
    assert served.input_kind == "text"
    again = served.predict(texts[:40], k=3)
    np.testing.assert_allclose(again.scores, together.scores, rtol=1e-5, atol=1e-6)
    assert (again.ids == together.ids).mean() > 0.99
    with pytest.raises(Exception, match="reads raw text"):
        served.predict(np.ones((2, 5), np.float32))


def test_bad_inputs_are_clear_errors(tmp_path):
    (x, y), _ = synthetic(num_train=200, num_test=10)
    with pytest.raises(DataError, match="X has 200 rows but Y has 199"):
        tfxc.fit(x, y[:199], config=CONFIG, model_dir=str(tmp_path / "m"))
    model = tfxc.fit(x, y, config={**CONFIG, "trainer": {**CONFIG["trainer"], "epochs": 1}}, model_dir=str(tmp_path / "m"))
    wide = scipy.sparse.csr_matrix(([1.0], [450], [0, 1]), shape=(1, 500))
    with pytest.raises(DataError, match="feature id 450 but the model knows 400 features"):
        model.predict(wide)
    with pytest.raises(ValueError, match="k must be >= 1"):
        model.predict(x[:2], k=0)
    with pytest.raises(Exception, match="not trained on text"):
        model.predict(["some text"])
    with pytest.raises(Exception, match="not a trained tfxc model"):
        tfxc.load(str(tmp_path))


@pytest.mark.parametrize("label", ["x", "٣", " 3", None])
def test_a_label_that_is_not_an_id_names_its_row(tmp_path, label):
    (x, y), _ = synthetic(num_train=20, num_test=2)
    y = [y[i].indices.tolist() for i in range(19)] + [[1, label]]
    with pytest.raises(DataError, match=rf"Y \(train\), row 19: label {re.escape(repr(label))} is not a label id"):
        tfxc.fit(x, y, config=CONFIG, model_dir=str(tmp_path / "m"))
    assert not (tmp_path / "m").exists()


def test_fit_resolves_a_thin_config_against_the_recipe_for_the_arrays(tmp_path):
    (x, y), _ = synthetic(num_train=300, num_test=10)
    model_dir = tmp_path / "m"
    thin = {"recipe": True, "comment": "one epoch: the mechanics", "trainer": {"epochs": 1}}
    model = tfxc.fit(x, y, config=thin, model_dir=str(model_dir), overrides=["model.encoder.embedding_dim=16"])
    resolved = json.loads((model_dir / "config.json").read_text())
    # The recipe for 300 points with several labels each, this file's epochs and the override on top.
    assert resolved["recipe"] is False and resolved["model"]["head"]["multi_label_loss"] == "decoupled"
    assert resolved["trainer"]["epochs"] == 1 and resolved["trainer"]["select_metric"] == "P@5"
    assert resolved["model"]["encoder"]["embedding_dim"] == 16 and resolved["data"]["val_percent"] == 10
    assert model.predict(x[:2], k=3).ids.shape == (2, 3)


def test_load_imports_a_model_directory_s_modules_only_when_trusted(tmp_path, monkeypatch):
    """D3 in Python: tfxc.load(model_dir) runs the stored config's `imports` only with trust_imports, and
    never a module from inside the directory."""
    import sys

    from helpers import run_cli, tiny_config

    from tfxc.errors import ConfigError

    model_dir = tmp_path / "model"
    run_cli("tfxc.train", "--config", tiny_config(tmp_path, trainer={"train_steps": 8}), "--model-dir", str(model_dir))
    canary = tmp_path / "CANARY"
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "api_trust_plugin.py").write_text(f"open({str(canary)!r}, 'a').write('ran\\n')\n")
    (model_dir / "api_inner_plugin.py").write_text(f"open({str(canary)!r}, 'a').write('inner\\n')\n")
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.syspath_prepend(str(model_dir))
    monkeypatch.delenv("TFXC_TRUSTED_IMPORTS", raising=False)
    path = model_dir / "config.json"
    stored = json.loads(path.read_text())
    try:
        path.write_text(json.dumps({**stored, "imports": ["api_trust_plugin"]}))
        with pytest.raises(ConfigError, match=r"imports modules \(api_trust_plugin\), and importing them runs their "
                                              r"code; .*trust_imports=True"):
            tfxc.load(str(model_dir))
        assert not canary.exists()
        model = tfxc.load(str(model_dir), trust_imports=["api_trust_plugin"])
        assert canary.read_text() == "ran\n" and model.predict(scipy.sparse.csr_matrix((2, 300)), k=3).ids.shape == (2, 3)
        assert tfxc.load(str(model_dir)).num_labels == 40  # imported now: nothing runs again, no trust needed
        path.write_text(json.dumps({**stored, "imports": ["api_inner_plugin"]}))
        with pytest.raises(ConfigError, match=r"'api_inner_plugin' would be imported from .*, inside the model"):
            tfxc.load(str(model_dir), trust_imports=True)
        assert canary.read_text() == "ran\n"
    finally:
        for name in ("api_trust_plugin", "api_inner_plugin"):
            sys.modules.pop(name, None)


def test_label_sets_agree_between_training_the_api_the_cli_and_scikit_learn(tmp_path):
    """eval.classification: the thresholded sets of a one-vs-all model, selected on F1, scored alike everywhere."""
    from sklearn import metrics as sk
    from sklearn.preprocessing import MultiLabelBinarizer

    from tfxc.eval.classification import CLASSIFICATION_METRICS

    (x, y), (xt, yt) = synthetic()
    config = {**CONFIG, "eval": {"classification": True, "threshold": 0.4},
              "trainer": {**CONFIG["trainer"], "select_metric": "F1-samples", "eval_every_epochs": 1}}
    model_dir = tmp_path / "model"
    model = tfxc.fit(x, y, config=config, model_dir=str(model_dir), X_val=x[:100], Y_val=y[:100], X_test=xt, Y_test=yt)
    trained = json.loads((model_dir / "metrics.json").read_text())
    evaluated = model.evaluate(xt, yt, classification=True, threshold=0.4)
    for key in CLASSIFICATION_METRICS:
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-9), key
    assert evaluated["F1-micro"] > 20  # learnable labels; all-negative predictions would give 0

    pred = model.predict(xt, k=5, threshold=0.4)
    kept = pred.ids >= 0
    assert np.all(pred.scores[kept] > 0.4) and np.all(np.isneginf(pred.scores[~kept]))
    assert [len(names) for names in pred.labels] == kept.sum(axis=1).tolist()
    binarizer = MultiLabelBinarizer(classes=range(50))
    y_true = binarizer.fit_transform([yt.indices[yt.indptr[i]:yt.indptr[i + 1]] for i in range(yt.shape[0])])
    y_pred = binarizer.transform([row[row >= 0] for row in pred.ids])
    for average in ("micro", "samples"):
        want = sk.f1_score(y_true, y_pred, average=average, zero_division=0)
        assert evaluated[f"F1-{average}"] == pytest.approx(100 * want, abs=1e-9)

    report = tmp_path / "report.csv"
    run_cli("tfxc.evaluate", "--model-dir", str(model_dir), "--report", str(report))
    rows = list(csv.DictReader(report.open()))
    assert list(rows[0]) == ["label", "precision", "recall", "f1", "support"]
    assert sum(int(r["support"]) for r in rows) == yt.nnz
    macro = np.mean([float(r["f1"]) for r in rows])
    assert macro == pytest.approx(evaluated["F1-macro"], abs=1e-3)

    saved = model.export(str(tmp_path / "saved"))
    scipy.sparse.save_npz(tmp_path / "X.npz", xt[:20].tocsr())
    run_cli("tfxc.predict", "--model", saved, "--input", str(tmp_path / "X.npz"), "--output",
            str(tmp_path / "out.jsonl"), "--top-k", "5", "--threshold", "0.4")
    served = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["label_ids"] for r in served] == [row[row >= 0].tolist() for row in pred.ids[:20]]


def test_a_threshold_on_a_softmax_model_says_what_it_can_keep_in_the_api_evaluate_and_training(tmp_path, caplog,
                                                                                                capsys):
    """Only `tfxc.predict --threshold` said that a softmax's scores sum to 1 (so 0.5 keeps at most one label a
    row); `model.predict(threshold=)`, `model.evaluate(classification=True)`, `tfxc.evaluate --report` and a
    training's eval.classification on multi-label rows said nothing. The API warns (`SoftmaxThresholdWarning`,
    as scikit-learn warns of what the caller can change); the evaluation logs it once."""
    import logging
    import warnings

    from tfxc import evaluate
    from tfxc.eval.classification import SoftmaxThresholdWarning

    (x, y), (xt, yt) = synthetic(num_train=128, num_test=32)
    config = {**CONFIG, "model": {**CONFIG["model"], "head": {"name": "softmax"}},
              "eval": {"classification": True, "threshold": 0.25},
              "trainer": {**CONFIG["trainer"], "epochs": 1, "steps_per_loop": 2}}
    with caplog.at_level(logging.INFO, logger="tfxc"):
        model = tfxc.fit(x, y, config=config, model_dir=str(tmp_path / "model"), X_test=xt, Y_test=yt, verbose=0)
    note = "the model's head is a softmax: a row's scores sum to 1 over the labels, so threshold 0.25 keeps at most 3"
    assert sum(note in r.getMessage() for r in caplog.records) == 1, [r.getMessage() for r in caplog.records]
    with pytest.warns(SoftmaxThresholdWarning, match="threshold 0.5 keeps at most 1 label"):
        model.predict(xt, k=3, threshold=0.5)
    with pytest.warns(SoftmaxThresholdWarning, match="threshold 0.3 keeps at most 3 label"):
        model.evaluate(xt, yt, classification=True, threshold=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no threshold, no note
        model.predict(xt, k=3)
        model.evaluate(xt, yt)
    capsys.readouterr()
    evaluate.main(["--model-dir", str(tmp_path / "model"), "--report", "--set", "eval.threshold=0.2"])
    assert "threshold 0.2 keeps at most 4 label(s) a row" in capsys.readouterr().err
