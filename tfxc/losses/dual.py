"""The min–min dual objective in the training loop: one ν_i per training example, in-batch negatives.

Reference: "A Geometry-Aware Efficient Algorithm for Compositional Entropic Risk
Minimization" (SCENT, arXiv 2602.02877) and the baselines it compares against
(BSGD, ASGD, ASGD-softplus, U-max, SOX); spec in algorithms.md §4. The update
rules themselves are the pure functions of `tfxc.losses.dual_updates`; this
module owns their state and configs and wires them into a distributed step.

Per step, on every replica:
  1. the labels of the *global* batch are all-gathered and de-duplicated into
     U (K = |U| classes, the in-batch sample), so every replica scores its rows
     against the same classes as a single process would;
  2. the replica's rows are scored against U through the head's row-sparse
     `label_logits`, giving margins ℓ_ik = z_ik − z_{i,y_i} with the own label
     masked;
  3. each row's ν_i is read (by the row id the TFRecord carries), updated by the
     algorithm's rule, and the new values of the whole global batch are
     all-gathered and written, so every worker's copy of ν receives every
     update exactly once per visit and the copies stay identical;
  4. the weight loss uses ν̃ (old or new ν, per algorithm) as a constant.

With `negative_correction = "logq"` the sampled classes are importance-weighted
before step 3 (see `inclusion_log_weights`).

ν lives in one plain (non-mirrored) float32 [n] variable per process, on the
host: under MirroredStrategy the replicas share it (they write identical
values after the all-gather); under MultiWorkerMirroredStrategy each worker
holds a full copy. It is checkpointed with the model, so a resumed run
continues with the same dual state.
"""

from __future__ import annotations

import numpy as np

import dataclasses
import math
from dataclasses import dataclass, field

from tfxc._tf import tf
from tfxc.errors import ConfigError, DataError
from tfxc.losses import dual_updates as dual
from tfxc.losses.base import Objective

NEGATIVE_CORRECTIONS = ("none", "logq")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# === Configs ===
@dataclass(frozen=True)
class SampledSoftmaxConfig:
    """BSGD: the softmax cross-entropy over the batch's unique labels (no dual variable).

    Attributes:
      name: "bsgd".
      negative_correction: "none" averages exp(ℓ_ik) over the K−1 sampled negatives, as the
        SCENT paper does (unbiased for the mean over classes only if classes are equally
        frequent); "logq" weights sampled class k by 1/(C·π_k), with π_k = 1−(1−q_k)^B its chance
        of appearing in a batch of B (q_k: its train frequency), a Horvitz–Thompson estimate of
        the mean over all C classes, which long-tailed labels need.
    """

    name: str = "bsgd"
    negative_correction: str = "none"

    def validate(self, path: str) -> None:
        _require(self.negative_correction in NEGATIVE_CORRECTIONS,
                 f"{path}.negative_correction '{self.negative_correction}' is not one of "
                 f"{', '.join(NEGATIVE_CORRECTIONS)}")


@dataclass(frozen=True)
class DualConfig(SampledSoftmaxConfig):
    """ASGD, SOX or SCENT: one dual variable ν_i per training example.

    Attributes:
      name: "asgd", "sox" or "scent".
      gamma: the dual step: γ₀ for asgd (cosine to 0 over the epochs) and sox (0 uses
        γ₀ = 4.177·T^−0.7265); g = log α for scent (constant).
      negative_correction: as for bsgd.
    """

    name: str = "scent"
    gamma: float = 0.0

    def validate(self, path: str) -> None:
        super().validate(path)
        _require(math.isfinite(self.gamma), f"{path}.gamma ({self.gamma}) must be finite")
        if self.name in ("asgd", "softplus", "umax"):
            _require(self.gamma > 0, f"{path}.gamma ({self.gamma}) must be > 0 for '{self.name}'")
        if self.name == "sox":
            _require(0 <= self.gamma <= 1, f"{path}.gamma ({self.gamma}) must be in [0, 1] for 'sox' "
                     "(0 = the paper's 4.177·T^-0.7265)")


@dataclass(frozen=True)
class SoftplusConfig(DualConfig):
    """ASGD on the softplus surrogate of the log.

    Attributes:
      name: "softplus".
      gamma: γ₀ (cosine to 0 over the epochs).
      rho: the surrogate's ρ.
      negative_correction: as for bsgd.
    """

    name: str = "softplus"
    rho: float = 1.0

    def validate(self, path: str) -> None:
        super().validate(path)
        _require(self.rho > 0, f"{path}.rho ({self.rho}) must be > 0")


@dataclass(frozen=True)
class UmaxConfig(DualConfig):
    """U-max: ASGD, then ν ← ν̂ wherever ν < ν̂ − δ.

    Attributes:
      name: "umax".
      gamma: γ₀ (cosine to 0 over the epochs).
      delta: δ (Infinity = plain ASGD).
      negative_correction: as for bsgd.
    """

    name: str = "umax"
    delta: float = field(default=math.inf, metadata={"allow_inf": True})

    def validate(self, path: str) -> None:
        super().validate(path)
        _require(self.delta >= 0, f"{path}.delta ({self.delta}) must be >= 0")


# === The objective ===
class DualObjective(Objective):
    """State and per-replica loss of a dual-variable algorithm.

    Args:
      algorithm: one of `dual_updates.ALGORITHMS`.
      num_train: n, the number of training examples (row ids are 0..n-1).
      total_epochs: T, for the per-epoch γ schedules.
      gamma, rho, delta: the algorithm's hyper-parameters (see the configs above).
      negative_correction: "none" or "logq".
      label_freq: int [C], train label counts (for negative_correction "logq").
      global_batch_size: B (for negative_correction "logq").
    """

    needs_label_logits = True

    def __init__(self, algorithm: str, num_train: int, total_epochs: int, gamma: float = 0.0, rho: float = 1.0,
                 delta: float = math.inf, negative_correction: str = "none", label_freq=None,
                 global_batch_size: int = 0):
        super().__init__(name="dual_objective")
        self.algorithm, self.gamma0, self.rho, self.delta = algorithm, gamma, rho, delta
        self.num_train, self.total_epochs = num_train, max(int(total_epochs), 1)
        self.uses_nu = self.algorithm in dual.DUAL_ALGORITHMS
        self.log_weights = None
        if negative_correction == "logq":
            self.log_weights = tf.constant(inclusion_log_weights(label_freq, global_batch_size))
        # Created outside any strategy scope on purpose (see the module docstring).
        with tf.init_scope():
            self.nu = tf.Variable(tf.zeros([num_train if self.uses_nu else 0], tf.float32), trainable=False,
                                  name="nu")
            self.gamma = tf.Variable(self.gamma_at(1), trainable=False, dtype=tf.float32, name="gamma")

    @classmethod
    def from_config_dataclass(cls, config, *, info, length, global_batch_size: int) -> "DualObjective":
        check_multiclass(info)
        options = {k: v for k, v in dataclasses.asdict(config).items() if k != "name"}
        return cls(config.name, num_train=info.num_points("train"), total_epochs=length.num_epochs,
                   label_freq=info.label_freq, global_batch_size=global_batch_size, **options)

    def gamma_at(self, epoch: int) -> float:
        """γ of epoch `epoch` (1-based), from the algorithm's schedule."""
        return dual.gamma_at_epoch(self.algorithm, self.gamma0, epoch, self.total_epochs)

    def start_epoch(self, epoch: int) -> None:
        """Sets γ for epoch `epoch` (1-based); the schedules change only at epoch starts."""
        self.gamma.assign(self.gamma_at(epoch))

    def per_example_loss(self, model, batch, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
        """Losses of this replica's rows; updates ν as a side effect.

        Call inside `strategy.run` (or the default strategy's replica context).
        `batch["labels"]` must hold exactly one label per row (`check_multiclass` verifies the
        train split once, before training).

        Returns:
          (weight_loss float32 [b], whose gradient is the algorithm's weight step;
           in_batch_ce float32 [b] = log(1 + Σ_{k∈U, k≠y} e^{ℓ_ik}), the softmax
           cross-entropy over the sampled classes, for progress reports).
        """
        ctx = tf.distribute.get_replica_context()
        y = batch["labels"].values
        features = model.encoder(batch, training=training)
        b = tf.shape(y)[0]

        # The global batch's unique labels; this replica's rows start at replica_id * b.
        classes, column = tf.unique(ctx.all_gather(_placed(y), axis=0))
        start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * b
        own_column = column[start:start + b]
        # A margin head (ArcFace, CosFace) lowers each row's own logit before the margins are taken.
        logits = model.head.margin_at_columns(model.head.label_logits(features, classes), own_column)
        margins = dual.in_batch_margins(logits, own_column)
        has_negatives = tf.size(classes) > 1
        # A batch of a single class has no negatives: no weight gradient, ν untouched.
        margins = tf.cond(has_negatives, lambda: margins, lambda: tf.stop_gradient(tf.zeros_like(margins)))
        in_batch_ce = tf.stop_gradient(tf.nn.softplus(tf.reduce_logsumexp(margins, axis=1)))
        if self.log_weights is not None:
            # Shifting ℓ_ik by log w_k + log(K−1) turns every "mean over the K−1 sampled
            # negatives" of the update rules into Σ_k w_k e^{ℓ_ik} (masked entries stay −inf).
            k = tf.cast(tf.size(classes), margins.dtype)
            margins += tf.gather(self.log_weights, classes)[None, :] + tf.math.log(tf.maximum(k - 1.0, 1.0))
        if not self.uses_nu:
            return dual.weight_loss(self.algorithm, margins), in_batch_ce

        row_ids = batch["row_id"]
        nu = tf.gather(self.nu, row_ids)
        new_nu, nu_tilde = dual.dual_step(self.algorithm, nu, margins, self.gamma, rho=self.rho, delta=self.delta)
        new_nu = tf.where(has_negatives, new_nu, nu)
        self.nu.scatter_update(tf.IndexedSlices(ctx.all_gather(new_nu, axis=0),
                                                ctx.all_gather(_placed(row_ids), axis=0)))
        return dual.weight_loss(self.algorithm, margins, nu_tilde, rho=self.rho), in_batch_ce


def inclusion_log_weights(label_freq, global_batch_size: int) -> np.ndarray:
    """log w_k = −log(C·π_k), π_k = 1 − (1 − q_k)^B: float32 [C].

    π_k is the probability that class k (train frequency q_k) appears among the
    labels of a uniformly drawn batch of B rows, so Σ_{k∈U} w_k e^{ℓ_k} is an
    unbiased (Horvitz–Thompson) estimate of (1/C) Σ_{all k} e^{ℓ_k}. Classes absent
    from train never appear in a batch; they get π = 1/n to stay finite.
    """
    freq = np.asarray(label_freq, np.float64)
    n, c = max(freq.sum(), 1.0), freq.size
    q = np.maximum(freq, 1.0) / n
    pi = -np.expm1(global_batch_size * np.log1p(-np.minimum(q, 1.0 - 1e-12)))
    return (-np.log(c * pi)).astype(np.float32)


def _placed(tensor: tf.Tensor) -> tf.Tensor:
    # Collectives send to the device of their input. Under MultiWorkerMirrored the
    # iterator's tensors carry no device (-> "destinations can not be empty"); an
    # identity created here takes the replica's device scope.
    return tf.identity(tensor)


def check_multiclass(info, split: str = "train") -> None:
    """Raises DataError unless every row of `split` has exactly one label."""
    if not info.is_multiclass(split):
        stats = info.splits[split]
        raise DataError(f"a dual-variable loss needs multi-class data (one label per row); the {split} split has "
                        f"{stats['avg_labels_per_point']:.3f} labels per point on average and "
                        f"{stats['points_without_labels']} points without labels", path=info.dir)
