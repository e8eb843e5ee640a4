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


def write_dense_classification(out_dir: str, *, num_classes: int, dim: int, num_train: int, num_val: int,
                               num_test: int, noise: float = 1.0, seed: int = 0, chunk_rows: int = 65536) -> None:
    """Writes a dense multi-class data set as `out_dir/{train,val,test}/{features,labels}.npy`.

    Shaped like the pre-extracted embeddings of face or image classification
    (SCENT's Glint360K setting: 512-d unnormalised features, one label per row):
    class c has a centre μ_c ~ N(0, I/dim)·√dim (norm ≈ √dim), and a point is
    μ_y + noise·N(0, I) with y uniform over the classes. Train labels are drawn
    first; val/test labels are drawn from the classes that occur in train, so
    every evaluated class was seen. Rows stream to memory-mapped files in
    chunks, so a few hundred thousand 512-d rows need no more memory than the
    centres ([num_classes, dim] float32).
    """
    import os

    rng = np.random.default_rng([seed, 2])
    centres = rng.standard_normal((num_classes, dim), dtype=np.float32)
    train_labels = rng.integers(0, num_classes, num_train)
    seen = np.unique(train_labels)
    for split, n in (("train", num_train), ("val", num_val), ("test", num_test)):
        if n == 0:
            continue
        labels = train_labels if split == "train" else seen[rng.integers(0, seen.size, n)]
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
        x = np.lib.format.open_memmap(os.path.join(out_dir, split, "features.npy.tmp"), mode="w+",
                                      dtype=np.float32, shape=(n, dim))
        for start in range(0, n, chunk_rows):
            stop = min(start + chunk_rows, n)
            x[start:stop] = centres[labels[start:stop]] + noise * rng.standard_normal((stop - start, dim),
                                                                                      dtype=np.float32)
        x.flush()
        del x
        np.save(os.path.join(out_dir, split, "labels.tmp.npy"), labels.astype(np.int64))
        os.replace(os.path.join(out_dir, split, "features.npy.tmp"), os.path.join(out_dir, split, "features.npy"))
        os.replace(os.path.join(out_dir, split, "labels.tmp.npy"), os.path.join(out_dir, split, "labels.npy"))
