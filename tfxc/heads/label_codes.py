"""Label codes of the multi-head encoding heads: mixed-radix digits, group sizing, label order.

Reference: Liang et al., "Multi-Head Encoding for Extreme Label Classification"
(TPAMI 2025, arXiv 2412.10182); spec and test vectors in algorithms.md §3.1 and §3.6.

A label space of L labels is factorised into H heads of sizes n_1..n_H with
Π n_h ≥ L. A label's *code* c in [0, L) is written in mixed radix, most
significant digit first: d_1 = ⌊c / (n_2⋯n_H)⌋, ..., d_H = c mod n_H. Codes
L..Π n_h − 1 stand for no label and are never predicted.

Which label gets which code is the *label order*: "id" (the code is the label id,
the paper's choice), "frequency" (the most frequent train labels first, so
they share the leading digits) or "tree" (the leaf order of a balanced PIFA
2-means tree, `tfxc.tree`, so a block of consecutive codes is a cluster of
similar labels). The order is saved in the model directory on first build and
kept for the model's life. On wordnet-hypernyms' validation split the tree order
gave MHC P@5 84.94 against 83.42 for id order and 83.37 by frequency
(docs/benchmarks-history.md, "Multi-head encoding"): MHE's claim that the grouping does not
matter holds for P@1, not for the deeper ranks.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np

from tfxc._tf import tf
from tfxc.errors import ConfigError, DataError
from tfxc.utils.files import read_npy
from tfxc.utils.io import atomic_writer

log = logging.getLogger("tfxc.heads")

LABEL_ORDERS = ("id", "frequency", "tree")
LABEL_ORDER_FILE = "label_order.npy"


# === Mixed radix ===
def suffix_products(radices) -> list[int]:
    """[n_2⋯n_H, n_3⋯n_H, ..., 1]: the place value of each digit."""
    places, running = [], 1
    for n in reversed(list(radices)):
        places.append(running)
        running *= int(n)
    return places[::-1]


def encode_digits(codes, radices) -> np.ndarray:
    """Codes int [...] -> digits int64 [..., H], most significant first (§3.1: [4,5,5], 73 -> (2,4,3))."""
    codes = np.asarray(codes, np.int64)
    places = np.asarray(suffix_products(radices), np.int64)
    return (codes[..., None] // places) % np.asarray(radices, np.int64)


def decode_digits(digits, radices) -> np.ndarray:
    """Digits int [..., H] -> codes int64 [...] (the inverse of `encode_digits`)."""
    return np.asarray(digits, np.int64) @ np.asarray(suffix_products(radices), np.int64)


def tf_encode_digits(codes: tf.Tensor, radices) -> tf.Tensor:
    """In-graph `encode_digits`: int64 [...] -> int64 [..., H]."""
    codes = tf.cast(codes, tf.int64)
    places = tf.constant(suffix_products(radices), tf.int64)
    return tf.math.floormod(tf.math.floordiv(codes[..., None], places), tf.constant(list(radices), tf.int64))


# === Sizing ===
def check_group(num_labels: int, num_group: int) -> tuple[int, int]:
    """MHE's `check_gorup`: (G, k) groups of k consecutive codes for L labels, G close to `num_group`.

    k = ⌈L / G⌉; while G·k − L ≥ k (a whole group would be empty) G shrinks by one and k is
    recomputed. Test vectors (§3.6): (670091, 8400) -> (8377, 80), (3956, 172) -> (172, 23).
    """
    if num_labels < 1 or num_group < 1:
        raise ConfigError(f"check_group needs L >= 1 and num_group >= 1, got {num_labels}, {num_group}")
    groups = min(num_group, num_labels)
    size = math.ceil(num_labels / groups)
    while groups * size - num_labels >= size:
        groups -= 1
        size = math.ceil(num_labels / groups)
    return groups, size


def balanced_radices(num_labels: int, num_heads: int) -> list[int]:
    """H head sizes as equal as possible with Π n_h ≥ L and the fewest unused codes the greedy finds
    (30,000 in 2 heads -> [174, 173]; the paper's hand-picked [150, 200] is as valid)."""
    if num_heads < 1:
        raise ConfigError(f"num_heads ({num_heads}) must be >= 1")
    radices, covered = [], 1
    for h in range(num_heads):
        remaining = math.ceil(num_labels / covered)
        n = max(2, math.ceil(remaining ** (1.0 / (num_heads - h)) - 1e-9))
        radices.append(n)
        covered *= n
    return radices


def check_radices(radices, num_labels: int, path: str) -> None:
    """ConfigError unless every head has >= 2 classes and Π n_h >= L."""
    if any(int(n) < 2 for n in radices):
        raise ConfigError(f"{path}: every head needs at least 2 classes, got {list(radices)}")
    if math.prod(int(n) for n in radices) < num_labels:
        raise ConfigError(f"{path}: the heads {list(radices)} give {math.prod(radices)} codes for {num_labels} "
                          f"labels; their product must be >= L")


@dataclass(frozen=True)
class LabelCodeOptions:
    """How a multi-head encoding head factorises the labels (shared by the MHP and MHS configs).

    Attributes:
      num_classes: the head sizes [n_1, ..., n_H] (Π n_h ≥ L); empty: `num_heads` balanced sizes.
      num_heads: H when num_classes is empty.
      label_order: which label gets which code: "id", "frequency" or "tree" (module docstring).
    """

    num_classes: tuple[int, ...] = ()
    num_heads: int = 2
    label_order: str = "id"

    def validate_codes(self, path: str) -> None:
        if self.label_order not in LABEL_ORDERS:
            raise ConfigError(f"{path}.label_order '{self.label_order}' is not one of {', '.join(LABEL_ORDERS)}")
        if not self.num_classes and self.num_heads < 1:
            raise ConfigError(f"{path}.num_heads ({self.num_heads}) must be >= 1")
        if self.num_classes and any(int(n) < 2 for n in self.num_classes):
            raise ConfigError(f"{path}.num_classes {list(self.num_classes)}: every head needs >= 2 classes")

    def label_order_for(self, context, radices: list[int]) -> np.ndarray:
        """The model's label order (code -> label id): saved in its directory, else built; a "tree" order's
        leaves hold at most one last-digit block of labels."""
        return load_or_build_label_order(self.label_order, context, cluster_size=radices[-1], seed=context.seed or 0)

    def radices_for(self, num_labels: int, path: str = "model.head") -> list[int]:
        """The head sizes for L labels (checked: Π n_h ≥ L)."""
        radices = [int(n) for n in self.num_classes] or balanced_radices(num_labels, self.num_heads)
        check_radices(radices, num_labels, path)
        return radices


# === Label order ===
def build_label_order(kind: str, context, *, cluster_size: int = 100, seed: int = 0) -> np.ndarray:
    """code -> label id, int64 [L], a permutation of the labels (module docstring).

    Args:
      kind: one of `LABEL_ORDERS`.
      context: a `tfxc.build_context.BuildContext` (label counts for "frequency", the
        converted data for "tree").
      cluster_size: the tree's largest leaf ("tree" only).
      seed: the tree's 2-means seed ("tree" only).
    """
    num_labels = context.num_labels
    if kind == "id":
        return np.arange(num_labels, dtype=np.int64)
    if kind == "frequency":
        if context.label_freq is None:
            raise DataError("label_order 'frequency' needs the train split's label counts")
        # Stable: equally frequent labels keep id order.
        return np.argsort(-np.asarray(context.label_freq, np.int64), kind="stable").astype(np.int64)
    if kind == "tree":
        from tfxc.data.info import DatasetInfo
        from tfxc.tree import balanced_kmeans_codes, cached_split_pifa

        if not context.data_dir:
            raise ConfigError("label_order 'tree' clusters the train split's PIFA features: train the model first")
        leaves, _ = balanced_kmeans_codes(cached_split_pifa(DatasetInfo.load(context.data_dir)),
                                          max_leaf_size=max(cluster_size, 2), seed=seed)
        return np.argsort(leaves, kind="stable").astype(np.int64)
    raise ConfigError(f"label_order '{kind}' is not one of {', '.join(LABEL_ORDERS)}")


def load_or_build_label_order(kind: str, context, **kwargs) -> np.ndarray:
    """The model directory's label order, else a new one (`build_label_order`), saved there for the model's life."""
    path = os.path.join(context.model_dir, LABEL_ORDER_FILE) if context.model_dir else None
    if path and os.path.exists(path):
        order = read_npy(path, advice="it is part of the trained model: restore it from a backup, or train again")
        if order.shape != (context.num_labels,) or not np.array_equal(np.sort(order), np.arange(context.num_labels)):
            raise DataError(f"the saved label order is not a permutation of the {context.num_labels} labels",
                            path=path)
        return order.astype(np.int64)
    order = build_label_order(kind, context, **kwargs)
    if path:
        with atomic_writer(path, binary=True) as f:
            np.save(f, order, allow_pickle=False)
        log.info("label order '%s' saved to %s", kind, path)
    return order


def inverse_permutation(order: np.ndarray) -> np.ndarray:
    """label id -> code, int64 [L], for `order` code -> label id."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size, dtype=order.dtype)
    return inverse


class LabelOrderTables:
    """Mixin of the code heads: the label order as non-trainable int32 tables of the model.

    `build_order_tables(order)` (in `build`) adds `code_to_label` and `label_to_code`
    (int32 [L]), restored and served with the model; the "id" order needs none and
    the lookups are then the identity.
    """

    def build_order_tables(self, order: np.ndarray | None) -> None:
        from tfxc._tf import keras

        self.code_to_label = self.label_to_code = None
        if order is None or np.array_equal(order, np.arange(order.size)):
            return
        self.code_to_label = self.add_weight(shape=order.shape, dtype="int32", trainable=False, name="code_to_label",
                                             initializer=keras.initializers.Constant(order.astype(np.int32)))
        inverse = inverse_permutation(order).astype(np.int32)
        self.label_to_code = self.add_weight(shape=order.shape, dtype="int32", trainable=False, name="label_to_code",
                                             initializer=keras.initializers.Constant(inverse))

    def codes_of(self, labels: tf.Tensor) -> tf.Tensor:
        """int64 codes of int label ids (any shape)."""
        labels = tf.cast(labels, tf.int64)
        if self.label_to_code is None:
            return labels
        return tf.cast(tf.gather(self.label_to_code.value, labels), tf.int64)

    def labels_of(self, codes: tf.Tensor) -> tf.Tensor:
        """int64 label ids of int codes < L (any shape)."""
        codes = tf.cast(codes, tf.int64)
        if self.code_to_label is None:
            return codes
        return tf.cast(tf.gather(self.code_to_label.value, codes), tf.int64)
