"""The in-memory record every reader yields and every writer consumes."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Row(NamedTuple):
    """One data point of an extreme-classification set.

    Attributes:
      feat_idx: int64 [nnz], feature ids, sorted ascending, unique.
      feat_val: float32 [nnz], the values of those features.
      labels: int64 [num_pos], label ids, sorted ascending, unique (may be empty).
      text: the raw text for text sets (JSONL), else None.
      image: the encoded image (JPEG, PNG, ...) for image sets, else None.
    """

    feat_idx: np.ndarray
    feat_val: np.ndarray
    labels: np.ndarray
    text: str | None = None
    image: bytes | None = None
