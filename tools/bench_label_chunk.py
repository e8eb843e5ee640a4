"""The top-k of a head that scores every label, by block size: what `tfxc.heads.top_k.LABEL_CHUNK` costs.

  python tools/bench_label_chunk.py --chunk 65536 --labels 300000        # one block size, one process
  python tools/bench_label_chunk.py --chunk 32768 --labels 300000

A linear head's ranking (`chunked_top_k` over `features @ W[start:stop]ᵀ + b`, as `tfxc.heads.linear`
and, with its product of code tables, `tfxc.heads.mhs` compute it) in a compiled `tf.function` on random
float32 weights, timed over --calls calls after one that traces. It prints the median milliseconds per call
and rows per second; run it once per block size (as whole processes, to compare their peak memory too: the
[batch, chunk] temporary of a block's logits is the point of the block) and check that every block size
returns the same ids with `--check`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tfxc.cli import positive_int


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunk", type=positive_int, default=65536, help="labels per block")
    p.add_argument("--labels", "-L", type=positive_int, default=300_000)
    p.add_argument("--dim", type=positive_int, default=256, help="the features' width")
    p.add_argument("--batch", type=positive_int, default=256)
    p.add_argument("--k", type=positive_int, default=5)
    p.add_argument("--calls", type=positive_int, default=10)
    p.add_argument("--check", action="store_true", help="also rank with one block of all labels and compare ids")
    args = p.parse_args(argv)

    from tfxc._tf import tf
    from tfxc.heads.top_k import chunked_top_k

    rng = np.random.default_rng(0)
    kernel = tf.constant((rng.standard_normal((args.labels, args.dim)) / np.sqrt(args.dim)).astype(np.float32))
    bias = tf.constant((rng.standard_normal(args.labels) * 0.1).astype(np.float32))
    features = tf.constant(rng.standard_normal((args.batch, args.dim), dtype=np.float32))

    def ranked(chunk):
        @tf.function
        def top_k(x):
            def logits(start, stop):
                return tf.matmul(x, kernel[start:stop], transpose_b=True) + bias[start:stop]

            vals, ids, _ = chunked_top_k(logits, args.labels, args.k, chunk=chunk)
            return vals, ids

        return top_k

    top_k = ranked(args.chunk)
    _, ids = top_k(features)  # traces
    seconds = []
    for _ in range(args.calls):
        start = time.perf_counter()
        top_k(features)[1].numpy()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    print(f"L={args.labels:,} dim={args.dim} batch={args.batch} k={args.k} chunk={args.chunk:,}: "
          f"{median * 1e3:.1f} ms per call (median of {args.calls}), {args.batch / median:,.0f} rows/s")
    if args.check:
        _, whole = ranked(args.labels)(features)
        print("same ids as one block:", bool(np.array_equal(ids.numpy(), whole.numpy())))


if __name__ == "__main__":
    main()
