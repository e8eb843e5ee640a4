"""The on-disk TFRecord format: one `tf.train.Example` per data point.

This module is the single source of truth for the format; the converter writes
with `serialize_row` and the input pipeline parses with `parse_batch`.

Features of each example:
  row_id:   int64 [1]      the point's 0-based position in its split (the
                           dual-variable optimizers index per-example state by it).
  feat_idx: int64 [nnz]    sorted feature ids.
  feat_val: float32 [nnz]  feature values.
  labels:   int64 [pos]    sorted label ids (may be empty).
  text:     bytes [0 or 1] raw text, for text data sets only.
  image:    bytes [0 or 1] the encoded image, for image data sets only.
"""

from __future__ import annotations

import numpy as np

from tfxc._tf import tf
from tfxc.data.rows import Row

SHARD_PATTERN = "{split}-{index:05d}-of-{count:05d}.tfrecord"


def shard_name(split: str, index: int, count: int) -> str:
    return SHARD_PATTERN.format(split=split, index=index, count=count)


def serialize_row(row_id: int, row: Row) -> bytes:
    """Serialises one row to `tf.train.Example` bytes (see the module docstring)."""
    feature = {
        "row_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[row_id])),
        "feat_idx": tf.train.Feature(int64_list=tf.train.Int64List(value=row.feat_idx)),
        "feat_val": tf.train.Feature(float_list=tf.train.FloatList(value=row.feat_val)),
        "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=row.labels)),
    }
    if row.text is not None:
        feature["text"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[row.text.encode("utf-8")]))
    if row.image is not None:
        feature["image"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[row.image]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


# RaggedFeature defaults to int32 row splits, which then clash with int64 ids
# inside tf.stack/concat (tf-notes §3), so every spec asks for int64 splits.
_RAGGED = dict(row_splits_dtype=tf.int64)
FEATURE_SPEC = {
    "row_id": tf.io.FixedLenFeature([], tf.int64),
    "feat_idx": tf.io.RaggedFeature(tf.int64, **_RAGGED),
    "feat_val": tf.io.RaggedFeature(tf.float32, **_RAGGED),
    "labels": tf.io.RaggedFeature(tf.int64, **_RAGGED),
    # "" for rows without text (BoW data); text encoders tokenise it in tf.data (`Encoder.preprocess`).
    "text": tf.io.FixedLenFeature([], tf.string, default_value=""),
    # "" for rows without an image; image encoders decode it in tf.data (`Encoder.preprocess`).
    "image": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def parse_batch(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses a batch of serialized examples (parse after batch: ~7x faster than per example).

    Args:
      serialized: string [B].

    Returns:
      {"row_id": int64 [B], "feat_idx": int64 ragged [B, None],
       "feat_val": float32 ragged [B, None], "labels": int64 ragged [B, None], "text": string [B],
       "image": string [B]}.
    """
    return tf.io.parse_example(serialized, FEATURE_SPEC)


def read_all(files: list[str]) -> list[dict[str, np.ndarray]]:
    """Eagerly reads whole files into NumPy rows (for tests and small tools).

    Each parsed batch comes to NumPy once, column by column: slicing its tensors row by row costs an
    eager op per row and key (most of a minute for a few thousand rows).
    """
    out = []
    for batch in tf.data.TFRecordDataset(files).batch(4096).map(parse_batch):
        columns = {}
        for key in FEATURE_SPEC:
            column = batch[key]
            if isinstance(column, tf.RaggedTensor):
                values, splits = column.flat_values.numpy(), column.row_splits.numpy()
                columns[key] = [values[splits[i]:splits[i + 1]] for i in range(splits.size - 1)]
            else:
                columns[key] = list(column.numpy())
        out.extend({key: columns[key][i] for key in FEATURE_SPEC} for i in range(len(columns["row_id"])))
    return out
