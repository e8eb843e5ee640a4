"""The served ensemble's combination (`tfxc.export.ensemble`) ranks as evaluation's NumPy one (`tfxc.eval.ensemble`)."""

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.eval.ensemble import METHODS, combine
from tfxc.export.ensemble import combine_top_k


def random_lists(rng, rows, widths, num_labels):
    """Top-k lists as models give them: distinct ids per row, scores descending, some rows padded with -1."""
    scores_list, ids_list = [], []
    for width in widths:
        ids = np.stack([rng.choice(num_labels, width, replace=False) for _ in range(rows)]).astype(np.int64)
        scores = -np.sort(-rng.normal(size=(rows, width)), axis=1).astype(np.float32)
        short = rng.random(rows) < 0.3  # a narrow beam's rows: the tail of the list is padding
        cut = rng.integers(0, width + 1, size=rows)
        pad = short[:, None] & (np.arange(width)[None, :] >= cut[:, None])
        ids[pad] = -1
        scores[pad] = -np.inf
        scores_list.append(scores)
        ids_list.append(ids)
    return scores_list, ids_list


@pytest.mark.parametrize("method", METHODS)
def test_the_graph_combination_equals_numpy(method):
    rng = np.random.default_rng(3)
    # Few labels, so the lists share most of them (the sums matter); widths differ between models.
    scores_list, ids_list = random_lists(rng, rows=40, widths=(6, 9, 4), num_labels=12)
    if method == "log_average":  # probabilities, as the models this method is for give
        scores_list = [np.where(np.isfinite(s), 1 / (1 + np.exp(-s)), 0).astype(np.float32) for s in scores_list]
    for k in (1, 5, 12, 20):
        want_scores, want_ids = combine(scores_list, ids_list, method, k)
        scores, ids = combine_top_k([tf.constant(s) for s in scores_list], [tf.constant(i) for i in ids_list],
                                    method, tf.constant(k))
        np.testing.assert_array_equal(ids.numpy(), want_ids, err_msg=f"{method} k={k}")
        np.testing.assert_allclose(scores.numpy(), want_scores, rtol=1e-6, err_msg=f"{method} k={k}")


def test_no_rows_and_a_row_without_labels():
    empty = [tf.zeros([0, 3], tf.float32)] * 2, [tf.zeros([0, 3], tf.int64)] * 2
    scores, ids = combine_top_k(*empty, "rank_average", 4)
    assert scores.shape == (0, 4) and ids.shape == (0, 4)
    scores, ids = combine_top_k([tf.constant([[-np.inf, -np.inf]], tf.float32)] * 2,
                                [tf.constant([[-1, -1]], tf.int64)] * 2, "softmax_average", 3)
    np.testing.assert_array_equal(ids.numpy(), [[-1, -1, -1]])
    assert np.all(np.isneginf(scores.numpy()))
