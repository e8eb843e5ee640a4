"""Where one-row serving time goes: the Python call, the encoder, the head's top-k, the whole serving function.

  python tools/profile_serving.py --model-dir runs/tree_hyp_sm [--calls 300]

Builds the serving module of a trained model in process (as `tfxc.export` does) and times, as separate
tf.functions on one 4-feature row, medians over --calls: a trivial tf.function (the fixed cost of calling
TensorFlow from Python), the encoder, the head's `top_k` on fixed features, and the whole serving function.
"""

from __future__ import annotations

import argparse

import numpy as np

from profile_step import median_ms  # same folder

from tfxc._tf import tf
from tfxc.export.saved_model import ServingModule
from tfxc.model_dir import ModelDir


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    trained = ModelDir(args.model_dir).restore(need_rows=False)
    model, info = trained.model, trained.info
    module = ServingModule(model, info.label_names(), args.k, info.num_features)
    idx = tf.constant(np.arange(4) * (info.num_features // 4), tf.int64)
    val, splits = tf.constant([1.0, 0.5, 0.2, 0.1]), tf.constant([0, 4], tf.int64)

    def batch(i, v, s):
        return {"feat_idx": tf.RaggedTensor.from_row_splits(i, s, validate=False),
                "feat_val": tf.RaggedTensor.from_row_splits(v, s, validate=False)}

    encoder = tf.function(lambda i, v, s: model.encoder(batch(i, v, s)))
    features = encoder(idx, val, splits)
    head = tf.function(lambda h: model.head.top_k(h, args.k))
    trivial = tf.function(lambda v: v + 1)
    stages = {"trivial tf.function": lambda: trivial(val), "encoder": lambda: encoder(idx, val, splits),
              "head top_k": lambda: head(features), "serving function": lambda: module.serve(idx, val, splits)}
    for name, fn in stages.items():
        print(f"  {name:22s} {median_ms(fn, args.calls):7.3f} ms")


if __name__ == "__main__":
    main()
