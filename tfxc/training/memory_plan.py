"""Memory before the run: the peak resident set a training run will need, by component, and the check against
what the machine has.

  plan = plan_memory(config, info)                  # builds no weights: shapes only
  print(plan.format())                              # one line per component, with the knobs that cut it
  check_memory(plan, ignore=False)                  # MemoryPlanError when it exceeds the available memory

`python -m tfxc.train --plan` and `tfxc.fit(..., plan_only=True)` print it (`show_plan`; from a declared shape
before the data exists: `tfxc.training.shape_plan`); every training run
logs it and checks it first (`tfxc.training.trainer.Trainer`).

The estimate (bytes; B = trainer.global_batch_size, E = eval.batch_size) is what the process holds throughout
plus the largest of its transients, since TensorFlow's CPU allocator keeps freed memory for the next
allocation (the resident set does not shrink between them):

* parameters: every variable of the model, from its shape and dtype. The model is built under a Keras
  `StatelessScope`, which records each variable's shape without allocating it (the heads' host-side
  structures, e.g. a label tree's clustering, are still computed, or read from their cache: the plan's cost).
* optimizer slots: Adam keeps 2 moments per trainable weight, SGD with momentum 1, without 0; a weight
  average (EMA/SWA) one more copy. A mirrored strategy on CPU replicas multiplies both.
* data pipeline: the shuffle buffer of serialized train records (their size on disk) and the prefetched batches.
* runtime: TensorFlow, Keras and tfxc loaded, the traced functions (`RUNTIME_BYTES`); TF-Text and the
  tokenizer for an encoder that reads raw text (`TEXT_RUNTIME_BYTES`); XLA compilation: `XLA_BYTES` for a
  head whose evaluation XLA compiles.
* transients, the largest counts:
  - weight initialisation: a random initializer's temporaries, `INIT_COPIES` × the largest variable;
  - one training step: the dense gradients (one per dense trainable weight; the row-sparse ones of the
    embedding tables B × features per point rows, of a head's tables a row per scored label), the encoder's
    gathered rows [B, nnz, dim] and outputs (a vision backbone's layer outputs: `Encoder.memory_step_bytes`),
    the head's scores per example (`Head.memory_scores`: [B, L] logits for the exact heads, [B, R·buckets]
    for hashed ones, active nodes for a tree) × `SCORE_COPIES`,
    and under mixed_bfloat16 the bfloat16 copies of the head's weights;
  - evaluation: the scores of one eval batch [E, W] × `EVAL_SCORE_COPIES`.
* held from earlier stages: a training after the first in one process (an XR-Transformer level or its
  ranker, a k-fold fold, a `best` member) starts where the earlier ones left the process: its resident set
  then, above the runtime already counted (`MemoryPlan.hold_earlier_stages`, from `check_memory`).

Calibrated against measured peak RSS (`/usr/bin/time -v`), see docs/benchmarks-history.md, "Memory plan".
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from tfxc.errors import TfxcError

log = logging.getLogger("tfxc.memory")

# A process with TensorFlow, Keras and tfxc imported, a strategy, the traced step and evaluation functions
# and tf.data's threads, before any weight: 734-851 MiB on the measured runs (docs/benchmarks-history.md, "Memory plan").
RUNTIME_BYTES = 768 * 2**20
# An encoder that reads raw text (`Encoder.input_kind == "text"`): TF-Text and keras-hub loaded (~150 MiB
# measured alone), the tokenizer's tables and the traced string and sequence kernels. Measured over the
# feature models' runtime: +0.62 GiB (TextCNN on banking77), +0.84 GiB (MiniLM on clinc150).
TEXT_RUNTIME_BYTES = 640 * 2**20
# A head whose evaluation is compiled by XLA (`Head.serving_jit_compile`): the compiler's own memory (the label
# tree on wordnet-nextword: the peak rose 180 MiB over training's in its first evaluation).
XLA_BYTES = 180 * 2**20
# A random initializer's temporaries, in multiples of the variable: a [360232, 512] RandomNormal raised the
# resident set by 3.1 times the variable (the draw, its scaling and the variable).
INIT_COPIES = 2
# Score tensors of one step alive at its peak, per score: logits, probabilities (sigmoid/softmax), the
# gradient of the logits and one loss temporary.
SCORE_COPIES = 4
# Score tensors of evaluation: the scores and top-k's working copy. Heads that score labels in chunks build
# them as ops of one graph, which TensorFlow runs concurrently: all chunks count (`Head.memory_scores`).
EVAL_SCORE_COPIES = 2
# Per serialized record in tf.data's shuffle buffer, besides its bytes (a tstring and a Tensor around it).
RECORD_OVERHEAD = 96
# train.sh trains PARALLEL parts at a time (its default).
TRAIN_SH_PARALLEL = 2
# Head config keys that size its weights or scores, named in the plan's lines where the head has them.
HEAD_SIZE_KEYS = ("num_buckets", "num_repetitions", "feat_hash_dim", "nr_splits", "max_leaf_size",
                  "dense_level_max", "radices", "sparse_support")
# The environment variable that, like --ignore-memory-plan, lets a run go on over the estimate.
IGNORE_ENV = "TFXC_IGNORE_MEMORY_PLAN"


# Trainings whose plan this process has checked (`check_memory`, which every `Trainer` calls first): after the
# first, a training is a later stage of a run of several in one process.
_checked_trainings = 0


class MemoryPlanError(TfxcError):
    """The memory plan's estimate exceeds the memory available to this process."""


@dataclass(frozen=True)
class Component:
    """One line of the plan: `name` needs `bytes`; `knobs` are the config keys that cut it. `runtime`: loaded
    once per process (TensorFlow, TF-Text), so a later training in the same process finds it there already."""

    name: str
    bytes: int
    knobs: str = ""
    runtime: bool = False


@dataclass
class MemoryPlan:
    """The estimated peak resident set of one training process, by component.

    Attributes:
      components: what the process holds throughout, in the order they are printed.
      transients: what it holds for a while, one at a time: TensorFlow's allocator keeps freed memory for the
        next allocation, so the peak has the largest of them on top of `components`.
      parts: independently trained parts of the head (`Head.num_parts`); > 1 means train.sh trains them in
        `TRAIN_SH_PARALLEL` processes at a time, each of `part_total` bytes.
      part_total: the estimate of one part's process (0 unless parts > 1).
      notes: extra lines (e.g. how the model's shapes were obtained).
    """

    components: list[Component]
    transients: list[Component] = field(default_factory=list)
    parts: int = 1
    part_total: int = 0
    notes: list[str] = field(default_factory=list)

    def hold_earlier_stages(self, resident: int) -> int:
        """Adds what a process that trained before holds at this training's start, from its resident set now
        (`resident` bytes, VmRSS): the part of it above the runtime this plan counts already. Returns it.

        A run of several trainings in one process (XR-Transformer's levels and its ranker, k-fold's folds,
        `best`'s members) plans each on its own, but a later one starts in a process that holds what the
        earlier ones left: their runtime, which this plan counts (a process loads it once), and above it what
        is still referenced and what the allocators keep of what was freed (glibc's arenas and TensorFlow's do
        not return all of it). Only the measured resident set says how much that is; what an earlier stage
        still references or keeps comes on top of this stage's own terms, so the estimate is the process's
        peak: the resident set at the start plus this stage's weights, slots, data and largest transient.
        """
        counted = sum(c.bytes for c in self.components if c.runtime)
        held = max(0, int(resident) - counted)
        at = max((i + 1 for i, c in enumerate(self.components) if c.runtime), default=len(self.components))
        self.components.insert(at, Component(
            "held from earlier stages", held,
            f"this process's resident set at this stage's start ({gib(resident)}, VmRSS) less the runtime above"))
        return held

    @property
    def total(self) -> int:
        return sum(c.bytes for c in self.components) + max((c.bytes for c in self.transients), default=0)

    def format(self, available: int | None = None) -> str:
        """The plan as lines of text (what --plan prints and a run logs)."""
        lines = ["memory plan (peak resident set of this process, estimated):"]
        for c in self.components:
            lines.append(f"  {c.name:<24} {gib(c.bytes):>10}" + (f"   cut: {c.knobs}" if c.knobs else ""))
        if self.transients:
            lines.append("  and the largest of, one at a time:")
        for c in self.transients:
            lines.append(f"    {c.name:<22} {gib(c.bytes):>10}" + (f"   cut: {c.knobs}" if c.knobs else ""))
        lines.append(f"  {'total':<24} {gib(self.total):>10}")
        if self.parts > 1:
            lines.append(f"  the head trains in {self.parts} parts: one part's process needs {gib(self.part_total)}; "
                         f"train.sh runs PARALLEL (default {TRAIN_SH_PARALLEL}) at a time: "
                         f"{gib(TRAIN_SH_PARALLEL * self.part_total)} together")
        if available is not None:
            lines.append(f"  available: {gib(available)} (MemAvailable, or the cgroup's limit if lower)")
        lines.extend(f"  {note}" for note in self.notes)
        return "\n".join(lines)


def gib(n: float) -> str:
    """Bytes as GiB with two decimals (MiB below 1 GiB, where two decimals of GiB say little)."""
    return f"{n / 2**30:.2f} GiB" if abs(n) >= 2**30 else f"{n / 2**20:.0f} MiB"


# === What the model holds ===
def model_shapes(model_config, context):
    """The model of `model_config`, built with shapes but no allocated weights (see the module docstring).

    Returns (model, how): variables carry `.shape` and `.dtype`; `how` says whether the weights were really
    allocated (a head or encoder whose build reads its weights' values cannot be built without them).
    """
    from keras.src.backend.common import global_state

    from tfxc._tf import keras
    from tfxc.model import build_model

    pending = list(global_state.get_global_attribute("uninitialized_variables") or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = build_model(model_config, context)
        how = "shapes from a build without weights"
    except Exception as e:  # noqa: BLE001 - e.g. a build that reads its weights' values: build them for real
        # (a config the real build refuses too raises from there, with its own message)
        log.debug("memory plan: a stateless build failed (%s); building the weights", e)
        model, how = build_model(model_config, context), "shapes from a build with weights"
    finally:
        # Keras keeps the stateless scope's variables for a later initialisation; these must never get one.
        global_state.set_global_attribute("uninitialized_variables", pending)
    return model, how


def nbytes(variables) -> int:
    """Bytes of the variables' values, from their shapes and dtypes."""
    return sum(int(np.prod(v.shape, dtype=np.int64)) * np.dtype(str(v.dtype)).itemsize for v in variables)


# === The plan ===
def plan_memory(config, info, part: int | None = None) -> MemoryPlan:
    """The memory plan of training `config` on the converted data `info` (`DatasetInfo`).

    Args:
      config: the `ExperimentConfig`.
      info: the converted data's `DatasetInfo` (its stats give the points, features and labels per point).
      part: the process trains only this part of the head (`tfxc.train --part`); None: the whole model.
    """
    from tfxc.build_context import BuildContext
    from tfxc.model import num_parts

    parts = num_parts(config.model)
    plan = _plan(config, info, BuildContext.from_info(info, seed=config.runtime.seed, part=part))
    if parts > 1:
        plan.parts = parts
        plan.part_total = (plan.total if part is not None else
                           _plan(config, info, BuildContext.from_info(info, seed=config.runtime.seed, part=0)).total)
    return plan


def _plan(config, info, context) -> MemoryPlan:
    from tfxc.losses import LOSSES
    from tfxc.optimizers import slots_per_weight
    from tfxc.precision import resolve

    model, how = model_shapes(config.model, context)
    tc, batch = config.trainer, config.trainer.global_batch_size
    train = info.splits.get("train", {})
    features_per_point = float(train.get("avg_features_per_point", 0.0))
    replicas = config.runtime.cpu_replicas if config.runtime.strategy != "default" else 1
    sparse_ids = {id(v) for v in model.sparse_variables}
    trainable = model.trainable_variables
    dense = [v for v in trainable if id(v) not in sparse_ids]
    sparse = [v for v in trainable if id(v) in sparse_ids]
    head_weights = nbytes(model.head.trainable_variables)
    mixed = resolve(config.model.precision) == "mixed_bfloat16"

    params = nbytes(model.variables) * replicas
    averages = 1 if (tc.ema_decay or tc.swa_start_step or tc.swa_start_epoch) else 0
    slots = (slots_per_weight(config.optimizer) + averages) * nbytes(trainable) * replicas

    # One step: dense gradients; the row-sparse ones before and after the de-duplication of their rows (the
    # encoder's tables: a row per (point, feature); the head's: a row per scored label or node); the encoder's
    # gathered rows [B, nnz, dim] and outputs; the head's scores, of the batch's labels for sampled objectives.
    if LOSSES.get(config.loss.name).needs_label_logits:
        scores = min(batch, info.num_labels)
    elif config.loss.name == "active_set":
        scores = min(config.loss.size, info.num_labels)
    else:
        scores = model.head.memory_scores(True, float(train.get("avg_labels_per_point", 1.0)))
    encoder_ids = {id(v) for v in model.encoder.sparse_variables}

    def sparse_gradient(v) -> float:
        rows = batch * (max(features_per_point, 1.0) if id(v) in encoder_ids else scores)
        return 2 * min(rows, v.shape[0]) * int(np.prod(v.shape[1:])) * 4

    encoder_width = model.encoder.output_dim
    table_width = max((v.shape[-1] for v in model.encoder.sparse_variables if len(v.shape) == 2), default=0)
    encoder_acts = batch * 4 * (2 * features_per_point * table_width + 3 * encoder_width)
    step_scores = batch * scores
    sparse_grads = sum(sparse_gradient(v) for v in sparse)
    encoder_acts += model.encoder.memory_step_bytes(batch)  # a vision backbone's layers
    step = (nbytes(dense) * replicas + sparse_grads + encoder_acts + SCORE_COPIES * 4 * step_scores
            + (head_weights if mixed else 0))  # two bfloat16 copies: the weights' and their gradient's

    eval_batch = config.eval.batch_size
    eval_bytes = EVAL_SCORE_COPIES * 4 * eval_batch * model.head.memory_scores(False)
    eval_bytes += eval_batch * 4 * 3 * encoder_width + model.encoder.memory_step_bytes(eval_batch, training=False)
    # A random initializer's temporaries (the draw and its scaling) next to the variable it fills.
    init = INIT_COPIES * max((nbytes([v]) for v in model.variables), default=0)

    data = _data_bytes(config, info, features_per_point, model.encoder.memory_input_bytes())
    components = [
        Component("parameters", params, _knobs(config, "parameters")),
        Component("optimizer slots", slots, _knobs(config, "slots")),
        Component("data pipeline", int(data), "data.shuffle_buffer"),
        Component("runtime (TF, Keras)", RUNTIME_BYTES, runtime=True),
    ] + ([Component("text runtime (TF-Text)", TEXT_RUNTIME_BYTES, runtime=True)]
         if model.encoder.input_kind == "text" else []) + (
        [Component("XLA compilation", XLA_BYTES, "the head's evaluation is compiled (Head.serving_jit_compile)")]
        if model.head.serving_jit_compile else [])
    transients = [
        Component("weight initialisation", int(init), "the largest variable (see parameters)"),
        Component("one training step", int(step), _knobs(config, "step")),
        Component("evaluation", int(eval_bytes), "eval.batch_size"),
    ]
    return MemoryPlan(components, transients, notes=[f"{how}; {len(model.variables)} variables, "
                                         f"{nbytes(model.variables) / 2**20:,.1f} MiB"])


def _data_bytes(config, info, features_per_point: float, input_bytes: int = 0) -> float:
    """tf.data's shuffle buffer of serialized records and the prefetched, parsed batches (`input_bytes` per row
    besides the row's features and labels: a decoded image)."""
    from tfxc.data.pipeline import PARALLEL_CALLS, PREFETCH_BATCHES

    train = info.splits.get("train", {})
    points = max(int(train.get("num_points", 1)), 1)
    try:
        record = sum(os.path.getsize(f) for f in info.files("train")) / points
    except (TfxcError, OSError):  # no shards yet: ids and values of the average row
        record = features_per_point * 12 + 64
    buffered = min(config.data.shuffle_buffer, points) * (record + RECORD_OVERHEAD)
    parsed = (PREFETCH_BATCHES + PARALLEL_CALLS) * config.trainer.global_batch_size * (
        features_per_point * 12 + float(train.get("avg_labels_per_point", 1.0)) * 8 + 64 + input_bytes)
    return buffered + parsed


def _knobs(config, component: str) -> str:
    """The config keys that cut a component, for the plan's lines."""
    encoder = {"sparse_bow": "model.encoder.embedding_dim, model.encoder.hidden_units"}.get(
        config.model.encoder.name, "model.encoder")
    # The head's size keys that its config has (named by key, never by head: `Head` abilities decide the rest).
    sizes = [f"model.head.{f.name}" for f in dataclasses.fields(config.model.head) if f.name in HEAD_SIZE_KEYS]
    head = ", ".join(sizes) or "model.head (a label tree or hashed head for large L)"
    if component == "parameters":
        return f"{encoder}, {head}"
    if component == "slots":
        return "optimizer.name=sgd (no slots; momentum adds one), trainer.ema_decay/swa_start_step=0"
    return f"trainer.global_batch_size, {head}, model.precision=float32 (no bfloat16 copies)"


# === The check ===
def available_bytes() -> int | None:
    """Memory this process may still take: MemAvailable (/proc/meminfo), or the cgroup's limit minus its
    usage if that is lower; None where neither is readable."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except (OSError, ValueError):
        pass
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit, encoding="ascii") as f:
                text = f.read().strip()
            if text == "max":
                continue
            with open(usage, encoding="ascii") as f:
                found.append(int(text) - int(f.read().strip()))
        except (OSError, ValueError):
            continue
    return min(found) if found else None


def check_memory(plan: MemoryPlan, ignore: bool = False, later_stage: bool | None = None) -> None:
    """Logs the plan; raises `MemoryPlanError` when the part of it still to come exceeds the available memory.

    The process already holds its current resident set (TensorFlow loaded), so what must still fit is the
    estimate minus that. `ignore` (--ignore-memory-plan, or TFXC_IGNORE_MEMORY_PLAN=1) turns the refusal into
    a warning. `later_stage`: this process has trained before (None: it has if a plan was checked in it
    before, as every `Trainer` does), so the plan gets what it still holds (`MemoryPlan.hold_earlier_stages`).
    """
    from tfxc.utils import memory

    global _checked_trainings
    if later_stage is None:
        later_stage = _checked_trainings > 0
    _checked_trainings += 1
    if later_stage:
        plan.hold_earlier_stages(memory.current_rss_bytes())
    available = available_bytes()
    log.info("%s", plan.format(available))
    if available is None:
        return
    needed = plan.total - memory.current_rss_bytes()
    if needed <= available:
        return
    message = (f"the memory plan estimates {gib(plan.total)} for this run, {gib(needed)} more than this process "
               f"holds, but only {gib(available)} is available; cut the largest part (see the plan above, or "
               "python -m tfxc.train --plan) or pass --ignore-memory-plan to try anyway")
    if ignore or os.environ.get(IGNORE_ENV, "") not in ("", "0"):
        log.warning("%s (going on: the memory plan is ignored)", message.split("; cut")[0])
        return
    raise MemoryPlanError(message)



def show_plan(config, info, part: int | None = None) -> MemoryPlan:
    """Prints the memory plan of training `config` on `info`, with the memory available now, and returns it."""
    plan = plan_memory(config, info, part)
    print(plan.format(available_bytes()))
    return plan
