"""The training objective contract, and the default objective: the head's own loss.

The training step asks the objective for the per-example loss of a replica's
rows, whatever the objective is:

  loss, reported = objective.per_example_loss(model, batch, training=True)   # float32 [b] each

`loss` is what the gradient is taken of; `reported` is what progress lines
and TensorBoard show (the same tensor for most objectives; the dual-variable
objectives report the in-batch cross-entropy instead, since their weight loss
is about 1 by construction). An objective is a `tf.Module`, so any state it
keeps (e.g. one dual variable per training example) is checkpointed with the
model and a resumed run continues with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tfxc._tf import tf


class Objective(tf.Module):
    """Base class of training objectives (see the module docstring)."""

    #: The objective scores label subsets through `Head.label_logits` (the head must support it).
    needs_label_logits: ClassVar[bool] = False
    #: The objective restores another model directory (a distillation teacher): `from_config_dataclass` then
    #: also takes `trust_imports`, which of that directory's config `imports` may run (`ModelDir.load_config`).
    reads_model_dirs: ClassVar[bool] = False

    @classmethod
    def from_config_dataclass(cls, config, *, info, length, global_batch_size: int) -> "Objective":
        """Builds the objective for training on `info` (a `DatasetInfo`) for `length` (a `TrainingLength`)."""
        raise NotImplementedError(f"{cls.__name__} must implement from_config_dataclass")

    def per_example_loss(self, model, batch, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
        """(loss float32 [b], reported float32 [b]) of this replica's rows; call inside `strategy.run`."""
        raise NotImplementedError

    @classmethod
    def check_head(cls, head_class, head_config) -> None:
        """Raises ConfigError when this objective cannot train a head of `head_class` built from `head_config`
        (read from the class and the config: called when a config is validated, before anything is built)."""

    def check_model(self, model) -> None:
        """Raises ConfigError when this objective cannot train `model` (called once, before training)."""

    def start_epoch(self, epoch: int) -> None:
        """Called before the first step of epoch `epoch` (1-based); per-epoch schedules change here."""


@dataclass(frozen=True)
class HeadLossConfig:
    """The head's own loss (`Head.per_example_loss`), e.g. one-vs-all BCE or softmax cross-entropy,
    optionally with the regularising tricks of `tfxc.losses.robust` (each off by default).

    Attributes:
      name: "head".
      r_drop: R-Drop's α: two dropout passes and α · their symmetric KL (0 = off; 4 in
        text_classifier, 0.1-5 in the paper). Needs a softmax or one_vs_all head.
      adversarial: "", fgm, fgsm, pgd or freelb: train on perturbed input embeddings too (needs a
        text encoder that exposes them, `Encoder.supports_embedding_perturbation`).
      adversarial_epsilon: FGM's step (0.2 in text_classifier) / FGSM's step per coordinate / PGD's radius
        (1.0) / FreeLB's initial magnitude (0.02).
      adversarial_alpha: PGD's (0.3) and FreeLB's step sizes.
      adversarial_steps: K of PGD and FreeLB (3).
      adversarial_max_norm: FreeLB's bound on an example's perturbation norm (0 = none).
      awp: AWP's weight-perturbation step η (0 = off; 1 in text_classifier): also train on the loss
        at adversarially perturbed weight matrices (`tfxc.losses.robust.awp_loss`).
      awp_epsilon: the perturbation's bound, ±awp_epsilon · |w| per weight (1e-4).
      awp_start_epoch: the first epoch (1-based) with the perturbation (2 in text_classifier).
      multisample_dropout: > 1: the head scores this many dropout copies of the features and the loss
        is taken of their mean logits (Inoue, 2019; 5 rounds in text_classifier); evaluation is unchanged.
      multisample_rate: the dropout rate of those copies (the encoder's own output dropout should then be 0).
    """

    name: str = "head"
    r_drop: float = 0.0
    adversarial: str = ""
    adversarial_epsilon: float = 0.2
    adversarial_alpha: float = 0.3
    adversarial_steps: int = 3
    adversarial_max_norm: float = 0.0
    awp: float = 0.0
    awp_epsilon: float = 1e-4
    awp_start_epoch: int = 1
    multisample_dropout: int = 0
    multisample_rate: float = 0.5

    def validate(self, path: str) -> None:
        from tfxc.errors import ConfigError
        from tfxc.losses.robust import ADVERSARIES

        if self.adversarial not in ADVERSARIES:
            raise ConfigError(f"{path}.adversarial '{self.adversarial}' is not one of "
                              f"{', '.join(repr(a) for a in ADVERSARIES)}")
        if self.r_drop < 0 or self.adversarial_epsilon <= 0 or self.adversarial_alpha <= 0 \
                or self.adversarial_steps < 1 or self.adversarial_max_norm < 0:
            raise ConfigError(f"{path}: r_drop and adversarial_max_norm must be >= 0, adversarial_epsilon and "
                              "adversarial_alpha > 0, adversarial_steps >= 1")
        if bool(self.r_drop) + bool(self.adversarial) + bool(self.awp) > 1:
            raise ConfigError(f"{path}: use one of r_drop, adversarial and awp")
        if self.awp < 0 or self.awp_epsilon <= 0 or self.awp_start_epoch < 1:
            raise ConfigError(f"{path}: awp must be >= 0, awp_epsilon > 0 and awp_start_epoch >= 1")
        if self.multisample_dropout < 0 or not 0.0 < self.multisample_rate < 1.0:
            raise ConfigError(f"{path}: multisample_dropout ({self.multisample_dropout}) must be >= 0 and "
                              f"multisample_rate ({self.multisample_rate}) in (0, 1)")
        if self.multisample_dropout > 1 and (self.r_drop or self.adversarial or self.awp):
            raise ConfigError(f"{path}: multisample_dropout does not combine with r_drop, adversarial or awp")


class HeadLoss(Objective):
    """Trains the head's own per-example loss (with R-Drop or an adversary when configured)."""

    def __init__(self, config: HeadLossConfig | None = None, seed: int = 0):
        super().__init__(name="head_loss")
        self.config = config or HeadLossConfig()
        self.seed = seed
        # AWP starts at an epoch: a flag the host sets before each epoch (`start_epoch`), read in the step
        # (only with AWP: other runs' checkpoints keep exactly their objects).
        if self.config.awp:
            self._awp_on = tf.Variable(self.config.awp_start_epoch <= 1, trainable=False, name="awp_on")

    def start_epoch(self, epoch: int) -> None:
        if self.config.awp:
            self._awp_on.assign(epoch >= self.config.awp_start_epoch)

    @classmethod
    def from_config_dataclass(cls, config: HeadLossConfig, *, info, length, global_batch_size: int) -> "HeadLoss":
        return cls(config)

    def check_model(self, model) -> None:
        """Raises ConfigError when the configured trick cannot run on `model`."""
        from tfxc.errors import ConfigError

        if (self.config.r_drop or self.config.multisample_dropout > 1) and model.head.logits_kind is None:
            raise ConfigError(f"loss.r_drop and loss.multisample_dropout work on per-label logits (a head with a "
                              f"logits_kind, such as softmax or one_vs_all), not on the outputs of "
                              f"{type(model.head).__name__}")
        if self.config.adversarial and not model.encoder.supports_embedding_perturbation:
            raise ConfigError(f"loss.adversarial perturbs input embeddings, which encoder "
                              f"{type(model.encoder).__name__} does not expose (use a text encoder such as "
                              "text_cnn or fasttext)")

    def per_example_loss(self, model, batch, training: bool = True):
        cfg = self.config
        if training and cfg.r_drop:
            from tfxc.losses.robust import r_drop_loss

            return r_drop_loss(model, batch, alpha=cfg.r_drop, kind=model.head.logits_kind)
        if training and cfg.adversarial:
            from tfxc.losses.robust import adversarial_loss

            return adversarial_loss(model, batch, method=cfg.adversarial, epsilon=cfg.adversarial_epsilon,
                                    alpha=cfg.adversarial_alpha, steps=cfg.adversarial_steps,
                                    max_norm=cfg.adversarial_max_norm, seed=self.seed)
        if training and cfg.awp:
            from tfxc.losses.robust import awp_loss

            return awp_loss(model, batch, learning_rate=cfg.awp, epsilon=cfg.awp_epsilon, active=self._awp_on)
        if training and cfg.multisample_dropout > 1:
            from tfxc.losses.robust import multisample_dropout_loss

            loss = multisample_dropout_loss(model, batch, rounds=cfg.multisample_dropout, rate=cfg.multisample_rate)
            return loss, loss
        loss = model.per_example_loss(batch, training=training)
        return loss, loss
