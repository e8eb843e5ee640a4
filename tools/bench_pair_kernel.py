"""Times the compiled pair kernel's sparse term (`tfxc.kernels.pairs.pair_sparse_dots`) on node supports of a
solved ranker's shape: most nodes a few hundred features wide, padded to the level's widest.

  python tools/bench_pair_kernel.py --nodes 10414 --width 4096 --median-width 67 --repeats 50

The widths are log-normal around `--median-width` (the p90 about 5.7× it, as wordnet-hypernyms' solved labels:
median 67, p90 381), cut at `--width`; each call scores `--batch` rows of `--row-nnz` features against
`--candidates` nodes each, keeping the looked-up values (the loss's call) unless `--scores-only`. Prints the
median seconds a call.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    from tfxc.cli import AsciiInt, FiniteFloat
    from tfxc.kernels.pairs import pair_sparse_dots

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=AsciiInt(1), default=10414)
    parser.add_argument("--width", type=AsciiInt(1), default=4096)
    parser.add_argument("--median-width", type=FiniteFloat(1.0), default=67.0)
    parser.add_argument("--features", type=AsciiInt(1), default=100_000)
    parser.add_argument("--batch", type=AsciiInt(1), default=32)
    parser.add_argument("--row-nnz", type=AsciiInt(1), default=64)
    parser.add_argument("--candidates", type=AsciiInt(1), default=160)
    parser.add_argument("--repeats", type=AsciiInt(1), default=50)
    parser.add_argument("--scores-only", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    spread = rng.lognormal(np.log(args.median_width), 1.36, args.nodes)
    widths = np.minimum(args.width, np.maximum(1, spread)).astype(int)
    support = np.full((args.nodes, args.width), -1, np.int32)
    for n, w in enumerate(widths):
        support[n, :w] = np.sort(rng.choice(args.features, w, replace=False))
    weights = np.where(support >= 0, rng.normal(size=support.shape), 0).astype(np.float32)
    ids = np.sort(np.stack([rng.choice(args.features, args.row_nnz, replace=False) for _ in range(args.batch)]), 1)
    values = rng.random(ids.shape).astype(np.float32)
    nodes = rng.integers(0, args.nodes, (args.batch, args.candidates)).astype(np.int32)
    times = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        pair_sparse_dots(ids.astype(np.int32), values, support, weights, nodes, args.features,
                         keep_looked=not args.scores_only)
        times.append(time.perf_counter() - start)
    print(f"{np.median(times[1:]):.6f} s a call (median of {args.repeats}); widths mean {widths.mean():.0f}, "
          f"padded to {args.width}")


if __name__ == "__main__":
    main()
