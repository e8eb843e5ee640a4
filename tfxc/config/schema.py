"""The experiment config: a tree of frozen dataclasses, one per concern.

JSON config files map one-to-one onto these classes (see `tfxc.config.loading`).
Every field has a default, so `--print-config` can show the complete, resolved
config. Cross-field rules live in each class's `validate()` and name the values
involved. Head, encoder and loss configs are polymorphic: their `name` picks a
class from the registries in `tfxc.heads` / `tfxc.encoders` / `tfxc.losses`.
"""

from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tfxc.config.data_schema import DataConfig
from tfxc.config.roles import CADENCE, LAYOUT, LENGTH, PREDICTION, role
from tfxc.config.validation import require as _require
from tfxc.config.metric_names import CLASSIFICATION_METRICS, SELECTABLE_METRICS
from tfxc.registry import did_you_mean, get_registry
from tfxc.utils.numbers import ascii_int

# `model.precision` (`tfxc.precision` carries them out; kept here so that checking a config needs no TensorFlow).
PRECISIONS = ("float32", "mixed_bfloat16", "auto")

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")
OPTIMIZERS = ("adam", "sgd", "adagrad", "rmsprop", "adadelta")
SCHEDULES = ("constant", "cosine", "linear")


@dataclass(frozen=True)
class ModelConfig:
    """Encoder + head. Both are polymorphic on their `name` (see the registries).

    Attributes:
      encoder: e.g. {"name": "sparse_bow", "embedding_dim": 512}.
      head: e.g. {"name": "one_vs_all"}.
      precision: "float32", "mixed_bfloat16" (the head's big matrix products on bfloat16 copies of
        features and weights; weights, updates and losses stay float32) or "auto" (mixed_bfloat16
        where the machine multiplies bfloat16 natively). See `tfxc.precision`.
    """

    encoder: Any = field(default=None, metadata={"registry": "encoder", "default_name": "sparse_bow"})
    head: Any = field(default=None, metadata={"registry": "head", "default_name": "one_vs_all"})
    precision: str = "float32"

    def validate(self, path: str) -> None:
        _require(self.precision in PRECISIONS,
                 f"{path}.precision '{self.precision}' is not one of {', '.join(PRECISIONS)}")
        self.encoder.validate(path + ".encoder")
        self.head.validate(path + ".head")


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer. Sparse embedding tables are always updated row-sparsely.

    Attributes:
      name: adam, sgd (with momentum), adagrad, rmsprop (with momentum, optionally centered) or adadelta
        (`tfxc.optimizers.lazy`); embedding tables get row-sparse ("lazy") updates.
      learning_rate: peak learning rate.
      schedule: constant, cosine (decay to 0) or linear (decay to 0), after warm-up.
      warmup_steps: linear warm-up: step t < warmup_steps uses peak·(t+1)/warmup_steps.
      beta_1, beta_2, epsilon: Adam's moments and epsilon (epsilon also of adagrad, rmsprop, adadelta).
      momentum: SGD's and RMSprop's momentum.
      rho: RMSprop's and Adadelta's decay of their running averages.
      centered: RMSprop divides by the running variance instead of the running mean square.
      initial_accumulator: Adagrad's starting sum of squared gradients.
      weight_decay: decoupled weight decay (AdamW-style) on every variable except the
        sparse embedding tables and `weight_decay_exclude` (biases included, as Keras does); 0 = off.
      weight_decay_exclude: regular expressions; a variable whose name matches one is not decayed,
        e.g. ["bias", "gamma", "beta"] for the usual fine-tuning exclusions of biases and LayerNorm.
      clip_norm: clip the global gradient norm (after the cross-replica sum); 0 = off.
    """

    name: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    warmup_steps: int = 0
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    momentum: float = 0.0
    rho: float = 0.9
    centered: bool = False
    initial_accumulator: float = 0.1
    weight_decay: float = 0.0
    weight_decay_exclude: tuple[str, ...] = ()
    clip_norm: float = 0.0

    def validate(self, path: str) -> None:
        _require(self.name in OPTIMIZERS, f"{path}.name '{self.name}' is not one of {', '.join(OPTIMIZERS)}")
        _require(self.schedule in SCHEDULES,
                 f"{path}.schedule '{self.schedule}' is not one of {', '.join(SCHEDULES)}")
        _require(self.learning_rate > 0, f"{path}.learning_rate ({self.learning_rate}) must be > 0")
        _require(self.warmup_steps >= 0, f"{path}.warmup_steps ({self.warmup_steps}) must be >= 0")
        _require(self.weight_decay >= 0 and self.clip_norm >= 0,
                 f"{path}: weight_decay and clip_norm must be >= 0")
        _require(0.0 < self.rho < 1.0 and self.initial_accumulator >= 0 and self.momentum >= 0,
                 f"{path}: rho ({self.rho}) must be in (0, 1), initial_accumulator and momentum >= 0")


@dataclass(frozen=True)
class TrainerConfig:
    """How long and how the loop runs.

    Attributes:
      global_batch_size: examples per step summed over all replicas.
      epochs: training length in passes over the train split (used if train_steps is 0).
      train_steps: training length in steps (overrides epochs when > 0).
      steps_per_loop: steps run inside one tf.function call between host checks.
      log_every_steps: progress-line cadence.
      eval_every_steps: evaluate every N steps (on the val split if the data has one, else
        on test); 0 = only at the end (always on test).
      eval_every_epochs: the same cadence in epochs (e.g. 1.0); used when eval_every_steps is 0.
      checkpoint_every_steps: checkpoint cadence in steps; 0 = none (a checkpoint is always written at
        the end, when stopping early and on SIGTERM/SIGINT).
      checkpoint_every_seconds: also checkpoint once this much wall time has passed since the last
        checkpoint (checked between loops); 0 = off. A time cadence keeps the cost of saving a
        bounded share of a run however fast its steps are; a killed run resumes from the last one,
        to the same weights.
      keep_checkpoints: checkpoints kept on disk.
      select_metric: e.g. "P@5": keep the weights of the periodic evaluation on the val
        split that scored best on this metric (`best/` in the model directory), and end
        with them: the final test evaluation, `evaluate`, `predict` and `export` use them.
        Needs a val split (`data.val` or `data.val_percent`) and an evaluation cadence.
        Empty: the model is the last step's.
      patience: with select_metric, stop once this many evaluations in a row have not
        improved on the best (early stopping); 0: train to the end.
      eval_at_start: also evaluate before the first step, so that selection can keep the starting
        weights (a model that starts solved, e.g. XR-Transformer's XR-Linear ranker).
      ema_decay: > 0 keeps an exponential moving average of the weights (e.g. 0.999), which
        evaluation, selection and export use instead of the raw weights (`tfxc.optimizers.averaging`).
      swa_start_step: > 0 keeps the uniform average of the weights from this step on (SWA),
        used the same way; not together with ema_decay.
      swa_learning_rate: > 0: from swa_start_step on, the learning rate anneals linearly to this constant
        over swa_anneal_steps steps (SWA's schedule, PyTorch's SWALR; text_classifier: 1e-6 over an epoch);
        0: the optimizer's schedule goes on.
      swa_anneal_steps: the anneal's length in steps.
      swa_start_epoch: > 0: SWA from this epoch on instead (MHE-XMC's `swa_warmup`); not with swa_start_step.
      swa_every_steps: SWA folds in the weights every this many steps from its start (MHE-XMC's `swa_step`:
        100 to 10,000); 1: after every step.
    """

    global_batch_size: int = 256
    epochs: float = field(default=10.0, metadata=role(LENGTH))
    train_steps: int = field(default=0, metadata=role(LENGTH))
    steps_per_loop: int = field(default=50, metadata=role(CADENCE))
    log_every_steps: int = field(default=100, metadata=role(CADENCE))
    eval_every_steps: int = field(default=0, metadata=role(CADENCE))
    eval_every_epochs: float = field(default=0.0, metadata=role(CADENCE))
    checkpoint_every_steps: int = field(default=1000, metadata=role(CADENCE))
    checkpoint_every_seconds: float = field(default=0.0, metadata=role(CADENCE))
    keep_checkpoints: int = field(default=3, metadata=role(CADENCE))
    select_metric: str = ""
    patience: int = field(default=0, metadata=role(LENGTH))
    eval_at_start: bool = False
    ema_decay: float = 0.0
    swa_start_step: int = 0
    swa_learning_rate: float = 0.0
    swa_anneal_steps: int = 1
    swa_start_epoch: float = 0.0
    swa_every_steps: int = 1

    def swa_start(self, steps_per_epoch: int) -> int:
        """SWA's first averaged step (1-based; 0: no SWA), from swa_start_step or swa_start_epoch."""
        if self.swa_start_epoch:
            return max(1, math.ceil(self.swa_start_epoch * steps_per_epoch))
        return self.swa_start_step

    def validate(self, path: str) -> None:
        _require(0.0 <= self.ema_decay < 1.0, f"{path}.ema_decay ({self.ema_decay}) must be in [0, 1)")
        _require(self.swa_start_step >= 0, f"{path}.swa_start_step ({self.swa_start_step}) must be >= 0")
        _require(not (self.ema_decay and (self.swa_start_step or self.swa_start_epoch)),
                 f"{path}: keep one weight average: ema_decay or SWA (swa_start_step, swa_start_epoch), not both")
        _require(self.swa_start_epoch >= 0 and not (self.swa_start_epoch and self.swa_start_step),
                 f"{path}: SWA starts at swa_start_step or at swa_start_epoch (>= 0), not both")
        _require(self.swa_every_steps >= 1, f"{path}.swa_every_steps ({self.swa_every_steps}) must be >= 1")
        _require(self.swa_learning_rate >= 0 and self.swa_anneal_steps >= 1,
                 f"{path}: swa_learning_rate must be >= 0 and swa_anneal_steps >= 1")
        _require(not self.swa_learning_rate or self.swa_start_step or self.swa_start_epoch,
                 f"{path}.swa_learning_rate anneals from SWA's start on: set {path}.swa_start_step too")
        _require(self.global_batch_size >= 1, f"{path}.global_batch_size ({self.global_batch_size}) must be >= 1")
        _require(self.train_steps > 0 or self.epochs > 0,
                 f"{path}: set epochs (> 0) or train_steps (> 0); got epochs={self.epochs}, "
                 f"train_steps={self.train_steps}")
        for name in ("steps_per_loop", "log_every_steps", "keep_checkpoints"):
            _require(getattr(self, name) >= 1, f"{path}.{name} ({getattr(self, name)}) must be >= 1")
        _require(self.checkpoint_every_steps >= 0 and self.checkpoint_every_seconds >= 0,
                 f"{path}: checkpoint_every_steps ({self.checkpoint_every_steps}) and checkpoint_every_seconds "
                 f"({self.checkpoint_every_seconds}) must be >= 0 (0 = off)")
        _require(self.eval_every_steps >= 0 and self.eval_every_epochs >= 0,
                 f"{path}: eval_every_steps ({self.eval_every_steps}) and eval_every_epochs "
                 f"({self.eval_every_epochs}) must be >= 0")
        _require(self.patience >= 0, f"{path}.patience ({self.patience}) must be >= 0")
        _require(not self.patience or self.select_metric, f"{path}.patience needs {path}.select_metric (e.g. 'P@5')")
        if self.select_metric:
            name, _, k = self.select_metric.partition("@")
            _require((name in SELECTABLE_METRICS and (ascii_int(k) or 0) >= 1)
                     or self.select_metric in CLASSIFICATION_METRICS,
                     f"{path}.select_metric '{self.select_metric}' must be one of "
                     f"{', '.join(m + '@k' for m in SELECTABLE_METRICS)} (k in eval.ks), or with "
                     f"eval.classification one of {', '.join(CLASSIFICATION_METRICS)}")
            _require(self.eval_every_steps or self.eval_every_epochs,
                     f"{path}.select_metric chooses among periodic evaluations: set {path}.eval_every_epochs "
                     f"(e.g. 1) or {path}.eval_every_steps")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation on the test split, from top-k lists only.

    Attributes:
      ks: the k of P@k, nDCG@k, PSP@k, PSnDCG@k and R@k.
      batch_size: evaluation batch size.
      propensity_a, propensity_b: A and B of the Jain et al. (2016) propensity model.
      max_points: evaluate only the first N points of the split (quick looks, e.g. while
        tuning); 0 = all of them.
      classification: also score the predicted label sets: precision, recall and F1 (micro, macro,
        weighted, samples) and exact-match accuracy (`tfxc.eval.classification`), so that
        trainer.select_metric may name e.g. "F1-macro".
      threshold: the predicted set of a multi-label split: the labels of the top max(ks) whose score is above
        this (0.5: σ > 0.5 for one-vs-all sigmoids). A multi-class split predicts its top label.
      train_sample: at each periodic evaluation also score the first N rows of train, a fixed sample, logged
        beside the val split's as train_sample/CE (the full-softmax cross-entropy, where the head gives it),
        Acc@1 and P@1: the train loss SCENT plots, which the training objective (a surrogate) is not. 0: off.
    """

    ROLE: ClassVar[str] = PREDICTION  # every setting here acts on a trained model's predictions

    ks: tuple[int, ...] = (1, 3, 5)
    batch_size: int = 1024
    max_points: int = 0
    propensity_a: float = 0.55
    propensity_b: float = 1.5
    classification: bool = False
    threshold: float = 0.5
    train_sample: int = 0

    def validate(self, path: str) -> None:
        _require(len(self.ks) > 0 and all(k >= 1 for k in self.ks), f"{path}.ks {list(self.ks)} must be >= 1")
        _require(self.train_sample >= 0, f"{path}.train_sample ({self.train_sample}) must be >= 0")
        _require(self.batch_size >= 1, f"{path}.batch_size ({self.batch_size}) must be >= 1")
        _require(self.max_points >= 0, f"{path}.max_points ({self.max_points}) must be >= 0")


@dataclass(frozen=True)
class RuntimeConfig:
    """Distribution and reproducibility.

    Attributes:
      strategy: default (one device), mirrored (all local devices) or
        multi_worker_mirrored (TF_CONFIG names the cluster).
      cpu_replicas: with mirrored/multi_worker_mirrored on a machine without
        GPUs, split the CPU into this many logical devices (one replica each).
      seed: seeds weights, dropout and the data order.
      deterministic: enable TF op determinism (bit-exact resume and reruns).
      collective_timeout_s: a collective (all-reduce) that waits longer than
        this fails, e.g. because a worker died.
      startup_timeout_s: give up if the cluster has not formed in this time.
    """

    strategy: str = field(default="default", metadata=role(LAYOUT))
    cpu_replicas: int = field(default=1, metadata=role(LAYOUT))
    seed: int = 0
    deterministic: bool = True
    collective_timeout_s: float = field(default=300.0, metadata=role(LAYOUT))
    startup_timeout_s: float = field(default=300.0, metadata=role(LAYOUT))

    def validate(self, path: str) -> None:
        _require(self.strategy in STRATEGIES,
                 f"{path}.strategy '{self.strategy}' is not one of {', '.join(STRATEGIES)}")
        _require(self.cpu_replicas >= 1, f"{path}.cpu_replicas ({self.cpu_replicas}) must be >= 1")
        _require(self.collective_timeout_s > 0 and self.startup_timeout_s > 0,
                 f"{path}: timeouts must be > 0")


EXPORT_INPUTS = ("auto", "text", "features")


@dataclass(frozen=True)
class ExportConfig:
    """SavedModel export.

    Attributes:
      top_k: labels returned by the serving signature.
      index: "off" (default), "auto" or "on": serve an exact head's (softmax, one-vs-all, linear) `top_k`
        by beam search over clusters of its label vectors, the smallest beam whose recall of the exact
        top-5 on validation rows meets `index_recall` (`tfxc.export.index_choice`); "auto" keeps the exact
        head where it is as fast or no beam short of all clusters meets it. `top_k_exact` stays exact.
      index_recall, index_leaf_size: the recall of the exact top-5 to reach, in (0, 1]; labels per leaf at most.
      inputs: what the signatures take from a model that reads feature rows: "auto" (default) takes strings
        where the data was converted from text (JSONL, CSV, TSV), the TF-IDF featurizer fit on train put in
        front of the model as graph ops, and feature rows otherwise; "text" requires that featurizer;
        "features" keeps the CSR feature rows of the featurizer's ids. A model whose encoder reads raw text
        or images takes those whatever this says, except that "features" is refused for it.
    """

    ROLE: ClassVar[str] = PREDICTION  # every setting here acts on a trained model's predictions

    top_k: int = 10
    index: str = "off"
    index_recall: float = 0.99
    index_leaf_size: int = 32
    inputs: str = "auto"

    def validate(self, path: str) -> None:
        _require(self.top_k >= 1, f"{path}.top_k ({self.top_k}) must be >= 1")
        _require(self.index in ("auto", "on", "off"), f"{path}.index ({self.index!r}) must be 'auto', 'on' or 'off'")
        _require(0.0 < self.index_recall <= 1.0, f"{path}.index_recall ({self.index_recall}) must be in (0, 1]")
        _require(self.index_leaf_size >= 2, f"{path}.index_leaf_size ({self.index_leaf_size}) must be >= 2")
        _require(self.inputs in EXPORT_INPUTS, f"{path}.inputs ({self.inputs!r}) must be one of "
                                               f"{', '.join(map(repr, EXPORT_INPUTS))}")


# The recipe's points on the speed–accuracy frontier, fastest first (`tfxc.recipe.points` holds their rules).
RECIPE_POINTS = ("fast", "default", "best", "xrt")


def check_recipe(recipe) -> None:
    """Raises `ConfigError` unless `recipe` is true, false or one of `RECIPE_POINTS`."""
    if isinstance(recipe, bool):
        return
    _require(recipe in RECIPE_POINTS, f"recipe '{recipe}': unknown{did_you_mean(recipe, RECIPE_POINTS)}; true, "
             f"false or one of: {', '.join(RECIPE_POINTS)}")


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole experiment; `validate()` checks every section and the rules across them.

    Attributes:
      imports: Python modules imported before the rest of the config is read, so
        that heads, encoders or losses they register (e.g. a head of your own,
        `HEADS.register("cosine", config=...)`) can be named in it.
      loss: the training objective, picked by `name` from the registry in `tfxc.losses`:
        "head" (the default) trains the head's own loss; bsgd, asgd, softplus, umax,
        sox and scent are the dual-variable objectives for extreme multi-class data
        (algorithms.md §4), e.g. {"name": "scent", "gamma": 12}; "active_set" trains an exact head
        (softmax, one_vs_all) on M labels a step (`tfxc.losses.active_set`), e.g. {"name": "active_set", "size": 2048}.
      data, model, optimizer, trainer, eval, runtime, export: the sections.
      recipe: true makes this a *thin* config: `tfxc.train` converts the data,
        starts from the config `tfxc.recipe` chooses for it and puts this file's
        sections on top, so the file states only what differs from the recipe
        (the model directory keeps the resolved config). A data section without
        a validation part then holds out 10 % of train, as the recipe does.
        A point of `RECIPE_POINTS` instead of true also picks where on the
        speed–accuracy frontier the recipe's config sits (`tfxc.recipe.points`):
        "fast", the cheapest model that still meets the peers, "default" (what true
        is, unless the head is XR-Transformer's: then "xrt"), "best", an ensemble
        of default members, or "xrt" (`tfxc.recipe.points.SUMMARIES`).
      comment: free text, not read (e.g. why a thin config differs from the recipe).
    """

    imports: tuple[str, ...] = ()
    recipe: bool | str = False
    comment: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: Any = field(default=None, metadata={"registry": "loss", "default_name": "head"})
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def validate(self) -> "ExperimentConfig":
        for f in dataclasses.fields(self):
            if f.name not in ("imports", "recipe", "comment"):
                getattr(self, f.name).validate(f.name)
        check_recipe(self.recipe)
        if self.runtime.strategy == "default":
            _require(self.runtime.cpu_replicas == 1,
                     f"runtime.cpu_replicas ({self.runtime.cpu_replicas}) needs runtime.strategy "
                     "'mirrored' or 'multi_worker_mirrored', not 'default'")
        if self.trainer.select_metric in CLASSIFICATION_METRICS:
            _require(self.eval.classification, f"trainer.select_metric '{self.trainer.select_metric}' scores the "
                     "predicted label sets: set eval.classification to true")
        elif self.trainer.select_metric:
            k = int(self.trainer.select_metric.partition("@")[2])
            _require(k in self.eval.ks, f"trainer.select_metric '{self.trainer.select_metric}': k = {k} is not in "
                     f"eval.ks {list(self.eval.ks)}")
        loss = get_registry("loss").get(self.loss.name)
        head = get_registry("head").get(self.model.head.name)
        if loss.needs_label_logits and not head.supports_label_logits:
            heads = [name for name in get_registry("head").names()
                     if get_registry("head").get(name).supports_label_logits]
            _require(False, f"loss '{self.loss.name}' scores sampled labels through Head.label_logits, which "
                     f"head '{self.model.head.name}' does not have; use one of: {', '.join(heads)}")
        loss.check_head(head, self.model.head)
        return self
