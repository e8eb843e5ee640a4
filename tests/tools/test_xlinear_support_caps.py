"""tools/xlinear_support_caps.py: its NumPy beam search is PECOS's (exhaustive when the beam holds every node),
and a cap keeps each node's largest weights on its own level."""

from __future__ import annotations


import numpy as np
import scipy.sparse
from helpers import tool_module

from tfxc.tree import LabelTree
from tfxc.xr.xlinear import TreeLinear



def solution(rng, tree, features):
    support, weights = [], []
    for size in tree.sizes:
        s = np.sort(np.stack([rng.choice(features, 4, replace=False) for _ in range(size)]), 1).astype(np.int32)
        support.append(s)
        weights.append(rng.normal(size=s.shape).astype(np.float32))
    return TreeLinear([np.zeros((k, 0), np.float32) for k in tree.sizes],
                      [rng.normal(size=k).astype(np.float32) for k in tree.sizes], support, weights)


def test_a_beam_as_wide_as_the_tree_finds_the_best_paths():
    tool = tool_module("xlinear_support_caps")
    rng = np.random.default_rng(0)
    tree = LabelTree(parents=(np.array([0, 0, 1, 1], np.int32), np.array([0, 0, 1, 2, 2, 3, 3, 3], np.int32)),
                     top_size=2)
    model = solution(rng, tree, 12)
    x = scipy.sparse.csr_matrix(rng.random((5, 12)) * (rng.random((5, 12)) < 0.5))
    got = tool.beam_search(model, tree, x, beam=8, k=3)
    path = np.ones((5, 8))
    for level in range(tree.num_levels):
        logits = (x @ tool.level_weights(model, level, 12).T).toarray() + model.bias[level]
        path *= tool.l3_hinge(logits)[:, tree.ancestors(level)]
    np.testing.assert_array_equal(got, np.argsort(-path, axis=1, kind="stable")[:, :3])


def test_caps_keep_each_nodes_largest_weights_level_by_level():
    tool = tool_module("xlinear_support_caps")
    rng = np.random.default_rng(1)
    tree = LabelTree(parents=(np.array([0, 0, 1], np.int32),), top_size=2)
    model = solution(rng, tree, 20)
    cut = tool.capped(model, tool.parse_caps("0,2", tree.num_levels))
    np.testing.assert_array_equal(cut.support[0], model.support[0])
    assert cut.support[1].shape == (3, 2)
    for node in range(3):
        big = np.sort(np.abs(model.weights[1][node]))[-2:]
        np.testing.assert_allclose(np.sort(np.abs(cut.weights[1][node])), big)
        assert np.all(np.diff(cut.support[1][node]) > 0)  # features stay ascending
    assert tool.parse_caps("none", 3) == [0, 0, 0] and tool.parse_caps("4096", 2) == [4096, 4096]
