"""The recipe's `xrt` point: an XR-Transformer config read off the data's shape, for text it was not tuned on.

`tfxc.train --train T.jsonl --test S.jsonl --recipe xrt` (or a thin config with `"recipe": "xrt"`, or
one with `"recipe": true` whose head is `{"name": "xr_transformer"}`) trains XR-Transformer without a
schedule written for another set. Its rule (`xrt_model`) follows the recipe's own in the point's chain
(`tfxc.recipe.points`): it keeps their data, evaluation and selection and replaces the model. The rules scale the two configs tuned by hand (configs/xrt_reuters.json, 7,770 texts of
~150 words and 90 labels; configs/xrt_wordnet_hypernyms.json, 65,566 glosses and 10,440 labels; both
from the paper's schedules, algorithms.md §1.7) by the data's rows, labels and text length:

* the encoder: all-MiniLM-L6-v2 (the offline wheel), its max_length the power of two that covers the
  90th percentile of the training texts' length in word pieces (32–128): attention's cost grows with it;
* the preliminary tree: leaves of 16 labels, 8-ary, its top level at most 128 clusters, every level
  fine-tuned (the paper's trees have 2–3 fine-tuned levels; the first of 128–512 clusters);
* the fine-tuning: about `FINE_TUNE_ROWS` rows seen (at least 2, at most 6 passes over train), at
  batch 32 and learning rate 1e-4, split among the levels as 1 : 1.6 : 2.6 (the paper's 800 : 1,200 :
  2,000), a quarter of the first level warming up; the batches grouped by text length;
* the ranker: XR-Linear on [TF-IDF ⊕ E] solved (`tfxc.xr.xlinear`), mixed with the TF-IDF model on
  validation (`tfxc.xr.ranker`), each row's TF-IDF read up to the power of two above twice its average
  nonzeros; then SGD epochs kept only while validation improves.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from tfxc.errors import ConfigError
from tfxc.recipe.chain import Context, Reason
from tfxc.recipe.rules import MODEL_TOPICS
from tfxc.training.time_plan import format_seconds

# The encoder's keras-hub preset (a directory of the offline wheel, `tfxc.encoders.pretrained`).
ENCODER_PRESET = "all-minilm-l6-v2"
# English words per WordPiece token of an uncased BERT vocabulary: ~1.3 pieces a word.
PIECES_PER_WORD = 1.3
MIN_LENGTH, MAX_LENGTH = 32, 128
# The tree tuned configs used: leaves of 16, 8-ary, the first fine-tuned level at most 128 clusters.
LEAF_SIZE, NR_SPLITS, TOP_CLUSTERS = 16, 8, 128
# Rows the fine-tuning sees: reuters' 1,200 steps of 32 over 7,030 rows are 5.5 passes (38k rows); wordnet's
# 4,000 over 59,062 are 2.2 (128k): the passes are what falls as the set grows, to at least 2.
FINE_TUNE_ROWS = 40_000
MIN_PASSES, MAX_PASSES = 2, 6
LEVEL_GROWTH = 1.6
# The levels fine-tuned: those of at most this many clusters (the paper's; the head's default).
MAX_MATCH_CLUSTERS = 32768
BATCH = 32
# Training batches regrouped by text length, 64 shuffled batches at a time (`data.group_by_length`).
GROUP_BY_LENGTH = 64
ENCODER_LEARNING_RATE = 1e-4
# A training step costs about this many forward passes of its batch (the backward pass is about two).
STEP_PASSES = 3
# The ranker's SGD after the solve (selection keeps the solved start where the epochs do not help).
RANKER_EPOCHS = 3
RANKER_LEARNING_RATE = 0.004
# Validation passes of the guard: the head's default `ranker_mix` (1, 0.75, 0.5, 0.25, 0).
RANKER_MIXES = 5


def planned_sizes(num_labels: int) -> list[int]:
    """The preliminary tree's level sizes for `num_labels` labels (seen in train), as `tfxc.tree.cluster_labels`
    will cluster them with this point's options."""
    from tfxc.tree import LabelTree
    from tfxc.tree.kmeans import tree_depth

    leaves = 2 ** tree_depth(num_labels, LEAF_SIZE)
    if leaves >= num_labels:
        return [num_labels]
    tree = LabelTree.from_leaf_codes(np.arange(num_labels) % leaves, leaves, nr_splits=NR_SPLITS,
                                     min_codes=TOP_CLUSTERS)
    return list(tree.sizes)


def level_steps(num_points: int, levels: int) -> tuple[list[int], float]:
    """Steps per fine-tuned level and the passes over train they make."""
    passes = min(MAX_PASSES, max(MIN_PASSES, FINE_TUNE_ROWS / max(num_points, 1)))
    total = passes * num_points / BATCH
    weights = [LEVEL_GROWTH ** i for i in range(levels)]
    return [max(10, int(round(total * w / sum(weights), -1))) for w in weights], passes


def estimated_seconds(steps: list[int], row_seconds: float, num_points: int, val_points: int) -> float:
    """The encoder's share of a run at `row_seconds` a row's forward pass: the levels' steps, one embedding pass of
    train per level (the next level's start, the ranker's) and the validation passes of the mixes and the ranker's
    epochs; batches of texts of about one length (`GROUP_BY_LENGTH`, `tfxc.data.pipeline.length_sorted_batches`),
    so each row costs about a row of the average length."""
    rows = BATCH * sum(steps) * STEP_PASSES + num_points * len(steps) + val_points * (RANKER_MIXES + 1 + RANKER_EPOCHS)
    return rows * row_seconds


def encoder_row_seconds(tokens: int, bfloat16: bool, repeats: int = 3) -> float:
    """Seconds of the encoder's forward pass per row of `tokens` word pieces, measured on this machine: a
    batch of `BATCH` such rows, its best of `repeats` after a warm-up (seconds, with the load).

    Measured, not counted from the matmul rate: the encoder's products are narrow (384 wide) and its softmax,
    normalisations and casts are not matmuls. On a 2-core Xeon with AMX, wordnet-hypernyms' levels and passes took
    about eight times what the flops counted at the bfloat16 matmul rate (BENCHMARKS.md, issue 56's fourth sitting).
    """
    import time

    import keras_hub

    from tfxc._tf import tf
    from tfxc.encoders.pretrained import resolve_preset

    backbone = keras_hub.models.Backbone.from_preset(resolve_preset(ENCODER_PRESET),
                                                     **({"dtype": "mixed_bfloat16"} if bfloat16 else {}))
    shape = [BATCH, max(2, int(tokens))]
    inputs = {"token_ids": tf.fill(shape, 1000), "padding_mask": tf.ones(shape, tf.bool)}
    if "segment_ids" in backbone.input:
        inputs["segment_ids"] = tf.zeros(shape, tf.int32)

    @tf.function
    def forward():
        out = backbone(inputs, training=False)
        return tf.reduce_sum(tf.cast(out["sequence_output"] if isinstance(out, dict) else out, tf.float32))

    forward().numpy()  # traces and warms up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        forward().numpy()
        best = min(best, time.perf_counter() - start)
    return best / BATCH


def text_length(train: str) -> tuple[int, float]:
    """The 90th percentile and the mean of the first training texts' length in words
    (`tfxc.data.sources.TEXT_SAMPLE`)."""
    from tfxc.data.readers import iter_jsonl
    from tfxc.data.sources import TEXT_SAMPLE
    from tfxc.data.text_terms import tokenize

    lengths = [len(tokenize(record.text)) for _, record in zip(range(TEXT_SAMPLE), iter_jsonl(train))]
    return (int(np.percentile(lengths, 90)), float(np.mean(lengths))) if lengths else (MIN_LENGTH, MIN_LENGTH)


def xrt_model(profile, config: dict, context: Context) -> tuple[dict, tuple[Reason, ...]]:
    """The `xrt` point's rule: the recipe's config (its data, evaluation and selection) with an XR-Transformer
    model and schedule (module docstring) for the data of `context` (text sources); its time from the encoder's
    forward pass timed here (`encoder_row_seconds`). The recipe's reasons about its own model are withdrawn."""
    data = context.data
    if data.get("format") != "jsonl" or not data.get("train"):
        raise ConfigError("the xrt recipe fine-tunes a text encoder: it needs text data (JSONL, CSV or TSV), and "
                          f"this data is {data.get('format', 'not text')}")
    words, mean_words = text_length(data["train"])
    length = int(min(MAX_LENGTH, max(MIN_LENGTH, 2 ** math.ceil(math.log2(max(words * PIECES_PER_WORD, 1))))))
    sizes = planned_sizes(context.labels_present)
    tuned = [size for size in sizes if size <= MAX_MATCH_CLUSTERS]
    steps, passes = level_steps(profile.num_points, len(tuned))
    nnz = int(min(256, max(32, 2 ** math.ceil(math.log2(max(2 * profile.features_per_point, 1))))))
    head = {"name": "xr_transformer", "matcher_max_leaf_size": LEAF_SIZE, "matcher_nr_splits": NR_SPLITS,
            "matcher_min_codes": TOP_CLUSTERS, "max_steps": steps, "learning_rates": [ENCODER_LEARNING_RATE],
            "warmup_steps": [max(1, steps[0] // 4)], "max_leaf_size": LEAF_SIZE, "nr_splits": 16,
            "sparse_max_nnz": nnz, "sparse_support": 4096, "ranker": "xr_linear"}
    from tfxc.precision import native_bfloat16  # imports TensorFlow: only when the point is chosen

    # Without native bfloat16 products (AVX512-BF16, AMX, a GPU) TensorFlow emulates them, several times slower.
    bfloat16 = native_bfloat16()
    encoder = {"name": "pretrained", "preset": ENCODER_PRESET, "max_length": length, "pooling": "mean",
               "dropout": 0.1, "mixed_bfloat16": bfloat16}
    out = {key: copy.deepcopy(value) for key, value in config.items() if key in ("data", "eval", "runtime", "export")}
    out["data"] = {**out["data"], "group_by_length": GROUP_BY_LENGTH}
    trainer = config["trainer"]
    selection = {key: trainer[key] for key in ("select_metric", "eval_every_epochs") if key in trainer}
    out.update({
        "model": {"encoder": encoder, "head": head},
        "optimizer": {"name": "adam", "learning_rate": RANKER_LEARNING_RATE, "epsilon": 1e-8, "schedule": "cosine",
                      "warmup_steps": 100, "clip_norm": 1.0},
        "trainer": {"global_batch_size": BATCH, "epochs": RANKER_EPOCHS, "steps_per_loop": 50,
                    "log_every_steps": 200, "checkpoint_every_steps": 1000, **selection,
                    **({"patience": 1} if selection.get("select_metric") else {})},
    })
    tokens = int(round(min(length, mean_words * PIECES_PER_WORD + 2)))
    row_seconds = encoder_row_seconds(tokens, bfloat16)
    seconds = estimated_seconds(steps, row_seconds, profile.num_points, context.val_points)
    return out, (*(Reason(topic, None) for topic in MODEL_TOPICS), Reason(
        "encoder", f"{ENCODER_PRESET} fine-tuned, max_length {length} (90% of the training texts have at most {words} "
        f"words, ~{PIECES_PER_WORD:g} word pieces each), "
        + ("in bfloat16 (this machine multiplies it natively)" if bfloat16 else
           "in float32 (this machine has no native bfloat16 products: emulated, they are slower)")), Reason(
        "fine-tuning", f"the preliminary tree {' -> '.join(f'{s:,}' for s in sizes)} (leaves of {LEAF_SIZE}, "
        f"{NR_SPLITS}-ary, the top at most {TOP_CLUSTERS} clusters), its levels of at most {MAX_MATCH_CLUSTERS:,} "
        "fine-tuned: "
        f"{' + '.join(f'{s:,}' for s in steps)} steps of {BATCH} ({passes:.1f} passes over the "
        f"{profile.num_points:,} training rows: about {FINE_TUNE_ROWS:,} rows, {MIN_PASSES}-{MAX_PASSES} passes), "
        f"each {GROUP_BY_LENGTH} shuffled batches regrouped by text length"), Reason(
        "ranker", f"XR-Linear on [TF-IDF (+) E] solved per node (each row's {nnz} largest TF-IDF features), mixed with "
        "the TF-IDF model on the same tree: the share best on validation among those at least as good as the TF-IDF "
        "model alone on every P@k and PSP@k (up to the validation split's noise); then up to "
        f"{RANKER_EPOCHS} epochs of SGD, kept only while validation improves"), Reason(
        "time", f"the encoder's passes {format_seconds(seconds)}"
        f" (its forward pass measured here: {row_seconds * BATCH:.2f} s a batch of {BATCH} texts of {tokens} word "
        f"pieces, a training step about {STEP_PASSES} such; fewer passes or a shorter max_length cut it: "
        "model.head.max_steps, model.encoder.max_length)"))
