"""SavedModel export with flat-tensor serving signatures.

Signatures (all inputs flat, so any TF Serving / gRPC / C++ client can call them):

  serving_default(feat_idx int64 [nnz], feat_val float32 [nnz], row_splits int64 [B+1])
      -> {"label_ids": int64 [B, k], "scores": float32 [B, k], "labels": string [B, k]}
  top_k(feat_idx, feat_val, row_splits, k int32 []) -> the same with a caller-chosen k

Row b of the batch is feat_idx[row_splits[b]:row_splits[b+1]] (CSR layout).
`k` of serving_default is fixed at export time (`export.top_k`). Ragged or
sparse signature inputs would be flattened into generated names on reload
(tf-notes §5), hence the explicit CSR triple.
"""

from __future__ import annotations

import json
import os
import shutil

from tfxc._tf import tf
from tfxc.config import config_to_json
from tfxc.utils.io import atomic_directory

ASSETS_DIR = "tfxc"


class ServingModule(tf.Module):
    """Wraps a trained `XCModel` with the signatures above."""

    def __init__(self, model, label_names: list[str], top_k: int):
        super().__init__(name="tfxc_serving")
        self.model = model
        self.num_labels = len(label_names)
        self.default_k = min(top_k, self.num_labels)
        self.label_names = tf.constant(label_names, dtype=tf.string)

    def _top_k(self, feat_idx, feat_val, row_splits, k):
        batch = {"feat_idx": tf.RaggedTensor.from_row_splits(feat_idx, row_splits),
                 "feat_val": tf.RaggedTensor.from_row_splits(feat_val, row_splits)}
        scores, ids = self.model.top_k(batch, k)
        return {"label_ids": ids, "scores": scores, "labels": tf.gather(self.label_names, ids)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="feat_idx"),
                                  tf.TensorSpec([None], tf.float32, name="feat_val"),
                                  tf.TensorSpec([None], tf.int64, name="row_splits")])
    def serve(self, feat_idx, feat_val, row_splits):
        return self._top_k(feat_idx, feat_val, row_splits, self.default_k)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="feat_idx"),
                                  tf.TensorSpec([None], tf.float32, name="feat_val"),
                                  tf.TensorSpec([None], tf.int64, name="row_splits"),
                                  tf.TensorSpec([], tf.int32, name="k")])
    def serve_k(self, feat_idx, feat_val, row_splits, k):
        return self._top_k(feat_idx, feat_val, row_splits, tf.minimum(k, self.num_labels))


def export_saved_model(model, config, info, out_dir: str, top_k: int | None = None) -> str:
    """Writes the SavedModel (atomically) with the config, labels and featurizer as assets."""
    module = ServingModule(model, info.label_names(), top_k or config.export.top_k)
    with atomic_directory(out_dir, marker="saved_model.pb") as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve, "top_k": module.serve_k})
        assets = os.path.join(tmp, "assets.extra", ASSETS_DIR)
        os.makedirs(assets)
        with open(os.path.join(assets, "config.json"), "w", encoding="utf-8") as f:
            f.write(config_to_json(config))
        with open(os.path.join(assets, "export.json"), "w", encoding="utf-8") as f:
            json.dump({"top_k": module.default_k, "num_features": info.num_features,
                       "num_labels": info.num_labels}, f, indent=2)
        if info.featurizer_path:
            shutil.copy(info.featurizer_path, os.path.join(assets, "featurizer.json"))
    return out_dir


def extra_asset(saved_model_dir: str, name: str) -> str | None:
    path = os.path.join(saved_model_dir, "assets.extra", ASSETS_DIR, name)
    return path if os.path.exists(path) else None
