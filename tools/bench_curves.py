"""Time-to-accuracy for `tools/bench.py`: validation P@5 against training seconds, for tfxc and the peers.

The validation rows (the same for every system of a run): row i of the train split (in file order) is a
validation row when md5(str(i)) mod 100 < `VAL_PERCENT` (10), i.e. `tfxc.data.holdout.in_validation`
with every point its own group. That is the rule of `data.val_percent`, which tfxc's recipe applies
when it is given no validation source, so:

* tfxc trains exactly as in the standing run (the recipe holds these rows out itself and evaluates them
  every `trainer.eval_every_*`); its curve is the val records of the model directory's eval_log.jsonl,
  each at its `elapsed_s` (the training loop's wall clock when the evaluation began, on the clock of
  metrics.json's `train_seconds`). A run whose val split differs from the carve in point or feature
  count (a config without `data.val_percent`, another percentage) gets no curve, never a wrong one.
* each peer trains a second time on the other train rows (`carve` writes them as a data directory of
  its own: X/Y.trn.npz the rest, X/Y.tst.npz the validation rows) and is scored on the validation rows
  with bench.py's metric code: a point at its training seconds; omikuji also with a forest of 1 and
  2 trees instead of 3 (`bench_peers.BUDGETS`), so its points show what a smaller budget gives.

The test split is never used here: the standing (test) figures come from the runs as before.
"""

from __future__ import annotations

import os

import numpy as np

CARVE_DIR = "val-carve"  # inside a prepared data set's directory


def validation_mask(num_rows: int, percent: int | None = None) -> np.ndarray:
    """bool [num_rows]: which train rows (by index) are validation rows (the module docstring's rule)."""
    from tfxc.data.holdout import in_validation
    from tfxc.data.sources import VAL_PERCENT

    percent = VAL_PERCENT if percent is None else percent
    return np.fromiter((in_validation(str(i), percent) for i in range(num_rows)), bool, num_rows)


def carve(data_dir: str) -> str:
    """Writes (once) DATA_DIR/val-carve/{X,Y}.{trn,tst}.npz: the train rows kept for training, and the
    validation rows as its test split; returns that directory."""
    import scipy.sparse as sp

    directory = os.path.join(data_dir, CARVE_DIR)
    if os.path.exists(os.path.join(directory, "done")):
        return directory
    os.makedirs(directory, exist_ok=True)
    x, y = (sp.load_npz(os.path.join(data_dir, f"{m}.trn.npz")).tocsr() for m in ("X", "Y"))
    val = validation_mask(x.shape[0])
    for name, rows in (("trn", ~val), ("tst", val)):
        sp.save_npz(os.path.join(directory, f"X.{name}.npz"), x[rows])
        sp.save_npz(os.path.join(directory, f"Y.{name}.npz"), y[rows])
    open(os.path.join(directory, "done"), "w").close()
    return directory


def carve_summary(carve_dir: str) -> dict:
    """{"num_points", "nnz"} of the validation rows' features (what a model's val split must match)."""
    import scipy.sparse as sp

    x = sp.load_npz(os.path.join(carve_dir, "X.tst.npz"))
    return {"num_points": int(x.shape[0]), "nnz": int(x.nnz)}


def same_validation_rows(split_stats: dict | None, carve: dict) -> bool:
    """Whether a model's val split (its stats.json entry: "num_points", "nnz") holds the carved rows."""
    return bool(split_stats) and all(int(split_stats.get(key, -1)) == carve[key] for key in ("num_points", "nnz"))


def eval_log_curve(eval_log: list[dict], metrics: tuple[str, ...] = ("P@5", "PSP@5")) -> list[dict]:
    """The validation curve in an eval_log.jsonl: [{"seconds", "step", <metric>...}] in step order.

    Only "val" records with an `elapsed_s` count (test records and logs written before the field
    existed do not); a step evaluated twice (a resumed run) keeps its last record, as the log does.
    """
    by_step = {r["step"]: r for r in eval_log if r.get("split") == "val" and "elapsed_s" in r}
    return [{"seconds": float(r["elapsed_s"]), "step": int(step), **{m: float(r[m]) for m in metrics if m in r}}
            for step, r in sorted(by_step.items())]


def tfxc_curve(model_dir: str, carve_dir: str) -> dict:
    """{"val_curve": [...], "val_rows": N} of a trained tfxc model directory, or {"val_curve_error": why}.

    Reads the model's data card (dataset/stats.json) to check that its val split is the carve.
    """
    import json

    from tfxc.model_dir import ModelDir

    model = ModelDir(model_dir)
    ensemble = model.ensemble()
    if ensemble is not None:  # the recipe's best point: its first member's curve, then the ensemble at its total time
        curve = tfxc_curve(model.ensemble_members()[0], carve_dir)
        chosen = ensemble["validation"].get(ensemble["method"])
        if "val_curve" in curve and chosen:
            curve["val_curve"].append({"seconds": float(model.metrics()["train_seconds"]), "step": 0,
                                       "members": len(ensemble["members"]),
                                       **{m: float(chosen[m]) for m in ("P@5", "PSP@5")}})
        return curve
    expected = carve_summary(carve_dir)
    try:
        with open(os.path.join(model.dataset_dir, "stats.json"), encoding="utf-8") as f:
            val = json.load(f)["splits"].get("val")
    except (OSError, ValueError, KeyError) as e:
        return {"val_curve_error": f"no data card ({type(e).__name__})"}
    if not same_validation_rows(val, expected):
        return {"val_curve_error": f"its val split ({val and val.get('num_points')} points) is not the carve's "
                                   f"{expected['num_points']} rows"}
    return {"val_curve": eval_log_curve(model.eval_log()), "val_rows": expected["num_points"]}


def peer_point(train_s: float, metrics: dict, val_rows: int, trees: int = 0) -> dict:
    """One point of a peer's curve: its training seconds on the carve and its validation metrics
    (bench.score's output); `trees`: the forest size when smaller than the default (0)."""
    return {"seconds": float(train_s), **{m: float(metrics[m]) for m in ("P@5", "PSP@5")}, "val_rows": int(val_rows),
            **({"trees": int(trees)} if trees else {})}
