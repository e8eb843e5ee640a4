"""Where one-row serving time goes: the Python call, the encoder, the head's top-k, the whole serving function.

  python tools/profile_serving.py --model-dir runs/tree_hyp_sm [--calls 300]

Builds the serving module of a trained model in process (as `tfxc.export` does) and times, as separate
tf.functions on one 4-feature row, medians over --calls: a trivial tf.function (the fixed cost of calling
TensorFlow from Python), the input checks, the encoder, the head's `top_k` on fixed features (and its XLA
compilation, for heads that serve with it), the whole serving function and, with --saved-model, the
exported signature.
"""

from __future__ import annotations

import argparse

import numpy as np

from profile_step import median_ms  # same folder

from tfxc._tf import tf
from tfxc.cli import add_trust_args, keep_out_of_import_path, positive_int
from tfxc.export.serving_modules import ServingModule
from tfxc.model_dir import ModelDir


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--calls", type=positive_int, default=300)
    parser.add_argument("--k", type=positive_int, default=5)
    parser.add_argument("--saved-model", default="", help="also time this export's serving_default signature")
    add_trust_args(parser)
    args = parser.parse_args()
    keep_out_of_import_path([args.model_dir])
    model_dir = ModelDir(args.model_dir)
    trained = model_dir.restore(model_dir.load_config(trust_imports=args.trust_imports), need_rows=False)
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
    def checked(i, v, s):
        with tf.control_dependencies(module._input_checks(i, v, s, args.k)):
            return tf.identity(i)

    checks = tf.function(checked)
    stages = {"trivial tf.function": lambda: trivial(val), "input checks": lambda: checks(idx, val, splits),
              "encoder": lambda: encoder(idx, val, splits), "head top_k": lambda: head(features)}
    if module._compiled_head_top_k is not None:
        stages["head top_k (XLA)"] = lambda: module._compiled_head_top_k(features)
    stages["serving function"] = lambda: module.serve(idx, val, splits)
    if args.saved_model:
        signature = tf.saved_model.load(args.saved_model).signatures["serving_default"]
        stages["SavedModel signature"] = lambda: signature(feat_idx=idx, feat_val=val, row_splits=splits)
    for name, fn in stages.items():
        print(f"  {name:22s} {median_ms(fn, args.calls):7.3f} ms")


if __name__ == "__main__":
    main()
