"""How far a nearest-centroid (Rocchio) classifier gets on a data set, with no training at all.

Label l scores a row x by x · c_l, c_l the unit-norm PIFA centroid of l's training rows on its
`--support` largest features (optionally weighed by the features' idf first): the start of the
sparse term (`tfxc.heads.sparse_term.label_centroid_support`). The recipe gives the exact heads
that start only where it nearly ranks the validation split perfectly; this tool shows the whole
picture on the matrices `tools/bench.py` writes (docs/benchmarks-history.md, "Session 12").

  python tools/centroid_baseline.py benchmarks/work/data/synthetic-1e4

The first 90 % of X/Y.trn.npz are the training rows, the next `--rows` (3,000) the validation
rows (file order, no shuffling). Prints P@1 / P@5 / PSP@5 (percent; PSP normalised by the best
attainable, propensities A=0.55, B=1.5 from the training rows) with and without the idf.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import scipy.sparse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tfxc.data.propensity import propensities  # noqa: E402
from tfxc.heads.sparse_term import label_centroid_support, support_matrix  # noqa: E402
from tfxc.tree.pifa import pifa, smoothed_idf  # noqa: E402
from tfxc.cli import positive_int  # noqa: E402


def precision_and_psp(scores: np.ndarray, y: scipy.sparse.csr_matrix, inverse_propensity: np.ndarray, k: int = 5):
    """(P@1, P@k, PSP@k) in percent of dense scores [n, L] against labels y [n, L]."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    truth = y.toarray() > 0
    hits = np.take_along_axis(truth, top, axis=1)
    gained = (hits * inverse_propensity[top]).sum()
    best = sum(np.sort(inverse_propensity[y.indices[y.indptr[i]:y.indptr[i + 1]]])[::-1][:k].sum()
               for i in range(y.shape[0]))
    return 100 * hits[:, 0].mean(), 100 * hits.mean(), 100 * gained / max(best, 1e-12)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a directory with X.trn.npz and Y.trn.npz")
    parser.add_argument("--support", type=positive_int, default=32, help="features per label (default 32)")
    parser.add_argument("--rows", type=positive_int, default=3000, help="validation rows (default 3,000)")
    args = parser.parse_args(argv)
    x = scipy.sparse.load_npz(os.path.join(args.data, "X.trn.npz")).tocsr().astype(np.float32)
    y = scipy.sparse.load_npz(os.path.join(args.data, "Y.trn.npz")).tocsr().astype(np.float32)
    cut = int(0.9 * x.shape[0])
    x_train, y_train = x[:cut], y[:cut]
    x_val, y_val = x[cut:cut + args.rows], y[cut:cut + args.rows]
    inverse_propensity = 1.0 / propensities(np.asarray(y_train.sum(axis=0)).ravel(), cut)
    idf = smoothed_idf(np.bincount(x_train.indices[x_train.data != 0], minlength=x.shape[1]), cut)
    z = pifa(x_train, y_train)
    for name, weights in (("centroids", None), ("idf-weighted centroids", idf)):
        w = support_matrix(*label_centroid_support(z, args.support, weights), x.shape[1])
        p1, p5, psp5 = precision_and_psp((x_val @ w.T).toarray(), y_val, inverse_propensity)
        print(f"{name}: P@1 {p1:.2f} P@5 {p5:.2f} PSP@5 {psp5:.2f}")


if __name__ == "__main__":
    main()
