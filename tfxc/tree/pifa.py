"""Label features by PIFA: each label is the normalised mean of the feature rows it is positive on.

Reference: PECOS (Yu et al., JMLR 2022), `pecos/xmc/base.py::LabelEmbeddingFactory.pifa`;
spec: algorithms.md §1.2. With Ŷ the label matrix with rows scaled to unit L2
norm, Z = row_normalize(Ŷᵀ X): float [L, D], one unit row per label (zero for
labels without training points).

`split_pifa` streams a converted split in chunks, so neither X nor Y is held
whole: only the [L, D] sum (sparse for sparse X) grows. `encoder_pifa` does the
same for the embeddings of any encoder (dense [L, dim]), as XR-Transformer's
refined tree needs. `cached_split_pifa` keeps the result next to the converted
data, where later runs reuse it.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import scipy.sparse

from tfxc.utils.files import read_cache, read_npy

log = logging.getLogger("tfxc.tree")

# Rows per streamed chunk.
CHUNK_ROWS = 32768
PIFA_FILE = "label_features_pifa.npz"
IDF_FILE = "feature_idf.npy"


def normalize_rows(m):
    """Rows scaled to unit L2 norm (zero rows stay zero); CSR in, CSR out, or dense in, dense out."""
    if scipy.sparse.issparse(m):
        m = scipy.sparse.csr_matrix(m, copy=True)
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        m.data /= np.repeat(np.maximum(norms, 1e-30), np.diff(m.indptr)).astype(m.dtype)
        return m
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.maximum(norms, 1e-30)


def pifa_sum(x, y):
    """Ŷᵀ X of one chunk: y is CSR [n, L] (binary or weighted), x CSR or dense [n, D]."""
    y = normalize_rows(scipy.sparse.csr_matrix(y, dtype=np.float32))
    out = y.T @ x
    return scipy.sparse.csr_matrix(out) if scipy.sparse.issparse(x) else np.asarray(out)


def pifa(x, y):
    """Z = row_normalize(row_normalize(Y)ᵀ X) (float32 [L, D]; CSR for sparse x, else dense)."""
    z = pifa_sum(x, y)
    return normalize_rows(z.astype(np.float32))


def _batches_as_csr(info, split: str, chunk_rows: int):
    """Yields (X CSR [n, D], Y CSR [n, L]) chunks of a converted split, in file order."""
    from tfxc.data.pipeline import eval_dataset

    for batch in eval_dataset(info.files(split), chunk_rows):
        feats, labels = batch["feat_idx"], batch["labels"]
        n = int(feats.nrows())
        x = scipy.sparse.csr_matrix((batch["feat_val"].values.numpy(), feats.values.numpy(),
                                     feats.row_splits.numpy()), shape=(n, info.num_features))
        y = scipy.sparse.csr_matrix((np.ones(int(labels.values.shape[0]), np.float32), labels.values.numpy(),
                                     labels.row_splits.numpy()), shape=(n, info.num_labels))
        yield x, y, batch


def split_pifa(info, split: str = "train", chunk_rows: int = CHUNK_ROWS) -> scipy.sparse.csr_matrix:
    """PIFA of a converted split's feature rows: CSR float32 [L, D]."""
    start, total = time.time(), None
    for x, y, _ in _batches_as_csr(info, split, chunk_rows):
        part = pifa_sum(x, y)
        total = part if total is None else total + part
    z = normalize_rows(scipy.sparse.csr_matrix(total, dtype=np.float32))
    log.info("PIFA label features of %s: [%d, %d], %d nonzeros, %.1fs", split, *z.shape, z.nnz,
             time.time() - start)
    return z


def encoder_pifa(encoder, info, split: str = "train", chunk_rows: int = 4096) -> np.ndarray:
    """PIFA of an encoder's embeddings: float32 [L, encoder.output_dim], for trees refined by a trained model."""
    total = np.zeros((info.num_labels, encoder.output_dim), np.float64)
    for _x, y, batch in _batches_as_csr(info, split, chunk_rows):
        total += pifa_sum(np.asarray(encoder(batch, training=False)), y)
    return normalize_rows(total).astype(np.float32)


def cached_split_pifa(info, split: str = "train") -> scipy.sparse.csr_matrix:
    """`split_pifa`, saved in the converted data directory on first use and read back afterwards.

    A re-conversion replaces the whole directory, so a cached file always
    belongs to the rows beside it.
    """
    from tfxc.utils.io import atomic_writer

    path = os.path.join(info.dir, split + "_" + PIFA_FILE)
    cached = read_cache(path, lambda p: scipy.sparse.load_npz(p).tocsr())
    if cached is not None:
        return cached
    z = split_pifa(info, split)
    try:
        with atomic_writer(path, binary=True) as f:
            # Uncompressed: at 10^8 nonzeros inflating the archive took longer than computing PIFA again.
            scipy.sparse.save_npz(f, z, compressed=False)
    except OSError as exc:  # a read-only data directory: fine, just not cached
        log.warning("could not cache the label features in %s: %s", info.dir, exc)
    return z


def split_idf(info, split: str = "train", chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """float32 [D]: the smoothed inverse document frequency log((1 + n) / (1 + df_f)) + 1 of each feature
    over the n rows of a converted split (scikit-learn's `smooth_idf` form: a feature on every row weighs 1,
    a feature on no row the most)."""
    df, rows = np.zeros(info.num_features, np.int64), 0
    for x, _y, _batch in _batches_as_csr(info, split, chunk_rows):
        df += np.bincount(x.indices[x.data != 0], minlength=info.num_features)
        rows += x.shape[0]
    return smoothed_idf(df, rows)


def smoothed_idf(df: np.ndarray, rows: int) -> np.ndarray:
    """float32 [D]: log((1 + rows) / (1 + df_f)) + 1 for document frequencies df int [D] over `rows` rows."""
    return (np.log((1.0 + rows) / (1.0 + np.asarray(df, np.float64))) + 1.0).astype(np.float32)


def cached_split_idf(info, split: str = "train") -> np.ndarray:
    """`split_idf`, cached in the converted data directory like `cached_split_pifa`."""
    from tfxc.utils.io import atomic_writer

    path = os.path.join(info.dir, split + "_" + IDF_FILE)
    cached = read_cache(path, read_npy)
    if cached is not None:
        return cached
    idf = split_idf(info, split)
    try:
        with atomic_writer(path, binary=True) as f:
            np.save(f, idf)
    except OSError as exc:
        log.warning("could not cache the feature idf in %s: %s", info.dir, exc)
    return idf
