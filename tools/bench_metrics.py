"""Metric throughput: XmcMetrics.update on 100k rows of top-5 predictions over L = 670,091 labels.

  python tools/bench_metrics.py

Synthetic long-tailed labels (~5 per row); about half of the predicted slots are true labels and 5 %
are -1 padding. Times the compiled (Cython) hit kernel against the NumPy fallback (best of 7).
"""

from __future__ import annotations

import time

import numpy as np

import tfxc.eval.metrics as metrics_module
from tfxc.kernels import HAVE_COMPILED_KERNELS, _compiled_hits_matrix, hits_matrix_numpy


def best_of(fn, repeats=7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def make_problem(n=100_000, k=5, num_labels=670_091, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(6.25, size=n)
    rows = np.repeat(np.arange(n), counts)
    keys = np.unique(rows * num_labels + rng.zipf(1.3, size=rows.size) % num_labels)  # sorted, unique per row
    rows, indices = keys // num_labels, keys % num_labels
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int64)
    per_row = np.diff(indptr)
    true_pick = indices[np.minimum(indptr[:-1, None] + (rng.random((n, k)) * np.maximum(per_row, 1)[:, None])
                                   .astype(np.int64), indices.size - 1)]
    pred = np.where((rng.random((n, k)) < 0.5) & (per_row[:, None] > 0), true_pick,
                    rng.integers(0, num_labels, size=(n, k)))
    pred[rng.random((n, k)) < 0.05] = -1
    freq = np.bincount(indices, minlength=num_labels)
    return pred, indptr, indices, metrics_module.propensities(freq, n)


def main():
    pred, indptr, indices, prop = make_problem()
    print(f"{pred.shape[0]} rows, top-{pred.shape[1]}, L={prop.size}, {indices.size / pred.shape[0]:.2f} "
          f"labels/row, compiled kernels: {HAVE_COMPILED_KERNELS}")
    kernels = [("numpy", hits_matrix_numpy)] + ([("cython", _compiled_hits_matrix)] if HAVE_COMPILED_KERNELS else [])
    for name, kernel in kernels:
        print(f"{name}: hits_matrix {best_of(lambda: kernel(pred, indptr, indices)) * 1e3:.1f} ms")
        metrics_module.hits_matrix = kernel
        for label, kwargs in (("P/nDCG/R", {}), ("+ PSP/PSnDCG", {"propensities": prop})):
            build = best_of(lambda: metrics_module.XmcMetrics(ks=(1, 3, 5), **kwargs))
            total = best_of(lambda: metrics_module.XmcMetrics(ks=(1, 3, 5), **kwargs).update(pred, indptr, indices))
            print(f"  update {label:13s} {(total - build) * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
