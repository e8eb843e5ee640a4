"""gather_dot: h · table[ids] computed in blocks of rows equals the one-gather reference."""

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.heads.gather_dot import gather_dot

DIM, CANDIDATES = 8, 5
BLOCK = 4 * CANDIDATES * DIM * 3  # three rows per block


def _case(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(50, DIM)).astype(np.float32)
    h = rng.normal(size=(rows, DIM)).astype(np.float32)
    ids = rng.integers(0, 50, size=(rows, CANDIDATES)).astype(np.int32)
    return h, table, ids, np.einsum("bd,bcd->bc", h, table[ids])


@pytest.mark.parametrize("rows", [1, 3, 4, 7, 9])
def test_static_batch_in_blocks_matches_reference(rows):
    h, table, ids, expected = _case(rows)
    got = gather_dot(tf.constant(h), tf.constant(table), tf.constant(ids), block_bytes=BLOCK)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_dynamic_batch_and_xla_match_reference():
    spec = [tf.TensorSpec([None, DIM], tf.float32), tf.TensorSpec([None, CANDIDATES], tf.int32)]
    h, table, ids, expected = _case(11, seed=1)
    table = tf.constant(table)
    dynamic = tf.function(lambda h, ids: gather_dot(h, table, ids, block_bytes=BLOCK), input_signature=spec)
    compiled = tf.function(lambda h, ids: gather_dot(h, table, ids, block_bytes=BLOCK), jit_compile=True)
    for rows in (2, 11):  # one block (the direct branch) and four blocks, the last one padded
        np.testing.assert_allclose(dynamic(h[:rows], ids[:rows]).numpy(), expected[:rows], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(compiled(h[:rows], ids[:rows]).numpy(), expected[:rows], rtol=1e-5, atol=1e-5)


def test_unknown_candidate_count_is_one_block():
    h, table, ids, expected = _case(7, seed=2)
    fn = tf.function(lambda h, ids: gather_dot(h, tf.constant(table), ids, block_bytes=BLOCK),
                     input_signature=[tf.TensorSpec([None, DIM], tf.float32), tf.TensorSpec([None, None], tf.int32)])
    np.testing.assert_allclose(fn(h, ids).numpy(), expected, rtol=1e-5, atol=1e-5)
