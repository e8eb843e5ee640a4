"""K-fold training on one conversion (tfxc.data.folds): the folds share it, train as independent models, ensemble
and evaluate together, write out-of-fold predictions and teach one student."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import run_cli, tiny_config

from tfxc.config import load_config
from tfxc.data.convert import ensure_converted
from tfxc.data.folds import VAL_SOURCE_ROWS, converted_dir


def fold_config(tmp_path, shared_data, fold: str, **sections):
    return tiny_config(
        tmp_path / f"config-{fold.replace('/', '-')}",
        data={"format": "jsonl", "train": f"{shared_data}/banking77/test.jsonl", "dir": str(tmp_path / "data"),
              "val_fold": fold, "text": {"ngram_max": 2, "min_df": 1}},
        model={"encoder": {"name": "sparse_bow", "embedding_dim": 32}, "head": {"name": "softmax"}},
        trainer={"global_batch_size": 128, "train_steps": 60, "steps_per_loop": 20, "log_every_steps": 60,
                 "checkpoint_every_steps": 60}, **sections)


def test_every_fold_reads_one_conversion(tmp_path, shared_data):
    infos, stamps = [], []
    for fold in range(3):
        (tmp_path / f"config-{fold}-3").mkdir()
        config = load_config(fold_config(tmp_path, shared_data, f"{fold}/3"))
        infos.append(ensure_converted(config.data))
        assert infos[-1].dir == converted_dir(config.data) == str(tmp_path / "data" / f"fold-{fold}-of-3")
        stamps.append(os.stat(tmp_path / "data" / "stats.json").st_mtime_ns)
    assert json.loads((tmp_path / "data" / "stats.json").read_text())["folds"] == 3
    assert stamps[0] == stamps[1] == stamps[2]  # one conversion: the other folds found it, none converted again
    total = 3080  # banking77's test file, the train source here
    held_out = [np.load(os.path.join(info.dir, VAL_SOURCE_ROWS)) for info in infos]
    assert sorted(np.concatenate(held_out).tolist()) == list(range(total))  # the val splits partition train
    for info, rows in zip(infos, held_out):
        assert info.num_points("val") == rows.size and info.num_points("train") == total - rows.size
        assert sorted(info.splits) == ["train", "val"]
    assert infos[0].fold_siblings(infos[1]) and not infos[0].same_data_as(infos[1])
    assert json.loads((tmp_path / "data" / "fold-0-of-3" / "featurizer.json").read_text()) == json.loads(
        (tmp_path / "data" / "featurizer.json").read_text())  # fit once, on the whole train source


def test_folds_train_ensemble_write_out_of_fold_predictions_and_teach_a_student(tmp_path, shared_data):
    every = open(f"{shared_data}/banking77/test.jsonl", encoding="utf-8").read().splitlines(keepends=True)
    lines = [line for i, line in enumerate(every) if i % 5]  # the file is sorted by intent: every fifth to test
    (tmp_path / "train.jsonl").write_text("".join(lines), encoding="utf-8")
    (tmp_path / "test.jsonl").write_text("".join(every[::5]), encoding="utf-8")
    config = tiny_config(
        tmp_path, data={"format": "jsonl", "train": str(tmp_path / "train.jsonl"), "test": str(tmp_path / "test.jsonl"),
                        "label_names": f"{shared_data}/banking77/labels.txt", "dir": str(tmp_path / "data"),
                        "text": {"ngram_max": 2, "min_df": 1}},
        model={"encoder": {"name": "sparse_bow", "embedding_dim": 32}, "head": {"name": "softmax"}},
        trainer={"global_batch_size": 128, "train_steps": 80, "steps_per_loop": 20, "log_every_steps": 80,
                 "checkpoint_every_steps": 80}, optimizer={"name": "adam", "learning_rate": 0.01})
    folds = [str(tmp_path / f"fold{i}") for i in range(3)]
    for i, model_dir in enumerate(folds):
        run_cli("tfxc.train", "--config", config, "--model-dir", model_dir, "--set", f"data.val_fold={i}/3")
    oof = tmp_path / "oof.jsonl"
    out = run_cli("tfxc.ensemble", *[a for d in folds for a in ("--model-dir", d)], "--method", "log_average",
                  "--json", "--set", "eval.classification=true", "--out-of-fold", str(oof)).stdout
    result = json.loads(out.strip().splitlines()[-1])
    members = [m["Acc@1"] for m in result["models"]]
    assert min(members) > 40 and result["ensemble"]["Acc@1"] >= min(members)  # 77 intents: chance is 1.3%
    assert result["ensemble"]["accuracy"] == pytest.approx(result["ensemble"]["Acc@1"], abs=1e-3)
    assert 0 < result["ensemble"]["F1-macro"] <= 100
    rows = [json.loads(line) for line in oof.read_text(encoding="utf-8").splitlines()]
    assert [r["row"] for r in rows] == list(range(len(lines)))
    for r in rows:
        fold_rows = np.load(tmp_path / "data" / f"fold-{r['fold']}-of-3" / VAL_SOURCE_ROWS)
        assert r["row"] in fold_rows and len(r["labels"]) == 5
    truth = [json.loads(line)["labels"][0] for line in lines]
    out_of_fold_accuracy = np.mean([r["labels"][0] == t for r, t in zip(rows, truth)])
    assert out_of_fold_accuracy > 0.4

    # Every fold at once ("*/K") is a model of K parts (train.sh trains them; the slow test below runs it).
    assert run_cli("tfxc.train", "--config", config, "--set", "data.val_fold=*/3", "--num-parts").stdout.strip() == "3"

    student = tmp_path / "student"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(student), "--set", "data.val_fold=0/3",
            "--set", "loss.name=distill", "--set", f"loss.teachers={json.dumps(folds)}", "--set", "loss.alpha=0.5")
    assert json.loads((student / "metrics.json").read_text())["Acc@1"] > 40


@pytest.mark.slow(reason='train.sh: its parts are processes of their own')
def test_every_fold_as_the_parts_of_one_ensemble_with_train_sh_and_resumed_by_tfxc_train(tmp_path, shared_data):
    """`data.val_fold: "*/K"`: train.sh runs the folds in parallel and combines them; the directory is then one
    model for tfxc.evaluate, and tfxc.train on it again finds every fold finished."""
    import subprocess
    import sys

    from helpers import REPO, cli_env

    every = open(f"{shared_data}/banking77/test.jsonl", encoding="utf-8").read().splitlines(keepends=True)
    (tmp_path / "train.jsonl").write_text("".join(line for i, line in enumerate(every) if i % 5), encoding="utf-8")
    (tmp_path / "test.jsonl").write_text("".join(every[::5]), encoding="utf-8")
    config = tiny_config(
        tmp_path, data={"format": "jsonl", "train": str(tmp_path / "train.jsonl"), "test": str(tmp_path / "test.jsonl"),
                        "label_names": f"{shared_data}/banking77/labels.txt", "dir": str(tmp_path / "data"),
                        "val_fold": "*/3", "text": {"ngram_max": 2, "min_df": 1}},
        model={"encoder": {"name": "sparse_bow", "embedding_dim": 32}, "head": {"name": "softmax"}},
        trainer={"global_batch_size": 128, "train_steps": 60, "steps_per_loop": 20, "log_every_steps": 60,
                 "checkpoint_every_steps": 60}, optimizer={"name": "adam", "learning_rate": 0.01})
    model_dir = tmp_path / "model"
    env = cli_env({"PYTHON": sys.executable, "TFXC_NO_TMUX": "1"})
    done = subprocess.run(["bash", "train.sh", config, "2", str(model_dir)], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 parts" in done.stdout
    record = json.loads((model_dir / "ensemble.json").read_text())
    assert record["run"] == "folds" and record["method"] == "log_average" and len(record["members"]) == 3
    oof = (model_dir / "out_of_fold.jsonl").read_text().splitlines()
    assert len(oof) == sum(1 for i in range(len(every)) if i % 5)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    evaluated = json.loads(run_cli("tfxc.evaluate", "--model-dir", str(model_dir), "--json").stdout.splitlines()[-1])
    assert evaluated["P@1"] == pytest.approx(metrics["P@1"], abs=1e-3) and metrics["P@1"] > 40
    again = run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir)).stdout
    assert "test: P@1" in again  # every fold found finished, combined again
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(tmp_path / "saved"))
    (tmp_path / "queries.jsonl").write_text('{"text": "my card still has not arrived"}\n')
    run_cli("tfxc.predict", "--model", str(tmp_path / "saved"), "--input", str(tmp_path / "queries.jsonl"),
            "--output", str(tmp_path / "out.jsonl"), "--top-k", "3")
    assert len(json.loads((tmp_path / "out.jsonl").read_text())["labels"]) == 3


def test_a_recipe_config_trains_its_folds(tmp_path, shared_data):
    """A thin config (`"recipe": true`) with `data.val_fold`: "*/3" crashed in the recipe (`KeyError: 'train'`, the
    conversion of every fold has no train split of its own), and a fold "0/3" met the recipe's own validation
    share (`val_fold holds out a fold of train; give no val source or val_percent with it`)."""
    from tfxc import resolve

    thin = tmp_path / "thin.json"
    thin.write_text(json.dumps({"recipe": True, "data": {
        "format": "jsonl", "train": f"{shared_data}/banking77/test.jsonl", "dir": str(tmp_path / "data"),
        "text": {"ngram_max": 2, "min_df": 1}}}))
    source = resolve.read_config(str(thin), ["data.val_fold=0/3"])
    config, _ = resolve.whole(source, ensure_converted(source.config.data))
    assert config.data.val_fold == "0/3" and not config.data.val_percent
    assert run_cli("tfxc.train", "--config", str(thin), "--set", "data.val_fold=*/3", "--num-parts").stdout.strip() == "3"
