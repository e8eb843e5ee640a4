"""Row-sparse ("lazy") updates for embedding tables under Keras 3 optimizers.

Keras 3's Adam runs its update with dense ops, so an IndexedSlices gradient of
a [num_features, dim] table is densified and the whole table and both moment
slots are rewritten every step (tf-notes §4: 2x slower on a 100k-row table,
and hopeless for millions of rows). `LazyAdam` updates only the rows present
in the gradient, as TF-Addons' LazyAdam did: untouched rows keep their moments
unchanged, which is the standard trade-off for sparse features. Its float32
rows take one compiled pass where `tfxc.optimizers.row_adam` was built.

Dense gradients of `LazyAdam` go through TensorFlow's fused Adam kernel
(`ResourceApplyAdam`: one multi-threaded pass over the variable and its two
slots), the same update as Keras' Adam, which spends five separate
elementwise passes and three assignments on it: on wordnet-hypernyms' [1024,
10,440] softmax kernel those passes were about a third of a training step
(docs/benchmarks-history.md, "Speed"). One optimizer serves the whole model. Under a tf.distribute strategy Keras all-reduces the gradients
first (IndexedSlices are gathered, so the same row can appear more than once;
duplicates are summed here before the update).
"""

from __future__ import annotations

from tfxc._tf import keras, tf
from tfxc.optimizers.row_adam import HAVE_COMPILED_ADAM, adam_rows


def dedupe_rows(gradient: tf.IndexedSlices) -> tuple[tf.Tensor, tf.Tensor]:
    """Sums the rows of an IndexedSlices that share an index -> (unique ids [U], values [U, ...]), ascending.

    Sorted by id first (a stable argsort of the ids, then a sorted segment sum), which on CPU
    is 1.2-1.4× faster than `unsorted_segment_sum` over the same rows and adds them in the
    same order every time (docs/benchmarks-history.md, "Speed").
    """
    indices = gradient.indices

    def merged():
        order = tf.argsort(indices, stable=True)
        unique, position = tf.unique(tf.gather(indices, order))
        return unique, tf.math.segment_sum(tf.gather(gradient.values, order), position)

    # Rows that come strictly ascending (the label tree's pair gradients, `tfxc.heads.pair_scores`) are
    # distinct already: the sort, a top-k over every index, would cost more than the update.
    ascending = tf.reduce_all(indices[1:] > indices[:-1])
    return tf.cond(ascending, lambda: (indices, gradient.values), merged)


class LazyAdam(keras.optimizers.Adam):
    """Adam that updates embedding rows lazily for IndexedSlices gradients.

    Reference: Kingma & Ba, 2015, "Adam: A Method for Stochastic Optimization";
    the lazy variant follows TF-Addons `LazyAdam`.
    """

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            if self.amsgrad:
                return super().update_step(gradient, variable, learning_rate)
            return self._fused_dense_step(gradient, variable, learning_rate)
        if self.amsgrad:
            raise NotImplementedError("amsgrad is not supported for sparse gradients")
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._get_variable_index(variable)
        m_var, v_var = self._momentums[index], self._velocities[index]
        ids, grad = dedupe_rows(gradient)
        grad = tf.cast(grad, dtype)
        if HAVE_COMPILED_ADAM and dtype == tf.float32:
            # One compiled pass over the touched rows (`tfxc.optimizers.row_adam`) instead of a pass per operation.
            weights, m, v = tf.numpy_function(
                adam_rows, [tf.gather(_raw(variable), ids), tf.gather(m_var.value, ids), tf.gather(v_var.value, ids),
                            grad, alpha, beta_1, beta_2, tf.cast(self.epsilon, dtype)],
                [dtype] * 3, stateful=False)
            for slot, rows in ((m_var, m), (v_var, v), (variable, weights)):
                rows.set_shape(grad.shape)
                self.assign(slot, tf.IndexedSlices(rows, ids))
            return
        m = beta_1 * tf.gather(m_var.value, ids) + (1 - beta_1) * grad
        v = beta_2 * tf.gather(v_var.value, ids) + (1 - beta_2) * tf.square(grad)
        self.assign(m_var, tf.IndexedSlices(m, ids))
        self.assign(v_var, tf.IndexedSlices(v, ids))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m / (tf.sqrt(v) + self.epsilon), ids))

    def _fused_dense_step(self, gradient, variable, learning_rate):
        """Keras Adam's dense update in one kernel: m += (1−β1)(g − m), v += (1−β2)(g² − v),
        w −= lr·√(1−β2^t)/(1−β1^t) · m / (√v + ε), t the step (1-based)."""
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        m_var, v_var = self._momentums[index], self._velocities[index]
        # Inside the optimizer's (per-device) update the slots' handles are this device's copies.
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(m_var), v=_handle(v_var), beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype), use_locking=False)


def _raw(variable):
    """The TF variable of a Keras or TF variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _handle(variable):
    """The resource handle of a Keras or TF variable."""
    return _raw(variable).handle


class LazySGD(keras.optimizers.SGD):
    """SGD (with optional momentum) that updates embedding rows lazily for IndexedSlices gradients."""

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        lr = tf.cast(learning_rate, variable.dtype)
        ids, grad = dedupe_rows(gradient)
        grad = tf.cast(grad, variable.dtype)
        if self.momentum == 0:
            self.assign_sub(variable, tf.IndexedSlices(lr * grad, ids))
            return
        m_var = self.momentums[self._get_variable_index(variable)]
        m = self.momentum * tf.gather(m_var.value, ids) - lr * grad
        self.assign(m_var, tf.IndexedSlices(m, ids))
        step = self.momentum * m - lr * grad if self.nesterov else m
        self.assign_add(variable, tf.IndexedSlices(step, ids))


class _LazyRows:
    """Mixin: dense gradients take the Keras optimizer's own step; an IndexedSlices gradient, de-duplicated,
    takes `_row_step` on the rows it holds, so untouched rows keep their weights and slots."""

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        ids, grad = dedupe_rows(gradient)
        self._row_step(variable, self._get_variable_index(variable), ids, tf.cast(grad, variable.dtype),
                       tf.cast(learning_rate, variable.dtype))


class LazyAdagrad(_LazyRows, keras.optimizers.Adagrad):
    """Adagrad (Duchi, Hazan & Singer, 2011) that updates embedding rows lazily for IndexedSlices gradients:
    acc += g², w −= lr·g / √(acc + ε) on the rows present (Keras' Adagrad on dense gradients)."""

    def _row_step(self, variable, index, ids, grad, lr):
        acc = tf.gather(self._accumulators[index].value, ids) + tf.square(grad)
        self.assign(self._accumulators[index], tf.IndexedSlices(acc, ids))
        self.assign_sub(variable, tf.IndexedSlices(lr * grad / tf.sqrt(acc + self.epsilon), ids))


class LazyRMSprop(_LazyRows, keras.optimizers.RMSprop):
    """RMSprop (Tieleman & Hinton, 2012), optionally centered and with momentum, that updates embedding rows
    lazily for IndexedSlices gradients (Keras' RMSprop on dense gradients):
    v = ρv + (1−ρ)g², [ḡ = ρḡ + (1−ρ)g], Δ = lr·g / √(v [− ḡ²] + ε), [m = μm + Δ], w −= m or Δ."""

    def _row_step(self, variable, index, ids, grad, lr):
        velocity = self.rho * tf.gather(self._velocities[index].value, ids) + (1 - self.rho) * tf.square(grad)
        self.assign(self._velocities[index], tf.IndexedSlices(velocity, ids))
        denominator = velocity + self.epsilon
        if self.centered:
            average = (self.rho * tf.gather(self._average_gradients[index].value, ids)
                       + (1 - self.rho) * grad)
            self.assign(self._average_gradients[index], tf.IndexedSlices(average, ids))
            denominator -= tf.square(average)
        increment = lr * grad / tf.sqrt(denominator)
        if self.momentum > 0:
            increment = self.momentum * tf.gather(self._momentums[index].value, ids) + increment
            self.assign(self._momentums[index], tf.IndexedSlices(increment, ids))
        self.assign_sub(variable, tf.IndexedSlices(increment, ids))


class LazyAdadelta(_LazyRows, keras.optimizers.Adadelta):
    """Adadelta (Zeiler, 2012) that updates embedding rows lazily for IndexedSlices gradients (Keras' Adadelta
    on dense gradients): E[g²] = ρE[g²] + (1−ρ)g², Δ = −√(E[Δ²] + ε) / √(E[g²] + ε) · g,
    E[Δ²] = ρE[Δ²] + (1−ρ)Δ², w += lr·Δ."""

    def _row_step(self, variable, index, ids, grad, lr):
        grads_var, deltas_var = self._accumulated_grads[index], self._accumulated_delta_vars[index]
        grads = self.rho * tf.gather(grads_var.value, ids) + (1 - self.rho) * tf.square(grad)
        deltas = tf.gather(deltas_var.value, ids)
        delta = -tf.sqrt(deltas + self.epsilon) / tf.sqrt(grads + self.epsilon) * grad
        self.assign(grads_var, tf.IndexedSlices(grads, ids))
        self.assign(deltas_var, tf.IndexedSlices(self.rho * deltas + (1 - self.rho) * tf.square(delta), ids))
        self.assign_add(variable, tf.IndexedSlices(lr * delta, ids))
