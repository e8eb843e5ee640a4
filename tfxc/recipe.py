"""A training recipe read off the data: what `python -m tfxc.train --train T --test S` runs without a config.

The peers a user compares us with (PECOS, napkinXC, omikuji) train well on a new
data set with their defaults. tfxc's equivalent is this recipe: convert the data,
look at its shape (points, features, labels, labels per point, the label tail)
and write a complete config, which `tfxc.train` prints and keeps in the model
directory so that it can be edited and re-run with `--config`.

This module holds the rules only (a `DataProfile` -> a config and its reasons).
The data section comes from the file names (`tfxc.data.sources`), and a thin
config (`"recipe": true`) is put on top of the recipe by `tfxc.resolve`.

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

import math
from dataclasses import dataclass

import numpy as np

from tfxc.data.sources import LONG_TEXT_FEATURES, SHORT_TEXT_TOKENS

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
# On sparse inputs (fewer non-zero features per point than SPARSE_INPUT_SHARE of the space) each tree node
# also weighs the top TREE_SPARSE_SUPPORT features of its centroid, started strong: a strong start survives.
TREE_SPARSE_SUPPORT = 32
TREE_SPARSE_INIT = 32.0
SPARSE_INPUT_SHARE = 0.5
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
# The sparse term carries feature ids as float32 (`tfxc.encoders.sparse_input.PAD_FEATURE`): exact below 2^24.
SPARSE_TERM_MAX_FEATURES = 2 ** 24
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
# Labels with at most this many training points form the tail (reported in the data line).
TAIL_POINTS = 5
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


@dataclass(frozen=True)
class DataProfile:
    """What the recipe reads from a converted data set.

    Attributes:
      num_points: training points (after a validation share is carved out).
      num_features: size of the feature space.
      num_labels: size of the label space.
      labels_per_point: average labels of a training point.
      features_per_point: average non-zero features of a training point.
      tail_share: of the labels that occur in train, the share with at most `TAIL_POINTS` points.
      points_without_labels: training points without a label.
    """

    num_points: int
    num_features: int
    num_labels: int
    labels_per_point: float
    features_per_point: float
    tail_share: float
    points_without_labels: int = 0

    @classmethod
    def from_info(cls, info) -> "DataProfile":
        train = info.splits["train"]
        present = info.label_freq[info.label_freq > 0]
        return cls(num_points=int(train["num_points"]), num_features=int(info.num_features),
                   num_labels=int(info.num_labels), labels_per_point=float(train["avg_labels_per_point"]),
                   features_per_point=float(train["avg_features_per_point"]),
                   tail_share=float(np.mean(present <= TAIL_POINTS)) if present.size else 0.0,
                   points_without_labels=int(train.get("points_without_labels", 0)))

    @property
    def several_labels_a_row(self) -> bool:
        """Whether some training point has several labels: more labels than labelled points."""
        positives = round(self.labels_per_point * self.num_points)
        return positives > self.num_points - self.points_without_labels

    @property
    def one_label_per_point(self) -> bool:
        """Multi-class, or nearly (medical, reuters: 1.2–1.3 labels per point)."""
        return self.labels_per_point < 1.5

    @property
    def select_k(self) -> int:
        """The k of the metric that picks the epoch and the choices measured on validation: P@1 for
        one label per point, else P@5."""
        return 1 if self.one_label_per_point else 5

    @property
    def sparse_input(self) -> bool:
        """Few non-zero features a point (a bag of words, TF-IDF): the sparse term's inputs, with ids it can carry."""
        return (self.features_per_point < SPARSE_INPUT_SHARE * self.num_features
                and self.num_features < SPARSE_TERM_MAX_FEATURES)

    def describe(self) -> str:
        return (f"{self.num_points:,} training points, {self.num_features:,} features, {self.num_labels:,} labels, "
                f"{self.labels_per_point:.2f} labels and {self.features_per_point:.1f} features per point, "
                f"{100 * self.tail_share:.0f}% of the labels with <= {TAIL_POINTS} points")


# === The rest of the config from the data's profile ===
def bag_of(profile: DataProfile) -> str:
    """How the recipe's bag-of-features encoder will compute its bag on this data ("auto" resolved)."""
    from tfxc.encoders.sparse_bow import auto_bag  # imports TensorFlow: only when a recipe is chosen

    return auto_bag("auto", profile)


def choose(profile: DataProfile, centroids: tuple[float, float] | None = None, *,
           label_sets: bool = False) -> tuple[dict, list[str]]:
    """The model, optimizer, trainer and eval sections for a data set, and why (one line per choice).

    `label_sets`: the labels are read as sets off a threshold (text sources: text classification), so rows
    with several labels get a score per label (`LABEL_SET_HEAD`) instead of a softmax.

    `centroids`: the validation P@k (k of the selection metric) of the nearest-centroid classifier that
    the sparse term starts as (and the tree's shortlist ranks by), and the P@k any ranking could reach
    there (`tfxc.heads.centroid_precision.centroid_precision`); None where not measured (no term).
    """
    why = []
    small = profile.num_points < SMALL_POINTS
    sparse = profile.sparse_input
    if profile.num_labels > TREE_MIN_LABELS:
        head = dict(TREE_HEAD)
        why.append(f"head: a label tree (PLT form), since {profile.num_labels:,} labels > {TREE_MIN_LABELS:,}: "
                   "a beam search reads a few thousand label vectors per point instead of all of them")
        if sparse:
            head.update(sparse_support=TREE_SPARSE_SUPPORT, sparse_init=TREE_SPARSE_INIT, sparse_idf=SPARSE_IDF)
            why.append(f"tree nodes: each also weighs {TREE_SPARSE_SUPPORT} input features, the top of its "
                       f"idf-weighted PIFA centroid, starting from the centroid there (x {TREE_SPARSE_INIT:g}): a "
                       "label seen once scores points like its own from the first step")
            why.append(shortlist_choice(head, profile, centroids))
    else:
        if label_sets and profile.several_labels_a_row:
            head = dict(LABEL_SET_HEAD)
            why.append(f"head: one-vs-all sigmoids, since points have {profile.labels_per_point:.2f} labels on "
                       "average and text labels are read as sets: each label scored on its own (σ > 0.5 means "
                       "\"this label applies\"), so a row can get several, which a softmax's scores (summing to "
                       "1) cannot pass at a threshold of 0.5")
        elif profile.one_label_per_point:
            head = {"name": "softmax", "label_smoothing": 0.1, "logit_adjustment": LOGIT_ADJUSTMENT}
            why.append(f"head: softmax, since points have {profile.labels_per_point:.2f} labels on average (< 1.5)")
        else:
            head = {"name": "softmax", "multi_label_loss": "decoupled", "propensity_weight": PROPENSITY_WEIGHT}
            why.append(f"head: softmax, each of a point's {profile.labels_per_point:.1f} labels against its "
                       "negatives only (decoupled): a point's labels do not compete, so a label on every point "
                       "stays first and rare labels get a full-sized push")
        if sparse and centroids is not None:
            k = profile.select_k
            nearest, best = (100 * p for p in centroids)
            if nearest >= CENTROID_SHARE * best:
                head.update(sparse_support=EXACT_SPARSE_SUPPORT, sparse_init=EXACT_SPARSE_INIT, sparse_idf=SPARSE_IDF)
                why.append(f"labels: each also weighs {EXACT_SPARSE_SUPPORT} input features, the top of its "
                           f"idf-weighted PIFA centroid, starting from the centroid there (x {EXACT_SPARSE_INIT:g}), "
                           f"since that nearest-centroid score alone reaches validation P@{k} {nearest:.2f} of the "
                           f"{best:.2f} any ranking could (>= {CENTROID_SHARE:.0%})")
            else:
                why.append(f"labels: no sparse term, since the nearest-centroid score it would start as reaches "
                           f"validation P@{k} {nearest:.2f} of the {best:.2f} any ranking could "
                           f"(< {CENTROID_SHARE:.0%})")
    if head["name"] == "softmax" and profile.several_labels_a_row:
        why.append("thresholds: the softmax's scores of a row sum to 1, so a threshold t keeps at most 1/t labels "
                   "(at 0.5 one): ranked lists (P@k) are its use; for label sets train one-vs-all sigmoids "
                   "(model.head {\"name\": \"one_vs_all\"} in a config)")
    if "propensity_weight" in head:
        why.append(f"loss: a positive of label l weighs (1/p_l)^{PROPENSITY_WEIGHT}, p_l its propensity, which "
                   "leans toward the rare labels")
    if "logit_adjustment" in head:
        why.append(f"prediction: labels ranked by z_l - {LOGIT_ADJUSTMENT:g} log pi_l, pi_l the label's share of the "
                   "training labels (logit adjustment): the softmax learns the label prior, which puts head labels "
                   "above rare ones")
    tree = head["name"] == "label_tree"
    width, dropout = (TREE_WIDTH if tree else EXACT_WIDTH), (0.0 if tree else 0.5 if small else 0.2)
    encoder = {"name": "sparse_bow", "embedding_dim": width, "dropout": dropout}
    reason = ("the tree" if tree else
              f"exact heads; {profile.num_points:,} points {'<' if small else '>='} {SMALL_POINTS:,}")
    why.append(f"encoder: a {width}-wide bag of features with dropout {dropout} ({reason})")
    precision = "float32"
    full_bag = profile.num_features * width if bag_of(profile) == "full" else 0
    if not tree and width * profile.num_labels + full_bag >= BFLOAT16_MIN_PRODUCT:
        from tfxc.precision import resolve as resolve_precision  # imports TensorFlow: only when it is needed

        precision = "auto"
        products = f"[{width} x {profile.num_labels:,}]" + (f" and [{profile.num_features:,} x {width}]"
                                                              if full_bag else "")
        why.append(f"precision: the products in bfloat16 where this machine multiplies it natively "
                   f"(auto: {resolve_precision('auto')} here), since its {products} products are most of a step")
    if small:  # at least ~16 steps an epoch, so that tiny sets (medical: 300 points) still train enough steps
        batch = int(min(128, max(16, 2 ** math.floor(math.log2(max(profile.num_points, 1) / 16)))))
    else:
        batch = 256 if profile.num_points < 300_000 else 512
    steps_per_epoch = max(1, math.ceil(profile.num_points / batch))
    epochs = int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch))))
    steps = epochs * steps_per_epoch
    learning_rate = TREE_LEARNING_RATE if tree else 0.001 if small else 0.004
    schedule = "cosine"
    why.append(f"training: batch {batch}, {epochs} epochs of {steps_per_epoch} steps (about {TARGET_STEPS:,} "
               f"steps, at least {MIN_EPOCHS} epochs), Adam at {learning_rate} on a {schedule} schedule")
    metric = f"P@{profile.select_k}"
    patience = max(PATIENCE, math.ceil(epochs / 4))
    why.append(f"selection: the epoch with the best validation {metric}; stop after {patience} evaluations "
               "without improvement")
    config = {
        "model": {"encoder": encoder, "head": head, "precision": precision},
        "optimizer": {"name": "adam", "learning_rate": learning_rate, "schedule": schedule,
                      "warmup_steps": max(1, steps // 50)},
        "trainer": {"global_batch_size": batch, "epochs": epochs, "steps_per_loop": min(100, steps_per_epoch),
                    "log_every_steps": max(1, min(500, steps // 20)), "eval_every_epochs": 1,
                    "checkpoint_every_steps": 0, "checkpoint_every_seconds": CHECKPOINT_SECONDS,
                    "select_metric": metric, "patience": patience},
        "eval": {"ks": [1, 3, 5]},
    }
    return config, why


def shortlist_choice(head: dict, profile: DataProfile, centroids: tuple[float, float] | None) -> str:
    """Adds the tree's nearest-centroid shortlist to `head` where the centroids rank well enough (see
    TREE_SHORTLIST_SHARE); returns the reason."""
    k = profile.select_k
    if centroids is None:
        return "prediction: the beam search alone (no validation split to measure the nearest centroids on)"
    nearest, best = (100 * p for p in centroids)
    reach = (f"the nearest-centroid score alone reaches validation P@{k} {nearest:.2f} of the {best:.2f} any "
             "ranking could")
    if nearest < TREE_SHORTLIST_SHARE * best:
        return f"prediction: the beam search alone, since {reach} (< {TREE_SHORTLIST_SHARE:.0%})"
    head.update(shortlist_size=TREE_SHORTLIST,
                prediction={**head.get("prediction", {}), "shortlist_weight": TREE_SHORTLIST_WEIGHT})
    return (f"prediction: the beam's labels and the {TREE_SHORTLIST} nearest centroids' over all labels, ranked by "
            f"path score + {TREE_SHORTLIST_WEIGHT:g} x the centroid score, since {reach} (>= "
            f"{TREE_SHORTLIST_SHARE:.0%}): labels the beam does not reach are found")


def measure_centroids(profile: DataProfile, info) -> tuple[float, float] | None:
    """For `choose`: the validation P@k of the nearest-centroid classifier of the idf-weighted centroids (the
    start of the sparse term; the tree's shortlist) and the highest P@k there, where a choice reads it (sparse
    inputs, a validation split)."""
    from tfxc.heads.centroid_precision import centroid_precision

    if not (profile.sparse_input and "val" in info.splits):
        return None
    support = TREE_SPARSE_SUPPORT if profile.num_labels > TREE_MIN_LABELS else EXACT_SPARSE_SUPPORT
    return centroid_precision(info, support, profile.select_k, idf=SPARSE_IDF)


def recipe_config(data: dict, info) -> tuple[dict, list[str]]:
    """The whole config (JSON layout) for converted data `info` from sources `data`, and the reasons."""
    profile = DataProfile.from_info(info)
    text = data.get("format") == "jsonl"
    config, why = choose(profile, measure_centroids(profile, info), label_sets=text)
    if "val" not in info.splits:  # `"val_percent": 0`: trained on all of train, nothing to select on
        for key in ("select_metric", "patience", "eval_every_epochs"):
            config["trainer"].pop(key, None)
        why = [line if not line.startswith("selection:") else
               "selection: none, the last step's weights (the data has no validation split)" for line in why]
    if data.get("format") == "jsonl":
        # LONG_TEXT_FEATURES are also the schema's defaults (TextFeaturesConfig), for a data section without `text`.
        text = {**LONG_TEXT_FEATURES, **data.get("text", {})}
        terms = ["words", "words and word bigrams", "words, word bigrams and trigrams"][text["ngram_max"] - 1]
        cap = f", at most {text['max_features']:,} (the most frequent)" if text["max_features"] else ""
        why.insert(0, f"text: TF-IDF of {terms} in at least {text['min_df']} training text(s){cap}: "
                      f"{profile.num_features:,} features (bigrams and rare words for texts of at most "
                      f"{SHORT_TEXT_TOKENS} words on average; a Chinese, Japanese or Thai character is a word, "
                      "and such texts get character bigrams)")
        why.append("serving: the SavedModel takes raw strings (the TF-IDF featurizer fit on train is put in front "
                   "of the model as graph ops at export: export.inputs)")
    return {"data": data, **config}, [f"data: {profile.describe()}"] + why
