"""Knowledge distillation from a trained teacher model directory (Hinton et al., 2015; algorithms.md §5.4).

    loss = α · (the student head's own loss) + (1 − α) · KD(student logits / T, teacher logits / T)

KD is one of
  ce:  −Σ_l softmax(t/T)_l · log softmax(s/T)_l
  kl:  Σ_l softmax(t/T)_l · (log softmax(t/T)_l − log softmax(s/T)_l)
  mse: mean_l (s_l − t_l)² / T² (logit matching; text_classifier's "mse" compares log-probabilities
       with probabilities instead, which we do not copy)
with no T² factor on the soft terms, as text_classifier (α = 0.1, T = 1 by default there).

The teacher (any encoder, e.g. a fine-tuned MiniLM) scores the student's train split once,
before training, on the very same converted data (checked by fingerprint); its logits are
kept by row id, so each step only gathers them: the teacher costs one inference pass, not
a forward pass per step, and any student (TextCNN, FastText, ...) can learn from it.

Several teachers (`teachers`, e.g. the K fold models of one conversion, `tfxc.data.folds`) act as one: the
mean of their logits, the averaged-logit ensemble text_classifier fuses its k-fold models with.

Layer-dropping self-distillation (`tfxc.losses.hidden_states`): a transformer student that keeps a few of
its transformer teacher's layers (`model.encoder.keep_layers`) starts from the teacher's fine-tuned weights
(`init_student`) and learns its hidden states too (`hidden_weight` β):

    loss = α · own + (1 − α) · KD + β · hidden_mse(student states, teacher states)

The hidden states cannot be kept per row, so that teacher runs beside the student at every step
(inference only: about a third of a training step of the same network).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from tfxc._tf import tf
from tfxc.utils.graph import BatchFunction
from tfxc.errors import ConfigError, TfxcError
from tfxc.losses.base import Objective

log = logging.getLogger("tfxc.losses")

KD_LOSSES = ("ce", "kl", "mse")
# The teacher's logits are held in memory: [train points, labels] float32 up to this many values.
MAX_TEACHER_VALUES = 200_000_000


@dataclass(frozen=True)
class DistillConfig:
    """Config of the `distill` objective (module docstring).

    Attributes:
      name: "distill".
      teacher: the teacher's trained model directory (same converted data, or a fold of the same conversion;
        a softmax-like head).
      teachers: several teachers instead, whose logits are averaged (e.g. the models of the K folds).
      alpha: weight of the student's own loss (1 − alpha on the distillation term).
      temperature: T.
      kd_loss: ce, kl or mse.
      hidden_weight: β of the hidden-state term (0 = off; both encoders pretrained transformers, one teacher).
      init_student: before training, copy the teacher's embeddings, the teacher layers the student's are
        matched with, and its head into the student (`tfxc.losses.hidden_states.initialise_student`).
    """

    name: str = "distill"
    teacher: str = ""
    teachers: tuple[str, ...] = ()
    alpha: float = 0.1
    temperature: float = 1.0
    kd_loss: str = "ce"
    hidden_weight: float = 0.0
    init_student: bool = False

    @property
    def live_teacher(self) -> bool:
        """The teacher model is needed during training, not only its logits of the train rows."""
        return bool(self.hidden_weight) or self.init_student

    def validate(self, path: str) -> None:
        if bool(self.teacher) == bool(self.teachers):
            raise ConfigError(f"{path}: name the teacher's model directory in {path}.teacher, or several in "
                              f"{path}.teachers (their logits averaged), not both")
        if not 0.0 <= self.alpha <= 1.0 or self.temperature <= 0:
            raise ConfigError(f"{path}: alpha ({self.alpha}) must be in [0, 1] and temperature "
                              f"({self.temperature}) > 0")
        if self.hidden_weight < 0:
            raise ConfigError(f"{path}.hidden_weight ({self.hidden_weight}) must be >= 0")
        if self.live_teacher and self.teachers:
            raise ConfigError(f"{path}: hidden_weight and init_student follow one teacher ({path}.teacher)")
        if self.kd_loss not in KD_LOSSES:
            raise ConfigError(f"{path}.kd_loss '{self.kd_loss}' is not one of {', '.join(KD_LOSSES)}")


def restore_teacher(teacher_dir: str, info, trust_imports=False):
    """The teacher's `TrainedModel`, checked to be trained on `info`'s data (or a fold of its conversion) with a
    softmax-like head.

    `trust_imports` (`tfxc.train --trust-imports`): which modules the teacher's config may import; the
    teacher directory may be someone else's, so by default none that is not imported yet.
    """
    from tfxc.model_dir import ModelDir

    teacher = ModelDir(teacher_dir)
    trained = teacher.restore(teacher.load_config(trust_imports=trust_imports), need_rows=False)
    if not (trained.info.same_data_as(info) or trained.info.fold_siblings(info)):
        raise TfxcError(f"the teacher {teacher_dir} was trained on other data than {info.dir}: distillation "
                        "scores the student's train rows, so both must use the same converted data (or two folds "
                        "of one conversion)")
    if trained.model.head.logits_kind != "categorical":
        raise ConfigError(f"the teacher's head is {type(trained.model.head).__name__}; distillation needs a head "
                          "whose logits are one softmax over the labels (Head.logits_kind 'categorical', e.g. softmax)")
    return trained


def teacher_logits(teacher_dir: str, info, batch_size: int = 256, trust_imports=False) -> np.ndarray:
    """float32 [train points, L]: the teacher's logits of every train row, indexed by row id."""
    return score_train_rows(restore_teacher(teacher_dir, info, trust_imports).model, info, batch_size, teacher_dir)


def score_train_rows(model, info, batch_size: int = 256, name: str = "the teacher") -> np.ndarray:
    """float32 [train points, L]: `model`'s logits of every train row of `info`, indexed by row id."""
    from tfxc.data.pipeline import eval_dataset

    rows = info.num_points("train")
    if rows * info.num_labels > MAX_TEACHER_VALUES:
        raise ConfigError(f"the teacher's logits ({rows} x {info.num_labels}) are too many to keep in memory")
    start = time.time()
    out = np.zeros((rows, info.num_labels), np.float32)
    forward = BatchFunction(lambda batch: model(batch, training=False))
    for batch in eval_dataset(info.files("train"), batch_size, preprocess=model.encoder.preprocess):
        out[batch["row_id"].numpy()] = forward(batch).numpy()
    log.info("teacher %s scored the %d train rows in %.1fs", name, rows, time.time() - start)
    return out


def kd_loss(student, teacher, kind: str, temperature: float) -> tf.Tensor:
    """float32 [B]: the soft term of the module docstring for logits [B, L]."""
    if kind == "mse":
        return tf.reduce_mean(tf.square(student - teacher), axis=-1) / temperature ** 2
    log_q = tf.nn.log_softmax(student / temperature, axis=-1)
    log_p = tf.nn.log_softmax(teacher / temperature, axis=-1)
    cross = -tf.reduce_sum(tf.exp(log_p) * log_q, axis=-1)
    return cross if kind == "ce" else cross + tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)


class DistillObjective(Objective):
    """The distillation objective; the teacher's logits are a constant of the training graph, or (hidden-state
    distillation) the teacher runs beside the student (`tfxc.losses.hidden_states.LiveTeacher`)."""

    reads_model_dirs = True

    def __init__(self, config: DistillConfig, logits: np.ndarray | None, teacher=None):
        super().__init__(name="distill")
        self.config = config
        self._logits = None if logits is None else tf.constant(logits)
        self._holder = _Holder(teacher)

    @classmethod
    def from_config_dataclass(cls, config: DistillConfig, *, info, length, global_batch_size: int,
                              trust_imports=False):
        if config.live_teacher:
            teacher = restore_teacher(config.teacher, info, trust_imports).model
            logits = None if config.hidden_weight else score_train_rows(teacher, info, name=config.teacher)
            return cls(config, logits, teacher)
        teachers = config.teachers or (config.teacher,)
        logits = teacher_logits(teachers[0], info, trust_imports=trust_imports)
        for teacher in teachers[1:]:
            logits += teacher_logits(teacher, info, trust_imports=trust_imports)
        return cls(config, logits / np.float32(len(teachers)))

    def check_model(self, model) -> None:
        from tfxc.losses.hidden_states import LiveTeacher, initialise_student

        if model.head.logits_kind != "categorical":
            raise ConfigError(f"distillation compares softmax logits (Head.logits_kind 'categorical'); the "
                              f"student's head is {type(model.head).__name__}")
        teacher = self._holder.model
        if teacher is None:
            return
        live = LiveTeacher(teacher, model, tuple(getattr(model.encoder, "keep_layers", ())))
        if self.config.init_student:
            # Before any checkpoint is restored: a resumed run then overwrites these with its own weights.
            initialise_student(model, teacher, live.mapping)
        self._holder = _Holder(live=live if self.config.hidden_weight else None)

    def per_example_loss(self, model, batch, training: bool = True):
        cfg = self.config
        live = self._holder.live
        if live is None:
            logits = model(batch, training=training)
            teacher, hidden = tf.gather(self._logits, batch["row_id"]), 0.0
        else:
            logits, teacher, hidden = live.step(batch, training)
        own = model.head.per_example_loss(logits, batch["labels"])
        loss = cfg.alpha * own + (1.0 - cfg.alpha) * kd_loss(logits, teacher, cfg.kd_loss, cfg.temperature)
        return loss + cfg.hidden_weight * hidden, own


class _Holder:
    """Holds the teacher and its views out of the objective's checkpoint (a plain object is not tracked)."""

    def __init__(self, model=None, live=None):
        self.model, self.live = model, live
