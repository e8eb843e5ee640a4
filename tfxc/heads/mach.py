"""MACH: Merged-Averaged Classifiers via Hashing.

Reference: Medini, Huang, Wang, Mu & Shrivastava, 2019, "Extreme Classification in Log Memory using
Count-Min Sketch: A Case Study of Amazon Search with 50M Products" (NeurIPS). Spec: algorithms.md §2.

Each of R repetitions hashes the L labels into B buckets with its own hash
h_r(c) = murmurhash3_32(c, seed=r) mod B (a count-min sketch row) and learns a
B-way classifier. A label's score is reconstructed from its buckets:
score(c) = Σ_r s_r[h_r(c)], with s the bucket logits (default; the original
code's choice) or bucket probabilities. Parameters grow with R·B, not with L;
only the int32 lookup [R, L] depends on L.

Repetitions never communicate: with `separate_encoders` (the original) each
has its own encoder, so the head has R independent parts (`Head.num_parts`):
`tfxc.train --part r` trains repetition r alone, in its own process or on
another machine, and `--merge-parts` stacks them into one model (`train.sh`
does both).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from tfxc._tf import keras, tf
from tfxc.utils.graph import BatchFunction
from tfxc.config.roles import PREDICTION
from tfxc.encoders import ENCODERS, Encoder, RepeatedEncoder
from tfxc.errors import ConfigError
from tfxc.hashing import MachLookup, feature_map
from tfxc.heads.base import Head
from tfxc.heads.top_k import mach_top_k_tf

# The label -> bucket lookup, saved in the model directory on first use and reloaded (checked) afterwards.
MACH_LOOKUP_FILE = "mach_lookup.npz"


@dataclass(frozen=True)
class MachPrediction:
    """How a trained MACH model ranks (`MachHeadConfig.prediction`; changed on a trained model with
    `--set model.head.prediction.top_buckets=50`).

    Attributes:
      top_buckets: > 0 switches the top-k to the approximate candidate-set method (algorithms.md §2.5):
        per repetition this many best buckets, their labels the candidates; 0 scores every label.
      min_freq: candidates must be reached by this many repetitions (lowered until k remain).
      repetitions: rank with the first this many repetitions only (MACH's evaluation-time R: of a model
        trained with R = 32, ranking with 8 costs a quarter of the gathers, at some precision); 0: all.
    """

    ROLE: ClassVar[str] = PREDICTION

    top_buckets: int = 0
    min_freq: int = 2
    repetitions: int = 0

    def validate(self, path: str) -> None:
        if self.top_buckets < 0 or self.min_freq < 1 or self.repetitions < 0:
            raise ConfigError(f"{path}: top_buckets ({self.top_buckets}) and repetitions ({self.repetitions}) must "
                              f"be >= 0, min_freq ({self.min_freq}) >= 1")


@dataclass(frozen=True)
class MachHeadConfig:
    """Config of `MachHead`.

    Attributes:
      name: "mach".
      num_buckets: B, buckets per repetition.
      num_repetitions: R, independent hash tables / classifiers.
      separate_encoders: one encoder per repetition (the original MACH; the
        repetitions are then independent parts, trainable apart with
        `tfxc.train --part r`); else all repetitions share one encoder.
      loss: "sigmoid" (multi-label: BCE on multi-hot bucket targets) or
        "softmax" (multi-class: softmax over the B buckets).
      score: "logit_sum" (Σ_r logit_r[h_r(c)], the original's choice) or
        "prob_sum" (Σ_r P_r[h_r(c)], the paper's estimator up to an affine map).
      feat_hash_dim: > 0 hashes feature ids into this many buckets with a seed
        per repetition (algorithms.md §2.3); needs separate_encoders.
      prediction: how the trained model ranks (`MachPrediction`).
    """

    name: str = "mach"
    num_buckets: int = 10000
    num_repetitions: int = 32
    separate_encoders: bool = True
    loss: str = "sigmoid"
    score: str = "logit_sum"
    feat_hash_dim: int = 0
    prediction: MachPrediction = field(default_factory=MachPrediction)

    def validate(self, path: str) -> None:
        if self.num_buckets < 2 or self.num_repetitions < 1:
            raise ConfigError(f"{path}: num_buckets ({self.num_buckets}) must be >= 2 and num_repetitions "
                              f"({self.num_repetitions}) >= 1")
        if self.loss not in ("sigmoid", "softmax"):
            raise ConfigError(f"{path}.loss '{self.loss}' is not one of sigmoid, softmax")
        if self.score not in ("logit_sum", "prob_sum"):
            raise ConfigError(f"{path}.score '{self.score}' is not one of logit_sum, prob_sum")
        if self.feat_hash_dim < 0:
            raise ConfigError(f"{path}.feat_hash_dim ({self.feat_hash_dim}) must be >= 0")
        if self.feat_hash_dim and not self.separate_encoders:
            raise ConfigError(f"{path}.feat_hash_dim ({self.feat_hash_dim}) needs separate_encoders=true "
                              "(each repetition hashes features with its own seed)")


def repetition_seed(seed: int | None, repetition: int) -> int | None:
    """The seed of repetition r's weights and dropout: the same whether trained alone or jointly."""
    return None if seed is None else seed * 1000003 + 7919 * (repetition + 1)


class MachHead(Head):
    """R hashed B-way classifiers (see the module docstring).

    Args:
      num_labels: L.
      num_buckets: B.
      repetitions: the repetition ids this head holds (hash seeds), e.g.
        range(R) for a whole model or [r] for one repetition trained alone.
      loss: "sigmoid" or "softmax".
      score: "logit_sum" or "prob_sum".
      per_repetition_features: inputs are [batch, R, dim] (one encoder per
        repetition) instead of [batch, dim].
      seed: base seed of the kernel initialisers (per repetition, see `repetition_seed`).
      lookup: the `MachLookup` of these repetitions (built here if None).

    Call args:
      features: float32 [batch, dim] or [batch, R, dim].

    Returns:
      Bucket logits float32 [batch, R, B].
    """

    def __init__(self, num_labels: int, num_buckets: int, repetitions, loss="sigmoid", score="logit_sum",
                 per_repetition_features=True, seed=None, eval_top_buckets=0, eval_min_freq=2, lookup=None,
                 feat_hash_dim=0, eval_repetitions=0, **kwargs):
        super().__init__(num_labels, **kwargs)
        self.num_buckets = num_buckets
        self.repetitions = tuple(int(r) for r in repetitions)
        self.loss, self.score = loss, score
        self.per_repetition_features = per_repetition_features
        self.seed = seed
        self.feat_hash_dim = feat_hash_dim
        self.eval_top_buckets, self.eval_min_freq = eval_top_buckets, eval_min_freq
        if eval_repetitions > len(self.repetitions) > 1:
            raise ConfigError(f"model.head.prediction.repetitions ({eval_repetitions}) ranks with more repetitions "
                              f"than the model has ({len(self.repetitions)})")
        # A part model (one repetition) ranks with it whatever the whole model's setting.
        self.eval_repetitions = eval_repetitions if len(self.repetitions) > 1 else 0
        self.mach_lookup = lookup or MachLookup.build(num_labels, num_buckets, self.repetitions)
        if self.mach_lookup.seeds != self.repetitions or self.mach_lookup.num_buckets != num_buckets:
            raise ConfigError(f"the MACH lookup holds repetitions {self.mach_lookup.seeds} with "
                              f"{self.mach_lookup.num_buckets} buckets, not {self.repetitions} with {num_buckets}")

    # === Building ===
    @classmethod
    def from_config_dataclass(cls, config: MachHeadConfig, context):
        """Builds all repetitions, or repetition `context.part` alone.

        With a `context.model_dir`, the lookup is reloaded (and checked) from
        `MACH_LOOKUP_FILE` there, or created and saved on first use.
        """
        reps = tuple(range(config.num_repetitions)) if context.part is None else (context.part,)
        num_labels = context.num_labels
        if config.num_buckets >= num_labels:
            raise ConfigError(f"model.head.num_buckets ({config.num_buckets}) must be smaller than the number "
                              f"of labels ({num_labels}), or MACH has nothing to compress")
        lookup = None
        if context.model_dir:
            lookup = MachLookup.load_or_build(os.path.join(context.model_dir, MACH_LOOKUP_FILE), num_labels,
                                              config.num_buckets, reps)
        return cls(num_labels, config.num_buckets, reps, config.loss, config.score, config.separate_encoders,
                   seed=context.seed, eval_top_buckets=config.prediction.top_buckets,
                   eval_min_freq=config.prediction.min_freq, eval_repetitions=config.prediction.repetitions,
                   lookup=lookup, feat_hash_dim=config.feat_hash_dim, name="head")

    @classmethod
    def num_parts(cls, config: MachHeadConfig) -> int:
        return config.num_repetitions if config.separate_encoders else 1

    def make_encoder(self, encoder_config, context):
        """One shared encoder, or (separate_encoders) one per repetition, each seeded by its repetition
        and, with feat_hash_dim, reading its own hashing of the feature ids."""
        if not self.per_repetition_features:
            return super().make_encoder(encoder_config, context)
        encoders = []
        for r in self.repetitions:
            hashed = self.feat_hash_dim
            own = dataclasses.replace(context, seed=repetition_seed(context.seed, r),
                                      num_features=hashed or context.num_features)
            encoder = ENCODERS.build(encoder_config, own, name=f"encoder_{r}")
            if hashed:
                encoder = HashedFeatures(encoder, feature_map(context.num_features, hashed, seed=r),
                                         name=f"hashed_encoder_{r}")
            encoders.append(encoder)
        return RepeatedEncoder(encoders, self.repetitions, name="encoder")

    def merge_part(self, model, index: int, part) -> None:
        """Copies repetition `index`'s encoder and kernel/bias slice from `part` (a model of that repetition)."""
        if part.head.repetitions != (self.repetitions[index],):
            raise ValueError(f"part {index} holds repetitions {part.head.repetitions}, not "
                             f"({self.repetitions[index]},)")
        for target, source in zip(model.encoder.encoders[index].variables, part.encoder.encoders[0].variables):
            target.assign(source)
        # Slice assignments: the whole [R, d, B] kernel is never copied to the host.
        self.kernel[index].assign(part.head.kernel[0])
        self.bias[index].assign(part.head.bias[0])

    @property
    def num_repetitions(self) -> int:
        return len(self.repetitions)

    def build(self, input_shape):
        dim, b = input_shape[-1], self.num_buckets

        def stacked_glorot(shape, dtype=None):
            # Repetition r's slice depends on r alone, so a repetition trained by
            # itself starts from exactly its slice of the joint model.
            return tf.stack([keras.initializers.GlorotUniform(seed=repetition_seed(self.seed, r))((dim, b))
                             for r in self.repetitions])

        self.kernel = self.add_weight(shape=(self.num_repetitions, dim, b), name="kernel",
                                      initializer=stacked_glorot)
        self.bias = self.add_weight(shape=(self.num_repetitions, b), name="bias", initializer="zeros")
        self.lookup = self.add_weight(shape=(self.num_repetitions, self.num_labels), name="lookup", dtype="int32",
                                      trainable=False, initializer=lambda shape, dtype=None: self.mach_lookup.buckets)
        self.built = True

    def call(self, features, training=False):
        equation = "nrd,rdb->nrb" if self.per_repetition_features else "nd,rdb->nrb"
        return self.einsum(equation, features, self.kernel.value) + self.bias.value

    # === Loss ===
    def per_example_loss(self, logits, labels):
        """Σ_r loss_r: BCE against the multi-hot bucket targets, or softmax CE over buckets.

        Targets are the *set* of buckets of a row's labels per repetition (two
        labels in one bucket make one positive), found by de-duplicating
        (row, repetition, bucket) keys rather than building [batch, R, B] targets.
        """
        r_count, b = self.num_repetitions, self.num_buckets
        rows = labels.value_rowids()                                  # [P]
        buckets = tf.gather(self.lookup.value, labels.values, axis=1)  # [R, P]
        reps = tf.range(r_count, dtype=tf.int64)[:, None]
        keys = tf.reshape((rows[None, :] * r_count + reps) * b + tf.cast(buckets, tf.int64), [-1])
        unique_keys, _ = tf.unique(keys)
        flat_logits = tf.reshape(logits, [-1])
        positive = tf.gather(flat_logits, unique_keys)                # one per distinct (row, r, bucket)
        key_rows = unique_keys // (r_count * b)
        n = tf.shape(logits, out_type=tf.int64)[0]
        positive_sum = tf.math.unsorted_segment_sum(positive, key_rows, n)
        if self.loss == "sigmoid":
            return tf.reduce_sum(tf.nn.softplus(logits), axis=[1, 2]) - positive_sum
        # Softmax over buckets, target uniform over the row's positive buckets in each repetition.
        row_rep = unique_keys // b                                    # row * R + r
        count = tf.math.unsorted_segment_sum(tf.ones_like(positive), row_rep, n * r_count)
        pos_by_rep = tf.math.unsorted_segment_sum(positive, row_rep, n * r_count)
        lse = tf.reshape(tf.reduce_logsumexp(logits, axis=2), [-1])   # [n * R]
        per_rep = tf.where(count > 0, lse - pos_by_rep / tf.maximum(count, 1.0), 0.0)
        return tf.reduce_sum(tf.reshape(per_rep, [n, r_count]), axis=1)

    # === Scores ===
    def bucket_scores(self, logits):
        """The per-bucket scores summed into label scores: logits, sigmoid or softmax. [batch, R, B]."""
        if self.score == "logit_sum":
            return logits
        return tf.sigmoid(logits) if self.loss == "sigmoid" else tf.nn.softmax(logits, axis=-1)

    @property
    def ranked_repetitions(self) -> int:
        """The repetitions a ranking sums (the first this many): `prediction.repetitions`, else all."""
        return self.eval_repetitions or self.num_repetitions

    def ranked_parts(self, trained: int) -> int:
        """Of a model trained in `trained` parts (one repetition each), how many the ranking reads."""
        return min(self.ranked_repetitions, trained)

    def top_k(self, features, k):
        r = self.ranked_repetitions
        return mach_top_k_tf(self.bucket_scores(self(features))[:, :r], self.lookup.value[:r], k)

    def evaluation_top_k(self, model, k: int):
        """Bucket scores in TF, then the label top-k on the host with the Cython gather
        (`tfxc.kernels.mach`), or the approximate candidate-set method when
        `eval_top_buckets` > 0 — never a [batch, L] tensor in the graph."""
        scores_fn = BatchFunction(lambda batch: self._ranked_bucket_scores(model, batch))
        return lambda batch: self.rank_part_scores(np.ascontiguousarray(scores_fn(batch).numpy()), k)

    def _ranked_bucket_scores(self, model, batch):
        """Bucket scores [batch, R', B] of the repetitions a ranking reads: with separate encoders, only their
        encoders run (ranking by 8 of 32 repetitions costs a quarter of the encoding too)."""
        r, encoders = self.ranked_repetitions, getattr(model.encoder, "encoders", None)
        if r == self.num_repetitions or not self.per_repetition_features or encoders is None:
            return self.bucket_scores(model(batch, training=False))
        features = tf.stack([encoder(batch, training=False) for encoder in encoders[:r]], axis=1)
        return self.bucket_scores(self.einsum("nrd,rdb->nrb", features, self.kernel.value[:r]) + self.bias.value[:r])

    def part_scores(self, model, batch):
        """Bucket scores float32 [batch, B] of this head's one repetition (a part model's head)."""
        return self.bucket_scores(model(batch, training=False))[:, 0, :]

    def rank_part_scores(self, scores, k: int):
        """The exact (or, with eval_top_buckets, candidate-set) top-k from bucket scores float32 [batch, R, B],
        of the first `ranked_repetitions` repetitions."""
        from tfxc.kernels.mach import mach_candidate_top_k, mach_top_k

        r = min(self.ranked_repetitions, scores.shape[1])
        lookup = self._ranking_lookup(r)
        scores = np.ascontiguousarray(scores[:, :r]) if r < scores.shape[1] else scores
        if self.eval_top_buckets:
            return mach_candidate_top_k(scores, lookup, k, self.eval_top_buckets, self.eval_min_freq)
        return mach_top_k(scores, lookup, k)

    def _ranking_lookup(self, r: int) -> MachLookup:
        """The lookup of the first r repetitions (kept: the candidate method caches its inverse tables)."""
        if r == self.mach_lookup.num_repetitions:
            return self.mach_lookup
        if getattr(self, "_first_lookup", None) is None or self._first_lookup.num_repetitions != r:
            self._first_lookup = MachLookup(self.mach_lookup.buckets[:r], self.num_buckets, self.repetitions[:r],
                                            validate=False)
        return self._first_lookup

    def memory_scores(self, training: bool, labels_per_point: float = 1.0) -> int:
        """The bucket logits [R, B] of each example (evaluation ranks labels on the host, from them)."""
        return self.num_repetitions * self.num_buckets

    def get_config(self):
        return {**super().get_config(), "num_buckets": self.num_buckets, "repetitions": list(self.repetitions),
                "loss": self.loss, "score": self.score, "per_repetition_features": self.per_repetition_features,
                "seed": self.seed, "eval_top_buckets": self.eval_top_buckets, "eval_min_freq": self.eval_min_freq,
                "lookup": self.mach_lookup, "feat_hash_dim": self.feat_hash_dim,
                "eval_repetitions": self.eval_repetitions}


class HashedFeatures(Encoder):
    """Feeds the wrapped encoder hashed feature ids: x̃[g(j)] = Σ_{j': g(j') = g(j)} x[j'] (algorithms.md §2.3).

    Args:
      encoder: built on the hashed feature space [0, feat_hash_dim).
      mapping: int32 [num_features], g(j) for every original feature id j (a
        non-trainable weight, so the SavedModel carries it).

    Call args / returns: as the wrapped encoder.
    """

    def __init__(self, encoder, mapping, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.mapping_values = np.asarray(mapping, np.int32)

    @property
    def output_dim(self) -> int:
        return self.encoder.output_dim

    @property
    def input_kind(self) -> str:
        return self.encoder.input_kind

    def tokenize(self, texts) -> dict:
        return self.encoder.tokenize(texts)

    def decode_images(self, images) -> dict:
        return self.encoder.decode_images(images)

    @property
    def sparse_variables(self) -> list:
        return self.encoder.sparse_variables

    def build(self, input_shape=None):
        values = self.mapping_values
        self.feature_map = self.add_weight(shape=values.shape, name="feature_map", dtype="int32", trainable=False,
                                           initializer=lambda shape, dtype=None: values)
        self.encoder.build()
        self.built = True

    def call(self, inputs, training=False):
        feat_idx = inputs["feat_idx"]
        # Collisions within a row are summed by the encoder's embedding bag.
        hashed = feat_idx.with_values(tf.cast(tf.gather(self.feature_map.value, feat_idx.values), tf.int64))
        return self.encoder({**inputs, "feat_idx": hashed}, training=training)
