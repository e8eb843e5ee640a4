"""The recipe's rules: what `python -m tfxc.train --train T --test S` runs without a config, read off the data.

The peers a user compares us with (PECOS, napkinXC, omikuji) train well on a new
data set with their defaults. tfxc's equivalent is the recipe: convert the data,
look at its shape (points, features, labels, labels per point, the label tail)
and write a complete config, which `tfxc.train` prints and keeps in the model
directory so that it can be edited and re-run with `--config`.

Each rule here is a small pure function `rule(profile, config, context) -> (config, reasons)`
(`tfxc.recipe.chain`); `RECIPE` is them in order, the `default` point (`tfxc.recipe.points`).
The data section comes from the file names (`tfxc.data.sources`), and a thin config
(`"recipe": true`) is put on top of the recipe by `tfxc.resolve`.

The rules come from the hand-tuned configs of docs/benchmarks-history.md and were checked on
validation splits carved from the train sets, never on test (the measurements:
docs/benchmarks-history.md, "The recipe's rules"):

* the head: a label tree (PLT form) above `TREE_MIN_LABELS` labels, where exact
  heads read every label per row (on sparse inputs with XR-Linear's sparse term per
  node, started from the idf-weighted PIFA centroids); below, the softmax head: plain
  for (nearly) one label per point, ranking with part of the label prior taken out
  (`LOGIT_ADJUSTMENT`), DEXML's decoupled softmax (each of a point's labels
  against its negatives only) for several, weighing positives by inverse
  propensity (`PROPENSITY_WEIGHT`), with a sparse term per label where the
  centroids alone nearly rank the validation split perfectly (`CENTROID_SHARE`);
* the encoder: a bag-of-features layer, wider for exact heads, with more dropout on small sets;
* the length: about `TARGET_STEPS` steps (at least `MIN_EPOCHS` epochs), with the
  learning rate on a cosine schedule (the tree: higher, without dropout);
* the model kept is the one of the epoch that scored best on a validation split
  (`data.val_percent` of train when no validation source is given), and training
  stops once `PATIENCE` evaluations in a row (or a quarter of the epochs, if more)
  have not improved on it.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from tfxc.data.sources import LONG_TEXT_FEATURES, SHORT_TEXT_TOKENS
from tfxc.recipe.chain import Context, Reason, render, run
from tfxc.recipe.profile import DataProfile, bag_of

# Each rule below keeps its reason in two lines; the measurements behind it are in
# docs/benchmarks-history.md, "The recipe's rules".

# Above this many labels the tree head (beam search over label clusters) replaces the exact heads: a beam
# reads a few thousand label vectors per point instead of all of them.
TREE_MIN_LABELS = 20_000
# The bag's width: exact heads are wider (better validation P@5 and PSP@5 at 1024 than at 512); the tree's
# per-node tables grow with the width and the label count, so it keeps 512.
EXACT_WIDTH = 1024
TREE_WIDTH = 512
# The tree's form: a probabilistic label tree (each node a binary classifier of "a label below me is relevant",
# trained on the rows of its positive parents; a label scored by the product along its path), 16-ary over leaves
# of at most 16 labels.
TREE_HEAD = {"name": "label_tree", "max_leaf_size": 16, "nr_splits": 16, "loss": "bce", "negatives": "tfn",
             "post_processor": "sigmoid", "final_post_processor": "sigmoid", "prediction": {"beam_size": 10}}
# The tree trains at a higher learning rate without dropout, on a cosine schedule like the exact heads:
# better kept-epoch P@1, P@5 and PSP@5 on the validation splits of synthetic 10^5 and wordnet-nextword.
TREE_LEARNING_RATE = 0.01
# On sparse inputs (`DataProfile.sparse_input`) each tree node
# also weighs the top TREE_SPARSE_SUPPORT features of its centroid, started strong: a strong start survives.
TREE_SPARSE_SUPPORT = 32
TREE_SPARSE_INIT = 32.0
# The centroids weigh each feature by its idf (Rocchio's tf-idf prototypes): a label's frequent shared
# features would otherwise outweigh its own.
SPARSE_IDF = True
# The tree's prediction also ranks the TREE_SHORTLIST labels of nearest centroid beside the beam's, where the
# centroids reach TREE_SHORTLIST_SHARE of the attainable P@k: the beam misses tail labels under busy branches.
TREE_SHORTLIST = 10
TREE_SHORTLIST_WEIGHT = 0.3
TREE_SHORTLIST_SHARE = 0.5
# Exact heads get a sparse term per label only where nearest centroid alone reaches CENTROID_SHARE of the
# attainable validation P@k: elsewhere a strong start that ranks worse than training would is a handicap.
EXACT_SPARSE_SUPPORT = 32
EXACT_SPARSE_INIT = 32.0
CENTROID_SHARE = 0.9
# Exact models whose products per row reach this many weights run them in bfloat16 where the machine
# multiplies it natively (`model.precision` "auto"): faster steps at the same P@5; below, casts cost as much.
BFLOAT16_MIN_PRODUCT = 500_000
# Training points below which a set counts as small (more dropout, smaller batches, a lower learning rate).
SMALL_POINTS = 30_000
# Training length in optimizer steps, at least MIN_EPOCHS and at most MAX_EPOCHS passes.
TARGET_STEPS = 2_000
MIN_EPOCHS = 4
MAX_EPOCHS = 60
# Checkpoints by wall time, not per epoch (one an epoch cost 9 % of a run on wordnet-hypernyms); a killed
# run resumes from the last one, and one is always written at the end, on early stopping and on SIGTERM.
CHECKPOINT_SECONDS = 300
# Evaluations without improvement before stopping: at least PATIENCE, and a quarter of the planned epochs
# (small validation splits are noisy: medical's 33 points stalled for 3 epochs at the start of training).
PATIENCE = 3
# Multi-label sets train the decoupled softmax (DEXML), a positive of label l weighing (1/p_l)^PROPENSITY_WEIGHT:
# a point's labels no longer compete, and rare labels get a full-sized push (higher P@5 and PSP@5).
PROPENSITY_WEIGHT = 0.5
# Text sources (JSONL, CSV) whose rows carry several labels train one sigmoid per label (one-vs-all, a plain
# per-label cross-entropy): their users read label sets off a threshold (σ > 0.5), which the softmax's scores,
# summing to 1 over the labels, pass for at most one label a row. XMC sets keep the softmax their P@k was tuned on.
LABEL_SET_HEAD = {"name": "one_vs_all", "loss": "bce"}
# The softmax of (nearly) one label per point learns p(l|x) ∝ p(x|l)·π_l, which puts head labels above rare ones:
# it ranks by z_l − LOGIT_ADJUSTMENT·log π_l (Menon et al., 2021), higher validation PSP@5 at the same P@1.
LOGIT_ADJUSTMENT = 0.25


def is_tree(config: dict) -> bool:
    """Whether the config so far trains the recipe's label tree (its rules differ from the exact heads')."""
    return config["model"]["head"].get("name") == TREE_HEAD["name"]


# === The rules, in the order `RECIPE` runs them ===
def sections(profile: DataProfile, config: dict, context: Context):
    """The config's sections in the order a config is read (the data section as given), and the data's shape."""
    laid_out = {"data": copy.deepcopy(context.data), "model": {"encoder": {}, "head": {}, "precision": "float32"},
                "optimizer": {}, "trainer": {}, "eval": {"ks": [1, 3, 5]}}
    return laid_out, (Reason("data", profile.describe()),)


def text_features(profile: DataProfile, config: dict, context: Context):
    """Text sources: which TF-IDF terms the featurizer keeps (the data section's, else the schema's defaults)."""
    if context.data.get("format") != "jsonl":
        return config, ()
    # LONG_TEXT_FEATURES are also the schema's defaults (TextFeaturesConfig), for a data section without `text`.
    text = {**LONG_TEXT_FEATURES, **context.data.get("text", {})}
    terms = ["words", "words and word bigrams", "words, word bigrams and trigrams"][text["ngram_max"] - 1]
    cap = f", at most {text['max_features']:,} (the most frequent)" if text["max_features"] else ""
    return config, (Reason("text", f"TF-IDF of {terms} in at least {text['min_df']} training text(s){cap}: "
                                   f"{profile.num_features:,} features (bigrams and rare words for texts of at most "
                                   f"{SHORT_TEXT_TOKENS} words on average; a Chinese, Japanese or Thai character is "
                                   "a word, and such texts get character bigrams)"),)


def head(profile: DataProfile, config: dict, context: Context):
    """The head by the label space: a tree above `TREE_MIN_LABELS`, else a score per label (`label_sets`) or a
    softmax, plain for one label per point and decoupled for several."""
    config = copy.deepcopy(config)
    if profile.num_labels > TREE_MIN_LABELS:
        chosen = copy.deepcopy(TREE_HEAD)
        why = (f"a label tree (PLT form), since {profile.num_labels:,} labels > {TREE_MIN_LABELS:,}: a beam search "
               "reads a few thousand label vectors per point instead of all of them")
    elif context.label_sets and profile.several_labels_a_row:
        chosen = dict(LABEL_SET_HEAD)
        why = (f"one-vs-all sigmoids, since points have {profile.labels_per_point:.2f} labels on average and text "
               "labels are read as sets: each label scored on its own (σ > 0.5 means \"this label applies\"), so a "
               "row can get several, which a softmax's scores (summing to 1) cannot pass at a threshold of 0.5")
    elif profile.one_label_per_point:
        chosen = {"name": "softmax", "label_smoothing": 0.1, "logit_adjustment": LOGIT_ADJUSTMENT}
        why = f"softmax, since points have {profile.labels_per_point:.2f} labels on average (< 1.5)"
    else:
        chosen = {"name": "softmax", "multi_label_loss": "decoupled", "propensity_weight": PROPENSITY_WEIGHT}
        why = (f"softmax, each of a point's {profile.labels_per_point:.1f} labels against its negatives only "
               "(decoupled): a point's labels do not compete, so a label on every point stays first and rare "
               "labels get a full-sized push")
    config["model"]["head"] = chosen
    return config, (Reason("head", why),)


def tree_nodes(profile: DataProfile, config: dict, context: Context):
    """On sparse inputs each tree node also weighs the top features of its centroid, started from it."""
    if not (is_tree(config) and profile.sparse_input):
        return config, ()
    config, term = _with_sparse_term(config, TREE_SPARSE_SUPPORT, TREE_SPARSE_INIT)
    return config, (Reason("tree nodes", f"{term}: a label seen once scores points like its own from the first step"),)


def tree_shortlist(profile: DataProfile, config: dict, context: Context):
    """The tree's prediction also ranks the nearest centroids' labels where those rank well enough (see
    TREE_SHORTLIST_SHARE)."""
    if not (is_tree(config) and profile.sparse_input):
        return config, ()
    if context.centroids is None:
        return config, (Reason("prediction", "the beam search alone (no validation split to measure the nearest "
                                             "centroids on)"),)
    nearest, best = (100 * p for p in context.centroids)
    reach = (f"the nearest-centroid score alone reaches validation P@{profile.select_k} {nearest:.2f} of the "
             f"{best:.2f} any ranking could")
    if nearest < TREE_SHORTLIST_SHARE * best:
        return config, (Reason("prediction", f"the beam search alone, since {reach} (< {TREE_SHORTLIST_SHARE:.0%})"),)
    config = copy.deepcopy(config)
    head = config["model"]["head"]
    head.update(shortlist_size=TREE_SHORTLIST,
                prediction={**head.get("prediction", {}), "shortlist_weight": TREE_SHORTLIST_WEIGHT})
    return config, (Reason("prediction", f"the beam's labels and the {TREE_SHORTLIST} nearest centroids' over all "
                                         f"labels, ranked by path score + {TREE_SHORTLIST_WEIGHT:g} x the centroid "
                                         f"score, since {reach} (>= {TREE_SHORTLIST_SHARE:.0%}): labels the beam "
                                         "does not reach are found"),)


def label_term(profile: DataProfile, config: dict, context: Context):
    """Exact heads on sparse inputs: a sparse term per label where the centroids alone nearly rank the
    validation split perfectly (`CENTROID_SHARE`); not measured, no term."""
    if is_tree(config) or not profile.sparse_input or context.centroids is None:
        return config, ()
    nearest, best = (100 * p for p in context.centroids)
    reach = (f"validation P@{profile.select_k} {nearest:.2f} of the {best:.2f} any ranking could")
    if nearest < CENTROID_SHARE * best:
        return config, (Reason("labels", f"no sparse term, since the nearest-centroid score it would start as "
                                         f"reaches {reach} (< {CENTROID_SHARE:.0%})"),)
    config, term = _with_sparse_term(config, EXACT_SPARSE_SUPPORT, EXACT_SPARSE_INIT)
    return config, (Reason("labels", f"{term}, since that nearest-centroid score alone reaches {reach} "
                                     f"(>= {CENTROID_SHARE:.0%})"),)


def _with_sparse_term(config: dict, support: int, init: float) -> tuple[dict, str]:
    """A copy of `config` whose head (a tree's nodes or an exact head's labels) also weighs `support` input
    features each, started from the idf-weighted PIFA centroid x `init` (`tfxc.heads.sparse_term`), and the
    reason's words for it."""
    config = copy.deepcopy(config)
    config["model"]["head"].update(sparse_support=support, sparse_init=init, sparse_idf=SPARSE_IDF)
    return config, (f"each also weighs {support} input features, the top of its idf-weighted PIFA centroid, "
                    f"starting from the centroid there (x {init:g})")


def thresholds(profile: DataProfile, config: dict, context: Context):
    """What a threshold means for a softmax over rows with several labels (no config change)."""
    if not (config["model"]["head"]["name"] == "softmax" and profile.several_labels_a_row):
        return config, ()
    return config, (Reason("thresholds", "the softmax's scores of a row sum to 1, so a threshold t keeps at most 1/t "
                                         "labels (at 0.5 one): ranked lists (P@k) are its use; for label sets train "
                                         "one-vs-all sigmoids (model.head {\"name\": \"one_vs_all\"} in a "
                                         "config)"),)


def loss(profile: DataProfile, config: dict, context: Context):
    """Why positives are weighed by inverse propensity, where the head does."""
    if "propensity_weight" not in config["model"]["head"]:
        return config, ()
    return config, (Reason("loss", f"a positive of label l weighs (1/p_l)^{PROPENSITY_WEIGHT}, p_l its propensity, "
                                   "which leans toward the rare labels"),)


def logit_adjustment(profile: DataProfile, config: dict, context: Context):
    """Why the softmax ranks with part of the label prior taken out, where the head does."""
    if "logit_adjustment" not in config["model"]["head"]:
        return config, ()
    return config, (Reason("prediction", f"labels ranked by z_l - {LOGIT_ADJUSTMENT:g} log pi_l, pi_l the label's "
                                         "share of the training labels (logit adjustment): the softmax learns the "
                                         "label prior, which puts head labels above rare ones"),)


def encoder(profile: DataProfile, config: dict, context: Context):
    """A bag of features, wider for exact heads, with more dropout on small sets (none for the tree)."""
    config, tree, small = copy.deepcopy(config), is_tree(config), profile.num_points < SMALL_POINTS
    width, dropout = (TREE_WIDTH if tree else EXACT_WIDTH), (0.0 if tree else 0.5 if small else 0.2)
    config["model"]["encoder"] = {"name": "sparse_bow", "embedding_dim": width, "dropout": dropout}
    because = ("the tree" if tree else
               f"exact heads; {profile.num_points:,} points {'<' if small else '>='} {SMALL_POINTS:,}")
    return config, (Reason("encoder", f"a {width}-wide bag of features with dropout {dropout} ({because})"),)


def precision(profile: DataProfile, config: dict, context: Context):
    """Exact heads whose products per row are large run them in bfloat16 where the machine multiplies it
    natively (`BFLOAT16_MIN_PRODUCT`)."""
    width = config["model"]["encoder"]["embedding_dim"]
    full_bag = profile.num_features * width if bag_of(profile) == "full" else 0
    if is_tree(config) or width * profile.num_labels + full_bag < BFLOAT16_MIN_PRODUCT:
        return config, ()
    from tfxc.precision import resolve as resolve_precision  # imports TensorFlow: only when it is needed

    config = copy.deepcopy(config)
    config["model"]["precision"] = "auto"
    products = f"[{width} x {profile.num_labels:,}]" + (f" and [{profile.num_features:,} x {width}]"
                                                          if full_bag else "")
    return config, (Reason("precision", f"the products in bfloat16 where this machine multiplies it natively (auto: "
                                        f"{resolve_precision('auto')} here), since its {products} products are most "
                                        "of a step"),)


def length(profile: DataProfile, config: dict, context: Context):
    """About `TARGET_STEPS` steps on a cosine schedule, the epoch chosen on validation with early stopping."""
    config, tree, small = copy.deepcopy(config), is_tree(config), profile.num_points < SMALL_POINTS
    if small:  # at least ~16 steps an epoch, so that tiny sets (medical: 300 points) still train enough steps
        batch = int(min(128, max(16, 2 ** math.floor(math.log2(max(profile.num_points, 1) / 16)))))
    else:
        batch = 256 if profile.num_points < 300_000 else 512
    steps_per_epoch = max(1, math.ceil(profile.num_points / batch))
    epochs = int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch))))
    steps = epochs * steps_per_epoch
    learning_rate = TREE_LEARNING_RATE if tree else 0.001 if small else 0.004
    schedule = "cosine"
    metric = f"P@{profile.select_k}"
    patience = max(PATIENCE, math.ceil(epochs / 4))
    config["optimizer"] = {"name": "adam", "learning_rate": learning_rate, "schedule": schedule,
                           "warmup_steps": max(1, steps // 50)}
    config["trainer"] = {"global_batch_size": batch, "epochs": epochs, "steps_per_loop": min(100, steps_per_epoch),
                         "log_every_steps": max(1, min(500, steps // 20)), "eval_every_epochs": 1,
                         "checkpoint_every_steps": 0, "checkpoint_every_seconds": CHECKPOINT_SECONDS,
                         "select_metric": metric, "patience": patience}
    return config, (Reason("training", f"batch {batch}, {epochs} epochs of {steps_per_epoch} steps (about "
                                       f"{TARGET_STEPS:,} steps, at least {MIN_EPOCHS} epochs), Adam at "
                                       f"{learning_rate} on a {schedule} schedule"),
                    Reason("selection", f"the epoch with the best validation {metric}; stop after {patience} "
                                        "evaluations without improvement"))


def no_validation(profile: DataProfile, config: dict, context: Context):
    """Without a validation split (`"val_percent": 0`: trained on all of train) nothing selects the epoch."""
    if context.validation:
        return config, ()
    config = copy.deepcopy(config)
    for key in ("select_metric", "patience", "eval_every_epochs"):
        config["trainer"].pop(key, None)
    return config, (Reason("selection", "none, the last step's weights (the data has no validation split)"),)


def serving(profile: DataProfile, config: dict, context: Context):
    """Text sources: what the SavedModel takes (no config change)."""
    if context.data.get("format") != "jsonl":
        return config, ()
    return config, (Reason("serving", "the SavedModel takes raw strings (the TF-IDF featurizer fit on train is put in "
                                      "front of the model as graph ops at export: export.inputs)"),)


# The recipe itself, the `default` point: its rules in order.
RECIPE = (sections, text_features, head, tree_nodes, tree_shortlist, label_term, thresholds, loss, logit_adjustment,
          encoder, precision, length, no_validation, serving)
# The topics of the model the recipe's rules choose (what a point with another model withdraws).
MODEL_TOPICS = ("head", "tree nodes", "prediction", "labels", "thresholds", "loss", "encoder", "precision",
                "training", "selection")


# === What the rules read, measured on the converted data ===
def measure_centroids(profile: DataProfile, info) -> tuple[float, float] | None:
    """The validation P@k of the nearest-centroid classifier of the idf-weighted centroids (the start of the
    sparse term; the tree's shortlist) and the highest P@k there, where a rule reads it (sparse inputs, a
    validation split)."""
    from tfxc.heads.centroid_precision import centroid_precision

    if not (profile.sparse_input and "val" in info.splits):
        return None
    support = TREE_SPARSE_SUPPORT if profile.num_labels > TREE_MIN_LABELS else EXACT_SPARSE_SUPPORT
    return centroid_precision(info, support, profile.select_k, idf=SPARSE_IDF)


def context_of(data: dict, info, profile: DataProfile, seed: int = 0) -> Context:
    """What the rules read of data section `data` and its converted data `info` (measured here, once)."""
    return Context(data=data, centroids=measure_centroids(profile, info), label_sets=data.get("format") == "jsonl",
                   validation="val" in info.splits, val_points=int(info.splits.get("val", {}).get("num_points", 0)),
                   labels_present=int(np.count_nonzero(info.label_freq)), seed=seed)


def choose(profile: DataProfile, centroids: tuple[float, float] | None = None, *,
           label_sets: bool = False) -> tuple[dict, list[str]]:
    """The recipe's model, optimizer, trainer and eval sections for a data set of shape `profile`, and why
    (one line per choice, the data line left out): `RECIPE` without a data section.

    `centroids`: as `Context.centroids`; `label_sets`: as `Context.label_sets`.
    """
    config, reasons = run(RECIPE, profile, Context(centroids=centroids, label_sets=label_sets))
    del config["data"]
    return config, render(reason for reason in reasons if reason.topic != "data")
