"""tf.data input pipelines over converted TFRecords.

Training batches are defined globally, independent of the cluster shape: one
shuffled stream of serialized examples per epoch (seeded by (seed, epoch)),
cut into global batches. Each input pipeline (one per worker, from the
`tf.distribute.InputContext`) keeps its own slice of every global batch and
splits it into per-replica batches, then parses them. Consequences:
  * 1 process, 2 replicas or 2 workers see exactly the same global batches,
    so they reach the same weights (up to float summation order);
  * a resumed run rebuilds the stream at (epoch, step-in-epoch) and continues
    bit-exactly, also on a different number of replicas.
Workers read all records (cheap: raw reads run at ~200k records/s against a
few thousand examples/s of training) but parse only their slice.
"""

from __future__ import annotations

import os

import numpy as np

from tfxc._tf import tf
from tfxc.data.tfrecord import parse_batch

# Fixed parallelism instead of tf.data's autotuning: at an epoch's end, deleting the spent iterator waited for
# the autotuner's model thread, 8-9 s in about half the epochs on wordnet-hypernyms (a fifth of a training
# run once the steps had got fast); with fixed settings reading and parsing run as fast or faster
# (`tools/bench_input_pipeline.py`: 150-190k examples/s, 40x the training rate). docs/benchmarks-history.md, "Speed".
PARALLEL_CALLS = max(2, os.cpu_count() or 2)
PREFETCH_BATCHES = 2
# Rows read together and sorted by token count for a pass whose order does not matter (an evaluation's sums, an
# embedding pass written by row id): a batch of rows of about one length pads to about that length, not to the
# longest of its texts in file order (on wordnet-hypernyms' glosses 21 tokens a row instead of 58: BENCHMARKS.md).
SORT_WINDOW = 8192


def _fixed_options() -> tf.data.Options:
    """tf.data options with the autotuner off (the parallelism above is fixed)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def steps_per_epoch(num_points: int, global_batch_size: int) -> int:
    """Global batches in one epoch: the last incomplete batch is dropped."""
    return max(num_points // global_batch_size, 1)


def train_dataset(files: list[str], *, num_points: int, global_batch_size: int, seed: int, shuffle_buffer: int,
                  epoch: int, skip_steps: int = 0, input_context: tf.distribute.InputContext | None = None,
                  preprocess=None, num_epochs: int = 1, group_by_length: int = 0) -> tf.data.Dataset:
    """Training batches of epochs `epoch` .. `epoch + num_epochs - 1`, starting `skip_steps` global steps
    into the first.

    `preprocess` (e.g. `Encoder.preprocess`, which tokenises raw text) maps each parsed
    batch dict inside the pipeline, so tokenisation overlaps the training step.
    `group_by_length` > 0: each run of that many global batches of the shuffled stream is regrouped into
    batches of texts of about one length (`_grouped_by_length`), which a transformer then pads far less.

    Returns:
      A finite dataset of parsed per-replica batches (see
      `tfxc.data.tfrecord.parse_batch`) of `global_batch_size / num_replicas`
      examples; `steps_per_epoch - skip_steps` of them per replica in the first epoch,
      `steps_per_epoch` in each further one.
    """
    ctx = input_context or tf.distribute.InputContext()
    num_pipelines, pipeline = ctx.num_input_pipelines, ctx.input_pipeline_id
    replicas_here = ctx.num_replicas_in_sync // num_pipelines
    per_pipeline = global_batch_size // num_pipelines
    per_replica = per_pipeline // replicas_here
    batches = steps_per_epoch(num_points, global_batch_size)
    cycle = min(len(files), 4)

    # Shards are read in a fixed order (deterministic interleave), so an epoch's order is a pure
    # function of (seed, epoch), whichever epoch a stream starts at (a resumed run).
    records = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=cycle, num_parallel_calls=cycle, deterministic=True)

    def one_epoch(e: int, skip: int) -> tf.data.Dataset:
        # The seed must be a Python int (tf.data mixes a traced one with the global seed in Python), hence
        # a dataset per epoch.
        ds = records.shuffle(shuffle_buffer, seed=seed * 100003 + e, reshuffle_each_iteration=False)
        if group_by_length:
            ds = ds.batch(group_by_length * global_batch_size).enumerate().map(
                lambda i, window: _grouped_by_length(window, global_batch_size, tf.stack([seed * 100003 + e, i])),
                deterministic=True).unbatch()
        else:
            ds = ds.batch(global_batch_size, drop_remainder=True)
        return ds.take(batches).skip(skip)

    # One stream over all the epochs, so that a run parses through one pipeline and one iterator, not one per
    # epoch (on medical, 60 epochs of 18 steps, building them was a fifth of training).
    ds = _concatenate([one_epoch(e, skip_steps if e == epoch else 0) for e in range(epoch, epoch + num_epochs)])

    def my_replica_batches(global_batch):
        mine = global_batch[pipeline * per_pipeline:(pipeline + 1) * per_pipeline]
        return tf.data.Dataset.from_tensor_slices(tf.reshape(mine, [replicas_here, per_replica]))

    ds = ds.flat_map(my_replica_batches).map(_parser(preprocess), num_parallel_calls=PARALLEL_CALLS,
                                             deterministic=True)
    options = _fixed_options()
    # We shard ourselves (by slicing batches); stop tf.distribute from re-sharding.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(PREFETCH_BATCHES)


def _grouped_by_length(window: tf.Tensor, global_batch_size: int, seed: tf.Tensor) -> tf.Tensor:
    """Serialized records string [W] -> global batches string [W // global_batch_size, global_batch_size]: the
    window's whole batches' worth of records sorted by the byte length of their text and cut in order, the
    batches then in a random order of `seed` (int64 [2]). Every batch still comes from a random window of the
    epoch; it holds texts of about one length (the batching of Ott et al. 2019, fairseq, and of Hugging Face's
    `group_by_length`). A remainder of fewer than a batch, the window's last records, is dropped, as a plain
    batching drops the epoch's last."""
    whole = tf.shape(window)[0] // global_batch_size * global_batch_size
    window = window[:whole]
    text = tf.io.parse_example(window, {"text": tf.io.FixedLenFeature([], tf.string, default_value="")})["text"]
    order = tf.argsort(tf.strings.length(text), stable=True)
    batches = tf.reshape(tf.gather(window, order), [-1, global_batch_size])
    return tf.random.experimental.stateless_shuffle(batches, seed=seed)


def _concatenate(datasets: list[tf.data.Dataset]) -> tf.data.Dataset:
    """The datasets one after another, concatenated as a balanced tree (a chain of many epochs would make
    every element pass through one concatenation per epoch before it)."""
    while len(datasets) > 1:
        datasets = [datasets[i].concatenate(datasets[i + 1]) if i + 1 < len(datasets) else datasets[i]
                    for i in range(0, len(datasets), 2)]
    return datasets[0]


def eval_dataset(files: list[str], batch_size: int, max_points: int = 0, preprocess=None,
                 shard: tuple[int, int] | None = None, window: int = 0) -> tf.data.Dataset:
    """Every example once (or the first `max_points` > 0), in file order, parsed (and preprocessed) in batches.

    `shard` = (index, count): only batches index, index + count, ... (one worker's share of an
    evaluation that `count` workers split; their metric sums add up to the whole split's).
    `window` > 0: the worker's batches are parsed `window` rows at a time (`length_sorted_batches`).
    """
    ds = tf.data.TFRecordDataset(files)
    if max_points:
        ds = ds.take(max_points)
    ds = ds.batch(batch_size)
    if shard is not None and shard[1] > 1:
        ds = ds.shard(shard[1], shard[0])  # whole batches, before parsing: each worker parses only its own
    if window:
        ds = ds.unbatch().batch(window)  # serialized records: cheap to regroup
    ds = ds.map(_parser(preprocess), num_parallel_calls=PARALLEL_CALLS, deterministic=True)
    return ds.with_options(_fixed_options()).prefetch(PREFETCH_BATCHES)


def length_sorted_batches(files: list[str], batch_size: int, max_points: int = 0, preprocess=None,
                          shard: tuple[int, int] | None = None):
    """`eval_dataset`'s rows, every one once, in batches of at most `batch_size` rows of about one token count:
    windows of `SORT_WINDOW` rows, each cut by `length_sorted`. For passes whose order does not matter. Without
    `preprocess` (no tokenisation) it is `eval_dataset` itself."""
    if preprocess is None:
        yield from eval_dataset(files, batch_size, max_points, shard=shard)
        return
    for window in eval_dataset(files, batch_size, max_points, preprocess, shard, window=SORT_WINDOW):
        yield from length_sorted(window, batch_size)


def length_sorted(window: dict, batch_size: int):
    """Yields `window` (a parsed, preprocessed batch: tensors and ragged tensors, rows first) as batches of at most
    `batch_size` rows in order of token count, each token sequence (`SEQUENCE_KEYS`) cut to its batch's longest
    row; a window without token sequences, in its own order. Attention and feed-forward costs follow the padded
    length, so a pass then costs about the rows' own lengths."""
    from tfxc.text.tokenizers import SEQUENCE_KEYS

    n = int(window["row_id"].shape[0])
    mask = window.get("padding_mask")
    lengths = None if mask is None else tf.reduce_sum(tf.cast(mask, tf.int32), axis=1).numpy()
    order = np.arange(n) if lengths is None else np.argsort(lengths, kind="stable")
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        batch = {key: tf.gather(value, rows) for key, value in window.items()}
        if lengths is not None:
            width = max(1, int(lengths[rows].max()))
            batch.update({key: batch[key][:, :width] for key in SEQUENCE_KEYS if key in batch})
        yield batch


def _parser(preprocess):
    if preprocess is None:
        return parse_batch
    return lambda serialized: preprocess(parse_batch(serialized))
