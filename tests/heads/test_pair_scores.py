"""`tfxc.heads.pair_scores`: the compiled pair op has the values and gradients of the TensorFlow ops it
replaces, its table gradients are row-sparse, and the label tree's loss and gradients are the same through it."""

import numpy as np
import pytest
import scipy.sparse

from tfxc._tf import tf
from tfxc.heads.label_tree import LabelTreeHead
from tfxc.heads.label_tree.ops import sparse_node_logits
from tfxc.heads.pair_scores import pair_logits, sparse_pair_logits, sparse_pair_scores


def tensors(seed=0, rows=6, width=5, dim=7, nodes=11, span=4, row_width=6, features=30):
    rng = np.random.default_rng(seed)
    ids = np.sort(np.stack([rng.choice(features, row_width, replace=False) for _ in range(rows)]), 1)
    support = rng.integers(-1, features, size=(nodes, span))
    support[:, 0] = ids[0, 0]
    support = -np.sort(-support, axis=1)  # −1 padding last, as the kernel's scan expects
    return dict(h=tf.constant(rng.normal(size=(rows, dim)), tf.float32),
                kernel=tf.Variable(rng.normal(size=(nodes, dim)), dtype=tf.float32),
                bias=tf.Variable(rng.normal(size=nodes), dtype=tf.float32),
                weights=tf.Variable(rng.normal(size=(nodes, span)), dtype=tf.float32),
                nodes=tf.constant(rng.integers(-1, nodes, size=(rows, width)), tf.int32),
                ids=tf.constant(ids, tf.int32), values=tf.constant(rng.random((rows, row_width)), tf.float32),
                support=tf.constant(support, tf.int32), features=features)


def reference(t):
    """The TensorFlow ops the op replaces: gathers, an einsum and `sparse_node_logits`."""
    safe = tf.maximum(t["nodes"], 0)
    dense = tf.einsum("bd,bcd->bc", t["h"], tf.gather(t["kernel"], safe)) + tf.gather(t["bias"], safe)
    term = sparse_node_logits(t["ids"], t["values"], t["support"], t["weights"], t["nodes"], t["features"])
    return tf.where(t["nodes"] >= 0, dense + term, 0.0)


@pytest.mark.parametrize("compiled", [True, False], ids=["tf.function", "eager"])
def test_values_and_gradients_match_the_tensorflow_ops(compiled):
    t = tensors()
    upstream = tf.random.stateless_normal(t["nodes"].shape, seed=[1, 2])
    sparse = (t["ids"], t["values"], t["support"], t["weights"])

    def both():
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(t["h"])
            ours = pair_logits(t["h"], t["kernel"], t["bias"], t["nodes"], sparse, t["features"])
            theirs = reference(t)
            loss_ours, loss_theirs = (tf.reduce_sum(tf.where(t["nodes"] >= 0, z, 0.0) * upstream)
                                      for z in (ours, theirs))
        sources = [t["h"], t["kernel"], t["bias"], t["weights"]]
        return ours, theirs, tape.gradient(loss_ours, sources), tape.gradient(loss_theirs, sources)

    ours, theirs, grads_ours, grads_theirs = (tf.function(both) if compiled else both)()
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)
    for mine, want in zip(grads_ours, grads_theirs):
        np.testing.assert_allclose(tf.convert_to_tensor(mine).numpy(), tf.convert_to_tensor(want).numpy(),
                                   rtol=1e-5, atol=1e-5)
    distinct = np.unique(t["nodes"].numpy()[t["nodes"].numpy() >= 0])
    for table_grad in grads_ours[1:]:  # one row per distinct node, ascending: the optimizer's fast path
        assert isinstance(table_grad, tf.IndexedSlices)
        np.testing.assert_array_equal(table_grad.indices.numpy(), distinct)


def test_the_sparse_term_alone_and_without_bias():
    t = tensors(seed=4)
    sparse = (t["ids"], t["values"], t["support"], t["weights"])
    term = sparse_node_logits(t["ids"], t["values"], t["support"], t["weights"], t["nodes"], t["features"])
    np.testing.assert_allclose(sparse_pair_logits(t["nodes"], sparse, t["features"]).numpy(), term.numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sparse_pair_scores(t["nodes"], sparse, t["features"]).numpy(), term.numpy(),
                               rtol=1e-5, atol=1e-6)
    plain = pair_logits(t["h"], t["kernel"], None, t["nodes"])
    safe = tf.maximum(t["nodes"], 0)
    want = tf.where(t["nodes"] >= 0, tf.einsum("bd,bcd->bc", t["h"], tf.gather(t["kernel"], safe)), 0.0)
    np.testing.assert_allclose(plain.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dense_level_max,negatives", [(0, "tfn"), (3, "tfn"), (0, "tfn+man")])
def test_the_label_tree_loss_and_gradients_are_the_same_through_the_kernels(dense_level_max, negatives, monkeypatch):
    # With `man` negatives the step's beam search scores its candidates' sparse terms in the kernel too.
    from tfxc.encoders.sparse_bow import SparseBowEncoder
    from tfxc.encoders.sparse_input import WithSparseInput
    from tfxc.heads.sparse_term import SparseTermSpec
    from tfxc.tree import LabelTree
    from tfxc.tree.support import node_feature_support

    tree = LabelTree.from_leaf_codes(np.arange(12) // 3, 4, nr_splits=2, min_codes=2)
    z = scipy.sparse.random(12, 20, density=0.4, random_state=1, format="csr")
    head = LabelTreeHead(tree, seed=1, negatives=negatives, loss="bce", dense_level_max=dense_level_max, beam_size=2,
                         sparse=SparseTermSpec(node_feature_support(tree, z, 3), max_nnz=8, num_features=20))
    encoder = WithSparseInput(SparseBowEncoder(num_features=20, embedding_dim=6, seed=2), 8)
    encoder.build()
    head.build((None, encoder.output_dim))
    for t in range(3):
        head.sparse_kernels[t].assign(tf.random.stateless_normal(head.sparse_kernels[t].shape, seed=[t, 8]))
    x = scipy.sparse.random(5, 20, density=0.3, random_state=3, format="csr", dtype=np.float32)
    batch = {"feat_idx": tf.RaggedTensor.from_row_splits(x.indices.astype(np.int64), x.indptr.astype(np.int64)),
             "feat_val": tf.RaggedTensor.from_row_splits(x.data, x.indptr.astype(np.int64))}
    labels = tf.ragged.constant([[0], [4, 5], [11], [3, 8], []], tf.int64)
    variables = head.trainable_variables + encoder.trainable_variables

    def loss_and_grads():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(head.per_example_loss(encoder(batch), labels))
        return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

    monkeypatch.setattr(LabelTreeHead, "use_pair_kernel", True)
    loss, grads = tf.function(loss_and_grads)()
    monkeypatch.setattr(LabelTreeHead, "use_pair_kernel", False)
    want_loss, want_grads = tf.function(loss_and_grads)()
    assert float(loss) == pytest.approx(float(want_loss), rel=1e-5)
    for mine, want in zip(grads, want_grads):
        np.testing.assert_allclose(mine.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
