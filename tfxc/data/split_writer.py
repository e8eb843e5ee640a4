"""One split of a conversion written as sharded TFRecords, with the counts its data card records."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

import numpy as np

from tfxc.data.rows import Row
from tfxc.data.tfrecord import serialize_row, shard_name


class SplitWriter:
    """Writes rows round-robin into `num_shards` TFRecord files and counts statistics."""

    def __init__(self, directory: str, split: str, num_shards: int):
        from tfxc._tf import tf

        self.split, self.num_shards = split, num_shards
        self.writers = [tf.io.TFRecordWriter(os.path.join(directory, shard_name(split, i, num_shards)))
                        for i in range(num_shards)]
        self.num_points = self.nnz = self.num_positives = self.no_labels = self.no_features = 0
        self.max_feature = self.max_label = -1
        self._label_counts = np.zeros(0, np.int64)
        # The rows' content, in order: two conversions with equal cards but other rows (a shuffled source)
        # are still different data to a model bound to one of them.
        self._digest = hashlib.sha256()

    def write(self, row: Row) -> None:
        self._digest_row(row)
        self.writers[self.num_points % self.num_shards].write(serialize_row(self.num_points, row))
        self.num_points += 1
        self.nnz += row.feat_idx.size
        self.num_positives += row.labels.size
        self.no_labels += row.labels.size == 0
        self.no_features += row.feat_idx.size == 0
        if row.feat_idx.size:
            self.max_feature = max(self.max_feature, int(row.feat_idx[-1]))
        if row.labels.size:
            top = int(row.labels[-1])
            if top >= self._label_counts.size:
                self._label_counts = np.pad(self._label_counts, (0, max(top + 1, 2 * self._label_counts.size)
                                                                  - self._label_counts.size))
            self._label_counts[row.labels] += 1
            self.max_label = max(self.max_label, top)

    def _digest_row(self, row: Row) -> None:
        # The row's values, not its serialised Example: protobuf leaves the order of a map's keys open.
        parts = [np.ascontiguousarray(row.feat_idx, np.int64).tobytes(),
                 np.ascontiguousarray(row.feat_val, np.float32).tobytes(),
                 np.ascontiguousarray(row.labels, np.int64).tobytes(),
                 b"" if row.text is None else row.text.encode("utf-8", "surrogatepass")]
        if row.image is not None:  # after the others: rows without images keep their digest
            parts.append(row.image)
        for part in parts:
            self._digest.update(len(part).to_bytes(8, "little") + part)

    def write_all(self, rows: Iterable[Row]) -> "SplitWriter":
        for row in rows:
            self.write(row)
        return self.close()

    def close(self) -> "SplitWriter":
        for w in self.writers:
            w.close()
        return self

    def label_counts(self, num_labels: int) -> np.ndarray:
        out = np.zeros(num_labels, np.int64)
        out[: min(num_labels, self._label_counts.size)] = self._label_counts[:num_labels]
        return out

    def stats(self, num_labels: int) -> dict:
        n = max(self.num_points, 1)
        return {"num_points": self.num_points, "num_shards": self.num_shards, "nnz": self.nnz,
                "avg_features_per_point": self.nnz / n, "avg_labels_per_point": self.num_positives / n,
                "points_without_labels": self.no_labels, "points_without_features": self.no_features,
                "labels_present": int(np.count_nonzero(self.label_counts(num_labels))),
                "sha256": self._digest.hexdigest()}
