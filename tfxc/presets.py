"""The recipe's presets, points along the speed–accuracy frontier: `--preset fast|default|best` (issue 41).

* `default`: the recipe as `tfxc.recipe` chooses it, unchanged (the measurements behind it:
  docs/benchmarks-history.md, "The recipe's rules"). Later additions that keep its accuracy (an
  active-set objective, a serving index) go into `default_rules`.
* `fast`: the cheapest model that still meets the peers, by rules on the data's shape (`fast_rules`):
  the recipe's head (and its sparse term, where the recipe adds one) on a narrower bag of features,
  larger batches at a higher learning rate, fewer steps and fewer evaluations. The rules were chosen on
  validation splits carved from train, measuring the training loop's wall time and validation P@5 and
  PSP@5 (docs/benchmarks-history.md, "Presets").

* `xrt`: XR-Transformer on text data, its schedule read off the data's shape (`tfxc.xr.preset`).
* `best`: an ensemble of `BEST_MEMBERS` members of the `default` config that differ in their seed (the
  initialisation, the dropout masks and the order of the rows), their top-k lists combined by the method
  with the best validation score (`tfxc.runs.members` trains them; `tfxc.eval.ensemble` combines). Member 0 is
  the `default` model itself.

A preset is named by `"preset"` in a thin config (`tfxc.config.schema.PRESETS`), `tfxc.train --preset`
or `tfxc.fit(..., preset=...)`; before training, the recipe's printout gives every preset's estimated
training time on the data (`tfxc.training.time_plan`).
"""

from __future__ import annotations

import copy
import math

import numpy as np

from tfxc import recipe
from tfxc.config.schema import PRESETS
from tfxc.recipe import BFLOAT16_MIN_PRODUCT, DataProfile
from tfxc.training.time_plan import Rates, calibrate, format_seconds, work

DEFAULT = "default"

# Each fast rule keeps its reason in a line or two; the measurements are in docs/benchmarks-history.md,
# "Presets".
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
BEST = "best"
XRT = "xrt"
# Three members, as omikuji's Bonsai and Parabel forests of three trees and XR-Transformer's published
# ensembles of three; not tuned (docs/benchmarks-history.md, "The best preset").
BEST_MEMBERS = 3
# The combinations tried on the validation split, in the order that breaks ties (`tfxc.eval.ensemble`).
BEST_METHODS = ("average", "softmax_average", "log_average", "rank_average")
# What each preset is, in a few words, for `tfxc.train --help` (`described`: one per entry of PRESETS).
SUMMARIES = {"fast": "the cheapest model that still meets the peers", DEFAULT: "the recipe as it chooses",
             BEST: f"an ensemble of {BEST_MEMBERS} default models that differ in their seed, several times "
                   "default's training",
             XRT: "XR-Transformer, a fine-tuned text encoder and an XR-Linear ranker, for text data; hours on a CPU"}


def described() -> str:
    """Every preset of `PRESETS` with its summary: "fast (...), default (...) or best (...)"."""
    parts = [f"{name} ({SUMMARIES[name]})" for name in PRESETS]
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def preset_config(data: dict, info, preset: str = DEFAULT, rates: Rates | None = None) -> tuple[dict, list[str]]:
    """The whole config (JSON layout) of preset `preset` ("" is `DEFAULT`) for converted data `info` from
    sources `data`, and the reasons; the last reason gives every preset's estimated training time, at
    `rates` (None: this machine's, `tfxc.training.time_plan.calibrate`)."""
    preset = preset or DEFAULT
    config, why = recipe.recipe_config(data, info)
    profile = DataProfile.from_info(info)
    configs = {"fast": fast_rules(profile, config, why), DEFAULT: default_rules(profile, config, why)}
    if preset == XRT:
        from tfxc.xr.preset import xrt_rules

        configs[XRT] = xrt_rules(profile, config, why, data, int(np.count_nonzero(info.label_freq)),
                                 int(info.splits.get("val", {}).get("num_points", 0)))
    chosen, reasons = configs[DEFAULT if preset == BEST else preset]
    val_points = int(info.splits.get("val", {}).get("num_points", 0))
    reasons = [f"preset: {preset} (of {', '.join(PRESETS)})"] + reasons
    if preset == BEST:
        reasons.append(best_line(chosen.get("runtime", {}).get("seed", 0)))
    reasons.append(estimate_line({name: c for name, (c, _) in configs.items()}, profile, val_points, rates)
                   + ("; xrt: see its time line above" if preset == XRT else ""))
    return chosen, reasons


def best_members(seed: int) -> list[tuple[str, ...]]:
    """The `best` preset's members, as the `--set` overrides that make each from the `default` config whose
    seed is `seed`: that seed and the next ones."""
    return [(f"runtime.seed={seed + m}",) for m in range(BEST_MEMBERS)]


def best_line(seed: int) -> str:
    """The reason line of the `best` preset whose first member's seed is `seed`."""
    return (f"best: an ensemble of {BEST_MEMBERS} members of this config with seeds {seed}..{seed + BEST_MEMBERS - 1}, "
            f"their top-k lists combined by whichever of {', '.join(BEST_METHODS)} scores best on the validation "
            "split (tfxc.runs.members)")


def default_rules(profile: DataProfile, config: dict, why: list[str]) -> tuple[dict, list[str]]:
    """The `default` preset: the recipe's config as it is."""
    return config, why


def fast_rules(profile: DataProfile, config: dict, why: list[str]) -> tuple[dict, list[str]]:
    """The `fast` preset: the recipe's config (`config`, `why`) made cheaper by the rules above."""
    fast, why = copy.deepcopy(config), list(why)
    model, trainer, optimizer = fast["model"], fast["trainer"], fast["optimizer"]
    head, encoder = model["head"], model["encoder"]
    tree = head["name"] == "label_tree"
    encoder["embedding_dim"] = FAST_WIDTH
    why = _replace(why, "encoder:", f"encoder: a {FAST_WIDTH}-wide bag of features with dropout "
                                    f"{encoder['dropout']} (fast: the head's products are linear in the width)")
    full_bag = recipe.bag_of(profile) == "full"
    if not tree:
        product = FAST_WIDTH * profile.num_labels + (profile.num_features * FAST_WIDTH if full_bag else 0)
        model["precision"] = "auto" if product >= BFLOAT16_MIN_PRODUCT else "float32"
        why = _replace(why, "precision:", None if model["precision"] == "float32" else
                       f"precision: the products in bfloat16 where this machine multiplies it natively (auto), "
                       f"since its [{FAST_WIDTH} x {profile.num_labels:,}] products are most of a step")
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
    length = (f"the tree nears its plateau within {FAST_TREE_EPOCHS} epochs" if tree else
              f"about {FAST_TARGET_STEPS} steps, at least {FAST_MIN_EPOCHS} epochs")
    why = _replace(why, "training:", f"training: batch {batch}, {epochs} epochs of {steps_per_epoch} steps (fast: "
                                     f"{length}), Adam at {learning_rate} on a {optimizer['schedule']} schedule")
    if "eval_every_epochs" in trainer:
        every = max(1, math.ceil(epochs / FAST_EVALUATIONS))
        patience = max(2, math.ceil(epochs / every / 3))
        trainer.update(eval_every_epochs=every, patience=patience)
        why = _replace(why, "selection:", f"selection: the evaluation (every {every} epoch(s)) with the best "
                                          f"validation {trainer['select_metric']}; stop after {patience} "
                                          "evaluations without improvement")
    return fast, why


def estimate_line(configs: dict[str, dict], profile: DataProfile, val_points: int,
                  rates: Rates | None = None) -> str:
    """"time (...): fast ~12 s, default ~3 min": each preset's training time from its work on this data
    and this machine's measured rates (`tfxc.training.time_plan`)."""
    rates = rates or calibrate()
    bag = recipe.bag_of(profile)
    seconds = {name: work(config, profile, val_points, bag).seconds(rates) for name, config in configs.items()
               if name != XRT}
    seconds[BEST] = BEST_MEMBERS * seconds[DEFAULT]  # its members, one after another
    parts = [f"{name} {format_seconds(seconds[name])}" for name in PRESETS if name in seconds]
    return (f"time (estimated from each config's products on this data and this machine's measured "
            f"{rates.matmul_flops / 1e9:.0f} GFLOP/s): " + ", ".join(parts))


def _replace(why: list[str], prefix: str, line: str | None) -> list[str]:
    """`why` with its line starting with `prefix` replaced by `line` (dropped for None; appended if absent)."""
    out = [line if old.startswith(prefix) else old for old in why]
    if not any(old.startswith(prefix) for old in why) and line is not None:
        out.append(line)
    return [old for old in out if old is not None]
