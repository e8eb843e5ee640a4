"""Label and feature hashing for MACH.

MACH (Medini, Huang, Wang, Shrivastava: "Extreme Classification in Log Memory
using Count-Min Sketch: A Case Study of Amazon Search with 50M Products",
NeurIPS 2019) hashes each of the L labels into one of B buckets, independently
in R repetitions (the rows of a count-min sketch), and trains one B-way
classifier per repetition. This module reproduces the reference code's hash
exactly (design doc ``algorithms.md`` §2.2/§2.3):

* ``h_r(c) = murmurhash3_32(c, seed=r) mod B`` where ``murmurhash3_32`` is
  MurmurHash3_x86_32 of the 4-byte little-endian int32 key, reinterpreted as a
  *signed* int32 (scikit-learn's ``murmurhash3_32(key, seed, positive=False)``,
  which the reference code calls), and ``mod`` is Python's floor modulo
  (result in ``[0, B)``).
* Feature hashing uses the same family: ``g_r(j) = murmurhash3_32(j, r) mod D'``.

The hash itself is scikit-learn's C implementation over int32 arrays; this
module adds the key and seed checks, the floor modulo and the lookup tables.
"""

from __future__ import annotations

import os
import zipfile
from typing import Iterable, Sequence

import numpy as np
from sklearn.utils import murmurhash3_32 as _sklearn_murmurhash3_32

from tfxc.errors import ConfigError, DataError
from tfxc.utils.io import atomic_writer

__all__ = ["murmurhash3_32", "bucket_hash", "feature_map", "MachLookup"]

_INT32_MIN, _INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def _as_int32_keys(keys) -> np.ndarray:
    """Integer keys as an int32 array; raises if a key does not fit in int32."""
    arr = np.asarray(keys)
    if arr.dtype == np.int32:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise TypeError(f"hash keys must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < _INT32_MIN or arr.max() > _INT32_MAX):
        raise ValueError(f"hash keys must fit in int32, got range [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int32)


def _check_seed(seed) -> int:
    seed = int(seed)
    if not 0 <= seed < 2 ** 32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return seed


def murmurhash3_32(keys, seed: int = 0) -> np.ndarray:
    """MurmurHash3_x86_32 of int32 keys, as signed int32 (sklearn ``positive=False``).

    Each key is hashed as its 4-byte little-endian two's-complement
    representation, so ``murmurhash3_32(k, s) ==
    sklearn.utils.murmurhash3_32(int(k), s, positive=False)``.

    Args:
        keys: integer array-like of any shape; every value must fit in int32.
        seed: hash seed in ``[0, 2**32)``; MACH uses the repetition id.

    Returns:
        int32 array of the same shape as ``keys`` (a 0-d array for a scalar key).

    Raises:
        TypeError: non-integer keys. ValueError: a key outside int32 or a bad seed.
    """
    k = _as_int32_keys(keys)
    seed = _check_seed(seed)
    flat = np.ascontiguousarray(k).reshape(-1)
    hashed = _sklearn_murmurhash3_32(flat, seed, positive=False) if flat.size else np.zeros(0, np.int32)
    return np.asarray(hashed, np.int32).reshape(k.shape)


def _floor_mod(signed_hash: np.ndarray, num_buckets: int) -> np.ndarray:
    # np.mod follows Python's sign convention (result has the divisor's sign).
    return np.mod(signed_hash, np.int32(num_buckets)).astype(np.int32, copy=False)


def _check_positive(name: str, value) -> int:
    value = int(value)
    if not 1 <= value <= _INT32_MAX:
        raise ValueError(f"{name} must be in [1, 2**31), got {value}")
    return value


def bucket_hash(keys, seed: int, num_buckets: int) -> np.ndarray:
    """MACH bucket of each key: ``murmurhash3_32(key, seed) mod num_buckets`` (floor modulo).

    Args:
        keys: integer array-like (int32 range), any shape.
        seed: hash seed (the repetition id r).
        num_buckets: B >= 1.

    Returns:
        int32 array of the shape of ``keys`` with values in ``[0, num_buckets)``.
    """
    num_buckets = _check_positive("num_buckets", num_buckets)
    return _floor_mod(murmurhash3_32(keys, seed), num_buckets)


def feature_map(num_features: int, feat_hash_dim: int, seed: int) -> np.ndarray:
    """MACH feature hash of repetition ``seed``: ``g(j) = bucket_hash(j, seed, feat_hash_dim)``.

    The hashed input is ``x~[g(j)] = sum over j' with g(j') = g(j) of x[j']`` (§2.3).

    Args:
        num_features: original feature dimension D.
        feat_hash_dim: hashed dimension D'.
        seed: hash seed (the repetition id).

    Returns:
        int32 array [num_features] with values in ``[0, feat_hash_dim)``.
    """
    num_features = int(num_features)
    if num_features < 0 or num_features > _INT32_MAX + 1:
        raise ValueError(f"num_features must be in [0, 2**31], got {num_features}")
    return bucket_hash(np.arange(num_features, dtype=np.int32), seed, feat_hash_dim)


class MachLookup:
    """Label -> bucket table of R MACH repetitions (the count-min-sketch hash rows).

    Attributes:
        buckets: int32 [R, L], C-contiguous; ``buckets[i, c]`` is the bucket of
            label c in the i-th repetition, ``bucket_hash(c, seeds[i], num_buckets)``.
        seeds: tuple of R ints, the hash seed (= repetition id) of each row.
        num_buckets: B.
        num_labels: L.

    Build with :meth:`build`, :meth:`load` or :meth:`load_or_build`; the
    constructor validates an existing table.
    """

    _FORMAT = 1

    def __init__(self, buckets: np.ndarray, num_buckets: int, seeds: Sequence[int], *,
                 validate: bool = True):
        buckets = np.ascontiguousarray(buckets, dtype=np.int32)
        if buckets.ndim != 2:
            raise ValueError(f"buckets must be 2-D [R, L], got shape {buckets.shape}")
        self.num_buckets = _check_positive("num_buckets", num_buckets)
        self.seeds = tuple(int(s) for s in seeds)
        if len(self.seeds) != buckets.shape[0]:
            raise ValueError(f"{len(self.seeds)} seeds for {buckets.shape[0]} repetitions")
        if validate and buckets.size and (buckets.min() < 0 or buckets.max() >= self.num_buckets):
            raise ValueError(f"bucket ids must lie in [0, {self.num_buckets}), "
                             f"got range [{buckets.min()}, {buckets.max()}]")
        self.buckets = buckets
        self.num_labels = int(buckets.shape[1])
        self._inverse: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, num_labels: int, num_buckets: int, seeds: Iterable[int]) -> "MachLookup":
        """Hash labels ``0..num_labels-1`` into ``num_buckets`` buckets for each seed.

        32 repetitions of 670,091 labels take well under a second.

        Args:
            num_labels: L >= 0 (label ids must fit in int32).
            num_buckets: B >= 1.
            seeds: the repetition ids; repetition i uses hash seed ``seeds[i]``.

        Returns:
            MachLookup with ``buckets`` int32 [len(seeds), num_labels].
        """
        num_buckets = _check_positive("num_buckets", num_buckets)
        seeds = tuple(int(s) for s in seeds)
        num_labels = int(num_labels)
        if num_labels < 0 or num_labels > _INT32_MAX + 1:
            raise ValueError(f"num_labels must be in [0, 2**31], got {num_labels}")
        out = np.empty((len(seeds), num_labels), dtype=np.int32)
        keys = np.arange(num_labels, dtype=np.int32)
        for i, seed in enumerate(seeds):
            out[i] = _floor_mod(murmurhash3_32(keys, seed), num_buckets)
        return cls(out, num_buckets, seeds, validate=False)

    @property
    def num_repetitions(self) -> int:
        """R, the number of repetitions (rows of ``buckets``)."""
        return self.buckets.shape[0]

    def __len__(self) -> int:
        return self.num_repetitions

    def __repr__(self) -> str:
        return (f"MachLookup(R={self.num_repetitions}, L={self.num_labels}, "
                f"B={self.num_buckets}, seeds={self.seeds})")

    # ------------------------------------------------------------------ inverse
    def inverse(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Bucket -> labels table of the i-th repetition (cached after the first call).

        Labels of bucket b are ``class_order[offsets[b]:offsets[b + 1]]``, in
        ascending label id (the reference code's ``class_order_r`` / ``counts_r``).

        Args:
            i: repetition index in ``[0, R)`` (an index into ``buckets``, not a seed).

        Returns:
            ``(class_order, offsets)``: int32 [L] labels grouped by bucket, and int64
            [B + 1] prefix sums of the bucket sizes (``offsets[0] == 0``,
            ``offsets[B] == L``).
        """
        i = int(i)
        if not -self.num_repetitions <= i < self.num_repetitions:
            raise IndexError(f"repetition {i} out of range for R={self.num_repetitions}")
        i %= self.num_repetitions
        cached = self._inverse.get(i)
        if cached is None:
            row = self.buckets[i]
            # A stable sort keeps labels ascending inside each bucket; for B <= 2**16
            # sorting uint16 keys lets NumPy use its O(L) radix sort.
            keys = row.astype(np.uint16) if self.num_buckets <= 2 ** 16 else row
            class_order = np.argsort(keys, kind="stable").astype(np.int32)
            offsets = np.zeros(self.num_buckets + 1, dtype=np.int64)
            np.cumsum(np.bincount(row, minlength=self.num_buckets), out=offsets[1:])
            class_order.flags.writeable = False
            offsets.flags.writeable = False
            cached = self._inverse[i] = (class_order, offsets)
        return cached

    def select(self, indices) -> "MachLookup":
        """A MachLookup of a subset of repetitions (e.g. those one worker evaluates).

        Args:
            indices: int or sequence of repetition indices (positions in ``buckets``).

        Returns:
            MachLookup with ``buckets = self.buckets[indices]`` and the matching
            seeds; cached inverse tables are shared.
        """
        idx = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        if idx.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {idx.shape}")
        R = self.num_repetitions
        if idx.size and (idx.min() < -R or idx.max() >= R):
            raise IndexError(f"repetition indices {idx.tolist()} out of range for R={R}")
        idx = idx % R if R else idx
        out = MachLookup(self.buckets[idx], self.num_buckets,
                         [self.seeds[j] for j in idx], validate=False)
        for new, old in enumerate(idx.tolist()):
            if old in self._inverse:
                out._inverse[new] = self._inverse[old]
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the table as an ``.npz`` (arrays only) atomically: temp file + ``os.replace``.

        The file is written to exactly ``path`` (no suffix is added).
        """
        with atomic_writer(os.fspath(path), binary=True) as fh:
            np.savez(fh, format=np.int64(self._FORMAT), buckets=self.buckets,
                     seeds=np.asarray(self.seeds, dtype=np.int64), num_buckets=np.int64(self.num_buckets),
                     num_labels=np.int64(self.num_labels))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MachLookup":
        """Read a table written by :meth:`save` (``np.load(allow_pickle=False)``).

        Raises:
            DataError: the file is missing, not a MACH lookup ``.npz``, or inconsistent
                (the message names the file).
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise DataError("MACH lookup file not found", path=path)
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise DataError("not a MACH lookup file: expected an .npz archive, got a "
                                "single array", path=path)
            with data:
                missing = {"buckets", "seeds", "num_buckets", "num_labels"} - set(data.files)
                if missing:
                    raise DataError(f"not a MACH lookup file: missing arrays {sorted(missing)}",
                                    path=path)
                buckets = data["buckets"]
                seeds = data["seeds"]
                num_buckets = int(data["num_buckets"])
                num_labels = int(data["num_labels"])
        except DataError:
            raise
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise DataError(f"cannot read MACH lookup file: {exc}", path=path) from exc
        if buckets.ndim != 2 or buckets.shape[1] != num_labels or seeds.ndim != 1:
            raise DataError(f"corrupt MACH lookup file: buckets shape {buckets.shape}, "
                            f"{seeds.size} seeds, num_labels={num_labels}", path=path)
        if not np.issubdtype(buckets.dtype, np.integer):
            raise DataError(f"corrupt MACH lookup file: buckets dtype {buckets.dtype}", path=path)
        try:
            return cls(buckets, num_buckets, seeds.tolist())
        except ValueError as exc:
            raise DataError(f"corrupt MACH lookup file: {exc}", path=path) from exc

    @classmethod
    def load_or_build(cls, path: str | os.PathLike, num_labels: int, num_buckets: int,
                      seeds: Iterable[int]) -> "MachLookup":
        """Load ``path`` if it exists (checking its parameters), else build and save it.

        Raises:
            ConfigError: the file exists but was built with a different num_labels,
                num_buckets or seeds (the message names the file and both values).
            DataError: the file exists but cannot be read.
        """
        seeds = tuple(int(s) for s in seeds)
        path = os.fspath(path)
        if os.path.exists(path):
            lookup = cls.load(path)
            for name, have, want in (("num_labels", lookup.num_labels, int(num_labels)),
                                     ("num_buckets", lookup.num_buckets, int(num_buckets)),
                                     ("seeds", lookup.seeds, seeds)):
                if have != want:
                    raise ConfigError(f"{path}: MACH lookup was built with {name}={have}, "
                                      f"but the config asks for {name}={want}; delete the "
                                      f"file or fix the config")
            return lookup
        lookup = cls.build(num_labels, num_buckets, seeds)
        lookup.save(path)
        return lookup
