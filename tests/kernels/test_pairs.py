"""The label tree's pair kernels (`tfxc.kernels.pairs`): the compiled loops against the NumPy versions and
against plain dense arithmetic."""

import numpy as np
import pytest

from tfxc.kernels import pairs

needs_compiled = pytest.mark.skipif(not pairs.HAVE_COMPILED_PAIRS, reason="the pair kernels were not built")


def problem(seed=0, rows=40, width=9, dim=19, nodes=23, span=5, row_width=7, features=50):
    rng = np.random.default_rng(seed)
    ids = np.sort(np.stack([rng.choice(features, row_width, replace=False) for _ in range(rows)]), 1)
    ids[:, -2:] = features + 3  # padding ids sort after every feature, with value 0
    values = rng.random((rows, row_width)).astype(np.float32)
    values[:, -2:] = 0
    support = rng.integers(-1, features, size=(nodes, span)).astype(np.int32)
    support[:, 0] = ids[0, 0]  # a feature row 0 has, so some lookups hit
    support = -np.sort(-support, axis=1)  # a node's −1 padding comes last, as `tfxc.tree.support` writes it
    active = rng.integers(-1, nodes, size=(rows, width)).astype(np.int32)
    return dict(h=rng.normal(size=(rows, dim)).astype(np.float32),
                table=rng.normal(size=(nodes, dim)).astype(np.float32),
                weights=rng.normal(size=(nodes, span)).astype(np.float32),
                grads=rng.normal(size=(rows, width)).astype(np.float32),
                ids=ids.astype(np.int32), values=values, support=support, nodes=active, features=features)


def dense_x(p):
    x = np.zeros((p["ids"].shape[0], p["features"] + 4), np.float32)
    np.put_along_axis(x, p["ids"], p["values"], 1)
    return x[:, :p["features"]]


def test_group_by_node_lists_each_nodes_slots_in_order():
    nodes = np.array([[3, -1, 0], [3, 1, -1]], np.int32)
    distinct, order, starts = pairs.group_by_node(nodes)
    np.testing.assert_array_equal(distinct, [0, 1, 3])
    np.testing.assert_array_equal(order, [2, 4, 0, 3])
    np.testing.assert_array_equal(starts, [0, 1, 2, 4])
    empty = pairs.group_by_node(np.full((2, 2), -1, np.int32))
    assert [a.size for a in empty] == [0, 0, 1]


def test_products_and_gradients_match_dense_arithmetic():
    p = problem()
    valid = p["nodes"] >= 0
    safe = np.where(valid, p["nodes"], 0)
    x = dense_x(p)
    # Dense references: every pair's products and each table's gradient as a scatter-add over the pairs.
    want = np.where(valid, np.einsum("bd,bcd->bc", p["h"], p["table"][safe]), 0)
    looked = np.where((p["support"][safe] >= 0) & valid[:, :, None],
                      np.take_along_axis(x[:, None, :].repeat(safe.shape[1], 1),
                                         np.maximum(p["support"][safe], 0), 2), 0)
    want_sparse = np.einsum("bcs,bcs->bc", looked, p["weights"][safe])
    g = np.where(valid, p["grads"], 0)
    want_dh = np.einsum("bc,bcd->bd", g, p["table"][safe])
    want_dw = np.zeros_like(p["table"])
    np.add.at(want_dw, safe, g[:, :, None] * p["h"][:, None, :])
    want_du = np.zeros_like(p["weights"])
    np.add.at(want_du, safe, g[:, :, None] * looked)
    want_db = np.bincount(safe.ravel(), weights=g.ravel(), minlength=p["table"].shape[0])

    np.testing.assert_allclose(pairs.pair_dots(p["h"], p["table"], p["nodes"]), want, rtol=1e-5, atol=1e-5)
    for features in (p["features"], 0):  # a dense copy of each row, or a binary search in it
        term, found = pairs.pair_sparse_dots(p["ids"], p["values"], p["support"], p["weights"], p["nodes"], features)
        np.testing.assert_allclose(term, want_sparse, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(found, looked)
        alone, empty = pairs.pair_sparse_dots(p["ids"], p["values"], p["support"], p["weights"], p["nodes"], features,
                                              keep_looked=False)  # a beam search's scores
        np.testing.assert_array_equal(alone, term)
        assert empty.shape == (*p["nodes"].shape, 0)
    assert np.count_nonzero(looked) > 10
    dh, distinct, dw, db, du = pairs.pair_grads(p["grads"], p["h"], p["table"], p["nodes"], looked)
    np.testing.assert_array_equal(distinct, np.unique(p["nodes"][valid]))
    np.testing.assert_allclose(dh, want_dh, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, want_dw[distinct], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, want_db[distinct], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(du, want_du[distinct], rtol=1e-5, atol=1e-5)
    distinct_sparse, du_alone = pairs.pair_sparse_grads(p["grads"], looked, p["nodes"])
    np.testing.assert_array_equal(distinct_sparse, distinct)
    np.testing.assert_allclose(du_alone, du, rtol=1e-6)


@needs_compiled
def test_the_compiled_kernels_agree_with_numpy_and_not_with_the_thread_count(monkeypatch):
    p = problem(seed=3, rows=300, width=40, dim=64, nodes=500)
    args = (p["ids"], p["values"], p["support"], p["weights"], p["nodes"], p["features"])
    compiled = [pairs.pair_dots(p["h"], p["table"], p["nodes"]), *pairs.pair_sparse_dots(*args),
                *pairs.pair_grads(p["grads"], p["h"], p["table"], p["nodes"], pairs.pair_sparse_dots(*args)[1])]
    one_thread = [pairs.pair_dots(p["h"], p["table"], p["nodes"], num_threads=1),
                  *pairs.pair_sparse_dots(*args, num_threads=1),
                  *pairs.pair_grads(p["grads"], p["h"], p["table"], p["nodes"], compiled[2], num_threads=1)]
    for a, b in zip(compiled, one_thread):
        np.testing.assert_array_equal(a, b)  # each output element is summed by one thread, in one order
    monkeypatch.setattr(pairs, "_pairs", None)
    fallback = [pairs.pair_dots(p["h"], p["table"], p["nodes"]), *pairs.pair_sparse_dots(*args),
                *pairs.pair_grads(p["grads"], p["h"], p["table"], p["nodes"], compiled[2])]
    for a, b in zip(compiled, fallback):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
