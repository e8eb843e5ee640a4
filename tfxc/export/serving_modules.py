"""The serving modules an export saves: their signatures, traced from the model (described in
`tfxc.export.saved_model`'s docstring, which writes the export).

`ServingBase` holds what every input kind shares: the top-k (the head's own, a label index's or an ensemble's,
compiled with XLA for a head that serves that way) and the embeddings. `ServingModule` takes feature rows as a
CSR triple and checks them in the graph; `TextServingModule` and `ImageServingModule` take one string a row
(a text, an encoded image), turned into the encoder's inputs in the graph. `serving_module` picks one.
"""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.utils.graph import graph_function


# Up to this many rows a head whose products run in bfloat16 serves in float32 instead. For a few rows the
# product only streams the weights, and casting the float32 kernel to bfloat16 on every call streams it once
# more and writes half of it again (wordnet-hypernyms' [1024 x 10,440] softmax: see docs/benchmarks-history.md, "Speed");
# a larger batch amortises the cast and gains from bfloat16's faster products.
FLOAT32_SERVING_MAX_ROWS = 16

# A `serving_jit_compile` head's top-k runs through XLA in blocks of at most this many rows (a power of two).
XLA_BLOCK_ROWS = 256


def at_least_one_row(raw: tf.Tensor, filler: str | bytes = "") -> tf.Tensor:
    """string [B] -> string [max(B, 1)]: an empty batch becomes one `filler` row (see the module docstring)."""
    return tf.cond(tf.size(raw) > 0, lambda: raw, lambda: tf.constant([filler]))


def first_rows(outputs: dict, rows: tf.Tensor) -> dict:
    """Each output [B', ...] cut to its first `rows` rows (undoes `at_least_one_row`; a no-op otherwise)."""
    return {name: value[:rows] for name, value in outputs.items()}


class ServingBase(tf.Module):
    """What both serving modules share: the label names, the default k and the top-k of an input batch.

    The signature functions live on the subclasses only: `tf.saved_model.save` traces every
    `tf.function` a module has, and a text model cannot run a feature-row signature.
    """

    def __init__(self, model, label_names: list[str], top_k: int, num_features: int, index=None, ensemble=None,
                 featurizer=None):
        super().__init__(name="tfxc_serving")
        self.model = model
        # A `tfxc.text.tfidf.TfidfVectorizer` in front of a model that reads feature rows (`serving_featurizer`).
        self.featurizer = featurizer
        # A `tfxc.export.ensemble.EnsembleTopK` over the members (`model` is then the first, whose encoder embeds).
        self.ensemble = ensemble
        # A `tfxc.export.index_choice.IndexChoice`: top_k through a label index for batches of up to max_rows.
        self.label_index = None if index is None else index.index
        self._index_max_rows = None if index is None else index.max_rows
        if self.label_index is None:
            # Without an index there is no exact signature, and `tf.saved_model.save` would still trace the
            # class's function (every tf.function with an input signature is traced): hide it.
            for name in self.EXACT_FUNCTIONS:
                setattr(self, name, None)
        self.num_labels = len(label_names)
        self.num_features = num_features
        self.default_k = min(top_k, self.num_labels)
        self.label_names = tf.constant(label_names, dtype=tf.string)
        # A head that asks for XLA (`Head.serving_jit_compile`) gets its fixed-k top-k compiled in `xla_serve`,
        # a function for Python readers beside the signatures, never in one: a model server runs without XLA
        # (module docstring). XLA needs a static k, so only the default k compiles.
        self._compiled_head_top_k = None
        if model.head.serving_jit_compile and ensemble is None:
            self._compiled_head_top_k = graph_function(lambda h: model.head.top_k(h, self.default_k), jit_compile=True)
            self.xla_serve = graph_function(self._compiled_serve,
                                            input_signature=self.signatures()["serving_default"].input_signature)

    def _batch_top_k(self, batch, k, compiled: bool = False, exact: bool = False):
        """The top-k outputs of one input batch (the dict the encoder reads); `compiled`: the head's part by XLA;
        `exact`: never the label index."""
        if self.ensemble is not None:
            scores, ids = self.ensemble(batch, k)
            names = tf.where(ids >= 0, tf.gather(self.label_names, tf.maximum(ids, 0)), "")
            return {"label_ids": ids, "scores": scores, "labels": names}
        features = self.model.encoder(batch, training=False)
        if compiled:
            scores, ids = self._compiled_top_k(features)
        elif self.label_index is not None and not exact:
            scores, ids = self._indexed_top_k(features, k)
        else:
            scores, ids = self._head_top_k(features, k)
        # A head that reaches fewer than k labels (a beam search) marks the empty slots with id -1.
        names = tf.where(ids >= 0, tf.gather(self.label_names, tf.maximum(ids, 0)), "")
        return {"label_ids": ids, "scores": scores, "labels": names}

    def _head_top_k(self, features, k):
        """The head's top-k, with a few rows of a bfloat16 head in float32 (`FLOAT32_SERVING_MAX_ROWS`)."""
        head = self.model.head
        if head.matmul_dtype == tf.float32:
            return head.top_k(features, k)

        def in_float32():
            with head.products_in(tf.float32):
                return head.top_k(features, k)

        return tf.cond(tf.shape(features)[0] <= FLOAT32_SERVING_MAX_ROWS, in_float32, lambda: head.top_k(features, k))

    def _indexed_top_k(self, features, k):
        """The top-k through the label index, or from the exact head for batches of more than max_rows."""
        through_index = lambda: self.label_index.top_k(self.model.head, tf.cast(features, tf.float32), k)
        if self._index_max_rows is None:
            return through_index()
        return tf.cond(tf.shape(features)[0] <= self._index_max_rows, through_index,
                       lambda: self._head_top_k(features, k))

    def _embeddings(self, batch) -> dict:
        """{"embedding": the L2-normalised encoder output float32 [B, dim], "raw_embedding": as is}."""
        features = self.model.embedding(batch)
        return {"embedding": tf.math.l2_normalize(features, axis=1), "raw_embedding": features}

    def _compiled_top_k(self, features):
        """The head's top-k (k = default_k) through XLA: features float32 [B, F] -> ([B, k], [B, k]).

        XLA compiles once per input shape (0.3-0.5 s each, on first use), so a
        batch of up to `XLA_BLOCK_ROWS` rows is padded to the next power of two
        (at most 9 shapes) and a bigger one runs as blocks of `XLA_BLOCK_ROWS`.
        One row: 0.85 -> 0.45 ms for the label tree's beam search; 256 rows at
        30,000 labels: 24 -> 8 ms (docs/benchmarks-history.md, "Label tree head").
        """
        rows = tf.shape(features)[0]
        buckets = tf.constant([2 ** i for i in range(XLA_BLOCK_ROWS.bit_length())], tf.int32)

        def padded(size):
            return tf.pad(features, [[0, size - rows], [0, 0]])

        def one_block():
            scores, ids = self._compiled_head_top_k(padded(tf.gather(buckets, tf.searchsorted(buckets, rows[None])[0])))
            return scores[:rows], ids[:rows]

        def blocks():
            count = (rows + XLA_BLOCK_ROWS - 1) // XLA_BLOCK_ROWS
            split = tf.reshape(padded(count * XLA_BLOCK_ROWS), [count, XLA_BLOCK_ROWS, features.shape[-1]])
            scores, ids = tf.map_fn(self._compiled_head_top_k, split, parallel_iterations=1,
                                    fn_output_signature=(tf.float32, tf.int64))
            return (tf.reshape(scores, [count * XLA_BLOCK_ROWS, -1])[:rows],
                    tf.reshape(ids, [count * XLA_BLOCK_ROWS, -1])[:rows])

        return tf.cond(rows <= XLA_BLOCK_ROWS, one_block, blocks)

    #: The subclass's top-k functions that bypass the label index (the `top_k_exact` signature).
    EXACT_FUNCTIONS: tuple[str, ...] = ()

    def signatures(self) -> dict:
        raise NotImplementedError

    def _compiled_serve(self, *inputs):
        """`serving_default` with the head's top-k compiled by XLA (`xla_serve`)."""
        raise NotImplementedError


class ServingModule(ServingBase):
    """Wraps a trained `XCModel` on feature rows with the CSR signatures above."""

    EXACT_FUNCTIONS = ("serve_k_exact",)

    def _input_checks(self, feat_idx, feat_val, row_splits, k) -> list:
        """The assertions of the module docstring; each raises InvalidArgumentError with its message."""
        nnz = tf.size(feat_idx, out_type=tf.int64)
        bad_ids = tf.boolean_mask(feat_idx, (feat_idx < 0) | (feat_idx >= self.num_features))
        csr = ((tf.size(row_splits) >= 1) & tf.reduce_all(tf.equal(row_splits[:1], 0))
               & tf.reduce_all(tf.equal(row_splits[-1:], nnz)) & tf.reduce_all(row_splits[1:] >= row_splits[:-1]))
        return [
            tf.debugging.Assert(tf.equal(nnz, tf.size(feat_val, out_type=tf.int64)),
                                ["feat_idx and feat_val must have the same length; got", nnz, tf.size(feat_val)]),
            tf.debugging.Assert(csr, ["row_splits must start at 0, never decrease and end at len(feat_idx) =", nnz,
                                      "; got", row_splits], summarize=20),
            tf.debugging.Assert(tf.size(bad_ids) == 0, [f"feature ids must be in [0, {self.num_features}); got",
                                                        bad_ids], summarize=5),
            tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(feat_val)),
                                ["feat_val must be finite (no NaN or Inf)"]),
            tf.debugging.Assert(k >= 1, ["k must be >= 1; got", k]),
        ]

    def _checked_batch(self, feat_idx, feat_val, row_splits, k=1) -> dict:
        # Everything downstream reads these identities, so no op sees an input before it is checked.
        with tf.control_dependencies(self._input_checks(feat_idx, feat_val, row_splits, k)):
            feat_idx, feat_val, row_splits = tf.identity(feat_idx), tf.identity(feat_val), tf.identity(row_splits)
        # Zero rows (row_splits [0]) run as one empty row, cut off again by `first_rows`.
        row_splits = tf.cond(tf.size(row_splits) > 1, lambda: row_splits, lambda: tf.zeros([2], tf.int64))
        return {"feat_idx": tf.RaggedTensor.from_row_splits(feat_idx, row_splits, validate=False),
                "feat_val": tf.RaggedTensor.from_row_splits(feat_val, row_splits, validate=False)}

    def _top_k(self, feat_idx, feat_val, row_splits, k, compiled=False, exact: bool = False):
        rows = tf.size(row_splits) - 1
        batch = self._checked_batch(feat_idx, feat_val, row_splits, k)
        return first_rows(self._batch_top_k(batch, k, compiled, exact), rows)

    def _compiled_serve(self, feat_idx, feat_val, row_splits):
        return self._top_k(feat_idx, feat_val, row_splits, self.default_k, compiled=True)

    def signatures(self) -> dict:
        exact = {} if self.label_index is None else {"top_k_exact": self.serve_k_exact}
        return {"serving_default": self.serve, "top_k": self.serve_k, "embed": self.embed, **exact}

    @graph_function(input_signature=[tf.TensorSpec([None], tf.int64, name="feat_idx"),
                                     tf.TensorSpec([None], tf.float32, name="feat_val"),
                                     tf.TensorSpec([None], tf.int64, name="row_splits")])
    def embed(self, feat_idx, feat_val, row_splits):
        rows = tf.size(row_splits) - 1
        return first_rows(self._embeddings(self._checked_batch(feat_idx, feat_val, row_splits)), rows)

    @graph_function(input_signature=[tf.TensorSpec([None], tf.int64, name="feat_idx"),
                                     tf.TensorSpec([None], tf.float32, name="feat_val"),
                                     tf.TensorSpec([None], tf.int64, name="row_splits")])
    def serve(self, feat_idx, feat_val, row_splits):
        return self._top_k(feat_idx, feat_val, row_splits, self.default_k)

    @graph_function(input_signature=[tf.TensorSpec([None], tf.int64, name="feat_idx"),
                                     tf.TensorSpec([None], tf.float32, name="feat_val"),
                                     tf.TensorSpec([None], tf.int64, name="row_splits"),
                                     tf.TensorSpec([], tf.int32, name="k")])
    def serve_k(self, feat_idx, feat_val, row_splits, k):
        with tf.control_dependencies([tf.debugging.Assert(k >= 1, ["k must be >= 1; got", k])]):
            k = tf.minimum(k, self.num_labels)
        return self._top_k(feat_idx, feat_val, row_splits, k)

    @graph_function(input_signature=serve_k.input_signature)
    def serve_k_exact(self, feat_idx, feat_val, row_splits, k):
        with tf.control_dependencies([tf.debugging.Assert(k >= 1, ["k must be >= 1; got", k])]):
            k = tf.minimum(k, self.num_labels)
        return self._top_k(feat_idx, feat_val, row_splits, k, exact=True)


class _RawInputServing(ServingBase):
    """What the modules share whose signatures take one string per row (texts, encoded images), turned into the
    encoder's inputs in the graph (`_raw_batch`)."""

    #: What an empty request runs on instead (`at_least_one_row`): one input the encoder accepts.
    filler = ""

    def _raw_batch(self, raw):
        raise NotImplementedError

    def _raw_top_k(self, raw, k, compiled=False, exact: bool = False):
        rows = tf.shape(raw)[0]
        return first_rows(self._batch_top_k(self._raw_batch(at_least_one_row(raw, self.filler)), k, compiled, exact),
                          rows)

    def _compiled_serve(self, raw):
        return self._raw_top_k(raw, self.default_k, compiled=True)

    def _checked_top_k(self, raw, k, exact: bool = False):
        with tf.control_dependencies([tf.debugging.Assert(k >= 1, ["k must be >= 1; got", k])]):
            k = tf.minimum(k, self.num_labels)
        return self._raw_top_k(raw, k, exact=exact)

    def _raw_embeddings(self, raw):
        return first_rows(self._embeddings(self._raw_batch(at_least_one_row(raw, self.filler))), tf.shape(raw)[0])


class TextServingModule(_RawInputServing):
    """The signatures of a raw-text model (module docstring): strings in, tokenised in the graph."""

    EXACT_FUNCTIONS = ("serve_text_k_exact",)

    def signatures(self) -> dict:
        exact = {} if self.label_index is None else {"top_k_exact": self.serve_text_k_exact}
        return {"serving_default": self.serve_text, "top_k": self.serve_text_k, "embed": self.embed,
                "tokenize": self.tokenize, **exact}

    def _raw_batch(self, text):
        if self.featurizer is not None:
            return self.featurizer(text)
        return self.model.encoder.tokenize(text)

    @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_text(self, text):
        return self._raw_top_k(text, self.default_k)

    @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                     tf.TensorSpec([], tf.int32, name="k")])
    def serve_text_k(self, text, k):
        return self._checked_top_k(text, k)

    @graph_function(input_signature=serve_text_k.input_signature)
    def serve_text_k_exact(self, text, k):
        return self._checked_top_k(text, k, exact=True)

    @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def embed(self, text):
        return self._raw_embeddings(text)

    @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def tokenize(self, text):
        out = {}
        for name, value in self._raw_batch(text).items():
            if isinstance(value, tf.RaggedTensor):
                out[name + "_values"], out[name + "_row_splits"] = value.flat_values, value.row_splits
            else:
                out[name] = value
        return out


class ImageServingModule(_RawInputServing):
    """The signatures of an image model (module docstring): encoded images in, decoded and converted in the graph."""

    EXACT_FUNCTIONS = ("serve_image_k_exact",)

    # A 1x1 black PNG: what an empty request runs on.
    filler = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS"
              b"\xde\x00\x00\x00\x0cIDATx\x9cc```\x00\x00\x00\x04\x00\x01\xf6\x178U\x00\x00\x00\x00IEND\xaeB`\x82")

    def signatures(self) -> dict:
        exact = {} if self.label_index is None else {"top_k_exact": self.serve_image_k_exact}
        return {"serving_default": self.serve_image, "top_k": self.serve_image_k, "embed": self.embed, **exact}

    def _raw_batch(self, image):
        return self.model.encoder.decode_images(image)

    @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
    def serve_image(self, image):
        return self._raw_top_k(image, self.default_k)

    @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="image"),
                                     tf.TensorSpec([], tf.int32, name="k")])
    def serve_image_k(self, image, k):
        return self._checked_top_k(image, k)

    @graph_function(input_signature=serve_image_k.input_signature)
    def serve_image_k_exact(self, image, k):
        return self._checked_top_k(image, k, exact=True)

    @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
    def embed(self, image):
        return self._raw_embeddings(image)


def serving_module(model, label_names: list[str], top_k: int, num_features: int, index=None,
                   ensemble=None, featurizer=None) -> ServingBase:
    """The serving wrapper the model's inputs call for (raw text, images or feature rows); `index`: an
    `IndexChoice`; `ensemble`: an `EnsembleTopK` whose first member is `model`; `featurizer`: strings to the
    feature rows `model` reads (`serving_featurizer`)."""
    kind = "text" if featurizer is not None else model.encoder.input_kind
    cls = {"text": TextServingModule, "image": ImageServingModule}.get(kind, ServingModule)
    return cls(model, label_names, top_k, num_features, index, ensemble, featurizer)


def serving_input_kind(module: ServingBase) -> str:
    """What a serving module's signatures take: "text", "image" or "features" (export.json's "input")."""
    return {TextServingModule: "text", ImageServingModule: "image"}.get(type(module), "features")
