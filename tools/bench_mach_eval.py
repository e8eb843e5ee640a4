"""MACH evaluation throughput: score reconstruction + top-k over L = 670,091 labels.

  python tools/bench_mach_eval.py                     # R=32, B=10000, batch 256, k=5, best of 3
  python tools/bench_mach_eval.py --batch 64 --repeats 1 --skip-numpy --skip-tf

Random float32 bucket scores [batch, R, B] (standard normal) and the real MACH label
hash (tfxc.hashing.MachLookup, seeds 0..R-1). Times (best of --repeats):

* ``mach_top_k`` compiled (Cython + OpenMP) with 1 and 2 threads,
* ``mach_top_k_numpy`` (the fallback),
* ``mach_candidate_top_k`` (approximate, top_buckets=50, min_freq=2),
* ``tfxc.heads.mach.mach_top_k_tf`` when that module exists (see the TF HOOK below),

and checks that every exact implementation returns the same ids and scores.
Medini et al., "Extreme Classification in Log Memory using Count-Min Sketch", NeurIPS 2019.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tfxc.cli import non_negative_int, positive_int
from tfxc.hashing import MachLookup
from tfxc.kernels.mach import (HAVE_COMPILED_MACH, default_num_threads, mach_candidate_top_k,
                               mach_top_k_compiled, mach_top_k_numpy)


def best_of(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def report(name, seconds, batch):
    print(f"{name:<44s} {seconds * 1e3:10.1f} ms  {batch / seconds:10.1f} rows/s", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=positive_int, default=256)
    p.add_argument("--repetitions", "-R", type=positive_int, default=32)
    p.add_argument("--buckets", "-B", type=positive_int, default=10000)
    p.add_argument("--labels", "-L", type=positive_int, default=670091)
    p.add_argument("--k", type=positive_int, default=5)
    p.add_argument("--top-buckets", type=positive_int, default=50)
    p.add_argument("--min-freq", type=non_negative_int, default=2)
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--skip-numpy", action="store_true", help="skip the slow NumPy fallback")
    p.add_argument("--skip-tf", action="store_true", help="skip the TF-graph row")
    args = p.parse_args(argv)
    N, R, B, L, k = args.batch, args.repetitions, args.buckets, args.labels, args.k

    print(f"R={R} B={B} L={L} batch={N} k={k}; compiled kernel: {HAVE_COMPILED_MACH} "
          f"(OpenMP default threads {default_num_threads()})")
    start = time.perf_counter()
    lookup = MachLookup.build(L, B, range(R))
    print(f"MachLookup.build {R} x {L}: {time.perf_counter() - start:.3f} s")
    start = time.perf_counter()
    for r in range(R):
        lookup.inverse(r)
    print(f"inverse lookups (all {R}):   {time.perf_counter() - start:.3f} s")
    scores = np.random.default_rng(0).standard_normal((N, R, B), dtype=np.float32)

    results = {}
    if HAVE_COMPILED_MACH:
        for threads in (1, 2):
            t, results[f"cython{threads}"] = best_of(
                lambda: mach_top_k_compiled(scores, lookup, k, num_threads=threads), args.repeats)
            report(f"mach_top_k (Cython, {threads} thread{'s' * (threads > 1)})", t, N)
    if not args.skip_numpy:
        t, results["numpy"] = best_of(lambda: mach_top_k_numpy(scores, lookup, k), args.repeats)
        report("mach_top_k_numpy", t, N)

    t, cand = best_of(lambda: mach_candidate_top_k(scores, lookup, k, args.top_buckets,
                                                   args.min_freq), args.repeats)
    report(f"mach_candidate_top_k (top_buckets={args.top_buckets})", t, N)

    # ------------------------------------------------------------------ TF HOOK
    # tfxc.heads.mach.mach_top_k_tf(bucket_scores, lookup int32 [R, L], k) -> (scores, ids):
    # the TF-graph version, timed on the same inputs (first call = trace/warm-up, untimed)
    # and checked against the NumPy/Cython results. Skipped while the module does not exist.
    try:
        if args.skip_tf:
            raise ImportError("--skip-tf")
        from tfxc.heads.mach import mach_top_k_tf
    except ImportError as exc:
        print(f"{'mach_top_k_tf (TF graph)':<44s} skipped ({exc})")
    else:
        def run_tf():
            s, i = mach_top_k_tf(scores, lookup.buckets, k)  # int32 [R, L]
            return np.asarray(s, dtype=np.float32), np.asarray(i, dtype=np.int64)
        run_tf()  # trace / warm-up
        t, results["tf"] = best_of(run_tf, args.repeats)
        report("mach_top_k_tf (TF graph)", t, N)
    # ------------------------------------------------------------------ end TF HOOK

    names = list(results)
    if names:
        ref_s, ref_i = results[names[0]]
        for name in names[1:]:
            s, i = results[name]
            same_ids = float(np.mean(i == ref_i))
            max_diff = float(np.max(np.abs(s - ref_s))) if s.size else 0.0
            # the TF version may sum in another order: only near-ties may swap ids
            print(f"agreement {name} vs {names[0]}: ids equal {same_ids:.4%}, "
                  f"max |score diff| {max_diff:.3g}")
            if name != "tf":
                assert np.array_equal(i, ref_i) and np.array_equal(s, ref_s), name
        exact_i = ref_i
        found = np.mean([len(set(a) & set(b)) / k
                         for a, b in zip(cand[1].tolist(), exact_i.tolist())])
        print(f"candidate top-{k} overlap with exact top-{k}: {found:.3f} "
              f"(random scores; meaningless for accuracy)")


if __name__ == "__main__":
    main()
