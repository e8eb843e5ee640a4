"""A training recipe read off the data: what `python -m tfxc.train --train T --test S` runs without a config.

The peers a user compares us with (PECOS, napkinXC, omikuji) train well on a new
data set with their defaults. tfxc's equivalent is this recipe: convert the data,
look at its shape (points, features, labels, labels per point, the label tail)
and write a complete config, which `tfxc.train` prints and keeps in the model
directory so that it can be edited and re-run with `--config`.

The rules come from the hand-tuned configs of BENCHMARKS.md and were checked on
validation splits carved from the train sets, never on test:

* the head: a label tree (PLT form) above `TREE_MIN_LABELS` labels, where exact
  heads read every label per row (on sparse inputs with XR-Linear's sparse term per
  node, started from the idf-weighted PIFA centroids); below, the softmax head: plain
  for (nearly) one label per point, DEXML's decoupled softmax (each of a point's labels
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

A *thin* config (`"recipe": true`) names the data and states only what differs
from these choices (`over_recipe`); `tfxc.train` resolves it once the data is
converted and keeps the whole config in the model directory.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from tfxc.errors import ConfigError

# Above this many labels the tree head (beam search over label clusters) replaces the exact heads.
TREE_MIN_LABELS = 20_000
# Multi-label sets train the softmax head's decoupled loss (DEXML), weighing positives by inverse propensity
# (PROPENSITY_WEIGHT). On validation splits it beat the normalised target on wordnet-hypernyms (P@1 97.00 ->
# 100.00, P@5 86.10 -> 86.53) and synthetic 10^4 (P@5 48.29 -> 49.86, PSP@5 61.33 -> 65.74): a point's labels
# no longer compete, so a label on every point (hypernyms' root) stays first and rare labels get a full-sized
# push. Against one-vs-all it won on delicious (P@5 59.81 -> 61.13) and tied within the validation noise on
# bibtex (30.21 / 30.17), yeast (57.32 / 57.04) and corel5k (25.87 / 25.16). BENCHMARKS.md, "Training without
# a config".
# The bag's width: exact heads 1024 (synthetic 10^4, validation P@5 / PSP@5 49.86 / 65.74 at 512 -> 50.99 /
# 69.85), the tree 512 (its per-node tables grow with the width and the label count).
EXACT_WIDTH = 1024
TREE_WIDTH = 512
# The tree trains at a learning rate of TREE_LEARNING_RATE without dropout (the settings of the tree's
# hand-tuned scale config): on the synthetic 10^5 set's validation split (9,865 points) the kept epoch's
# P@1 / P@5 / PSP@5 went 93.37 / 37.73 / 26.97 (Adam at 0.004, dropout 0.2) -> 94.49 / 39.48 / 30.70 (both
# then on constant rates). Like the exact heads it decays on a cosine schedule: on wordnet-nextword's
# validation split (by point, 112,367 points) 15.24 / 6.06 / 14.06 (constant, epoch 3 of 4 kept) -> 16.46 /
# 6.46 / 14.99 (cosine, epoch 4); on synthetic 10^5's and 10^6's, where the shortlist ranks and training
# stops early, the same within 0.1 (validation P@5 at the kept epoch 46.87 -> 46.92 and 38.88 -> 38.90).
# Dropout 0.1 instead (constant rate) gave nextword 15.29 / 6.08 / 14.33. BENCHMARKS.md, "Session 14".
TREE_LEARNING_RATE = 0.01
# On sparse inputs (a bag of words or TF-IDF: fewer non-zero features per point than SPARSE_INPUT_SHARE of the
# feature space) every tree node also weighs TREE_SPARSE_SUPPORT input features, the top of its PIFA centroid,
# starting from TREE_SPARSE_INIT × the unit-norm centroid there (a nearest-centroid score that a label seen once
# has from the first step). On the synthetic 10^5 set's validation split (9,865 points, 6 epochs) P@1 / P@5 /
# PSP@5 went 94.49 / 39.48 / 30.70 (no sparse term) -> 94.53 / 39.56 / 30.83 (the term starting at zero) ->
# 94.88 / 39.75 / 31.29 (from 4 × the centroids) -> 95.06 / 40.06 / 31.96 (8 ×) -> 95.39 / 40.72 / 33.35 (16 ×)
# -> 95.38 / 41.00 / 34.01 (32 ×; 64 × trailed 32 × by 1 P@5 after two epochs), at about the same training
# time: a strong start survives training, where a weak one is worn away. On the synthetic 10^6 set's split,
# 88.77 / 32.57 / 18.89 (4 ×) -> 89.48 / 33.21 / 19.91 (16 ×) -> 89.41 / 33.42 / 20.22 (32 ×); on wordnet-nextword's
# (by point) P@1 15.39 -> 15.40 (4 × -> 32 ×). BENCHMARKS.md, "Training without a config".
TREE_SPARSE_SUPPORT = 32
TREE_SPARSE_INIT = 32.0
SPARSE_INPUT_SHARE = 0.5
# The centroids the sparse term starts from weigh each feature by its idf (`sparse_idf`, Rocchio's tf-idf
# prototypes): a label's few points share their frequent features with their other labels, and without the idf
# those features outweigh the label's own. The tree on synthetic 10^5's split: 95.38 / 41.00 / 34.01 -> 95.57 /
# 41.34 / 34.71; on synthetic 10^4's (tree forced, 6 epochs): 99.68 / 50.71 / 70.87 -> 99.68 / 51.13 / 72.52;
# on wordnet-nextword's (by point) even: ahead in P@5 and PSP@5 at 3 of 4 and 4 of 4 epochs, but the epoch kept
# by P@1 went 15.40 / 5.97 / 14.17 -> 15.24 / 6.06 / 14.06.
SPARSE_IDF = True
# The tree's prediction also ranks the TREE_SHORTLIST labels of largest x · c_l over all labels (c_l the label's
# unit-norm idf-weighted centroid on its support: the Rocchio classifier the sparse term starts as) beside the
# beam's, by path score + TREE_SHORTLIST_WEIGHT × x · c_l (`tfxc.heads.shortlist`): the beam never reaches a tail
# label under a busy branch, the centroids do. Re-ranking the recipe's trained trees on validation (P@1 / P@5 /
# PSP@5): synthetic 10^5 95.57 / 41.34 / 34.71 -> 97.43 / 46.75 / 51.50, synthetic 10^6 (the same ranking in
# NumPy) 90.28 / 34.70 / 22.35 -> 93.02 / 38.41 / 31.41, where the centroids alone reach 77 % and 63 % of the
# attainable validation P@5 and weights of 0.1–3 all gave within 0.5 P@5; on wordnet-nextword, where they reach
# 1.5 % of the attainable P@1, 15.24 / 6.07 / 14.07 -> 15.03 / 5.35 / 13.20 (0.03: 15.22 / 6.06 / 14.18). So the
# shortlist is used where the centroids reach TREE_SHORTLIST_SHARE of the attainable P@k. BENCHMARKS.md,
# "Session 13".
TREE_SHORTLIST = 10
TREE_SHORTLIST_WEIGHT = 0.3
TREE_SHORTLIST_SHARE = 0.5
# Exact heads get such a term too, for every label (`tfxc.heads.sparse_term`), started at EXACT_SPARSE_INIT ×
# the idf-weighted centroids, but only where the nearest-centroid classifier it starts as already reaches
# CENTROID_SHARE of the validation P@k any ranking could: synthetic 10^4 (its topic-shaped labels: 54.69 of
# 57.40, 95 %) went 99.51 / 50.99 / 69.85 -> 99.88 / 55.16 / 86.98. Where the centroids alone are far from
# that (bibtex 40 %, delicious 23 %, medical 55 %, corel5k 15 %), the same start lost on validation (corel5k
# P@5 25.16 -> 20.33 and medical P@1 78.95 -> 73.68, both stopped early; bibtex P@5 30.17 at its best epoch ->
# 25.70 after 15 epochs, when the run was stopped): a strong start that ranks worse than training would is a
# handicap the training budget does not undo. BENCHMARKS.md, "Session 12".
EXACT_SPARSE_SUPPORT = 32
EXACT_SPARSE_INIT = 32.0
CENTROID_SHARE = 0.9
# The sparse term carries feature ids as float32 (`tfxc.encoders.sparse_input.PAD_FEATURE`): exact below 2^24.
SPARSE_TERM_MAX_FEATURES = 2 ** 24
# Exact models whose products per row (the head's [width x labels], and the full embedding bag's
# [features x width], `tfxc.encoders.sparse_bow.auto_bag`) have at least this many weights run them in
# bfloat16 where the machine multiplies bfloat16 natively (`model.precision` "auto"): on wordnet-hypernyms
# ([1024 x 10,440]) the step went from 83 to 55 ms at the same test P@5 (86.46) and PSP@5; with the full
# bag, delicious 8.9 -> 6.6 ms, bibtex 8.4 -> 7.1 ms, corel5k 6.0 -> 5.3 ms a step. Below it the casts
# cost about what the products save. BENCHMARKS.md, "Speed".
BFLOAT16_MIN_PRODUCT = 500_000
# Training points below which a set counts as small (more dropout, smaller batches, a lower learning rate).
SMALL_POINTS = 30_000
# Training length in optimizer steps, at least MIN_EPOCHS and at most MAX_EPOCHS passes.
TARGET_STEPS = 2_000
MIN_EPOCHS = 4
MAX_EPOCHS = 60
# Checkpoints by wall time, not per epoch: on wordnet-hypernyms one (600 MB with Adam's slots) took 1.6 s,
# 9 % of the run at a checkpoint an epoch once the steps had got faster (BENCHMARKS.md, "Speed"); a killed
# run resumes from the last one (and one is always written at the end, on early stopping and on SIGTERM).
CHECKPOINT_SECONDS = 300
# The share of train held out for choosing the epoch when no validation source is given.
VAL_PERCENT = 10
# Evaluations without improvement before stopping: at least PATIENCE, and a quarter of the planned epochs
# (small validation splits are noisy: medical's 33 points stalled for 3 epochs at the start of training).
PATIENCE = 3
# TF-IDF terms of JSONL text. Short texts (at most SHORT_TEXT_TOKENS words on average: queries, intents,
# titles) get words and word bigrams, every term of the training texts (min_df 1), at most
# TEXT_MAX_FEATURES of them (the most frequent) to bound the bag's embedding table; on the validation
# splits of banking77 (12 words a text) and clinc150 (8) that beat words with min_df 2: P@1 90.32 -> 90.62
# and 91.60 -> 92.50. Longer texts keep words seen in at least 2 texts: on reuters (130 words a text)
# bigrams cost 1.2 validation P@1 (95.57 -> 94.40). BENCHMARKS.md, "Training without a config".
SHORT_TEXT_TOKENS = 40
SHORT_TEXT_FEATURES = {"ngram_max": 2, "min_df": 1, "max_features": 100_000}
LONG_TEXT_FEATURES = {"ngram_max": 1, "min_df": 2, "max_features": 0}
# Texts read to measure the average length.
TEXT_SAMPLE = 10_000
# Labels with at most this many training points form the tail (reported in the data line).
TAIL_POINTS = 5
# A positive of label l weighs (1/p_l)^PROPENSITY_WEIGHT in the multi-label loss (p_l its propensity): on
# validation splits of bibtex, delicious and corel5k 0.5 raised P@5 and PSP@5 of one-vs-all, and on
# synthetic 10^4 those of the decoupled softmax (P@5 49.86 -> 50.08, PSP@5 65.74 -> 66.56).
PROPENSITY_WEIGHT = 0.5


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
    """

    num_points: int
    num_features: int
    num_labels: int
    labels_per_point: float
    features_per_point: float
    tail_share: float

    @classmethod
    def from_info(cls, info) -> "DataProfile":
        train = info.splits["train"]
        present = info.label_freq[info.label_freq > 0]
        return cls(num_points=int(train["num_points"]), num_features=int(info.num_features),
                   num_labels=int(info.num_labels), labels_per_point=float(train["avg_labels_per_point"]),
                   features_per_point=float(train["avg_features_per_point"]),
                   tail_share=float(np.mean(present <= TAIL_POINTS)) if present.size else 0.0)

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


# === The data section from file names ===
def _strip_gz(path: str) -> str:
    return path[:-3] if path.endswith(".gz") else path


def source_format(path: str) -> str:
    """The data format of a source file by its name: xc (.txt, .svm), pecos (.npz), jsonl, dense (.npy or a directory)."""
    if os.path.isdir(path):
        return "dense"
    name = _strip_gz(path).lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".json", "jsonl"), (".npz", "pecos"), (".npy", "dense"),
                        (".txt", "xc"), (".svm", "xc"), (".libsvm", "xc")):
        if name.endswith(suffix):
            return fmt
    raise ConfigError(f"cannot tell the format of '{path}' from its name (.txt/.svm: Extreme Classification "
                      "Repository text, .npz: PECOS, .jsonl: text, .npy or a directory: dense features); "
                      "write a config with data.format instead")


def _labels_beside(path: str, option: str) -> str:
    """PECOS/dense label file next to a features file: X.trn.npz -> Y.trn.npz, features.npy -> labels.npy."""
    folder, name = os.path.split(path)
    for features, labels in (("X.", "Y."), ("X_", "Y_"), ("features", "labels")):
        candidate = os.path.join(folder, labels + name[len(features):])
        if name.startswith(features) and os.path.exists(candidate):
            return candidate
    raise ConfigError(f"no label file found beside {path}: give {option}")


def data_section(train: str, test: str = "", val: str = "", *, data_dir: str, train_labels: str = "",
                 test_labels: str = "", val_labels: str = "", label_names: str = "") -> dict:
    """The `data` section of a config for these sources, the format told by the file names.

    Without a validation source, `VAL_PERCENT` percent of train is held out to choose the epoch
    (`with_validation`).
    """
    fmt = source_format(train)
    data = {"format": fmt, "dir": data_dir}
    if fmt == "dense" and os.path.isdir(train):
        data["source_dir"] = train
    else:
        for split, path, labels in (("train", train, train_labels), ("test", test, test_labels),
                                    ("val", val, val_labels)):
            if not path:
                continue
            if source_format(path) != fmt:
                raise ConfigError(f"--{split} {path} is not in the format of --train {train} ({fmt})")
            data[split] = path
            if fmt in ("pecos", "dense"):
                data[split + "_labels"] = labels or _labels_beside(path, f"--{split}-labels")
    if label_names:
        data["label_names"] = label_names
    if fmt == "jsonl":
        data["text"] = text_features(train)
    return with_validation(data)


def text_features(train: str) -> dict:
    """The `data.text` section (TF-IDF terms) for a JSONL train file, by the average length of its first texts."""
    from tfxc.data.readers import iter_jsonl
    from tfxc.data.text_features import tokenize

    lengths = [len(tokenize(record.text)) for _, record in zip(range(TEXT_SAMPLE), iter_jsonl(train))]
    short = sum(lengths) / max(len(lengths), 1) <= SHORT_TEXT_TOKENS
    return dict(SHORT_TEXT_FEATURES if short else LONG_TEXT_FEATURES)


def with_validation(data: dict) -> dict:
    """A data section (JSON layout) that holds out `VAL_PERCENT` percent of train when it has no validation part.

    A data section with `val`, a `val_percent` (0 included: no validation split) or a dense `source_dir`
    with a `val` folder is returned as is.
    JSONL points of one document (an `id` prefix before ':') stay on one side of the split.
    """
    has_val_dir = bool(data.get("source_dir")) and os.path.isdir(os.path.join(data["source_dir"], "val"))
    if data.get("val") or "val_percent" in data or data.get("val_fold") or has_val_dir:
        return data
    data = {**data, "val_percent": VAL_PERCENT}
    if data.get("format") == "jsonl" and data.get("train") and not data.get("val_groups"):
        data["val_groups"] = data["train"]
    return data


def over_recipe(recipe: dict, own: dict) -> dict:
    """A thin config's own keys on top of the recipe's config (both in the JSON layout).

    Objects merge key by key, except a registry entry whose `name` differs from
    the recipe's (another head, encoder or optimizer): it replaces the recipe's
    entry whole, since the recipe's options were for the other one.
    """
    merged = dict(recipe)
    for key, value in own.items():
        base = merged.get(key)
        if isinstance(value, dict) and isinstance(base, dict) and value.get("name", base.get("name")) == base.get("name"):
            merged[key] = over_recipe(base, value)
        else:
            merged[key] = value
    return merged


def resolve_thin(own: dict, info, origin: str) -> tuple[dict, list[str]]:
    """A thin config (JSON layout, `"recipe": true`) made whole for its converted data `info`.

    Returns the recipe's config with `own`'s keys on top (`over_recipe`; the result is an
    ordinary config, `recipe` false) and the recipe's reasons, the last of which names
    what `own` (read from `origin`) changed.
    """
    chosen, reasons = recipe_config(with_validation(own.get("data", {})), info)
    mine = over_recipe(chosen, {key: value for key, value in own.items() if key != "recipe"})
    changed = changed_keys(chosen, {key: value for key, value in mine.items() if key != "comment"})
    reasons.append(f"then {origin}: " + (" ".join(changed) or "nothing changed"))
    return mine, reasons


def changed_keys(recipe: dict, merged: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two configs in the JSON layout (for the printout)."""
    keys = []
    for key in sorted(set(recipe) | set(merged)):
        a, b = recipe.get(key), merged.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and a.get("name") == b.get("name"):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}={json.dumps(b)}")
    return keys


# === The rest of the config from the data's profile ===
def bag_of(profile: DataProfile) -> str:
    """How the recipe's bag-of-features encoder will compute its bag on this data ("auto" resolved)."""
    from tfxc.encoders.sparse_bow import auto_bag  # imports TensorFlow: only when a recipe is chosen

    return auto_bag("auto", profile)


def choose(profile: DataProfile, centroids: tuple[float, float] | None = None) -> tuple[dict, list[str]]:
    """The model, optimizer, trainer and eval sections for a data set, and why (one line per choice).

    `centroids`: the validation P@k (k of the selection metric) of the nearest-centroid classifier that
    the sparse term starts as (and the tree's shortlist ranks by), and the P@k any ranking could reach
    there (`tfxc.heads.sparse_term.centroid_precision`); None where not measured (no term).
    """
    why = []
    small = profile.num_points < SMALL_POINTS
    sparse = profile.sparse_input
    if profile.num_labels > TREE_MIN_LABELS:
        head = {"name": "label_tree", "max_leaf_size": 16, "nr_splits": 16, "loss": "bce", "negatives": "tfn",
                "beam_size": 10, "post_processor": "sigmoid", "final_post_processor": "sigmoid"}
        why.append(f"head: a label tree (PLT form), since {profile.num_labels:,} labels > {TREE_MIN_LABELS:,}: "
                   "a beam search reads a few thousand label vectors per point instead of all of them")
        if sparse:
            head.update(sparse_support=TREE_SPARSE_SUPPORT, sparse_init=TREE_SPARSE_INIT, sparse_idf=SPARSE_IDF)
            why.append(f"tree nodes: each also weighs {TREE_SPARSE_SUPPORT} input features, the top of its "
                       f"idf-weighted PIFA centroid, starting from the centroid there (x {TREE_SPARSE_INIT:g}): a "
                       "label seen once scores points like its own from the first step")
            why.append(shortlist_choice(head, profile, centroids))
    else:
        if profile.one_label_per_point:
            head = {"name": "softmax", "label_smoothing": 0.1}
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
    if "propensity_weight" in head:
        why.append(f"loss: a positive of label l weighs (1/p_l)^{PROPENSITY_WEIGHT}, p_l its propensity, which "
                   "leans toward the rare labels")
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
    head.update(shortlist_size=TREE_SHORTLIST, shortlist_weight=TREE_SHORTLIST_WEIGHT)
    return (f"prediction: the beam's labels and the {TREE_SHORTLIST} nearest centroids' over all labels, ranked by "
            f"path score + {TREE_SHORTLIST_WEIGHT:g} x the centroid score, since {reach} (>= "
            f"{TREE_SHORTLIST_SHARE:.0%}): labels the beam does not reach are found")


def measure_centroids(profile: DataProfile, info) -> tuple[float, float] | None:
    """For `choose`: the validation P@k of the nearest-centroid classifier of the idf-weighted centroids (the
    start of the sparse term; the tree's shortlist) and the highest P@k there, where a choice reads it (sparse
    inputs, a validation split)."""
    from tfxc.heads.sparse_term import centroid_precision

    if not (profile.sparse_input and "val" in info.splits):
        return None
    support = TREE_SPARSE_SUPPORT if profile.num_labels > TREE_MIN_LABELS else EXACT_SPARSE_SUPPORT
    return centroid_precision(info, support, profile.select_k, idf=SPARSE_IDF)


def recipe_config(data: dict, info) -> tuple[dict, list[str]]:
    """The whole config (JSON layout) for converted data `info` from sources `data`, and the reasons."""
    profile = DataProfile.from_info(info)
    config, why = choose(profile, measure_centroids(profile, info))
    if "val" not in info.splits:  # `"val_percent": 0`: trained on all of train, nothing to select on
        for key in ("select_metric", "patience", "eval_every_epochs"):
            config["trainer"].pop(key, None)
        why = [line if not line.startswith("selection:") else
               "selection: none, the last step's weights (the data has no validation split)" for line in why]
    if data.get("format") == "jsonl":
        # LONG_TEXT_FEATURES are also the schema's defaults (TextFeaturesConfig), for a data section without `text`.
        text = {**LONG_TEXT_FEATURES, **data.get("text", {})}
        terms = "words and word bigrams" if text["ngram_max"] == 2 else "words"
        cap = f", at most {text['max_features']:,} (the most frequent)" if text["max_features"] else ""
        why.insert(0, f"text: TF-IDF of {terms} in at least {text['min_df']} training text(s){cap}: "
                      f"{profile.num_features:,} features (bigrams and rare words for texts of at most "
                      f"{SHORT_TEXT_TOKENS} words on average)")
    return {"data": data, **config}, [f"data: {profile.describe()}"] + why
