"""The recipe's points along the speed–accuracy frontier: `--recipe fast|default|best|xrt` (issue 41).

Each point is a chain of rules (`tfxc.recipe.chain`), run in order on the data's profile:

* `default`: the recipe as `tfxc.recipe.rules` chooses it (`RECIPE`; the measurements behind it:
  docs/benchmarks-history.md, "The recipe's rules"). Later additions that keep its accuracy (an
  active-set objective, a serving index) go into its chain.
* `fast`: the recipe followed by `FAST`, the rules that make it the cheapest model that still meets the
  peers: the recipe's head (and its sparse term, where the recipe adds one) on a narrower bag of features,
  larger batches at a higher learning rate, fewer steps and fewer evaluations. The rules were chosen on
  validation splits carved from train, measuring the training loop's wall time and validation P@5 and
  PSP@5 (docs/benchmarks-history.md, "The recipe's points").
* `xrt`: XR-Transformer on text data, its schedule read off the data's shape (`tfxc.recipe.xrt`).
* `best`: an ensemble of `BEST_MEMBERS` members of the `default` config that differ in their seed (the
  initialisation, the dropout masks and the order of the rows), their top-k lists combined by the method
  with the best validation score (`tfxc.runs.members` trains them; `tfxc.eval.ensemble` combines). Member 0 is
  the `default` model itself.

A point is named by `"recipe"` in a thin config (`tfxc.config.schema.RECIPE_POINTS`; `true` is `default`),
`tfxc.train --recipe` or `tfxc.fit(..., recipe=...)`; before training, the recipe's printout gives every
point's estimated training time on the data (`tfxc.training.time_plan`).
"""

from __future__ import annotations

import copy
import math

from tfxc.config.schema import RECIPE_POINTS
from tfxc.recipe.chain import Context, Reason, merged, render, run
from tfxc.recipe.profile import DataProfile, bag_of
from tfxc.recipe.rules import BFLOAT16_MIN_PRODUCT, RECIPE, context_of, is_tree
from tfxc.training.time_plan import Rates, calibrate, format_seconds, work

FAST, DEFAULT, BEST, XRT = "fast", "default", "best", "xrt"

# Each fast rule keeps its reason in a line or two; the measurements are in docs/benchmarks-history.md,
# "The recipe's points".
# The bag's width: the head's [w, L] product and its Adam update are most of a step, linear in w.
FAST_WIDTH = 256
# About this many optimizer steps, at least FAST_MIN_EPOCHS and at most FAST_MAX_EPOCHS passes: on
# wordnet-hypernyms' validation split 6 epochs (342 steps) kept 0.5 less P@5 and 1.4 less PSP@5 than 9 (513).
FAST_TARGET_STEPS = 500
FAST_MIN_EPOCHS = 2
# The label tree starts from its nodes' centroids (the sparse term) and nears its plateau within two passes:
# on synthetic 10^5's validation split, P@5 45.95 after one epoch, 46.67 after two, 46.91 after four
# (BENCHMARKS.md, "The label tree's step"); `fast` stops it after FAST_TREE_EPOCHS.
FAST_TREE_EPOCHS = 2
FAST_MAX_EPOCHS = 30
# Larger batches than the recipe's (fewer, fuller steps: the per-step overhead is a fixed cost), with the
# learning rate scaled by the same factor (Goyal et al., 2017, "Accurate, Large Minibatch SGD"), up to
# FAST_MAX_LEARNING_RATE: on bibtex's validation split 4 x the recipe's rate kept P@5 and PSP@5, 10 x lost both.
FAST_BATCH_SCALE = 4
FAST_MAX_BATCH = 1024
FAST_MAX_LEARNING_RATE = 0.01
# Validation evaluations in a run (the epoch is still chosen on them, and training stops when they stall).
FAST_EVALUATIONS = 6
# Three members, as omikuji's Bonsai and Parabel forests of three trees and XR-Transformer's published
# ensembles of three; not tuned (docs/benchmarks-history.md, "The best point").
BEST_MEMBERS = 3
# The combinations tried on the validation split, in the order that breaks ties (`tfxc.eval.ensemble`).
BEST_METHODS = ("average", "softmax_average", "log_average", "rank_average")
# What each point is, in a few words, for `tfxc.train --help` (`described`: one per entry of RECIPE_POINTS).
SUMMARIES = {FAST: "the cheapest model that still meets the peers", DEFAULT: "the recipe as it chooses",
             BEST: f"an ensemble of {BEST_MEMBERS} default models that differ in their seed, several times "
                   "default's training",
             XRT: "XR-Transformer, a fine-tuned text encoder and an XR-Linear ranker, for text data; hours on a CPU"}


def described() -> str:
    """Every point of `RECIPE_POINTS` with its summary: "fast (...), default (...) or best (...)"."""
    parts = [f"{name} ({SUMMARIES[name]})" for name in RECIPE_POINTS]
    return ", ".join(parts[:-1]) + " or " + parts[-1]


# === The fast rules: the recipe made cheaper ===
def fast_width(profile: DataProfile, config: dict, context: Context):
    """A narrower bag: the head's products are linear in the width."""
    config = copy.deepcopy(config)
    encoder = config["model"]["encoder"]
    encoder["embedding_dim"] = FAST_WIDTH
    return config, (Reason("encoder", f"a {FAST_WIDTH}-wide bag of features with dropout {encoder['dropout']} (fast: "
                                      "the head's products are linear in the width)"),)


def fast_precision(profile: DataProfile, config: dict, context: Context):
    """The recipe's bfloat16 rule again at the narrower width (exact heads)."""
    if is_tree(config):
        return config, ()
    config = copy.deepcopy(config)
    full_bag = bag_of(profile) == "full"
    product = FAST_WIDTH * profile.num_labels + (profile.num_features * FAST_WIDTH if full_bag else 0)
    config["model"]["precision"] = "auto" if product >= BFLOAT16_MIN_PRODUCT else "float32"
    return config, (Reason("precision", None if config["model"]["precision"] == "float32" else
                           f"the products in bfloat16 where this machine multiplies it natively (auto), since its "
                           f"[{FAST_WIDTH} x {profile.num_labels:,}] products are most of a step"),)


def fast_length(profile: DataProfile, config: dict, context: Context):
    """Larger batches at a proportionally higher learning rate, about `FAST_TARGET_STEPS` steps (the tree:
    `FAST_TREE_EPOCHS` epochs)."""
    config, tree = copy.deepcopy(config), is_tree(config)
    trainer, optimizer = config["trainer"], config["optimizer"]
    batch = int(min(FAST_MAX_BATCH, trainer["global_batch_size"] * FAST_BATCH_SCALE,
                    2 ** max(4, math.floor(math.log2(max(profile.num_points, 1) / 4)))))
    scale = batch / trainer["global_batch_size"]
    steps_per_epoch = max(1, math.ceil(profile.num_points / batch))
    epochs = int(min(FAST_MAX_EPOCHS, max(FAST_MIN_EPOCHS, math.ceil(FAST_TARGET_STEPS / steps_per_epoch))))
    if tree:
        epochs = FAST_TREE_EPOCHS
    steps = epochs * steps_per_epoch
    learning_rate = round(min(FAST_MAX_LEARNING_RATE, optimizer["learning_rate"] * scale), 6)
    optimizer.update(learning_rate=learning_rate, warmup_steps=max(1, steps // 50))
    trainer.update(global_batch_size=batch, epochs=epochs, steps_per_loop=min(100, steps_per_epoch),
                   log_every_steps=max(1, min(500, steps // 10)))
    because = (f"the tree nears its plateau within {FAST_TREE_EPOCHS} epochs" if tree else
               f"about {FAST_TARGET_STEPS} steps, at least {FAST_MIN_EPOCHS} epochs")
    return config, (Reason("training", f"batch {batch}, {epochs} epochs of {steps_per_epoch} steps (fast: {because}), "
                                       f"Adam at {learning_rate} on a {optimizer['schedule']} schedule"),)


def fast_selection(profile: DataProfile, config: dict, context: Context):
    """About `FAST_EVALUATIONS` evaluations in a run, where an epoch is selected at all."""
    if "eval_every_epochs" not in config["trainer"]:
        return config, ()
    config = copy.deepcopy(config)
    trainer = config["trainer"]
    every = max(1, math.ceil(trainer["epochs"] / FAST_EVALUATIONS))
    patience = max(2, math.ceil(trainer["epochs"] / every / 3))
    trainer.update(eval_every_epochs=every, patience=patience)
    return config, (Reason("selection", f"the evaluation (every {every} epoch(s)) with the best validation "
                                        f"{trainer['select_metric']}; stop after {patience} evaluations without "
                                        "improvement"),)


FAST_RULES = (fast_width, fast_precision, fast_length, fast_selection)


# === The points ===
def named(point: str):
    """The rule that opens point `point`'s chain: which point, of which."""
    def name(profile: DataProfile, config: dict, context: Context):
        return config, (Reason("recipe", f"{point} (of {', '.join(RECIPE_POINTS)})"),)

    return name


def best_members_line(profile: DataProfile, config: dict, context: Context):
    """The `best` point: the default config, trained as members from the run's seed on (no config change)."""
    return config, (Reason("best", f"an ensemble of {BEST_MEMBERS} members of this config with seeds "
                                   f"{context.seed}..{context.seed + BEST_MEMBERS - 1}, their top-k lists combined by "
                                   f"whichever of {', '.join(BEST_METHODS)} scores best on the validation split "
                                   "(tfxc.runs.members)"),)


def xrt_model(profile: DataProfile, config: dict, context: Context):
    from tfxc.recipe.xrt import xrt_model as rule  # keras-hub and the tree: only when the point is chosen

    return rule(profile, config, context)


POINTS = {FAST: (named(FAST), *RECIPE, *FAST_RULES), DEFAULT: (named(DEFAULT), *RECIPE),
          BEST: (named(BEST), *RECIPE, best_members_line), XRT: (named(XRT), *RECIPE, xrt_model)}
assert tuple(POINTS) == RECIPE_POINTS


def recipe_config(data: dict, info, point: str = DEFAULT, rates: Rates | None = None,
                  seed: int = 0) -> tuple[dict, list[str]]:
    """The whole config (JSON layout) of the recipe's point `point` ("" is `DEFAULT`) for converted data `info`
    from sources `data`, and the reasons as printed; the last gives every point's estimated training time, at
    `rates` (None: this machine's, `tfxc.training.time_plan.calibrate`). `seed`: the run's (the best point's
    members)."""
    point = point or DEFAULT
    profile = DataProfile.from_info(info)
    context = context_of(data, info, profile, seed)
    chosen = {name: run(POINTS[name], profile, context) for name in dict.fromkeys((FAST, DEFAULT, point))}
    config, reasons = chosen[point]
    timed = {name: chosen[name][0] for name in (FAST, DEFAULT)}
    reasons = merged(reasons, [estimate(timed, profile, context.val_points, rates, xrt=point == XRT)])
    return config, render(reasons)


def best_members(seed: int) -> list[tuple[str, ...]]:
    """The `best` point's members, as the `--set` overrides that make each from the `default` config whose
    seed is `seed`: that seed and the next ones."""
    return [(f"runtime.seed={seed + m}",) for m in range(BEST_MEMBERS)]


def estimate(configs: dict[str, dict], profile: DataProfile, val_points: int, rates: Rates | None = None,
             xrt: bool = False) -> Reason:
    """"time (...): fast ~12 s, default ~3 min": the time of each point timed from its work on this data and
    this machine's measured rates (`tfxc.training.time_plan`); `best` is its members' default runs."""
    rates = rates or calibrate()
    bag = bag_of(profile)
    seconds = {name: work(config, profile, val_points, bag).seconds(rates) for name, config in configs.items()}
    seconds[BEST] = BEST_MEMBERS * seconds[DEFAULT]  # its members, one after another
    parts = [f"{name} {format_seconds(seconds[name])}" for name in RECIPE_POINTS if name in seconds]
    return Reason("estimate", ", ".join(parts) + ("; xrt: see its time line above" if xrt else ""),
                  heading=f"time (estimated from each config's products on this data and this machine's measured "
                          f"{rates.matmul_flops / 1e9:.0f} GFLOP/s)")
