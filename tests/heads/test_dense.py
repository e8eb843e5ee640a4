"""One-vs-all and softmax heads through the shared head harness (the dense references are in tests/models)."""

import pytest
from head_harness import run_head_test


@pytest.mark.parametrize("head", [{"name": "one_vs_all", "propensity_weight": 0.5},
                                  {"name": "softmax", "label_smoothing": 0.1}],
                         ids=lambda h: h["name"])
def test_head_contract(head, tmp_path):
    run_head_test(tmp_path, head)


def test_propensity_weights_favour_rare_labels_and_keep_the_loss_scale():
    import numpy as np

    from tfxc.heads.dense import positive_label_weights

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
