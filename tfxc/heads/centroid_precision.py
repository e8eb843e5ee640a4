"""How well the sparse term's starting point ranks a data set: the P@k of the nearest-centroid classifier it
starts as (`tfxc.heads.sparse_term`), which the recipe reads to choose the term's settings."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import scipy.sparse

from tfxc.heads.sparse_term import label_centroid_support, support_matrix

log = logging.getLogger("tfxc.heads")

# `centroid_precision`'s results, kept in the converted data directory (a re-conversion replaces the directory,
# so a kept figure always belongs to the rows beside it): the recipe asks for it at every start.
CENTROID_PRECISION_FILE = "centroid_precision.json"


def centroid_precision(info, size: int, k: int, split: str = "val", idf: bool = True,
                       max_rows: int = 20_000) -> tuple[float, float]:
    """`measure_centroid_precision`, read from `CENTROID_PRECISION_FILE` in the data directory when it was
    measured before with the same arguments (wordnet-nextword's recipe: 20.4 s, then 3.1 s), else measured and
    kept there."""
    from tfxc.utils.io import atomic_write_text

    path = os.path.join(info.dir, CENTROID_PRECISION_FILE)
    key = f"{split} size={size} k={k} idf={idf} max_rows={max_rows}"
    try:
        with open(path, encoding="utf-8") as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):  # a cache: one damaged into another JSON value is measured again
        known = {}
    if key in known:
        return tuple(known[key])
    found = measure_centroid_precision(info, size, k, split, idf, max_rows)
    try:
        atomic_write_text(path, json.dumps({**known, key: list(found)}, indent=1) + "\n")
    except OSError as exc:  # a read-only data directory: fine, just not kept
        log.warning("could not keep the centroid precision in %s: %s", info.dir, exc)
    return found


def measure_centroid_precision(info, size: int, k: int, split: str = "val", idf: bool = True,
                               max_rows: int = 20_000) -> tuple[float, float]:
    """P@k on a converted split of the nearest-centroid classifier that the sparse term starts as, and the
    highest P@k any ranking could reach there (the mean of min(k, |y|) / k), both in [0, 1].

    The classifier scores label l by x · c_l, c_l its unit-norm (idf-weighted) PIFA centroid on its `size`
    top features: the sparse term at its start (`label_centroid_support`). Scored with SciPy, a block of
    rows at a time as a sparse product (only the labels that share a feature with the row: never [N, L]),
    on the split's first `max_rows` rows: an estimate, which a choice between two settings needs no more
    precisely, at a bounded cost.
    """
    from tfxc.kernels import hits_matrix
    from tfxc.kernels.rows import row_top_k
    from tfxc.tree import cached_split_pifa
    from tfxc.tree.pifa import _batches_as_csr, cached_split_idf

    w = support_matrix(*label_centroid_support(cached_split_pifa(info), size,
                                               cached_split_idf(info) if idf else None), info.num_features)
    by_feature = w.T.tocsr()  # [D, L], once: a product with w.T converts it at every batch
    hits = attainable = rows = 0
    for x, y, _batch in _batches_as_csr(info, split, 1024):
        # The scores are products of non-negative features and centroids: the positive ones are all it ranks.
        ids, _ = row_top_k(scipy.sparse.csr_matrix(x @ by_feature), k)
        y.sort_indices()  # hits_matrix reads each row's labels ascending
        hits += int(hits_matrix(ids, y.indptr, y.indices).sum())
        attainable += int(np.minimum(np.diff(y.indptr), k).sum())
        rows += x.shape[0]
        if rows >= max_rows:
            break
    return hits / max(rows * k, 1), attainable / max(rows * k, 1)
