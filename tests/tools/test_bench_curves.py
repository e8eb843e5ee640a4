"""tools/bench.py's time-to-accuracy curves and serving figures: the validation carve, curves from a model
directory, the plot's data, the serving table, and the recipe's point systems' runs (no peers needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, run_cli

sys.path.insert(0, os.path.join(REPO, "tools"))
import bench  # noqa: E402  (tools/ is not a package)
import bench_curves  # noqa: E402
import bench_frontier  # noqa: E402
import bench_report  # noqa: E402
import bench_serving  # noqa: E402  (imports TensorFlow)

sys.path.pop(0)

PEERS = bench.PEERS


def _write_csr(directory, split: str, rows: int, seed: int) -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    x = sp.random(rows, 30, density=0.2, format="csr", random_state=seed, dtype=np.float32)
    y = sp.csr_matrix((rng.random((rows, 6)) < 0.3).astype(np.float32))
    sp.save_npz(os.path.join(directory, f"X.{split}.npz"), x)
    sp.save_npz(os.path.join(directory, f"Y.{split}.npz"), y)


def test_the_carve_splits_train_by_tfxc_holdout_rule_keeping_the_order(tmp_path):
    import scipy.sparse as sp

    from tfxc.data.holdout import in_validation

    _write_csr(str(tmp_path), "trn", 400, seed=1)
    carve_dir = bench_curves.carve(str(tmp_path))
    mask = bench_curves.validation_mask(400)
    assert mask.tolist() == [in_validation(str(i), 10) for i in range(400)] and 25 < mask.sum() < 60
    x = sp.load_npz(tmp_path / "X.trn.npz").toarray()
    y = sp.load_npz(tmp_path / "Y.trn.npz").toarray()
    np.testing.assert_array_equal(sp.load_npz(os.path.join(carve_dir, "X.tst.npz")).toarray(), x[mask])
    np.testing.assert_array_equal(sp.load_npz(os.path.join(carve_dir, "Y.tst.npz")).toarray(), y[mask])
    np.testing.assert_array_equal(sp.load_npz(os.path.join(carve_dir, "X.trn.npz")).toarray(), x[~mask])
    expected = {"num_points": int(mask.sum()), "nnz": int(np.count_nonzero(x[mask]))}
    assert bench_curves.carve_summary(carve_dir) == expected


def test_the_curve_of_a_recipe_run_is_its_val_evaluations_on_the_carved_rows(tmp_path, shared_data):
    """The recipe holds out the carve's rows itself, and every val evaluation records its loop time."""
    data_dir = bench.prepare("medical", shared_data, str(tmp_path))
    carve_dir = bench_curves.carve(data_dir)
    model_dir = str(tmp_path / "model")
    run_cli("tfxc.train", "--train", os.path.join(data_dir, "X.trn.npz"), "--test",
            os.path.join(data_dir, "X.tst.npz"), "--model-dir", model_dir, "--set", "trainer.epochs=3",
            "--set", "trainer.patience=0", timeout=300)
    result = bench_curves.tfxc_curve(model_dir, carve_dir)
    assert result["val_rows"] == 38 == bench_curves.carve_summary(carve_dir)["num_points"]
    curve = result["val_curve"]
    log = [json.loads(line) for line in open(os.path.join(model_dir, "eval_log.jsonl"))]
    log = [r for r in log if r["split"] == "val"]
    assert [p["step"] for p in curve] == [r["step"] for r in log] and len(curve) == 3
    assert [p["P@5"] for p in curve] == [r["P@5"] for r in log] and all(0 < p["P@5"] <= 100 for p in curve)
    seconds = [p["seconds"] for p in curve]
    train_seconds = json.loads(open(os.path.join(model_dir, "metrics.json")).read())["train_seconds"]
    # Epochs 1 and 2 are evaluated inside the loop; the last epoch's evaluation comes after it has ended.
    assert 0 < seconds[0] < seconds[1] < train_seconds <= seconds[2]

    # Another carve (other rows held out) is refused, not plotted.
    other = tmp_path / "other"
    other.mkdir()
    _write_csr(str(other), "trn", 200, seed=2)
    assert "not the carve's" in bench_curves.tfxc_curve(model_dir, bench_curves.carve(str(other)))["val_curve_error"]


def test_eval_log_curve_keeps_val_records_with_a_time_and_the_last_of_a_step():
    log = [{"step": 10, "split": "val", "elapsed_s": 1.5, "P@5": 20.0, "PSP@5": 30.0},
           {"step": 20, "split": "val", "P@5": 99.0},  # written before elapsed_s existed
           {"step": 20, "split": "test", "elapsed_s": 3.0, "P@5": 98.0},
           {"step": 30, "split": "val", "elapsed_s": 4.0, "P@5": 21.0, "PSP@5": 31.0},
           {"step": 30, "split": "val", "elapsed_s": 4.5, "P@5": 22.0, "PSP@5": 32.0}]  # a resumed run's
    assert bench_curves.eval_log_curve(log) == [{"seconds": 1.5, "step": 10, "P@5": 20.0, "PSP@5": 30.0},
                                                {"seconds": 4.5, "step": 30, "P@5": 22.0, "PSP@5": 32.0}]
    assert bench_curves.same_validation_rows({"num_points": 38, "nnz": 900}, {"num_points": 38, "nnz": 900})
    assert not bench_curves.same_validation_rows({"num_points": 38, "nnz": 901}, {"num_points": 38, "nnz": 900})
    assert not bench_curves.same_validation_rows(None, {"num_points": 38, "nnz": 900})


def _records() -> list[dict]:
    point = {"P@5": 20.0, "PSP@5": 30.0, "val_rows": 38}
    return [
        {"dataset": "medical", "system": "pecos-xrlinear", "status": "ok", "val_curve": [{"seconds": 1.2, **point}],
         "val_rows": 38, "latency_ms_median": 0.2, "batch256_rows_per_s": 12000.0},
        {"dataset": "medical", "system": "omikuji-bonsai", "status": "ok", "val_rows": 38,
         "val_curve": [{"seconds": 0.09, **point, "P@5": 23.0}, {"seconds": 0.03, **point, "trees": 1}],
         "latency_ms_median": 0.03, "batch256_rows_per_s": 16000.0},
        {"dataset": "medical", "system": "tfxc-recipe", "status": "ok", "val_rows": 38,
         "val_curve": [{"seconds": 2.0, "step": 18, "P@5": 15.0}, {"seconds": 3.0, "step": 36, "P@5": 22.5}],
         "latency_ms_median": 0.45, "empty_latency_ms_median": 0.2, "batch256_rows_per_s": 24000.0,
         "empty_batch256_rows_per_s": 900000.0, "index_recall_at_5": None},
        {"dataset": "medical", "system": "tfxc-fast", "status": "failed", "error": "exit 2"},
        {"dataset": "medical", "system": "tfxc-mach", "status": "ok", "latency_ms_median": 0.9,
         "empty_latency_ms_median": 0.2, "batch256_rows_per_s": 8000.0, "empty_batch256_rows_per_s": 900000.0,
         "index_recall_at_5": 0.9925},  # no curve: left out of the plot, kept in the table
        {"dataset": "bibtex", "system": "tfxc-recipe", "status": "ok", "val_curve": [{"seconds": 9.0, "P@5": 30.0}]},
    ]


def test_frontier_series_are_the_curves_of_one_data_set_tfxc_first_in_time_order():
    assert bench_frontier.frontier_series(_records(), "medical", PEERS) == [
        {"system": "tfxc-recipe", "peer": False, "seconds": [2.0, 3.0], "P@5": [15.0, 22.5]},
        {"system": "omikuji-bonsai", "peer": True, "seconds": [0.03, 0.09], "P@5": [20.0, 23.0]},
        {"system": "pecos-xrlinear", "peer": True, "seconds": [1.2], "P@5": [20.0]}]
    assert bench_frontier.frontier_series(_records(), "yeast", PEERS) == []


def test_frontier_plot_is_drawn_per_data_set(tmp_path):
    pytest.importorskip("matplotlib")  # the bench draws it under --peer-python where this venv lacks it
    path = str(tmp_path / "medical.png")
    assert bench_frontier.plot_frontier(_records(), "medical", PEERS, path) and os.path.getsize(path) > 5000
    assert not bench_frontier.plot_frontier(_records(), "yeast", PEERS, str(tmp_path / "yeast.png"))


def test_the_serving_table_shows_the_margin_over_the_empty_call_and_the_ratio_to_the_best_peer():
    lines = bench_report.serving_lines(_records(), ["medical", "bibtex"], PEERS)
    assert "| medical | tfxc-recipe | 0.45 | 0.20 | +0.25 ✓ | 24,000 | 900,000 | 1.50× | – |" in lines
    assert "| medical | tfxc-mach | 0.90 | 0.20 | +0.70 | 8,000 | 900,000 | 0.50× | 99.25 % |" in lines
    assert "| medical | omikuji-bonsai | 0.03 |  |  | 16,000 |  |  |  |" in lines
    assert not any("tfxc-fast" in line or "bibtex" in line for line in lines)  # failed; no serving figures


def test_serving_figures_pair_the_model_with_the_empty_call(monkeypatch):
    class Answer:
        def numpy(self):
            return np.zeros(1)

    calls = []
    model, empty = (lambda **r: calls.append("model") or {"label_ids": Answer()},
                    lambda **r: calls.append("empty") or {"label_ids": Answer()})
    batch = {"row_splits": np.arange(257)}  # 256 rows
    # latency_ms is timed for real elsewhere (test_bench_serving.py); here its figures are given.
    timings = {"model": (np.array([0.5, 0.7, 0.6]), np.array([10.0, 12.0])),
               "empty": (np.array([0.2, 0.2, 0.3]), np.array([0.5, 0.5]))}

    def fake_latency(call, inputs, warmup=10):
        call(inputs[0])
        single = len(inputs[0]) == 0
        return timings[calls[-1]][0 if single else 1]

    monkeypatch.setattr(bench_serving, "latency_ms", fake_latency)
    figures = bench_serving.serving_figures(model, empty, [{}], [batch], rounds=2)
    assert calls == ["model", "model", "empty", "empty"] * 2  # alternating rounds
    assert figures["latency_ms_median"] == 0.6 and figures["empty_latency_ms_median"] == 0.2
    assert figures["batch256_rows_per_s"] == 256 * 1000 / 11.0
    assert figures["empty_batch256_rows_per_s"] == 256 * 1000 / 0.5


def test_index_recall_is_read_from_the_export_when_it_has_an_index(tmp_path):
    from tfxc.export.served import ASSETS_PATH, EXPORT_ASSET

    assets = tmp_path / ASSETS_PATH
    assets.mkdir(parents=True)
    assert bench_serving.index_recall(str(tmp_path)) is None  # no export.json
    (assets / EXPORT_ASSET).write_text(json.dumps({"top_k": 5, "num_labels": 9}))
    assert bench_serving.index_recall(str(tmp_path)) is None  # an export from before the index
    (assets / EXPORT_ASSET).write_text(json.dumps({"top_k": 5, "index": {"mode": "auto", "used": False}}))
    assert bench_serving.index_recall(str(tmp_path)) is None  # the exact head serves
    (assets / EXPORT_ASSET).write_text(json.dumps({"top_k": 5, "index": {"used": True, "beam": 4, "recall@5": 0.993}}))
    assert bench_serving.index_recall(str(tmp_path)) == 0.993


def test_point_systems_run_the_recipe_with_their_flag_and_a_failure_is_recorded(tmp_path, monkeypatch):
    commands = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        return subprocess.CompletedProcess(cmd, 2, "", "train.py: error: unrecognized arguments: --recipe=fast\n")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    args = type("Args", (), {"quick": False, "timeout": 60.0, "out": str(tmp_path), "peer_python": sys.executable,
                             "reuse_models": False})()
    record = bench.run_system("medical", "tfxc-fast", str(tmp_path / "data"), str(tmp_path / "work"), args)
    assert record["status"] == "failed" and "unrecognized arguments: --recipe=fast" in record["error"]
    assert record["config"] == "recipe --recipe fast" and commands[0][-1] == "--recipe=fast"
    record = bench.run_system("medical", "tfxc-recipe", str(tmp_path / "data"), str(tmp_path / "work"), args)
    assert record["config"] == "recipe" and not any(a.startswith("--recipe") for a in commands[1])
    assert set(bench.POINT_SYSTEMS) == {"tfxc-fast", "tfxc-best"}


def test_the_curve_table_gives_each_systems_best_and_when_it_reached_the_best_peer():
    lines = bench_report.curve_lines(_records(), ["medical", "bibtex"], PEERS)
    assert "| medical | tfxc-recipe | 38 | 22.50 | 3.00 | 23.00 | never |" in lines
    assert "| medical | omikuji-bonsai | 38 | 23.00 | 0.09 | 23.00 | 0.09 |" in lines
    assert "| medical | pecos-xrlinear | 38 | 20.00 | 1.20 | 23.00 | never |" in lines
    assert "| bibtex | tfxc-recipe | ? | 30.00 | 9.00 | – | – |" in lines  # no peer curve there
    assert bench_report.time_to_reach([{"seconds": 2.0, "P@5": 9.0}, {"seconds": 1.0, "P@5": 8.0}], 8.5) == 2.0
