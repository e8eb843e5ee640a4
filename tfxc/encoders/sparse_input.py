"""Carrying a row's raw sparse features next to its encoding, for heads that score them directly.

XR-Transformer's ranker scores labels on [X ⊕ E]: the TF-IDF row itself next to
the neural embedding (algorithms.md §1.6, steps 3–5). The head contract passes a
head one dense tensor per row, so `WithSparseInput` appends a fixed-width block
of the row's (feature id, value) pairs to whatever its inner encoder returns, and
`split_sparse_input` takes it apart again inside the head. A fixed width keeps
every shape static, which the XLA-compiled serving path needs.
"""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.encoders.base import Encoder, WrappingEncoder

# Feature ids travel as float32, which holds every integer up to 2^24 exactly; this id pads a row.
PAD_FEATURE = 2 ** 24


def sparse_input_block(feat_idx: tf.RaggedTensor, feat_val: tf.RaggedTensor, width: int):
    """The `width` largest-|value| features of each row, ascending by id.

    Args:
      feat_idx: int64 ragged [B, None]; feat_val: float32 ragged [B, None].
      width: features kept per row (a row with more keeps its `width` largest |values|).

    Returns:
      (ids int32 [B, width], padded with PAD_FEATURE; values float32 [B, width], 0 where padded).
    """
    ids = tf.pad(tf.cast(feat_idx.to_tensor(-1), tf.int32), [[0, 0], [0, width]], constant_values=-1)
    values = tf.pad(feat_val.to_tensor(0.0), [[0, 0], [0, width]])
    _, keep = tf.math.top_k(tf.where(ids >= 0, tf.abs(values), -1.0), width)
    ids, values = tf.gather(ids, keep, batch_dims=1), tf.gather(values, keep, batch_dims=1)
    ids = tf.where(ids >= 0, ids, PAD_FEATURE)
    order = tf.argsort(ids, axis=1, stable=True)
    return tf.gather(ids, order, batch_dims=1), tf.gather(values, order, batch_dims=1)


def split_sparse_input(features: tf.Tensor, width: int):
    """[h, ids, values] of `WithSparseInput` -> (h float32 [B, dim], ids int32 [B, width], values float32 [B, width])."""
    dim = features.shape[-1] - 2 * width
    h, ids, values = tf.split(features, [dim, width, width], axis=-1)
    return h, tf.cast(ids, tf.int32), values


def with_sparse_input(encoder: Encoder, width: int, context) -> "WithSparseInput":
    """`encoder` wrapped to carry each row's `width` largest sparse features, for a head with a sparse term.

    A text encoder gets the data's TF-IDF featurizer (`featurizer.json`) with it, so that raw strings give the
    sparse features in tf.data and in the SavedModel alike; every head with a sparse term builds its encoder here.
    """
    import os

    from tfxc.data.info import FEATURIZER_FILE
    from tfxc.encoders.text_common import tfidf_vectorizer

    # Text with given features (PECOS's xmc-base TF-IDF) has no featurizer: the rows' own features are read.
    featurized = bool(context.data_dir) and os.path.exists(os.path.join(context.data_dir, FEATURIZER_FILE))
    vectorizer = tfidf_vectorizer(context) if encoder.input_kind == "text" and featurized else None
    return WithSparseInput(encoder, width, vectorizer=vectorizer, name="encoder")


class WithSparseInput(WrappingEncoder):
    """An encoder's output with the row's raw sparse features appended.

    Args:
      inner: the encoder (its features float32 [B, dim]).
      width: features carried per row (see `sparse_input_block`).
      vectorizer: a `tfxc.text.tfidf.TfidfVectorizer`, needed when `inner` reads raw text.

    Call args:
      inputs: the parsed batch, with `feat_idx` / `feat_val` int64 / float32 ragged [B, None].

    Returns:
      float32 [B, dim + 2·width]: [h, feature ids (as float32, ascending, PAD_FEATURE padded), values].
    """

    def __init__(self, inner: Encoder, width: int, vectorizer=None, **kwargs):
        super().__init__(inner, **kwargs)
        self.width = width
        # A text encoder inside: its raw strings also give the sparse features, through the data's
        # TF-IDF featurizer in the graph (`tfxc.text.tfidf`), in tf.data and in the SavedModel alike.
        self.vectorizer = vectorizer

    def tokenize(self, texts) -> dict:
        tokens = dict(self.inner.tokenize(texts))
        if "feat_idx" not in tokens:
            if self.vectorizer is None:
                from tfxc.errors import TfxcError

                raise TfxcError("this model's sparse term reads the TF-IDF given with its data (PECOS's xmc-base "
                                "matrices), which raw strings cannot reproduce: serve it text with those features, "
                                "or train on JSONL text, whose TF-IDF tfxc fits and serves")
            tokens.update(self.vectorizer(texts))
        return tokens

    def preprocess(self, batch: dict) -> dict:
        """The inner encoder's tokens of the batch's text beside the batch's own features, or beside the
        featurizer's when there is one (the same the SavedModel computes)."""
        out = {key: value for key, value in batch.items() if key != "text"}
        if self.input_kind == "text":
            out.update(self.inner.tokenize(batch["text"]))
            if self.vectorizer is not None:
                out.update(self.vectorizer(batch["text"]))
        return out

    @property
    def output_dim(self) -> int:
        return self.inner.output_dim + 2 * self.width

    def call(self, inputs, training=False):
        ids, values = sparse_input_block(inputs["feat_idx"], inputs["feat_val"], self.width)
        return tf.concat([self.inner(inputs, training=training), tf.cast(ids, tf.float32), values], axis=-1)

    def get_config(self):
        return {**super().get_config(), "width": self.width}
