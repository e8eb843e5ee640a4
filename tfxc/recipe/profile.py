"""What the recipe reads off a converted data set: its shape (`DataProfile`), and how its bag will be computed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Labels with at most this many training points form the tail (reported in the data line).
TAIL_POINTS = 5
# Sparse inputs: fewer non-zero features per point than this share of the space (a bag of words, TF-IDF).
SPARSE_INPUT_SHARE = 0.5
# The sparse term carries feature ids as float32 (`tfxc.encoders.sparse_input.PAD_FEATURE`): exact below 2^24.
SPARSE_TERM_MAX_FEATURES = 2 ** 24


@dataclass(frozen=True)
class DataProfile:
    """What the recipe reads from a converted data set.

    Attributes:
      num_points: training points (after a validation share is carved out).
      num_features: size of the feature space.
      num_labels: size of the label space.
      labels_per_point: average labels of a training point.
      features_per_point: average non-zero features of a training point.
      tail_share: of the labels that occur in train, the share with at most `TAIL_POINTS` points.
      points_without_labels: training points without a label.
    """

    num_points: int
    num_features: int
    num_labels: int
    labels_per_point: float
    features_per_point: float
    tail_share: float
    points_without_labels: int = 0

    @classmethod
    def from_info(cls, info) -> "DataProfile":
        train = info.splits["train"]
        present = info.label_freq[info.label_freq > 0]
        return cls(num_points=int(train["num_points"]), num_features=int(info.num_features),
                   num_labels=int(info.num_labels), labels_per_point=float(train["avg_labels_per_point"]),
                   features_per_point=float(train["avg_features_per_point"]),
                   tail_share=float(np.mean(present <= TAIL_POINTS)) if present.size else 0.0,
                   points_without_labels=int(train.get("points_without_labels", 0)))

    @property
    def several_labels_a_row(self) -> bool:
        """Whether some training point has several labels: more labels than labelled points."""
        positives = round(self.labels_per_point * self.num_points)
        return positives > self.num_points - self.points_without_labels

    @property
    def one_label_per_point(self) -> bool:
        """Multi-class, or nearly (medical, reuters: 1.2–1.3 labels per point)."""
        return self.labels_per_point < 1.5

    @property
    def select_k(self) -> int:
        """The k of the metric that picks the epoch and the choices measured on validation: P@1 for
        one label per point, else P@5."""
        return 1 if self.one_label_per_point else 5

    @property
    def sparse_input(self) -> bool:
        """Few non-zero features a point (a bag of words, TF-IDF): the sparse term's inputs, with ids it can carry."""
        return (self.features_per_point < SPARSE_INPUT_SHARE * self.num_features
                and self.num_features < SPARSE_TERM_MAX_FEATURES)

    def describe(self) -> str:
        return (f"{self.num_points:,} training points, {self.num_features:,} features, {self.num_labels:,} labels, "
                f"{self.labels_per_point:.2f} labels and {self.features_per_point:.1f} features per point, "
                f"{100 * self.tail_share:.0f}% of the labels with <= {TAIL_POINTS} points")


def bag_of(profile: DataProfile) -> str:
    """How the recipe's bag-of-features encoder will compute its bag on this data ("auto" resolved)."""
    from tfxc.encoders.sparse_bow import auto_bag  # imports TensorFlow: only when a recipe is chosen

    return auto_bag("auto", profile)
