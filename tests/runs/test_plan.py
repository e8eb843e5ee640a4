"""Runs made of runs (`tfxc.runs`): one router from a config to its run, every run kind from every entry point,
and every artifact a run leaves read by every verb through the kind recorded when it was written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from test_api import CONFIG, synthetic

import tfxc
from tfxc import artifacts, resolve
from tfxc.errors import ConfigError, TfxcError
from tfxc.runs import Levels, Parts, Single, plan_for
from tfxc.runs.folds import Folds
from tfxc.runs.members import Members

MACH = {**CONFIG, "model": {"encoder": {"name": "sparse_bow", "embedding_dim": 16},
                            "head": {"name": "mach", "num_buckets": 8, "num_repetitions": 2}}}


def source_of(tmp_path, tree: dict, *overrides):
    data = {"format": "xc", "train": str(tmp_path / "train.txt"), "dir": str(tmp_path / "data")}
    return resolve.read_given({**tree, "data": {**data, **tree.get("data", {})}}, overrides)


def test_the_router_names_each_kind_and_what_part_n_means(tmp_path):
    single = plan_for(source_of(tmp_path, CONFIG))
    assert type(single) is Single and single.count() == 1 and single.kind == "single"
    with pytest.raises(ConfigError, match="--part: a single run trains as a whole"):
        single.check_part(0)
    parts = plan_for(source_of(tmp_path, MACH))
    assert type(parts) is Parts and parts.count() == 2
    with pytest.raises(ConfigError, match=r"--part 2: a head of 2 parts has parts 0 to 1"):
        parts.check_part(2)
    xr = {**CONFIG, "model": {"encoder": {"name": "text_cnn"}, "head": {"name": "xr_transformer"}}}
    assert type(plan_for(source_of(tmp_path, xr))) is Levels
    folds = plan_for(source_of(tmp_path, CONFIG, "data.val_fold=*/5"))
    assert type(folds) is Folds and folds.count() == 5 and folds.part_noun == "fold"
    with pytest.raises(ConfigError, match=r"--part 5: data.val_fold '\*/5' has folds 0 to 4"):
        folds.check_part(5)
    best = plan_for(source_of(tmp_path, {"recipe": "best"}))
    assert type(best) is Members and best.count() == 3 and best.part_noun == "member"
    # A thin config is one model until its recipe has read the data.
    assert type(plan_for(source_of(tmp_path, {"recipe": True}))) is Single


def write_xc(path, x, y) -> str:
    """An XC Repository BoW file (with its header line) of CSR features `x` and labels `y`."""
    lines = [f"{x.shape[0]} {x.shape[1]} {y.shape[1]}"]
    for i in range(x.shape[0]):
        labels = ",".join(str(j) for j in y.indices[y.indptr[i]:y.indptr[i + 1]])
        row = x[i]
        lines.append(labels + "".join(f" {j}:{v:.6g}" for j, v in zip(row.indices, row.data)))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def artifacts_of_every_kind(tmp_path_factory):
    """{artifact kind: path}: a model directory, its SavedModel, a k-fold ensemble (from `tfxc.fit`) and a
    head's parts linked (trained apart by `tfxc.train --part`), all on one synthetic data set."""
    from tfxc import train

    tmp = tmp_path_factory.mktemp("artifacts")
    (x, y), (xt, yt) = synthetic(num_train=300, num_test=60)
    short = ["trainer.epochs=2"]
    model = tfxc.fit(x, y, config=CONFIG, model_dir=str(tmp / "model"), X_test=xt, Y_test=yt, overrides=short,
                     verbose=0)
    saved = model.export(str(tmp / "saved"))
    tfxc.fit(x, y, config=CONFIG, model_dir=str(tmp / "folds"), X_test=xt, Y_test=yt, verbose=0,
             overrides=[*short, "data.val_fold=*/2"])
    config = {**MACH, "data": {"format": "xc", "train": write_xc(tmp / "train.txt", x, y),
                               "test": write_xc(tmp / "test.txt", xt, yt), "dir": str(tmp / "data")}}
    (tmp / "mach.json").write_text(json.dumps(config))
    base = ["--config", str(tmp / "mach.json"), "--model-dir", str(tmp / "parts"), "--set", *short]
    for part in (0, 1):
        assert train.main([*base, "--part", str(part), "--skip-eval"]) == 0
    assert train.main([*base, "--link-parts"]) == 0
    paths = {artifacts.MODEL_DIR: str(tmp / "model"), artifacts.SAVED_MODEL: saved,
             artifacts.ENSEMBLE: str(tmp / "folds"), artifacts.LINKED_PARTS: str(tmp / "parts")}
    return paths, (xt, yt), str(tmp / "test.txt")


def test_each_run_records_its_kind(artifacts_of_every_kind):
    paths, _, _ = artifacts_of_every_kind
    runs = {kind: artifacts.kind_of(path)["run"] for kind, path in paths.items()}
    assert runs == {artifacts.MODEL_DIR: "single", artifacts.SAVED_MODEL: None, artifacts.ENSEMBLE: "folds",
                    artifacts.LINKED_PARTS: "parts"}
    for kind, path in paths.items():
        assert artifacts.kind_of(path)["artifact"] == kind
    fold = os.path.join(paths[artifacts.ENSEMBLE], "members", "member-001")
    assert artifacts.kind_of(fold) == {"format_version": 1, "run": "single", "artifact": artifacts.MODEL_DIR}
    part = os.path.join(paths[artifacts.LINKED_PARTS], "parts", "part-001")
    assert artifacts.kind_of(part)["run"] == "part"


@pytest.mark.parametrize("kind", [artifacts.MODEL_DIR, artifacts.SAVED_MODEL, artifacts.ENSEMBLE,
                                  artifacts.LINKED_PARTS])
def test_every_verb_takes_every_artifact(kind, artifacts_of_every_kind, tmp_path, capsys):
    from tfxc import evaluate, predict
    from tfxc.export import __main__ as export

    paths, (xt, yt), test_file = artifacts_of_every_kind
    path = paths[kind]
    model = tfxc.load(path)
    assert model.info["artifact"] == kind and model.info["num_labels"] == 50
    pred = model.predict(xt, k=5)
    assert pred.ids.shape == (60, 5) and np.all(np.diff(pred.scores, axis=1) <= 0)
    assert model.encode(xt[:3]).shape[0] == 3
    # evaluate: the labelled file through the CLI equals the Python API on the same rows.
    capsys.readouterr()
    assert evaluate.main(["--model-dir", path, "--data", test_file, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    in_python = model.evaluate(xt, yt)
    assert printed["P@1"] == pytest.approx(in_python["P@1"], abs=1e-3) and printed["P@1"] > 20
    # predict: any artifact, the same lists as the Python API.
    out = tmp_path / "preds.jsonl"
    assert predict.main(["--model", path, "--input", test_file, "--output", str(out), "--top-k", "5"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["label_ids"] for row in rows] == pred.ids.tolist()
    # export: a SavedModel that answers as the artifact does (a SavedModel is copied).
    assert export.main(["--model-dir", path, "--out", str(tmp_path / "exported")]) == 0
    again = tfxc.load(str(tmp_path / "exported"))
    assert again.info["artifact"] == artifacts.SAVED_MODEL
    assert (again.predict(xt, k=5).ids == pred.ids).all()
    # export --format onnx: the twin of every artifact but a SavedModel ranks as it does (an ensemble's
    # members and their combination in one graph), in a process with only onnxruntime and NumPy.
    if kind == artifacts.SAVED_MODEL:
        with pytest.raises(SystemExit):
            export.main(["--model-dir", path, "--out", str(tmp_path / "twin"), "--format", "onnx"])
        assert "export the ONNX twin from its model directory" in capsys.readouterr().err
        return
    assert export.main(["--model-dir", path, "--out", str(tmp_path / "twin"), "--format", "onnx", "--top-k", "5"]) == 0
    from onnx_harness import assert_same_ranking, run_onnx

    xt = xt.tocsr()
    xt.sort_indices()
    np.savez(tmp_path / "in.npz", feat_idx=xt.indices.astype(np.int64), feat_val=xt.data.astype(np.float32),
             row_splits=xt.indptr.astype(np.int64))
    run_onnx([(str(tmp_path / "twin" / "model.onnx"), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))])
    answer, longer = np.load(tmp_path / "out.npz"), model.predict(xt, k=25)
    assert_same_ranking(answer["label_ids"], answer["scores"], longer.ids, longer.scores, kind)


def test_a_saved_model_without_data_is_refused_with_the_way_to_score_it(artifacts_of_every_kind):
    from tfxc import evaluate

    paths, _, _ = artifacts_of_every_kind
    with pytest.raises(SystemExit):
        evaluate.main(["--model-dir", paths[artifacts.SAVED_MODEL]])
    with pytest.raises(TfxcError, match="not a trained tfxc model"):
        artifacts.kind_of(os.path.dirname(paths[artifacts.SAVED_MODEL]))


def test_fit_trains_a_head_of_parts_together(tmp_path):
    (x, y), (xt, yt) = synthetic(num_train=300, num_test=60)
    model = tfxc.fit(x, y, config=MACH, model_dir=str(tmp_path / "mach"), X_test=xt, Y_test=yt,
                     overrides=["trainer.epochs=2"], verbose=0)
    assert model.info["run"] == "parts" and model.info["artifact"] == artifacts.MODEL_DIR
    assert model.predict(xt, k=3).ids.shape == (60, 3)
    assert not (tmp_path / "mach" / "parts").exists()  # trained together: one checkpoint, no part directories


def test_fit_trains_xr_transformer_levels_then_its_ranker(tmp_path, shared_data):
    from xr.test_pipeline import xr_config

    config = json.loads(open(xr_config(tmp_path, shared_data)).read())
    rows = [json.loads(line) for line in open(config["data"]["train"], encoding="utf-8")][:200]
    texts, labels = [r["text"] for r in rows], [r["labels"] for r in rows]
    config["data"] = {"format": "jsonl", "num_shards": 1}
    # The route, not the training, is under test (tests/xr/test_pipeline.py chains two levels through the CLI):
    # one level of 4 clusters, then the ranker, a few steps each.
    config["model"]["head"].update(max_steps=[3], max_match_clusters=4)
    config["trainer"].update(train_steps=5, checkpoint_every_steps=5)
    model = tfxc.fit(texts, labels, config=config, model_dir=str(tmp_path / "xr"), verbose=0)
    assert model.info["run"] == "levels" and model.input_kind == "text"
    assert os.path.exists(tmp_path / "xr" / "levels" / "level-0" / "level.json")  # the level fine-tuned
    assert not os.path.exists(tmp_path / "xr" / "levels" / "level-1")
    pred = model.predict(texts[:4], k=3)
    assert pred.ids.shape == (4, 3) and all(len(names) == 3 for names in pred.labels)
