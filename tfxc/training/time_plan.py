"""How long a config will train on a data set, estimated before it starts (the recipe prints it per point).

The estimate is the work the config asks for, times what this machine was measured to do:

    seconds = start + steps x (step_flops / matmul_rate + step_bytes / memory_rate + step_overhead)
              + evaluations x eval_flops / matmul_rate

* `step_flops`: the products of one training step. A product [B, w] x [w, n] costs 2·B·w·n flops forward
  and twice that backward (the gradients of both factors), so a trained product counts 3 x 2·B·w·n: the
  bag of features ([B, D] x [D, w] for the "full" bag, [B, U] x [U, w] over the batch's U features for
  the "dense" one, the rows' f non-zero features for the "sparse" one), the encoder's hidden layers, the
  exact head's [B, w] x [w, L] (or the label tree's scored nodes, about labels per point x nr_splits per
  level; MACH's R x B buckets) and XR-Linear's sparse term (`s` features per label and row).
* `step_bytes`: Adam's update of the weights it touches (read w, g, m, v; write w, m, v: 28 bytes a
  weight): the head's [w, L] (+ [s, L]) and the bag's rows (all D for the full bag, the batch's
  features otherwise); and the loss's passes over the step's [B, L] scores (`SCORE_BYTES`), which do
  not shrink with w.
* `eval_flops`: one forward pass over the validation split per evaluation.
* the rates: `calibrate()` times a matmul (in float32, and in bfloat16 for the configs whose products run
  in it) and an Adam-like update on this machine (a fraction of a second); `step_overhead` and `start`
  (tracing the step and evaluation functions, the input pipeline's warm-up) are constants measured on this project's 2-core machine (`STEP_OVERHEAD_S`,
  `START_S`), since they hardly depend on the shapes.

It is an order of magnitude for choosing the recipe's point, not a promise: it counts the planned steps, which
early stopping cuts short, and a machine shared with other processes runs slower than it was calibrated.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

# Per optimizer step besides the products and the update (the input pipeline's batch, the step's dispatch,
# the loss and top-k bookkeeping), and once per run (tracing the step and evaluation functions): measured
# on the 2-core project machine with the recipe on medical and yeast, whose products take microseconds.
STEP_OVERHEAD_S = 0.002
START_S = 1.5
# Adam reads the weight, its gradient and both moments and writes three of them back: 7 float32 a weight.
ADAM_BYTES_PER_WEIGHT = 28
# A step's [B, scored] scores pass through memory about six times as float32 (the product writes them, the
# loss reads and writes them and their gradient, the backward products read it): 24 bytes a score. At the
# same B x w this is what makes a wide batch on a narrow bag slower per step on wordnet-hypernyms
# (tools/profile_step.py: 561 ms at [1024 x 256] against 430 ms at [256 x 1024], the same flops).
SCORE_BYTES = 24


@dataclass(frozen=True)
class Rates:
    """What this machine does per second: matmul flops in float32, bytes of an elementwise update, and matmul
    flops in bfloat16 (0: as in float32), the products of `model.precision` "auto" where it is native."""

    matmul_flops: float
    memory_bytes: float
    bfloat16_flops: float = 0.0


@dataclass(frozen=True)
class Work:
    """The work a config asks for on a data set: per step, per evaluation, and how many of each."""

    steps: int
    step_flops: float
    step_bytes: float
    evaluations: int
    eval_flops: float
    bfloat16: bool = False

    def seconds(self, rates: Rates) -> float:
        flops = rates.bfloat16_flops or rates.matmul_flops if self.bfloat16 else rates.matmul_flops
        per_step = self.step_flops / flops + self.step_bytes / rates.memory_bytes + STEP_OVERHEAD_S
        return START_S + self.steps * per_step + self.evaluations * self.eval_flops / flops


def work(config: dict, profile, val_points: int, bag: str = "sparse") -> Work:
    """The work of training `config` (JSON layout, as the recipe writes it) on data shaped like `profile`.

    Args:
      config: a whole config's model, trainer sections (`trainer.epochs`, `global_batch_size`,
        `eval_every_epochs`; `model.encoder.embedding_dim` and `hidden_units`; `model.head` name and options:
        a label tree's scored nodes, MACH's `num_buckets` x `num_repetitions`, otherwise every label).
      profile: the data's shape: `num_points`, `num_features`, `num_labels`, `labels_per_point`,
        `features_per_point` (a `tfxc.recipe.DataProfile`).
      val_points: points in the validation split (0: no evaluation during training).
      bag: how the bag of features is computed (`tfxc.encoders.sparse_bow.auto_bag`): "full", a [B, D] x [D, w]
        product; "dense", a [B, U] x [U, w] product over the U <= B·f features of the batch; "sparse", the
        rows' own f features.
    """
    trainer, head, encoder = config["trainer"], config["model"]["head"], config["model"]["encoder"]
    batch, width = trainer["global_batch_size"], encoder["embedding_dim"]
    steps = trainer["epochs"] * max(1, math.ceil(profile.num_points / batch))
    labels, features = profile.num_labels, profile.num_features
    bag_rows = features if bag == "full" else min(features, batch * profile.features_per_point)
    bag_inputs = profile.features_per_point if bag == "sparse" else bag_rows
    # The encoder's hidden layers after the bag ([w, h1], [h1, h2], ...): the head reads the last width.
    widths = [width, *encoder.get("hidden_units", ())]
    hidden, out = sum(a * b for a, b in zip(widths, widths[1:])), widths[-1]
    support = head.get("sparse_support", 0)
    if "max_leaf_size" in head:  # a label tree: the nodes of the beam's levels are scored
        scored, vectors, eval_scored = tree_nodes_scored(head, profile), tree_nodes(head, labels), labels
    elif "num_buckets" in head:  # labels hashed into R repetitions of B buckets, every bucket scored (a part: R = 1)
        scored = vectors = eval_scored = head.get("num_buckets", 1) * head.get("num_repetitions", 1)
    else:
        scored = vectors = eval_scored = labels
    step_flops = 3 * 2 * batch * (bag_inputs * width + hidden + out * scored + support * scored)
    step_bytes = (ADAM_BYTES_PER_WEIGHT * ((out + support) * vectors + hidden + bag_rows * width)
                  + SCORE_BYTES * batch * scored)
    every = trainer.get("eval_every_epochs", 0)
    evaluations = trainer["epochs"] // every if every and val_points else 0
    eval_flops = 2 * val_points * (bag_inputs * width + hidden + out * eval_scored + support * labels)
    bfloat16 = config["model"].get("precision", "float32") in ("auto", "mixed_bfloat16")
    return Work(steps, float(step_flops), float(step_bytes), evaluations, float(eval_flops), bfloat16)


def tree_levels(head: dict, labels: int) -> int:
    """Levels of a label tree of `nr_splits` children per node over leaves of `max_leaf_size` labels, the
    labels' level included."""
    clusters = max(1, math.ceil(labels / head.get("max_leaf_size", 100)))
    return 1 + max(1, math.ceil(math.log(clusters, head.get("nr_splits", 16)))) if clusters > 1 else 1


def tree_nodes(head: dict, labels: int) -> int:
    """All the tree's scored vectors (its nodes and labels): about L x (1 + 1/16 + 1/256 + ...)."""
    splits = head.get("nr_splits", 16)
    return int(labels * splits / (splits - 1))


def tree_nodes_scored(head: dict, profile) -> float:
    """Vectors a training row scores: at each level its positives' nodes and their siblings (the
    "tfn" negatives), at most all of the level's nodes."""
    return tree_levels(head, profile.num_labels) * min(profile.num_labels, profile.labels_per_point
                                                       * head.get("nr_splits", 16))


def calibrate(batch: int = 256, width: int = 512, columns: int = 4096, weights: int = 1_000_000) -> Rates:
    """This machine's rates: a [batch, width] x [width, columns] matmul in float32 (and in bfloat16 where
    `model.precision` "auto" multiplies in it here) and an Adam-like update of `weights` float32, each
    timed at its best of three after a warm-up (a fraction of a second in all)."""
    from tfxc._tf import tf
    from tfxc.precision import resolve as resolve_precision

    a, b = tf.fill([batch, width], 0.5), tf.fill([width, columns], 0.25)
    g = tf.fill([weights], 0.1)
    w, m, v = (tf.Variable(tf.fill([weights], 0.1)) for _ in range(3))

    @tf.function
    def update():  # in place and traced, as the optimizer's step runs it
        m.assign(0.9 * m + 0.1 * g)
        v.assign(0.999 * v + 0.001 * g * g)
        return w.assign_sub(0.001 * m / (tf.sqrt(v) + 1e-7))

    flops = 2.0 * batch * width * columns
    float32 = flops / _best_time(lambda: tf.matmul(a, b))
    bfloat16 = float32
    if resolve_precision("auto") == "mixed_bfloat16":
        a16, b16 = tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16)
        bfloat16 = flops / _best_time(lambda: tf.matmul(a16, b16))
    return Rates(matmul_flops=float32, memory_bytes=ADAM_BYTES_PER_WEIGHT * weights / _best_time(update, repeats=5),
                 bfloat16_flops=bfloat16)


def _best_time(fn, repeats: int = 3) -> float:
    fn().numpy()  # traces and warms up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn().numpy()
        best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)


def format_seconds(seconds: float) -> str:
    """"~12 s", "~3 min", "~1.5 h": two significant figures at most, for a one-line estimate."""
    if seconds < 90:
        return f"~{seconds:.0f} s" if seconds >= 10 else f"~{seconds:.1f} s"
    if seconds < 90 * 60:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"
