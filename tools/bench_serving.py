"""SavedModel serving latency: single-row and batched calls of the serving_default signature.

  python tools/bench_serving.py --saved-model runs/wordnet-savedmodel --data-dir runs/data/wordnet-hypernyms

Loads the SavedModel with plain tf.saved_model.load (as a server would), takes real rows from the
converted test split, and reports the median and p99 latency per call for batch sizes 1, 32 and 256.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench_peers import latency_ms  # same folder

from tfxc._tf import tf
from tfxc.data.info import DatasetInfo
from tfxc.data.tfrecord import read_all


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saved-model", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--batch-sizes", default="1,32,256")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    start = time.perf_counter()
    serve = tf.saved_model.load(args.saved_model).signatures["serving_default"]
    print(f"load: {time.perf_counter() - start:.2f}s")
    rows = read_all(DatasetInfo.load(args.data_dir).files("test"))
    rng = np.random.default_rng(0)
    for batch_size in map(int, args.batch_sizes.split(",")):
        requests = []
        for _ in range(args.calls):
            pick = [rows[i] for i in rng.integers(0, len(rows), batch_size)]
            requests.append({"feat_idx": tf.constant(np.concatenate([r["feat_idx"] for r in pick]), tf.int64),
                             "feat_val": tf.constant(np.concatenate([r["feat_val"] for r in pick]), tf.float32),
                             "row_splits": tf.constant(np.cumsum([0] + [len(r["feat_idx"]) for r in pick]),
                                                       tf.int64)})
        ms = latency_ms(lambda request: serve(**request)["label_ids"].numpy(), requests)
        print(f"batch {batch_size:4d}: median {np.median(ms):7.2f} ms  p99 {np.percentile(ms, 99):7.2f} ms  "
              f"= {batch_size / np.median(ms) * 1000:,.0f} rows/s")


if __name__ == "__main__":
    main()
