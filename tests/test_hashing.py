"""MACH label/feature hashing (tfxc.hashing) against the design doc's test vectors and sklearn."""

import os

import numpy as np
import pytest
from sklearn.utils import murmurhash3_32 as sk_murmurhash3_32

from tfxc.errors import ConfigError, DataError
from tfxc.hashing import MachLookup, bucket_hash, feature_map, murmurhash3_32


# --------------------------------------------------------------------------- test vectors (§2.2)
def test_raw_signed_hashes_seed0():
    out = murmurhash3_32(np.arange(5), 0)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [593689054, -68075478, 1085422463, 847579505, 1889779975])


@pytest.mark.parametrize("seed, expected", [
    (0, [9054, 4522, 2463, 9505, 9975]),
    (1, [6445, 1156, 7948, 5673, 1879]),
    (31, [7423, 604, 4254, 1304, 5167]),
])
def test_bucket_vectors(seed, expected):
    out = bucket_hash(np.arange(5), seed, 10000)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, expected)


def test_signed_not_unsigned_modulo():
    # The unsigned hash would put class 1 (seed 0) into bucket 1818 (§2.2).
    assert int(bucket_hash(1, 0, 10000)) == 4522
    assert (int(murmurhash3_32(1, 0)) % 2 ** 32) % 10000 == 1818


# --------------------------------------------------------------------------- sklearn agreement
@pytest.mark.parametrize("seed", [0, 1, 7, 31, 12345, 2 ** 31, 2 ** 32 - 1])
def test_agrees_with_sklearn(seed):
    rng = np.random.default_rng(seed % 1000)
    keys = rng.integers(-2 ** 31, 2 ** 31, size=3000, dtype=np.int64).astype(np.int32)
    keys[:6] = [0, 1, -1, 2 ** 31 - 1, -2 ** 31, 670090]
    expected = sk_murmurhash3_32(keys, seed=seed, positive=False)
    np.testing.assert_array_equal(murmurhash3_32(keys, seed), expected)
    # scalar path of sklearn (int key) on a few keys, and the floor modulo
    for key in keys[:20].tolist():
        assert int(murmurhash3_32(key, seed)) == sk_murmurhash3_32(key, seed=seed, positive=False)
        # Python's % is the floor modulo the reference code uses
        signed = sk_murmurhash3_32(key, seed=seed, positive=False)
        assert int(bucket_hash(key, seed, 997)) == signed % 997
    np.testing.assert_array_equal(bucket_hash(keys, seed, 997),
                                  np.asarray(expected, np.int64) % 997)


def test_shapes_dtypes_and_errors():
    assert murmurhash3_32(1, 0).shape == ()
    assert murmurhash3_32(np.arange(6).reshape(2, 3), 3).shape == (2, 3)
    np.testing.assert_array_equal(murmurhash3_32(np.arange(6).reshape(2, 3), 3).ravel(),
                                  murmurhash3_32(np.arange(6), 3))
    assert murmurhash3_32(np.zeros(0, np.int64), 0).shape == (0,)
    b = bucket_hash(np.arange(-500, 500), 5, 7)
    assert b.min() >= 0 and b.max() < 7
    with pytest.raises(ValueError, match="int32"):
        murmurhash3_32([2 ** 31], 0)
    with pytest.raises(TypeError):
        murmurhash3_32([1.5], 0)
    with pytest.raises(ValueError, match="seed"):
        murmurhash3_32([1], -1)
    with pytest.raises(ValueError, match="num_buckets"):
        bucket_hash([1], 0, 0)


def test_feature_map():
    fm = feature_map(1000, 128, 3)
    assert fm.dtype == np.int32 and fm.shape == (1000,)
    np.testing.assert_array_equal(fm, bucket_hash(np.arange(1000), 3, 128))
    assert feature_map(0, 10, 0).shape == (0,)


# --------------------------------------------------------------------------- MachLookup
def test_build_matches_bucket_hash():
    lk = MachLookup.build(1001, 37, range(4))
    assert lk.buckets.dtype == np.int32 and lk.buckets.flags.c_contiguous
    assert lk.buckets.shape == (4, 1001)
    assert lk.seeds == (0, 1, 2, 3) and lk.num_buckets == 37 and lk.num_labels == 1001
    assert lk.num_repetitions == 4 == len(lk)
    for i, seed in enumerate(lk.seeds):
        np.testing.assert_array_equal(lk.buckets[i], bucket_hash(np.arange(1001), seed, 37))
    lk2 = MachLookup.build(5, 10000, [31, 0])
    np.testing.assert_array_equal(lk2.buckets, [[7423, 604, 4254, 1304, 5167],
                                                [9054, 4522, 2463, 9505, 9975]])
    assert MachLookup.build(0, 5, [0, 1]).buckets.shape == (2, 0)


@pytest.mark.parametrize("num_buckets", [13, 70000])  # uint16 radix path and the int32 path
def test_inverse(num_buckets):
    lk = MachLookup.build(3001, num_buckets, [0, 5])
    for i in range(2):
        class_order, offsets = lk.inverse(i)
        assert class_order.dtype == np.int32 and class_order.shape == (3001,)
        assert offsets.dtype == np.int64 and offsets.shape == (num_buckets + 1,)
        assert offsets[0] == 0 and offsets[-1] == 3001
        for b in range(min(num_buckets, 50)):
            np.testing.assert_array_equal(class_order[offsets[b]:offsets[b + 1]],
                                          np.flatnonzero(lk.buckets[i] == b))
        # every label's position lies inside its bucket's segment
        pos = np.empty(3001, np.int64)
        pos[class_order] = np.arange(3001)
        b = lk.buckets[i]
        assert np.all((offsets[b] <= pos) & (pos < offsets[b + 1]))
        assert lk.inverse(i) is lk.inverse(i)  # cached
    assert lk.inverse(-1)[0] is lk.inverse(1)[0]
    with pytest.raises(IndexError):
        lk.inverse(2)


def test_select():
    lk = MachLookup.build(500, 11, [3, 4, 5, 6])
    inv2 = lk.inverse(2)
    sub = lk.select([2, 0])
    assert sub.seeds == (5, 3) and sub.num_buckets == 11 and sub.num_labels == 500
    np.testing.assert_array_equal(sub.buckets, lk.buckets[[2, 0]])
    assert sub.buckets.flags.c_contiguous
    assert sub.inverse(0) is inv2
    np.testing.assert_array_equal(sub.inverse(1)[0], lk.inverse(0)[0])
    assert lk.select(-1).seeds == (6,)
    with pytest.raises(IndexError):
        lk.select([4])


def test_save_load_round_trip(tmp_path):
    lk = MachLookup.build(777, 19, [0, 9, 31])
    path = tmp_path / "sub" / "lookup.npz"
    lk.save(path)
    assert sorted(os.listdir(path.parent)) == ["lookup.npz"]  # no temp file left behind
    back = MachLookup.load(path)
    np.testing.assert_array_equal(back.buckets, lk.buckets)
    assert back.buckets.dtype == np.int32 and back.buckets.flags.c_contiguous
    assert (back.seeds, back.num_buckets, back.num_labels) == (lk.seeds, 19, 777)
    # a path without the .npz suffix is written exactly as given
    lk.save(tmp_path / "plain")
    assert (tmp_path / "plain").is_file()
    np.testing.assert_array_equal(MachLookup.load(tmp_path / "plain").buckets, lk.buckets)


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(DataError, match="nope.npz"):
        MachLookup.load(missing)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    with pytest.raises(DataError, match="garbage.npz"):
        MachLookup.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, something=np.arange(3))
    with pytest.raises(DataError, match="other.npz.*missing"):
        MachLookup.load(other)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, buckets=np.array([object()], dtype=object), seeds=np.arange(1),
             num_buckets=np.int64(3), num_labels=np.int64(1))
    with pytest.raises(DataError, match="pickled.npz"):
        MachLookup.load(pickled)
    single = tmp_path / "single.npy"
    np.save(single, np.arange(3))
    with pytest.raises(DataError, match="single.npy"):
        MachLookup.load(single)
    bad = tmp_path / "bad.npz"
    np.savez(bad, buckets=np.array([[0, 5]], np.int32), seeds=np.arange(1),
             num_buckets=np.int64(3), num_labels=np.int64(2))
    with pytest.raises(DataError, match="bad.npz"):
        MachLookup.load(bad)


def test_load_or_build(tmp_path):
    path = tmp_path / "lk.npz"
    lk = MachLookup.load_or_build(path, 300, 17, range(3))
    assert path.is_file()
    again = MachLookup.load_or_build(path, 300, 17, [0, 1, 2])
    np.testing.assert_array_equal(again.buckets, lk.buckets)
    with pytest.raises(ConfigError, match=r"num_buckets=17.*num_buckets=18"):
        MachLookup.load_or_build(path, 300, 18, range(3))
    with pytest.raises(ConfigError, match=r"num_labels=300.*num_labels=301"):
        MachLookup.load_or_build(path, 301, 17, range(3))
    with pytest.raises(ConfigError, match=r"seeds=\(0, 1, 2\).*seeds=\(0, 1\)"):
        MachLookup.load_or_build(path, 300, 17, range(2))
    with pytest.raises(ConfigError, match="lk.npz"):
        MachLookup.load_or_build(path, 300, 18, range(3))
