"""One-vs-all and softmax heads through the shared head harness (the dense references are in tests/models)."""

import pytest
from head_harness import HARNESS_TIME, run_head_test

# The whole head harness takes 10-30 s a head: the default suite runs softmax's.
SLOW = pytest.mark.slow(reason=HARNESS_TIME)


@pytest.mark.parametrize("head", [pytest.param({"name": "one_vs_all", "propensity_weight": 0.5}, marks=SLOW),
                                  {"name": "softmax", "label_smoothing": 0.1},
                                  pytest.param({"name": "softmax", "multi_label_loss": "decoupled",
                                                "propensity_weight": 0.5}, marks=SLOW),
                                  # Logit adjustment changes the loss alone (tests/models checks it): slow.
                                  pytest.param({"name": "softmax", "label_smoothing": 0.1, "logit_adjustment": 0.5},
                                               marks=SLOW)],
                         ids=["one_vs_all", "softmax", "softmax_decoupled", "softmax_logit_adjusted"])
def test_head_contract(head, tmp_path):
    run_head_test(tmp_path, head)


def test_propensity_weights_favour_rare_labels_and_keep_the_loss_scale():
    import numpy as np

    from tfxc.heads.label_priors import positive_label_weights

    freq = np.array([1000, 100, 10, 1, 0])
    w = positive_label_weights(freq, num_points=2000, power=1.0)
    assert np.all(np.diff(w) > 0)  # the rarer, the heavier
    np.testing.assert_allclose(np.sum(w * freq) / freq.sum(), 1.0, rtol=1e-6)
    half = positive_label_weights(freq, num_points=2000, power=0.5)
    assert half[3] / half[0] == pytest.approx(np.sqrt(w[3] / w[0]), rel=1e-5)


@pytest.mark.parametrize("name", ["one_vs_all", "softmax"])
def test_weighted_positives_match_the_written_out_loss(name):
    import numpy as np

    from tfxc._tf import tf
    from tfxc.heads.dense import OneVsAllHead, SoftmaxHead

    weights = np.array([0.5, 1.0, 2.0, 4.0], np.float32)
    head = (OneVsAllHead if name == "one_vs_all" else SoftmaxHead)(4, label_weights=weights)
    head.build((None, 3))
    logits = tf.constant([[0.3, -1.0, 2.0, 0.5], [1.0, 0.0, -0.5, 0.2]])
    labels = tf.ragged.constant([[0, 3], [2]], tf.int64)
    got = head.per_example_loss(logits, labels).numpy()
    z, y = logits.numpy(), [[0, 3], [2]]
    if name == "one_vs_all":
        log_sig = -np.log1p(np.exp(-z))
        log_not = -np.log1p(np.exp(z))
        want = [-(sum(log_not[b, l] for l in range(4) if l not in y[b]) + sum(weights[l] * log_sig[b, l] for l in y[b]))
                for b in range(2)]
    else:
        log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        want = [-sum(weights[l] * log_softmax[b, l] for l in y[b]) / sum(weights[l] for l in y[b]) for b in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def _decoupled_reference(z, y, weights=None, smoothing=0.0):
    """Each positive against the row's negatives, a (weighted) mean over the row's positives, in NumPy."""
    import numpy as np

    out = []
    for b, labels in enumerate(y):
        if not labels:
            out.append(0.0)
            continue
        negatives = [j for j in range(z.shape[1]) if j not in labels]
        terms, w = [], []
        for l in labels:
            terms.append(-(z[b, l] - np.log(np.exp(z[b, l]) + np.exp(z[b, negatives]).sum())))
            w.append(1.0 if weights is None else weights[l])
        loss = (1 - smoothing) * np.dot(w, terms) / np.sum(w)
        lse = np.log(np.exp(z[b]).sum())
        out.append(loss + smoothing * (lse - z[b].mean()))
    return out


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_decoupled_softmax_matches_the_written_out_loss(weighted, smoothing):
    import numpy as np

    from tfxc._tf import tf
    from tfxc.heads.dense import SoftmaxHead

    weights = np.array([0.5, 1.0, 2.0, 4.0, 1.5], np.float32) if weighted else None
    head = SoftmaxHead(5, label_weights=weights, label_smoothing=smoothing, multi_label_loss="decoupled")
    head.build((None, 3))
    z = np.array([[0.3, -1.0, 2.0, 0.5, 0.0], [1.0, 0.0, -0.5, 0.2, 3.0], [0.1, 0.2, 0.3, 0.4, 0.5]], np.float32)
    y = [[0, 3, 4], [2], []]
    got = head.per_example_loss(tf.constant(z), tf.ragged.constant(y, tf.int64, ragged_rank=1)).numpy()
    np.testing.assert_allclose(got, _decoupled_reference(z, y, weights, smoothing), rtol=1e-5, atol=1e-6)


def test_decoupled_softmax_lets_positives_apart_and_stays_finite():
    """Positives do not compete: a row's loss does not change when one positive rises far above another
    (the normalised target would), a row whose every label is positive costs 0 with a zero gradient,
    and one label per row gives the usual cross-entropy."""
    import numpy as np

    from tfxc._tf import tf
    from tfxc.heads.classification_losses import decoupled_softmax_cross_entropy, softmax_cross_entropy

    labels = tf.ragged.constant([[0, 1]], tf.int64)
    close, apart = tf.constant([[5.0, 5.0, 0.0, 0.0]]), tf.constant([[40.0, 5.0, 0.0, 0.0]])
    assert decoupled_softmax_cross_entropy(apart, labels).numpy()[0] < decoupled_softmax_cross_entropy(
        close, labels).numpy()[0]
    assert softmax_cross_entropy(apart, labels).numpy()[0] > softmax_cross_entropy(close, labels).numpy()[0]

    every = tf.Variable([[3.0, -2.0, 50.0]])
    with tf.GradientTape() as tape:
        loss = decoupled_softmax_cross_entropy(every, tf.ragged.constant([[0, 1, 2]], tf.int64))
    grad = tape.gradient(loss, every).numpy()
    np.testing.assert_allclose(loss.numpy(), [0.0], atol=1e-6)
    assert np.all(np.isfinite(grad)) and np.allclose(grad, 0.0)

    z = tf.constant([[0.3, -1.0, 2.0], [1.0, 0.0, -0.5]])
    one = tf.ragged.constant([[2], [0]], tf.int64)
    np.testing.assert_allclose(decoupled_softmax_cross_entropy(z, one).numpy(), softmax_cross_entropy(z, one).numpy(),
                               rtol=1e-6)


def test_unknown_multi_label_loss_is_refused():
    from tfxc.errors import ConfigError
    from tfxc.heads.dense import SoftmaxHeadConfig

    with pytest.raises(ConfigError, match="multi_label_loss.*decoupled"):
        SoftmaxHeadConfig(multi_label_loss="pal").validate("model.head")


def test_logit_adjustment_ranks_by_the_logits_minus_tau_log_prior_and_leaves_the_loss():
    """top_k of a head with logit adjustment τ equals a NumPy ranking of z − τ·log π (π the add-one smoothed
    label shares), in one block and in several; its scores are the softmax of the adjusted logits; the
    loss is the unadjusted head's."""
    import numpy as np

    from tfxc._tf import tf
    from tfxc.heads import top_k
    from tfxc.heads.dense import SoftmaxHead
    from tfxc.heads.label_priors import prior_adjustment

    freq = np.array([500, 120, 30, 8, 2, 0], np.float64)
    adjustment = prior_adjustment(freq, 0.5)
    prior = (freq + 1) / (freq.sum() + freq.size)
    np.testing.assert_allclose(adjustment, -0.5 * np.log(prior), rtol=1e-6)
    assert np.all(np.diff(adjustment) > 0)  # the rarer, the larger the lift

    rng = np.random.default_rng(0)
    h = rng.normal(size=(7, 4)).astype(np.float32)
    plain = SoftmaxHead(6, label_smoothing=0.1)
    plain.build((None, 4))
    adjusted = SoftmaxHead(6, label_smoothing=0.1, logit_adjustment=adjustment)
    adjusted.build((None, 4))
    for mine, theirs in zip(adjusted.trainable_variables, plain.trainable_variables):
        mine.assign(theirs)
    z = plain(tf.constant(h)).numpy()
    want = z + adjustment
    want_ids = np.argsort(-want, axis=1, kind="stable")[:, :3]
    want_scores = np.exp(want - np.log(np.exp(want).sum(axis=1, keepdims=True)))
    for chunk in (None, 4):  # one block of labels, and blocks of 4 merged
        old = top_k.LABEL_CHUNK
        top_k.LABEL_CHUNK = chunk or old
        try:
            scores, ids = adjusted.top_k(tf.constant(h), 3)
        finally:
            top_k.LABEL_CHUNK = old
        np.testing.assert_array_equal(ids.numpy(), want_ids)
        np.testing.assert_allclose(scores.numpy(), np.take_along_axis(want_scores, want_ids, 1), rtol=1e-5)
    # The unadjusted ranking differs on these rows (the adjustment moves rare labels up), the loss does not.
    assert not np.array_equal(plain.top_k(tf.constant(h), 3)[1].numpy(), want_ids)
    labels = tf.ragged.constant([[0], [1], [2], [3], [4], [5], [0, 2]], tf.int64)
    np.testing.assert_allclose(adjusted.per_example_loss(tf.constant(z), labels).numpy(),
                               plain.per_example_loss(tf.constant(z), labels).numpy())


def test_logit_adjustment_outside_its_range_is_refused():
    from tfxc.errors import ConfigError
    from tfxc.heads.dense import SoftmaxHeadConfig

    with pytest.raises(ConfigError, match="logit_adjustment"):
        SoftmaxHeadConfig(logit_adjustment=-0.5).validate("model.head")
