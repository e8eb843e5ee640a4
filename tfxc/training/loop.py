"""The inner loop: `n` training steps in one `tf.function` call (orbit's StandardTrainer part).

One replica step asks the objective for the per-example loss, divides by the
*global* batch size (so the cross-replica sum of gradients is the gradient of
the global mean loss), optionally clips the true global gradient, and applies
the update. The host-side cadence around it lives in `tfxc.training.controller`.
"""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.optimizers.lazy import dedupe_rows
from tfxc.utils.graph import graph_function


def dedupe(gradient):
    """An IndexedSlices with its repeated rows summed (others as they are): its values' norm is then the
    gradient's. The all-reduce concatenates the replicas' slices, and a row touched on two replicas (or
    twice on one) would otherwise count as two, so the clipped norm would depend on the replica count."""
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    ids, values = dedupe_rows(gradient)
    return tf.IndexedSlices(values, ids, gradient.dense_shape)


def scale_gradient(gradient, factor: float):
    """gradient * factor, keeping IndexedSlices sparse (they support no arithmetic operators)."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor


class TrainLoop:
    """Runs training steps; `loop(iterator, n)` returns the mean global reported loss of the n steps.

    Args:
      strategy: the `tf.distribute.Strategy` the variables live under.
      model: the `XCModel`.
      optimizer: a built Keras optimizer.
      objective: a `tfxc.losses.Objective`.
      global_batch_size: examples per step over all replicas.
      clip_norm: clip the global gradient norm to this (0 = off).
      average: a `WeightAverage` updated after every step (EMA/SWA), or None.
    """

    def __init__(self, strategy, model, optimizer, objective, global_batch_size: int, clip_norm: float = 0.0,
                 average=None):
        self.strategy, self.model, self.optimizer, self.objective = strategy, model, optimizer, objective
        self.global_batch_size, self.clip_norm, self.average = global_batch_size, clip_norm, average
        self._loop = self._make_loop()

    def __call__(self, iterator, num_steps: int) -> float:
        return float(self._loop(iterator, tf.constant(num_steps)))

    def replica_step(self, batch):
        gb = self.global_batch_size
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            per_example, reported = self.objective.per_example_loss(self.model, batch, training=True)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=gb)
        grads = tape.gradient(loss, variables)
        if self.clip_norm:
            # Keras clips per replica before its all-reduce (tf-notes §1, pitfall 4):
            # sum first, clip the true gradient, then undo the sum that
            # apply_gradients will do again.
            ctx = tf.distribute.get_replica_context()
            grads = [dedupe(g) for g in ctx.all_reduce("SUM", grads)]
            grads, _ = tf.clip_by_global_norm(grads, self.clip_norm)
            grads = [scale_gradient(g, 1.0 / ctx.num_replicas_in_sync) for g in grads]
        self.optimizer.apply_gradients(zip(grads, variables))
        if self.average is not None:
            self.average.update(self.optimizer.iterations)
        return loss if reported is per_example else tf.nn.compute_average_loss(reported, global_batch_size=gb)

    def _make_loop(self):
        strategy = self.strategy

        def one_step(iterator):
            return strategy.reduce("SUM", strategy.run(self.replica_step, args=(next(iterator),)), axis=None)

        if strategy.num_replicas_in_sync == 1:
            @graph_function
            def train_loop(iterator, num_steps):
                def body(i, total):
                    return i + 1, total + one_step(iterator)

                _, total = tf.while_loop(lambda i, _: i < num_steps, body, (tf.constant(0), tf.constant(0.0)))
                return total / tf.cast(num_steps, tf.float32)

            return train_loop

        # With several replicas the sparse-gradient all-reduce (a gather of
        # IndexedSlices of varying length) fails inside a tf.while_loop with
        # "Shape mismatch in the collective instance" on TF 2.21, so each step
        # is its own tf.function call, driven from the host.
        step_fn = graph_function(one_step)

        def host_loop(iterator, num_steps):
            n = int(num_steps)
            return tf.add_n([step_fn(iterator) for _ in range(n)]) / n

        return host_loop
