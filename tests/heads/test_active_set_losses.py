"""The exact heads' active-set losses: equal to the full loss (and its gradient) when the set holds every label,
the logQ weights acting on sampled negatives only, and the sparse term scored on a subset of labels."""

import numpy as np
import pytest
import scipy.sparse

from tfxc._tf import tf
from tfxc.encoders.sparse_input import sparse_input_block
from tfxc.heads.active_set_losses import active_softmax_cross_entropy
from tfxc.heads.dense import OneVsAllHead, SoftmaxHead
from tfxc.heads.sparse_term import SparseTermSpec, inverted_index, scatter_sparse_logits, scatter_sparse_logits_at

L, DIM, NNZ, SLOTS, FEATURES = 12, 5, 6, 3, 20
LABELS = [[0, 3], [7], [], [2, 5, 11], [3]]  # a row without labels, a label on two rows


def sparse_block(rows: int, seed: int = 1):
    x = scipy.sparse.random(rows, FEATURES, density=0.3, random_state=seed, format="csr", dtype=np.float32)
    ids, values = sparse_input_block(
        tf.RaggedTensor.from_row_splits(x.indices.astype(np.int64), x.indptr.astype(np.int64)),
        tf.RaggedTensor.from_row_splits(x.data, x.indptr.astype(np.int64)), NNZ)
    return ids, values


def make_head(kind: str, sparse: bool, weighted: bool):
    rng = np.random.default_rng(0)
    weights = rng.uniform(0.5, 2.0, L).astype(np.float32) if weighted else None
    support = None
    if sparse:
        table = np.stack([rng.choice(FEATURES, SLOTS, replace=False) for _ in range(L)]).astype(np.int32)
        support = SparseTermSpec(table, NNZ, rng.standard_normal((L, SLOTS)).astype(np.float32), FEATURES)
    if kind == "one_vs_all":
        head = OneVsAllHead(L, label_weights=weights, sparse=support)
    else:
        head = SoftmaxHead(L, label_weights=weights, sparse=support, multi_label_loss=kind,
                           label_smoothing=0.1 if weighted else 0.0)
    width = DIM + (2 * NNZ if sparse else 0)
    head.build((None, width))
    head.kernel.assign(rng.standard_normal((DIM, L)).astype(np.float32))
    head.bias.assign(rng.standard_normal(L).astype(np.float32))
    if sparse:
        head.sparse_term.kernel.assign(rng.standard_normal((L, SLOTS)).astype(np.float32))
    h = tf.constant(rng.standard_normal((len(LABELS), DIM)).astype(np.float32))
    if sparse:
        ids, values = sparse_block(len(LABELS))
        h = tf.concat([h, tf.cast(ids, tf.float32), values], axis=1)  # `WithSparseInput`'s layout
    return head, h


FORMS = [("normalised", False, False), ("normalised", True, True), ("decoupled", False, True),
         ("decoupled", True, False), ("one_vs_all", False, False), ("one_vs_all", True, True)]


@pytest.mark.parametrize("kind,sparse,weighted", FORMS,
                         ids=[f"{k}{'-sparse' if s else ''}{'-weighted-smoothed' if w else ''}" for k, s, w in FORMS])
def test_the_active_set_loss_and_its_gradient_equal_the_full_ones_when_every_label_is_active(kind, sparse, weighted):
    head, features = make_head(kind, sparse, weighted)
    labels = tf.ragged.constant(LABELS, tf.int64, row_splits_dtype=tf.int64)
    active = tf.constant(np.random.default_rng(3).permutation(L).astype(np.int32))  # any order
    variables = head.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        full = head.per_example_loss(head(features), labels)
        estimated = head.active_set_loss(features, labels, active, tf.zeros([L]))
    np.testing.assert_allclose(estimated.numpy(), full.numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(tape.gradient(full, variables + [features]), tape.gradient(estimated, variables + [features])):
        np.testing.assert_allclose(tf.convert_to_tensor(b).numpy(), tf.convert_to_tensor(a).numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_log_weights_scale_sampled_negatives_and_leave_positives_alone():
    z = np.array([[1.0, 0.5, -0.3, 2.0], [0.2, -1.0, 0.7, 0.1]], np.float32)
    columns = tf.ragged.constant([[0], [2, 3]], tf.int32)
    c = np.array([0.0, 0.0, np.log(4.0), np.log(4.0)], np.float32)  # columns 2, 3 sampled with q = 1/4
    got = active_softmax_cross_entropy(tf.constant(z), columns, tf.constant(c), num_labels=10).numpy()
    # Row 0: both sampled columns are negatives and count 4 times; row 1: its positives (2, 3) count once.
    lse0 = np.log(np.exp(z[0, 0]) + np.exp(z[0, 1]) + 4 * np.exp(z[0, 2]) + 4 * np.exp(z[0, 3]))
    lse1 = np.log(np.exp(z[1]).sum())
    np.testing.assert_allclose(got, [lse0 - z[0, 0], lse1 - (z[1, 2] + z[1, 3]) / 2], rtol=1e-6)


def test_a_positive_outside_the_active_set_is_left_out():
    z = tf.constant([[1.0, 0.5, -0.3]])
    columns = tf.ragged.constant([[1, -1]], tf.int32)  # the second positive was not in the set
    got = active_softmax_cross_entropy(z, columns, tf.zeros([3]), num_labels=3).numpy()
    np.testing.assert_allclose(got, [np.log(np.exp(z.numpy()).sum()) - 0.5], rtol=1e-6)


def test_the_sparse_term_of_a_subset_is_the_full_terms_columns():
    rng = np.random.default_rng(0)
    table = np.stack([rng.choice(FEATURES, SLOTS, replace=False) for _ in range(L)]).astype(np.int32)
    kernel = tf.constant(rng.standard_normal((L, SLOTS)).astype(np.float32))
    offsets, entries = (tf.constant(a) for a in inverted_index(table, FEATURES))
    ids, values = sparse_block(4)
    full = scatter_sparse_logits(ids, values, offsets, entries, kernel, 0, L).numpy()
    subset = np.array([9, 2, 4], np.int32)
    columns = np.full(L, -1, np.int32)
    columns[subset] = np.arange(3)
    got = scatter_sparse_logits_at(ids, values, offsets, entries, kernel, tf.constant(columns), 3).numpy()
    np.testing.assert_allclose(got, full[:, subset], rtol=1e-6)
