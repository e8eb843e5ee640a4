"""The XR-Transformer ablation of issue 42 on one data set: what fine-tuning, the TF-IDF, the multi-resolution
schedule and each bootstrap method are worth.

  python tools/xrt_ablation.py --config configs/xrt_reuters.json --out runs/xrt-ablation/reuters [--dry-run]
      [--variants full,without-tfidf,...] [--set key=value ...]

Trains, each in OUT/<variant> (resumable: a finished run is kept, a killed one resumes):
  * full: the config as it is (fine-tuned, ranker on [TF-IDF ⊕ E]);
  * not-fine-tuned: do_fine_tune false, the ranker on the pretrained encoder's embeddings and the TF-IDF;
  * one-resolution: multi_resolution false, the finest level alone for all the levels' updates;
  * without-tfidf: the ranker on full's fine-tuned embeddings alone (sparse_support 0), from a copy of
    full's levels (its refined tree is still clustered on [TF-IDF ⊕ E]);
  * bootstrap-<method>: each bootstrap method the config does not use. These start from full's first
    level (a copy: the bootstrap only acts from the second level on, so the first is the same run).
`--variants` runs some of them, in the order given (full's first, for the variants that copy from it).
Prints one markdown row per variant: the test split's P@1/P@3/P@5/PSP@5 and the training time (each
level's loop and the passes before it, and the ranker's).

A fine-tuned level's own head is no stand-in for "without the TF-IDF" on a large label set: trained on
its active sets only, it ranks badly when every cluster is scored (wordnet-hypernyms' last level: P@1
1.76).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

from tfxc.cli import add_set_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOTSTRAPS = ("weighted-linear", "linear", "inherit", "no-bootstrap")
METRICS = ("P@1", "P@3", "P@5", "PSP@5")


def variants(configured: str) -> dict[str, list[str]]:
    """Variant name -> its --set overrides, for a config whose bootstrap method is `configured`."""
    out = {"full": [], "not-fine-tuned": ["model.head.do_fine_tune=false"],
           "one-resolution": ["model.head.multi_resolution=false"], "without-tfidf": ["model.head.sparse_support=0", "model.head.sparse_init=0", "model.head.sparse_idf=false"]}
    for method in BOOTSTRAPS:
        if method != configured:
            out[f"bootstrap-{method}"] = [f"model.head.bootstrap={method}"]
    return out


def seconds(model_dir: str) -> float:
    """The run's recorded training time (`tools/bench.py`'s count)."""
    sys.path.insert(0, os.path.join(REPO, "tools"))
    from bench import trained_seconds

    return trained_seconds(model_dir) or 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    add_set_args(parser, "config values of every variant", "--set trainer.epochs=5")
    parser.add_argument("--variants", help="comma-separated variants to run, in this order (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    args = parser.parse_args(argv)
    args.config, args.out = os.path.abspath(args.config), os.path.abspath(args.out)
    from tfxc.config import load_config

    configured = load_config(args.config, args.overrides).model.head.bootstrap
    sets = [a for o in args.overrides for a in ("--set", o)]

    def run(cmd: list[str]) -> None:
        print(" ".join(cmd), flush=True)
        if not args.dry_run:
            subprocess.run(cmd, cwd=REPO, check=True)

    known = variants(configured)
    chosen = args.variants.split(",") if args.variants else list(known)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    rows = {}
    for name in chosen:
        overrides = known[name]
        model_dir = os.path.join(args.out, name)
        full = os.path.join(args.out, "full")
        copied = {"without-tfidf": "levels"}.get(name, "levels/level-0" if name.startswith("bootstrap-") else "")
        if copied and not os.path.exists(model_dir) and not args.dry_run:
            shutil.copytree(os.path.join(full, copied), os.path.join(model_dir, copied))
            shutil.copy(os.path.join(full, "preliminary_tree.npz"), model_dir)
        run([sys.executable, "-m", "tfxc.train", "--config", args.config, "--model-dir", model_dir, *sets,
             *[a for o in overrides for a in ("--set", o)]])
        rows[name] = model_dir
    if args.dry_run:
        return 0
    print("| variant | " + " | ".join(METRICS) + " | training |\n|---|" + "---|" * (len(METRICS) + 1))
    for name, model_dir in rows.items():
        with open(os.path.join(model_dir, "metrics.json"), encoding="utf-8") as f:
            metrics = json.load(f)
        print(f"| {name} | " + " | ".join(f"{metrics[m]:.2f}" for m in METRICS) + f" | {seconds(model_dir):.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
