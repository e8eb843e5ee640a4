"""A synthetic extreme multi-label data set that is learnable (the quickstart's data).

Generative story (all from one seeded NumPy generator, so files are
byte-identical for a seed):
  * label l has popularity ∝ (l + 1)^-zipf_exponent, so label 0 is the head and
    most labels are tail labels, as in real XMC data;
  * label l owns a "topic": `features_per_label` feature ids with Zipf-like weights;
  * a point draws 1 + Poisson(labels_per_point - 1) labels by popularity (repeats dropped),
    then `features_per_point` feature occurrences, each from the topic of one of
    its labels (prob. 1 - noise) or uniformly from all features (prob. noise);
  * values are log(1 + count), L2-normalised per row (TF-IDF-like).
A classifier therefore has to recover each label's topic from co-occurrence;
P@1 of always predicting the most frequent label is ~ its frequency.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tfxc.data.rows import Row


class SyntheticXmc:
    """Generates the train and test rows of `SyntheticConfig` (see the module docstring)."""

    def __init__(self, config):
        self.config = config
        rng = np.random.default_rng([config.seed, 0])
        popularity = 1.0 / np.arange(1, config.num_labels + 1) ** config.zipf_exponent
        self.label_cdf = np.cumsum(popularity / popularity.sum())
        # Vectorised so that millions of labels take seconds; a rare repeated
        # feature within a topic only sharpens that topic.
        self.topics = rng.integers(0, config.num_features, size=(config.num_labels, config.features_per_label))
        weights = 1.0 / np.arange(1, config.features_per_label + 1)
        self.topic_probs = weights / weights.sum()

    @property
    def num_features(self) -> int:
        return self.config.num_features

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    def rows(self, split: str) -> Iterator[Row]:
        cfg = self.config
        count = cfg.num_train if split == "train" else cfg.num_test
        rng = np.random.default_rng([cfg.seed, 1 if split == "train" else 2])
        for _ in range(count):
            n_labels = min(1 + rng.poisson(cfg.labels_per_point - 1.0), cfg.num_labels)
            # Inverse-CDF draws by popularity; repeats are dropped (O(log L) per draw, not O(L)).
            draws = np.searchsorted(self.label_cdf, rng.random(n_labels), side="right")
            labels = np.unique(np.minimum(draws, cfg.num_labels - 1))
            n_feats = max(1, rng.poisson(cfg.features_per_point))
            from_topic = rng.random(n_feats) >= cfg.noise
            owners = labels[rng.integers(0, len(labels), n_feats)]
            picks = self.topics[owners, rng.choice(cfg.features_per_label, n_feats, p=self.topic_probs)]
            feats = np.where(from_topic, picks, rng.integers(0, cfg.num_features, n_feats))
            ids, counts = np.unique(feats, return_counts=True)
            vals = np.log1p(counts)
            vals /= np.linalg.norm(vals)
            yield Row(ids.astype(np.int64), vals.astype(np.float32), labels.astype(np.int64))
