"""XR-Transformer against the TF-IDF systems on the same text and the same split: validation and test, side by side.

  python tools/xrt_compare.py --data-dir runs/data/train-87d49cd0 --peer-python .peers/bin/python \\
      --model tfxc-xrt=runs/xrt/reuters --model tfxc-recipe=runs/recipe/reuters --out runs/compare/reuters

The data directory is a converted text set (`tfxc.train --train T.jsonl ...` writes one): its train split's
TF-IDF rows, the featurizer tfxc's own models read, are handed to PECOS XR-Linear (`tools/bench_peers.py`,
its documented defaults, rows L2-normalised), which predicts the val and test splits; each `--model` (a tfxc
model directory trained on that data) is evaluated on both with `tfxc.evaluate`. Every system is scored by
the same `XmcMetrics` (propensities from train). Prints a Markdown table and writes OUT/compare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import scipy.sparse

from tfxc.utils.display import json_text

SPLITS = ("val", "test")
SHOWN = ("P@1", "P@3", "P@5", "PSP@5")


def split_rows(info, split: str):
    """(TF-IDF CSR [N, D], labels CSR [N, L]) of a converted split, in row-id order."""
    from tfxc.data.pipeline import eval_dataset

    xs, ys, ids = [], [], []
    for batch in eval_dataset(info.files(split), 4096):
        idx, val, lab = batch["feat_idx"], batch["feat_val"], batch["labels"]
        n = int(idx.nrows())
        xs.append(scipy.sparse.csr_matrix((val.values.numpy(), idx.values.numpy(), idx.row_splits.numpy()),
                                          shape=(n, info.num_features)))
        ys.append(scipy.sparse.csr_matrix((np.ones(lab.values.shape[0], np.float32), lab.values.numpy(),
                                           lab.row_splits.numpy()), shape=(n, info.num_labels)))
        ids.append(batch["row_id"].numpy())
    order = np.argsort(np.concatenate(ids), kind="stable")
    return scipy.sparse.vstack(xs).tocsr()[order], scipy.sparse.vstack(ys).tocsr()[order]


def score(info, split: str, ids: np.ndarray, y) -> dict:
    from tfxc.config.schema import EvalConfig
    from tfxc.eval.evaluator import split_metrics

    metrics = split_metrics(info, EvalConfig(ks=(1, 3, 5)), split)
    metrics.update(ids, y.indptr, y.indices)
    return metrics.result()


def peer(info, args, rows) -> dict:
    """PECOS XR-Linear trained on train, scored on val and test; {"split": metrics, "train_s": seconds}."""
    out = {}
    data = os.path.join(args.out, "pecos-data")
    os.makedirs(data, exist_ok=True)
    scipy.sparse.save_npz(os.path.join(data, "X.trn.npz"), rows["train"][0])
    scipy.sparse.save_npz(os.path.join(data, "Y.trn.npz"), rows["train"][1])
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_peers.py")
    for split in SPLITS:
        scipy.sparse.save_npz(os.path.join(data, "X.tst.npz"), rows[split][0])
        work = os.path.join(args.out, f"pecos-xrlinear-{split}")
        env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
        subprocess.run([args.peer_python, tool, "--system", "pecos-xrlinear", "--data", data, "--work", work,
                        "--k", "5", "--latency-rows", "0"], check=True, env=env)
        ids = np.load(os.path.join(work, "pred.npz"), allow_pickle=False)["ids"]
        out[split] = score(info, split, ids, rows[split][1])
        out["train_s"] = json.load(open(os.path.join(work, "result.json")))["train_s"]
    return out


def stage_seconds(model_dir: str) -> dict:
    """An XR-Transformer directory's stages in seconds ({} for other models): each level's preparation (the
    embedding pass, `man` and bootstrap) and loop, the ranker's preparation (the embedding pass, the tree and
    the solves) and loop; from level.json, ranker_prepared.json and metrics.json."""
    from tfxc.xr.pipeline import LEVEL_DONE, RANKER_PREPARED, level_dir

    out, index = {}, 0
    while os.path.exists(os.path.join(level_dir(model_dir, index), LEVEL_DONE)):
        level = json.load(open(os.path.join(level_dir(model_dir, index), LEVEL_DONE)))
        out[f"level {index} ({level['clusters']} clusters) prepare"] = level["prepare_seconds"]
        out[f"level {index} ({level['clusters']} clusters, {level['steps']} steps) loop"] = level["train_seconds"]
        index += 1
    prepared = os.path.join(model_dir, RANKER_PREPARED)
    if os.path.exists(prepared):
        out["ranker prepare"] = json.load(open(prepared))["prepare_seconds"]
        out["ranker loop"] = json.load(open(os.path.join(model_dir, "metrics.json")))["train_seconds"]
    return out


def tfxc_model(model_dir: str) -> dict:
    out = {"stages_s": stage_seconds(model_dir)}
    for split in SPLITS:
        start = time.time()
        done = subprocess.run([sys.executable, "-m", "tfxc.evaluate", "--model-dir", model_dir, "--split", split,
                               "--json"], check=True, capture_output=True, text=True)
        out[split] = json.loads(done.stdout.strip().splitlines()[-1])
        out[f"{split}_eval_s"] = time.time() - start
    return out


def main(argv=None):
    from tfxc.data.info import DatasetInfo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="a converted text set (train, val and test splits)")
    parser.add_argument("--peer-python", default="", help="the interpreter with libpecos (none: no PECOS row)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=MODEL_DIR")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    info = DatasetInfo.load(args.data_dir)
    results = {}
    if args.peer_python:
        rows = {split: split_rows(info, split) for split in ("train", *SPLITS)}
        results["pecos-xrlinear"] = peer(info, args, rows)
    for entry in args.model:
        name, _, path = entry.partition("=")
        results[name] = tfxc_model(path)
    with open(os.path.join(args.out, "compare.json"), "w", encoding="utf-8") as f:
        f.write(json_text(results) + "\n")
    print("| system | " + " | ".join(f"{s} {m}" for s in SPLITS for m in SHOWN) + " |")
    print("|---" * (1 + len(SPLITS) * len(SHOWN)) + "|")
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[s][m]:.2f}" for s in SPLITS for m in SHOWN) + " |")
    for name, r in results.items():
        if r.get("stages_s"):
            print(f"{name}: " + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in r["stages_s"].items()))


if __name__ == "__main__":
    main()
