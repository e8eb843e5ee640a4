"""Mixed-radix label codes (algorithms.md §3.1), MHE's group sizing (§3.6) and the label orders."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.build_context import BuildContext
from tfxc.errors import ConfigError, DataError
from tfxc.heads.label_codes import (balanced_radices, build_label_order, check_group, decode_digits, encode_digits,
                                    inverse_permutation, load_or_build_label_order, tf_encode_digits)


@pytest.mark.parametrize("radices, code, digits", [([10, 10], 37, (3, 7)), ([4, 5, 5], 73, (2, 4, 3)),
                                                   ([13, 7187], 93430, (12, 7186))])
def test_the_spec_examples_encode_and_decode(radices, code, digits):
    assert tuple(encode_digits(code, radices)) == digits
    assert tuple(tf_encode_digits(tf.constant([code]), radices).numpy()[0]) == digits
    assert decode_digits(digits, radices) == code


def test_every_code_round_trips_and_the_order_is_most_significant_first():
    radices = [3, 4, 5]
    digits = encode_digits(np.arange(60), radices)
    assert np.array_equal(decode_digits(digits, radices), np.arange(60))
    # Lexicographic order of the digit tuples is the code order.
    assert [tuple(d) for d in digits] == sorted(tuple(d) for d in digits)


@pytest.mark.parametrize("labels, requested, expected", [
    (670091, 8400, (8377, 80)), (501070, 5630, (5630, 89)), (3956, 172, (172, 23)), (3956, 86, (86, 46)),
    (2812281, 8761, (8761, 321)), (13330, 155, (155, 86)), (13330, 310, (310, 43)), (30938, 499, (499, 62))])
def test_check_group_matches_the_mhe_vectors(labels, requested, expected):
    groups, size = check_group(labels, requested)
    assert (groups, size) == expected
    assert groups * size >= labels > (groups - 1) * size  # no group is empty


def test_balanced_radices_cover_the_labels_with_few_unused_codes():
    assert balanced_radices(30000, 2) == [174, 173]
    for labels, heads in [(30000, 2), (10440, 3), (97, 2), (2, 1), (670091, 3)]:
        radices = balanced_radices(labels, heads)
        assert len(radices) == heads and np.prod(radices) >= labels
        assert np.prod(radices) - labels < np.prod(radices) / min(radices)  # less than one leading block unused


def test_label_orders_are_permutations_and_persist(tmp_path):
    freq = np.array([5, 9, 0, 9, 1])
    context = BuildContext(num_features=3, num_labels=5, label_freq=freq, model_dir=str(tmp_path))
    assert build_label_order("id", context).tolist() == [0, 1, 2, 3, 4]
    order = build_label_order("frequency", context)
    assert order.tolist() == [1, 3, 0, 4, 2]  # most frequent first, ties by id
    assert inverse_permutation(order)[order].tolist() == [0, 1, 2, 3, 4]
    saved = load_or_build_label_order("frequency", context)
    # A later build (e.g. a resumed run whose counts changed) keeps the saved order.
    again = load_or_build_label_order("frequency", BuildContext(num_features=3, num_labels=5, label_freq=freq[::-1],
                                                                model_dir=str(tmp_path)))
    assert saved.tolist() == again.tolist() == order.tolist()
    np.save(tmp_path / "label_order.npy", np.array([0, 0, 1, 2, 3]))
    with pytest.raises(DataError, match="not a permutation"):
        load_or_build_label_order("frequency", context)
    with pytest.raises(ConfigError, match="train the model first"):
        build_label_order("tree", BuildContext(num_features=3, num_labels=5))


def test_tree_order_puts_labels_with_alike_features_in_one_block(shared_data, tmp_path):
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.tree import cached_split_pifa

    config = load_config(None, [f"data.train={shared_data}/bibtex/train.txt", f"data.test={shared_data}/bibtex/test.txt",
                                "data.format=xc", f"data.dir={tmp_path}/data"])
    info = ensure_converted(config.data)
    context = BuildContext.from_info(info, seed=0)
    order = build_label_order("tree", context, cluster_size=8)
    assert sorted(order.tolist()) == list(range(info.num_labels))
    z = cached_split_pifa(info)
    z = z.multiply(1.0 / np.maximum(np.sqrt(z.multiply(z).sum(1)), 1e-12)).tocsr()

    def mean_block_cosine(perm):
        blocks = [z[perm[i:i + 8]] for i in range(0, perm.size - 7, 8)]
        return np.mean([(b @ b.T).toarray()[np.triu_indices(8, 1)].mean() for b in blocks])

    # Consecutive codes of the tree order are more alike than consecutive label ids (bibtex's PIFA rows share
    # common features, so even random blocks have cosine ~0.79; the tree cuts the distance 1 − cos by > 25 %).
    assert 1 - mean_block_cosine(order) < 0.75 * (1 - mean_block_cosine(np.arange(info.num_labels)))
