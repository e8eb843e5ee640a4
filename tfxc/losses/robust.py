"""Training tricks of the head's loss (algorithms.md §5.4): R-Drop and adversarial input perturbations.

Each returns the per-example loss whose gradient the step takes, float32 [B]; the
inner gradients they need (with respect to the input embeddings) come from a nested
tape and are constants for the outer one, as in the originals' two backward passes.

* R-Drop (Liang et al., 2021): two forward passes with independent dropout masks,
  ½(CE₁ + CE₂) + α · ½(KL(p₁‖p₂) + KL(p₂‖p₁)), the KL summed over the labels (softmax
  heads: categorical; one-vs-all heads: one Bernoulli per label).
* FGM (Miyato et al., 2017): loss(x) + loss(x + r), r = ε · g / ‖g‖, g = ∂loss/∂x.
* FGSM (Goodfellow et al., 2015, "Explaining and Harnessing Adversarial Examples"): the same with
  r = ε · sign(g), a step of ε in every coordinate (text_classifier's `fgsm`).
* PGD (Madry et al., 2018): K ascent steps r ← Π_ε(r + α · g/‖g‖), then loss(x) + loss(x + r_K).
* FreeLB (Zhu et al., 2020): δ₀ random, K steps of δ ← δ + α · g/‖g‖ (clipped to a norm
  of `max_norm` when > 0), the loss averaged over the K perturbed passes.
* AWP (Wu et al., 2020, "Adversarial Weight Perturbation"): loss(w) + loss(w + δ) with
  δ = η · g/‖g‖ · ‖w‖ per weight matrix (kernels and embedding tables), clipped to ±ε|w|;
  the perturbed pass reads the weights through a Keras `StatelessScope`, so no variable is
  written (nothing to restore, nothing for replicas to race on).

x is the encoder's input embeddings (`Encoder.embed`). Norms are taken per example
(over its tokens and embedding dimensions), so a replica sees the same perturbation
for a row whatever else is in its batch, and Mirrored training matches one device.
"""

from __future__ import annotations

from tfxc._tf import tf

ADVERSARIES = ("", "fgm", "fgsm", "pgd", "freelb")


def _flat(x):
    """(values [N, ...], row of each value int64 [N] or None) of dense [B, ...] or ragged [B, None, E] x."""
    if isinstance(x, tf.RaggedTensor):
        return x.values, x.value_rowids()
    return x, None


def _row_norms(g, rows, nrows):
    """L2 norm of each example's part of g: float32 [N] broadcastable against g's values."""
    squares = tf.reduce_sum(tf.reshape(tf.square(g), [tf.shape(g)[0], -1]), axis=1)
    if rows is None:
        return tf.sqrt(squares)
    return tf.gather(tf.sqrt(tf.math.unsorted_segment_sum(squares, rows, nrows)), rows)


def _normalised(g, rows, nrows):
    norms = _row_norms(g, rows, nrows)
    return g / tf.reshape(norms + 1e-12, [-1] + [1] * (len(g.shape) - 1))


def _clip_rows(delta, rows, nrows, max_norm: float):
    norms = _row_norms(delta, rows, nrows)
    scale = tf.minimum(1.0, max_norm / (norms + 1e-12))
    return delta * tf.reshape(scale, [-1] + [1] * (len(delta.shape) - 1))


def adversarial_loss(model, batch, *, method: str, epsilon: float, alpha: float, steps: int,
                     max_norm: float = 0.0, seed: int = 0, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
    """(loss to differentiate float32 [B], the clean loss float32 [B]) of FGM, FGSM, PGD or FreeLB (module
    docstring).

    Args:
      model: an `XCModel` whose encoder `supports_embedding_perturbation`.
      batch: the preprocessed batch dict.
      method: fgm, fgsm, pgd or freelb.
      epsilon: FGM's step / FGSM's step per coordinate / PGD's radius; FreeLB's initial magnitude.
      alpha: PGD's and FreeLB's step size.
      steps: K (PGD, FreeLB).
      max_norm: FreeLB's bound on each example's ‖δ‖ (0 = none).
      seed: FreeLB's random start (stateless, from the seed and the batch's row ids).
    """
    encoder, head, labels = model.encoder, model.head, batch["labels"]

    def loss_at(embedded):
        return head.per_example_loss(head(encoder.from_embedded(embedded, batch, training), training=training), labels)

    embedded = encoder.embed(batch, training)
    values, rows = _flat(embedded)
    nrows = tf.shape(labels.row_splits, out_type=tf.int64)[0] - 1

    def with_values(v):
        return embedded.with_values(v) if isinstance(embedded, tf.RaggedTensor) else v

    def grad_at(delta):
        """(per-example loss at values + delta, its gradient with respect to delta, a constant)."""
        with tf.GradientTape() as tape:
            tape.watch(delta)
            loss = loss_at(with_values(values + delta))
            total = tf.reduce_sum(loss)  # rows are independent: its gradient holds each row's own
        return loss, tf.stop_gradient(tape.gradient(total, delta))

    if method == "freelb":
        row_ids = tf.cast(batch["row_id"], tf.int64)
        noise = tf.random.stateless_uniform(tf.shape(values), seed=[seed, tf.reduce_sum(row_ids) % (2 ** 31)],
                                            minval=-1.0, maxval=1.0)
        delta = tf.stop_gradient(_normalised(noise, rows, nrows) * epsilon)
        total, clean = 0.0, None
        for _ in range(steps):
            loss, g = grad_at(delta)
            clean = loss if clean is None else clean
            total += loss / steps
            delta = delta + alpha * _normalised(g, rows, nrows)
            if max_norm:
                delta = _clip_rows(delta, rows, nrows, max_norm)
            delta = tf.stop_gradient(delta)
        return total, clean

    zero = tf.zeros_like(values)
    clean, g = grad_at(zero)
    if method == "fgm":
        delta = epsilon * _normalised(g, rows, nrows)
    elif method == "fgsm":
        delta = epsilon * tf.sign(g)
    elif method == "pgd":
        delta = zero
        for step in range(steps):
            if step:
                _, g = grad_at(delta)
            delta = _clip_rows(delta + alpha * _normalised(g, rows, nrows), rows, nrows, epsilon)
    else:
        raise ValueError(f"unknown adversarial method {method!r}")
    return clean + loss_at(with_values(values + tf.stop_gradient(delta))), clean


def awp_loss(model, batch, *, learning_rate: float, epsilon: float, active=True,
             training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
    """(loss(w) + loss(w + δ), loss(w)), float32 [B] each (module docstring; `active` False: loss(w) twice over)."""
    import keras

    labels = batch["labels"]
    weights = [v for v in model.trainable_variables if v.name in ("kernel", "embeddings")]
    with tf.GradientTape() as tape:
        clean = model.head.per_example_loss(model(batch, training=training), labels)
        total = tf.reduce_sum(clean)
    grads = tape.gradient(total, weights)

    def perturbed_loss():
        perturbed = []
        for variable, grad in zip(weights, grads):
            w = tf.convert_to_tensor(variable)
            g = tf.convert_to_tensor(grad) if grad is not None else tf.zeros_like(w)
            delta = learning_rate * g / (tf.norm(g) + 1e-12) * (tf.norm(w) + 1e-12)
            bound = epsilon * tf.abs(w)
            perturbed.append(w + tf.stop_gradient(tf.clip_by_value(delta, -bound, bound)))
        with keras.StatelessScope(state_mapping=list(zip(weights, perturbed))):
            return model.head.per_example_loss(model(batch, training=training), labels)

    adversarial = tf.cond(tf.convert_to_tensor(active), perturbed_loss, lambda: tf.zeros_like(clean))
    return clean + adversarial, clean


def multisample_dropout_loss(model, batch, *, rounds: int, rate: float, training: bool = True) -> tf.Tensor:
    """float32 [B]: the head's loss of the mean logits of `rounds` dropout copies of the features (Inoue, 2019).

    The masks are stateless, drawn from the batch's row ids and the round, so a resumed run
    draws the masks an uninterrupted one did.
    """
    features = model.encoder(batch, training=training)
    base = tf.reduce_sum(tf.cast(batch["row_id"], tf.int64)) % (2 ** 31)
    logits = []
    for r in range(rounds):
        keep = tf.random.stateless_uniform(tf.shape(features), seed=tf.stack([base, tf.constant(r, tf.int64)])) >= rate
        logits.append(model.head(tf.where(keep, features / (1.0 - rate), 0.0), training=training))
    return model.head.per_example_loss(tf.add_n(logits) / rounds, batch["labels"])


def _symmetric_kl(logits_a, logits_b, kind: str) -> tf.Tensor:
    """½(KL(a‖b) + KL(b‖a)) per row, float32 [B], over a softmax ("categorical") or per-label sigmoids."""
    if kind == "categorical":
        log_a, log_b = tf.nn.log_softmax(logits_a, axis=-1), tf.nn.log_softmax(logits_b, axis=-1)
        return 0.5 * tf.reduce_sum((tf.exp(log_a) - tf.exp(log_b)) * (log_a - log_b), axis=-1)
    # Bernoulli per label: KL(a‖b) + KL(b‖a) = (p_a − p_b)(logit_a − logit_b).
    return 0.5 * tf.reduce_sum((tf.sigmoid(logits_a) - tf.sigmoid(logits_b)) * (logits_a - logits_b), axis=-1)


def r_drop_loss(model, batch, *, alpha: float, kind: str, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
    """(½(L₁ + L₂) + α · symmetric KL, float32 [B]; L₁) from two passes with independent dropout masks."""
    labels = batch["labels"]
    logits_1, logits_2 = model(batch, training=training), model(batch, training=training)
    loss_1 = model.head.per_example_loss(logits_1, labels)
    loss_2 = model.head.per_example_loss(logits_2, labels)
    return 0.5 * (loss_1 + loss_2) + alpha * _symmetric_kl(logits_1, logits_2, kind), loss_1
