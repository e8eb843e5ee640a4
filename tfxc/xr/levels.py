"""What a fine-tuned level hands to the next: the training rows' embeddings, their predicted clusters, and the
next head's starting weights (XR-Transformer, algorithms.md §1.6 step 2, xr-transformer.md §1–2)."""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse

from tfxc.xr.bootstrap import SideBySide, bootstrap_inherit, bootstrap_linear

log = logging.getLogger("tfxc.xr")

# Rows per encoder call when embedding a split.
EMBED_BATCH = 256
# Clusters scored per block when ranking a level for every training row.
SCORE_BLOCK = 4096


def embed_split(model, info, split: str = "train", batch_size: int = EMBED_BATCH):
    """The model's embeddings (`XCModel.embedding`) and labels of every row of a split, in row-id order:
    (float32 [N, H], CSR int8 [N, L]). Token sequences are embedded in order of length (`length_sorted_batches`)."""
    from tfxc.data.pipeline import length_sorted_batches
    from tfxc.utils.graph import BatchFunction

    start = time.time()
    n = info.num_points(split)
    embed = BatchFunction(lambda batch: model.embedding(batch))
    out, rows, labels = None, [], []
    for batch in length_sorted_batches(info.files(split), batch_size, preprocess=model.encoder.preprocess):
        emb = embed(batch).numpy()
        if out is None:
            out = np.zeros((n, emb.shape[1]), np.float32)
        ids = batch["row_id"].numpy()
        out[ids] = emb
        rows.append(ids)
        labels.append(batch["labels"])
    ids = np.concatenate(rows)
    lengths = np.concatenate([lab.row_lengths().numpy() for lab in labels])
    values = np.concatenate([lab.values.numpy() for lab in labels])
    order = np.argsort(ids, kind="stable")
    starts = np.concatenate([[0], np.cumsum(lengths)])
    y = scipy.sparse.csr_matrix((np.ones(values.size, np.int8), values,
                                 starts), shape=(ids.size, info.num_labels))[order]
    log.info("embedded %d %s rows in %.1fs", n, split, time.time() - start)
    return out, y


def tfidf_rows(info, split: str = "train") -> scipy.sparse.csr_matrix:
    """The split's feature rows (the TF-IDF for text data) in row-id order: CSR float32 [N, D]."""
    from tfxc.data.pipeline import eval_dataset

    parts, ids = [], []
    for batch in eval_dataset(info.files(split), 4096):
        idx, val = batch["feat_idx"], batch["feat_val"]
        parts.append(scipy.sparse.csr_matrix((val.values.numpy(), idx.values.numpy(), idx.row_splits.numpy()),
                                             shape=(int(idx.nrows()), info.num_features)))
        ids.append(batch["row_id"].numpy())
    return scipy.sparse.vstack(parts).tocsr()[np.argsort(np.concatenate(ids), kind="stable")]


class EmbeddingModel:
    """An encoder alone, with `XCModel.embedding`'s interface (for `embed_split`).

    Attributes:
      encoder: the innermost encoder (no wrappers): its raw output is the embedding.
    """

    def __init__(self, encoder):
        self.encoder = encoder

    def embedding(self, batch):
        from tfxc._tf import tf

        return tf.cast(self.encoder(batch, training=False), tf.float32)

    @classmethod
    def of(cls, config, info, level_directory: str | None) -> "EmbeddingModel":
        """The encoder a fine-tuned level left (`level_directory`), else the configured one as pretrained."""
        from tfxc.build_context import BuildContext
        from tfxc.encoders import ENCODERS
        from tfxc.encoders.frozen import base_encoder
        from tfxc.model_dir import ModelDir

        if level_directory:
            return cls(base_encoder(ModelDir(level_directory).restore(need_rows=False).model.encoder))
        encoder = ENCODERS.build(config.model.encoder, BuildContext.from_info(info, seed=config.runtime.seed))
        encoder.build()
        return cls(encoder)


def level_counts(y: scipy.sparse.csr_matrix, tree, level: int) -> scipy.sparse.csr_matrix:
    """CSR int32 [N, K_level]: how many of each row's labels lie below each cluster of the level."""
    leaf = np.arange(y.shape[1]) if tree.leaf_labels is None else tree.leaf_index()
    nodes = tree.ancestors(level)
    coo = y.tocoo()
    keep = leaf[coo.col] >= 0
    cols = nodes[leaf[coo.col[keep]]]
    counts = scipy.sparse.csr_matrix((np.ones(cols.size, np.int32), (coo.row[keep], cols)),
                                     shape=(y.shape[0], tree.sizes[level]))
    counts.sum_duplicates()
    return counts


def predicted_clusters(embeddings: np.ndarray, kernel: np.ndarray, bias: np.ndarray, k: int) -> np.ndarray:
    """The k best clusters of every row by w_c·e + b_c over all of a level's clusters: int32 [N, k], best first.

    embeddings: [N, H] dense, CSR or `SideBySide`. Levels fine-tuned have at most `max_match_clusters`
    clusters, so every one is scored, in blocks of rows."""
    k = min(k, kernel.shape[0])
    out = np.empty((embeddings.shape[0], k), np.int32)
    for start in range(0, embeddings.shape[0], SCORE_BLOCK):
        scores = np.asarray(embeddings[start:start + SCORE_BLOCK] @ kernel.T) + bias
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start:start + SCORE_BLOCK] = np.take_along_axis(top, order, axis=1)
    return out


def matching_matrix(man: np.ndarray, num_parents: int) -> scipy.sparse.csr_matrix:
    """CSR [N, K_parents]: 1 where a row's predicted parents (`man`, −1 padded) are."""
    rows = np.repeat(np.arange(man.shape[0]), man.shape[1])
    cols = man.ravel()
    keep = cols >= 0
    m = scipy.sparse.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])),
                                shape=(man.shape[0], num_parents))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def concat_features(embeddings: np.ndarray, tfidf: scipy.sparse.csr_matrix) -> scipy.sparse.csr_matrix:
    """[TF-IDF ⊕ row-L2-normalised E]: CSR float32 [N, D + H] (the TF-IDF as it is)."""
    from tfxc.tree.pifa import normalize_rows

    return scipy.sparse.hstack([tfidf, scipy.sparse.csr_matrix(normalize_rows(embeddings))], format="csr",
                               dtype=np.float32)


def concat_matcher(features: scipy.sparse.csr_matrix, y: scipy.sparse.csr_matrix, tree, level: int,
                   man: np.ndarray | None):
    """PECOS's `concat-only` matcher of a fine-tuned level: an XLinear one-level model of its clusters on
    [TF-IDF ⊕ normalised E] (squared hinge, C = 1, XLinear's defaults), each cluster trained on the rows
    active for its parent: the parents of the row's labels and the `man` the level trained with.

    Args:
      features: [N, D + H], `concat_features` of the training rows (CSR, or `SideBySide` parts).
      y: CSR [N, L], their labels.
      tree: the preliminary tree; level: the fine-tuned level's index in it.
      man: int32 [N, W] (−1 padded), the level's `man` table, or None (the first level: every row is
        active for every cluster).

    Returns:
      (kernel float32 [K, D + H], bias float32 [K]).
    """
    counts = level_counts(y, tree, level)
    if level == 0:  # one parent, the root: all rows, all clusters
        children = np.arange(tree.sizes[0], dtype=np.int32)[None, :]
        matching = scipy.sparse.csr_matrix(np.ones((features.shape[0], 1), np.float32))
    else:
        children = tree.children(level)
        matching = (matching_matrix(man, tree.sizes[level - 1]) if man is not None
                    else scipy.sparse.csr_matrix((features.shape[0], tree.sizes[level - 1]), dtype=np.float32))
    return bootstrap_linear(features, counts, matching, children, weighted=False, cp=1.0, cn=1.0,
                            what="concat matcher")


def start_of_level(plan, tree, head_config, previous_model, info, previous_man: np.ndarray | None = None) -> dict:
    """The arrays a level's head starts from (`tfxc.heads.xr_level.write_start`), made from the previous
    level's model: its `man` table (each training row's `only_topk` best clusters one level up, by the
    concat matcher or, with `ensemble_method` "transformer-only", the previous level's head) and the
    bootstrapped kernel and bias. {} for the first level (random start, no `man`).

    previous_man: the `man` table the previous level trained with (None for the first level), which
    picks the concat matcher's active rows."""
    if previous_model is None:
        return {}
    embeddings, y = embed_split(previous_model, info)
    head = previous_model.head
    kernel, bias = head.kernel.numpy(), head.bias.numpy()
    out = {}
    uses_man = "man" in head_config.matcher_negatives
    man = None
    if uses_man and head_config.ensemble_method == "concat-only":
        from tfxc.tree.pifa import normalize_rows

        features = SideBySide(tfidf_rows(info), normalize_rows(embeddings))  # concat_features, kept apart
        man = predicted_clusters(features, *concat_matcher(features, y, tree, plan.tree_level - 1, previous_man),
                                 head_config.only_topk)
    elif uses_man:
        man = predicted_clusters(embeddings, kernel, bias, head_config.only_topk)
    if uses_man:
        out["man"] = man
    method, level = head_config.bootstrap, plan.tree_level
    if method in ("linear", "weighted-linear"):
        matching = (matching_matrix(man, tree.sizes[level - 1]) if uses_man
                    else scipy.sparse.csr_matrix((embeddings.shape[0], tree.sizes[level - 1]), dtype=np.float32))
        out["kernel"], out["bias"] = bootstrap_linear(embeddings, level_counts(y, tree, level), matching,
                                                      tree.children(level), weighted=method == "weighted-linear")
    elif method == "inherit":
        parent_of = np.empty(tree.sizes[level], np.int64)
        for p, kids in enumerate(tree.children(level)):
            parent_of[kids[kids >= 0]] = p
        out["kernel"], out["bias"] = bootstrap_inherit(kernel, bias, parent_of)
    return out
