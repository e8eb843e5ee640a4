"""The recipe's `best` point (`tfxc.runs.members`): members of the default config trained into one directory, combined by the
method chosen on validation rows, and read back as one model by evaluate, export, load and a fresh SavedModel."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import cli_env, run_cli
from test_recipe import write_synthetic

import tfxc
from tfxc.ensemble import run_ensemble
from tfxc.model_dir import ModelDir
from tfxc.recipe.points import BEST_MEMBERS, BEST_METHODS

TEST_LINE = "test: "


@pytest.mark.slow(reason='runs the CLIs from another working directory: processes of their own')
def test_best_trains_members_and_serves_their_combination(tmp_path):
    train, test = write_synthetic(tmp_path, num_train=600, num_labels=120)
    model_dir = tmp_path / "best"
    args = ["--train", train, "--test", test, "--recipe", "best", "--model-dir", str(model_dir),
            "--set", "trainer.epochs=3"]
    out = run_cli("tfxc.train", *args, timeout=600, cwd=str(tmp_path)).stdout
    assert "  recipe: best (of fast, default, best, xrt)" in out and "best: an ensemble of 3 members" in out, out
    record = json.loads((model_dir / "ensemble.json").read_text())
    assert record["method"] in BEST_METHODS and record["members"] == [f"members/member-{m:03d}" for m in range(3)]
    # The method is the best validation score among those tried (ties: the first).
    scores = {name: metrics[record["select_metric"]] for name, metrics in record["validation"].items()}
    assert scores[record["method"]] == max(scores.values()) and set(scores) == set(BEST_METHODS)
    members = ModelDir(str(model_dir)).ensemble_members()
    configs = [json.loads(open(os.path.join(path, "config.json")).read()) for path in members]
    assert [c["runtime"]["seed"] for c in configs] == list(range(BEST_MEMBERS))
    assert all({**c, "runtime": None} == {**configs[0], "runtime": None} for c in configs)  # only the seed differs
    test_line = [line for line in out.splitlines() if line.startswith(TEST_LINE)][-1]

    # tfxc.evaluate reads the directory as one model, and scores what the members' lists combine to.
    evaluated = json.loads(run_cli("tfxc.evaluate", "--model-dir", str(model_dir), "--json").stdout.splitlines()[-1])
    combined = run_ensemble(members, record["method"], "test", record["list_size"])
    assert evaluated == combined["ensemble"]
    assert f"P@1 {evaluated['P@1']:.2f}" in test_line
    assert all(member["P@1"] <= evaluated["P@1"] + 5 for member in combined["models"])  # a sane combination

    # The same command again resumes: every member is finished, nothing is trained again.
    steps = [ModelDir(path).latest_step() for path in members]
    again = run_cli("tfxc.train", *args, timeout=600, cwd=str(tmp_path)).stdout
    assert [ModelDir(path).latest_step() for path in members] == steps
    assert [line for line in again.splitlines() if line.startswith(TEST_LINE)][-1] == test_line

    # A single model is never trained into an ensemble's directory (its ensemble.json would hide it), nor the
    # ensemble into a single model's.
    refused = run_cli("tfxc.train", "--train", train, "--test", test, "--model-dir", str(model_dir), check=False,
                      cwd=str(tmp_path))
    assert refused.returncode != 0 and "holds an ensemble" in refused.stderr, refused.stderr[-2000:]
    refused = run_cli("tfxc.train", *args[:-4], "--model-dir", members[0], "--set", "trainer.epochs=3",
                      check=False, cwd=str(tmp_path))
    assert refused.returncode != 0 and "holds a single model" in refused.stderr, refused.stderr[-2000:]

    # One SavedModel combines the members in its graph; a fresh process ranks as tfxc.load of the directory.
    saved = tmp_path / "saved"
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(saved))
    export = json.loads((saved / "assets.extra" / "tfxc" / "export.json").read_text())
    assert export["ensemble"] == {"method": record["method"], "list_size": record["list_size"], "members": 3}
    ops = run_cli("tfxc.export.ops", str(saved)).stdout  # core ops only: a stock model server runs it
    assert "servable by TensorFlow Serving's standard model server" in ops, ops
    x, _ = tfxc.load_xc(test)
    x = x[:50]
    np.save(tmp_path / "x_data.npy", x.data)
    np.save(tmp_path / "x_indices.npy", x.indices)
    np.save(tmp_path / "x_indptr.npy", x.indptr)
    code = ("import sys, numpy as np, scipy.sparse as sp, tfxc; d = sys.argv[1]; "
            "x = sp.csr_matrix((np.load(d + '/x_data.npy'), np.load(d + '/x_indices.npy'), np.load(d + '/x_indptr.npy')),"
            f" shape=(50, {x.shape[1]})); p = tfxc.load(sys.argv[2]).predict(x, k=5); "
            "np.save(d + '/ids.npy', p.ids); np.save(d + '/scores.npy', p.scores)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path), str(saved)], check=True, timeout=300, env=cli_env())
    expected = tfxc.load(str(model_dir)).predict(x, k=5)
    np.testing.assert_array_equal(np.load(tmp_path / "ids.npy"), expected.ids)
    np.testing.assert_allclose(np.load(tmp_path / "scores.npy"), expected.scores, rtol=1e-5, atol=1e-6)


def test_fit_trains_the_best_point(tmp_path):
    from test_api import synthetic

    (x, y), (x_test, y_test) = synthetic(num_train=300, num_test=40)
    classifier = tfxc.fit(x, y, recipe="best", model_dir=str(tmp_path / "best"), overrides=["trainer.epochs=2"])
    assert ModelDir(str(tmp_path / "best")).ensemble()["method"] in BEST_METHODS
    predictions = classifier.predict(x_test, k=3)
    assert predictions.ids.shape == (40, 3) and np.all(np.diff(predictions.scores, axis=1) <= 1e-6)
    np.testing.assert_array_equal(tfxc.load(str(tmp_path / "best")).predict(x_test, k=3).ids, predictions.ids)


@pytest.mark.slow(reason='train.sh: its parts are processes of their own')
def test_train_sh_trains_the_members_as_parallel_parts_and_links_them(tmp_path):
    from test_train_sh import finish, start_train_sh

    train, test = write_synthetic(tmp_path, num_train=400, num_labels=80)
    thin = tmp_path / "best.json"
    thin.write_text(json.dumps({"recipe": "best", "trainer": {"epochs": 2},
                                "data": {"format": "xc", "train": train, "test": test, "dir": str(tmp_path / "d")}}))
    assert run_cli("tfxc.train", "--config", str(thin), "--num-parts").stdout.strip() == str(BEST_MEMBERS)
    # A member alone, then --link-parts before the others exist: refused, naming the member to train.
    alone = tmp_path / "alone"
    run_cli("tfxc.train", "--config", str(thin), "--model-dir", str(alone), "--part", "0", "--skip-eval", timeout=300)
    refused = run_cli("tfxc.train", "--config", str(thin), "--model-dir", str(alone), "--link-parts", check=False)
    assert refused.returncode != 0 and "member 1" in refused.stderr and "--part 1" in refused.stderr, refused.stderr
    assert not (alone / "ensemble.json").exists()
    model_dir = tmp_path / "parallel"
    out, err = finish(start_train_sh(str(thin), str(model_dir)), timeout=600)
    assert "train.sh: 3 parts of" in out and "train.sh: part 2 done" in out, out + err[-2000:]
    record = ModelDir(str(model_dir)).ensemble()
    assert record["method"] in BEST_METHODS and len(record["members"]) == BEST_MEMBERS
    # train.sh's last step, tfxc.evaluate, scored the ensemble: the same figures as evaluating it again.
    evaluated = json.loads(run_cli("tfxc.evaluate", "--model-dir", str(model_dir), "--json").stdout.splitlines()[-1])
    assert f"test: P@1 {evaluated['P@1']:.2f} " in out, out[-2000:]


def test_one_member_per_run_under_multi_worker_mirrored(tmp_path):
    from tfxc import resolve
    from tfxc.errors import ConfigError
    from tfxc.runs import Options, plan_for

    source = resolve.read_given({"recipe": "best", "runtime": {"strategy": "multi_worker_mirrored"},
                                 "data": {"format": "xc", "train": str(tmp_path / "t.txt"), "dir": str(tmp_path / "d")}})
    with pytest.raises(ConfigError, match=r"give --part m \(0 to 2\) on every worker, then --link-parts once"):
        plan_for(source).train(str(tmp_path / "model"), Options())
    assert not (tmp_path / "model").exists() and not (tmp_path / "d").exists()  # refused before anything
