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

from tfxc._tf import tf
from tfxc.data.tfrecord import parse_batch


def steps_per_epoch(num_points: int, global_batch_size: int) -> int:
    """Global batches in one epoch: the last incomplete batch is dropped."""
    return max(num_points // global_batch_size, 1)


def train_dataset(files: list[str], *, num_points: int, global_batch_size: int, seed: int, shuffle_buffer: int,
                  epoch: int, skip_steps: int = 0, input_context: tf.distribute.InputContext | None = None,
                  preprocess=None) -> tf.data.Dataset:
    """One epoch of training batches, starting `skip_steps` global steps into it.

    `preprocess` (e.g. `Encoder.preprocess`, which tokenises raw text) maps each parsed
    batch dict inside the pipeline, so tokenisation overlaps the training step.

    Returns:
      A finite dataset of parsed per-replica batches (see
      `tfxc.data.tfrecord.parse_batch`) of `global_batch_size / num_replicas`
      examples; `steps_per_epoch - skip_steps` of them per replica.
    """
    ctx = input_context or tf.distribute.InputContext()
    num_pipelines, pipeline = ctx.num_input_pipelines, ctx.input_pipeline_id
    replicas_here = ctx.num_replicas_in_sync // num_pipelines
    per_pipeline = global_batch_size // num_pipelines
    per_replica = per_pipeline // replicas_here

    # Shards are read in a fixed order (deterministic interleave), so the
    # shuffle is a pure function of (seed, epoch). The seed must be a Python
    # int (tf.data cannot take a traced seed), hence one dataset per epoch.
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(files), 4), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)
    ds = ds.shuffle(shuffle_buffer, seed=seed * 100003 + epoch, reshuffle_each_iteration=False)
    ds = ds.batch(global_batch_size, drop_remainder=True).take(steps_per_epoch(num_points, global_batch_size))
    ds = ds.skip(skip_steps)

    def my_replica_batches(global_batch):
        mine = global_batch[pipeline * per_pipeline:(pipeline + 1) * per_pipeline]
        return tf.data.Dataset.from_tensor_slices(tf.reshape(mine, [replicas_here, per_replica]))

    ds = ds.flat_map(my_replica_batches).map(_parser(preprocess), num_parallel_calls=tf.data.AUTOTUNE,
                                             deterministic=True)
    options = tf.data.Options()
    # We shard ourselves (by slicing batches); stop tf.distribute from re-sharding.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def eval_dataset(files: list[str], batch_size: int, max_points: int = 0, preprocess=None,
                 shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Every example once (or the first `max_points` > 0), in file order, parsed (and preprocessed) in batches.

    `shard` = (index, count): only batches index, index + count, ... (one worker's share of an
    evaluation that `count` workers split; their metric sums add up to the whole split's).
    """
    ds = tf.data.TFRecordDataset(files)
    if max_points:
        ds = ds.take(max_points)
    ds = ds.batch(batch_size)
    if shard is not None and shard[1] > 1:
        ds = ds.shard(shard[1], shard[0])  # whole batches, before parsing: each worker parses only its own
    return ds.map(_parser(preprocess), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _parser(preprocess):
    if preprocess is None:
        return parse_batch
    return lambda serialized: preprocess(parse_batch(serialized))
