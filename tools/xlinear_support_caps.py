"""The TF-IDF model of XR-Transformer's ranker (XR-Linear solved per node, `tfxc.xr.xlinear`) on a converted
text set's validation split, by tree leaf size and by how many weights a node may keep on each level.

  python tools/xlinear_support_caps.py --data-dir runs/data/train-895c1f95 --leaf-sizes 16,100 \\
      --caps none 4096 0,0,16384,4096 0,0,4096,4096

Each leaf size's tree is PECOS's clustering of the TF-IDF's PIFA features (16-ary); its nodes are solved once
without a cap, then each `--caps` entry keeps every node's largest weights: one number for every level, or one
per level ("none" or 0: all). The solutions are scored by PECOS's beam search (beam 10, l3-hinge at every
level), written here in NumPy over CSR weights so that no padded width bounds what is measured. Prints one line
per (leaf size, caps): the level sizes, the solve's seconds and val P@1 / P@3 / P@5 / PSP@5.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from xrt_compare import score, split_rows  # noqa: E402  (a sibling tool)

SHOWN = ("P@1", "P@3", "P@5", "PSP@5")


def l3_hinge(v: np.ndarray) -> np.ndarray:
    return np.exp(-np.maximum(0.0, 1.0 - v) ** 3)


def level_weights(solution, level: int, num_features: int) -> scipy.sparse.csr_matrix:
    """The level's sparse weights as CSR [K_t, D]."""
    from tfxc.xr.xlinear import nodes_as_csr

    return nodes_as_csr(solution.support[level], solution.weights[level], num_features).astype(np.float32)


def beam_search(solution, tree, x: scipy.sparse.csr_matrix, beam: int = 10, k: int = 5) -> np.ndarray:
    """PECOS's beam search of a TF-IDF-only solution: label ids int [N, k] (−1 where fewer)."""
    rows = x.shape[0]
    logits = (x @ level_weights(solution, 0, x.shape[1]).T).toarray() + solution.bias[0]
    scores = l3_hinge(logits)
    nodes = np.argsort(-scores, axis=1, kind="stable")[:, :beam]
    scores = np.take_along_axis(scores, nodes, 1)
    for level in range(1, tree.num_levels):
        children = tree.children(level)[nodes]                                    # [N, beam, fan-out]
        candidates = children.reshape(rows, -1)
        parents = np.repeat(scores, children.shape[2], axis=1)
        logits = (x @ level_weights(solution, level, x.shape[1]).T).toarray() + solution.bias[level]
        picked = np.take_along_axis(logits, np.maximum(candidates, 0), 1)
        combined = np.where(candidates >= 0, l3_hinge(picked) * parents, -1.0)
        order = np.argsort(-combined, axis=1, kind="stable")[:, :k if level == tree.num_levels - 1 else beam]
        nodes, scores = np.take_along_axis(candidates, order, 1), np.take_along_axis(combined, order, 1)
    if tree.leaf_labels is not None:
        nodes = np.where(nodes >= 0, tree.leaf_labels[np.maximum(nodes, 0)], -1)
    return nodes


def capped(solution, caps: list[int]):
    """The solution with each node's largest |weight|s kept, at most caps[t] on level t (0: all)."""
    from tfxc.xr.xlinear import TreeLinear

    support, weights = [], []
    for s, w, cap in zip(solution.support, solution.weights, caps):
        if cap and s.shape[1] > cap:
            top = np.sort(np.argsort(-np.abs(w), axis=1, kind="stable")[:, :cap], axis=1)
            s, w = np.take_along_axis(s, top, 1), np.take_along_axis(w, top, 1)
        support.append(s)
        weights.append(w)
    return TreeLinear(solution.kernel, solution.bias, support, weights)


def parse_caps(text: str, levels: int) -> list[int]:
    """"none", "4096" or "0,0,16384,4096" -> one cap per level (0: all)."""
    from tfxc.utils.numbers import ascii_int

    values = [0 if part in ("none", "") else ascii_int(part) for part in text.split(",")]
    if any(v is None or v < 0 for v in values) or len(values) not in (1, levels):
        raise SystemExit(f"--caps {text!r}: 'none', one count, or one count per level ({levels}) in ASCII digits")
    return values * levels if len(values) == 1 else values


def main(argv=None):
    from tfxc.cli import AsciiInt
    from tfxc.data.info import DatasetInfo
    from tfxc.tree import cluster_labels, pifa
    from tfxc.utils.display import json_text
    from tfxc.utils.io import atomic_write_text
    from tfxc.xr.xlinear import fit_tree_linear, truncate_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="a converted text set with a val split")
    parser.add_argument("--leaf-sizes", default="16")
    parser.add_argument("--caps", nargs="+", default=["none", "4096"])
    parser.add_argument("--max-nnz", type=AsciiInt(1), default=64, help="each row's largest TF-IDF features read")
    parser.add_argument("--out", default="", help="also write the results here as JSON")
    args = parser.parse_args(argv)
    info = DatasetInfo.load(args.data_dir)
    x, y = split_rows(info, "train")
    x_val, y_val = split_rows(info, "val")
    x, x_val = truncate_rows(x, args.max_nnz), truncate_rows(x_val, args.max_nnz)
    z = pifa(x, y.astype(np.float32))
    results = {}
    for leaf in (int(v) for v in args.leaf_sizes.split(",")):
        tree = cluster_labels(z, max_leaf_size=leaf, nr_splits=16, skip_unseen=True)
        start = time.time()
        solution = fit_tree_linear(x, None, y, tree)
        seconds = time.time() - start
        for text in args.caps:
            caps = parse_caps(text, tree.num_levels)
            metrics = score(info, "val", beam_search(capped(solution, caps), tree, x_val), y_val)
            key = f"leaves {leaf}, caps {text}"
            results[key] = {"sizes": list(tree.sizes), "solve_s": round(seconds, 1),
                            **{m: round(float(metrics[m]), 2) for m in SHOWN}}
            print(f"{key}: levels {tree.sizes}, solved in {seconds:.0f} s; val "
                  + " / ".join(f"{results[key][m]:.2f}" for m in SHOWN), flush=True)
    if args.out:
        atomic_write_text(args.out, json_text(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
