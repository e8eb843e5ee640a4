"""Label tree construction: tfxc's balanced 2-means against PECOS's own indexer on the same PIFA features.

  python tools/bench_tree_build.py --config configs/tree_wordnet_hypernyms.json --peer-python .peers/bin/python
  python tools/bench_tree_build.py --config configs/scale_synthetic_tree.json --set data.synthetic.num_labels=1000000 \
      --set data.dir=runs/data/scale-1e6 --peer-python .peers/bin/python

Both cluster the PIFA label features of the converted train split (computed once by tfxc, saved, and
handed to PECOS's `Indexer.gen(..., indexer_type="hierarchicalkmeans")`), with the same
max_leaf_size / nr_splits / seed (the config's `model.head`). Reported per system: clustering wall time,
level sizes, leaf sizes (min / max: balance), and the leaf coherence Σ_c ‖Σ_{ℓ∈c} z_ℓ‖ / L (the mean
cosine of a label to its leaf's centroid direction; higher is tighter). With `--worker-pecos` this
script is the PECOS side, run under the peers' interpreter (numpy, scipy, libpecos only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

from tfxc.cli import non_negative_int, positive_int
from tfxc.utils.display import json_text


def leaf_stats(z: sp.csr_matrix, leaf_of_label: np.ndarray) -> dict:
    sizes = np.bincount(leaf_of_label)
    member = sp.csr_matrix((np.ones(z.shape[0]), (leaf_of_label, np.arange(z.shape[0]))),
                           shape=(sizes.size, z.shape[0]))
    sums = member @ z
    coherence = float(np.sqrt(np.asarray(sums.multiply(sums).sum(axis=1)).ravel()).sum() / z.shape[0])
    return {"leaves": int(sizes.size), "leaf_min": int(sizes.min()), "leaf_max": int(sizes.max()),
            "coherence": round(coherence, 4)}


def pecos_worker(pifa_path: str, leaf: int, nr_splits: int, seed: int) -> None:
    from pecos.xmc import Indexer

    z = sp.load_npz(pifa_path).tocsr().astype(np.float32)
    start = time.perf_counter()
    chain = Indexer.gen(z, indexer_type="hierarchicalkmeans", max_leaf_size=leaf, nr_splits=nr_splits, seed=seed)
    seconds = time.perf_counter() - start
    leaf_matrix = chain[-1].tocsr()  # [L, K], one 1 per row: label -> leaf cluster
    assert np.all(np.diff(leaf_matrix.indptr) == 1)
    print(json.dumps({"system": "pecos", "seconds": round(seconds, 2), "sizes": [int(c.shape[0]) for c in chain],
                      **leaf_stats(z, leaf_matrix.indices)}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--peer-python", help="interpreter with libpecos (omit to time tfxc alone)")
    parser.add_argument("--worker-pecos", help=argparse.SUPPRESS)
    parser.add_argument("--leaf", type=positive_int, default=100)
    parser.add_argument("--nr-splits", type=positive_int, default=16)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    args = parser.parse_args(argv)
    if args.worker_pecos:
        return pecos_worker(args.worker_pecos, args.leaf, args.nr_splits, args.seed)

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tfxc.resolve import load_with_data
    from tfxc.tree import cluster_labels, split_pifa

    config, info = load_with_data(args.config, args.overrides)  # a thin config: the recipe for its data
    head = config.model.head
    start = time.perf_counter()
    z = split_pifa(info)
    pifa_s = time.perf_counter() - start
    results = [{"data": info.dir, "labels": info.num_labels, "pifa_nnz": int(z.nnz), "pifa_seconds": round(pifa_s, 2)}]
    start = time.perf_counter()
    tree = cluster_labels(z, max_leaf_size=head.max_leaf_size, nr_splits=head.nr_splits,
                          min_codes=head.min_codes or None, seed=head.tree_seed, max_iter=head.kmeans_max_iter,
                          skip_unseen=head.skip_unseen_labels)
    seconds = time.perf_counter() - start
    if tree.leaf_labels is not None:  # both systems cluster the labels the train split has (as the head does)
        z = z[tree.leaf_labels]
        results[0]["labels_clustered"] = int(z.shape[0])
    results.append({"system": "tfxc", "seconds": round(seconds, 2), "sizes": tree.sizes,
                    **leaf_stats(z, tree.parents[-1])})
    if args.peer_python:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "pifa.npz")
            sp.save_npz(path, z)
            out = subprocess.run([args.peer_python, os.path.abspath(__file__), "--worker-pecos", path,
                                  "--leaf", str(head.max_leaf_size), "--nr-splits", str(head.nr_splits),
                                  "--seed", str(head.tree_seed)], capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in results:
        print(json_text(r))


if __name__ == "__main__":
    main()
