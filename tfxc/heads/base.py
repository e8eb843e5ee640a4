"""The contract every classification head implements.

A head maps encoder features [B, dim] to label scores and owns its loss, so
the training loop, the evaluator and the SavedModel never need to know which
head they drive:

  head    = HeadClass.from_config_dataclass(config, context)   # the one build entry point
  encoder = head.make_encoder(encoder_config, context)           # how the head wants its encoder
  outputs = head(features, training)               # head-specific (logits, bucket logits, ...)
  loss    = head.per_example_loss(outputs, labels)  # float32 [B]
  scores, ids = head.top_k(features, k)             # float32 [B, k], int64 [B, k], best first

`top_k` is first-class so that evaluation and serving never materialise a
dense [N, L] score matrix; heads over huge label spaces compute it from
buckets, trees or label chunks.

As for any Keras layer, `get_config` returns the constructor's arguments (arrays
and option objects included) and `from_config(get_config())`, given the
weights, is the same head; `tests/head_harness.py` checks it for every head.

Optional abilities are declared here with defaults, and a head that has one
overrides the method and sets the matching class flag (flags are read from
the class, so a config can be checked before anything is built):

* `label_logits` (`supports_label_logits`): logits of a subset of labels, for
  sampled objectives (`tfxc.losses`).
* `active_set_loss` (`supports_active_set_loss`): the head's own loss estimated
  from an active set of labels (`tfxc.losses.active_set`), with `label_vectors`
  and `query_vectors` for its index of hard negatives and
  `active_set_obstacle(config)`, what in a head config it cannot estimate.
* `softmax_statistics` (`supports_softmax_statistics`): the full-softmax
  cross-entropy next to the top-k, for evaluation on multi-class data.
* `evaluation_top_k`: a host-side top-k for evaluation (default: `top_k` in a
  tf.function).
* `serving_jit_compile`: the SavedModel's fixed-k signature compiles `top_k`
  with XLA (a head whose top-k is many small ops, like the tree's beam search,
  where per-op dispatch dominates one-row latency).
* `logits_kind`: what the call's output is, for the objectives that work on
  per-label logits (R-Drop and multi-sample dropout in `tfxc.losses.base`,
  distillation in `tfxc.losses.distill`): "categorical" (logits [B, L] of one
  softmax over the labels), "bernoulli" (logits [B, L] of one sigmoid per
  label) or None (anything else: bucket logits, features the loss scores itself).
* `index_vectors` / `index_query` / `index_logits` / `index_scores` (`supports_label_index`): the SavedModel
  may answer `top_k` by beam search over clusters of the label vectors (`tfxc.heads.label_index`).
* `make_encoder`: how the encoder is arranged (default: one encoder from the
  registry).
* `sparse_input` (a part, not a flag): a head with a sparse term over the row's
  input features holds its `tfxc.heads.sparse_term.SparseInput`; the default
  `make_encoder` then appends the row's sparse block to the encoder's output,
  and `encoding` / `encoding_width` strip it again.
* `num_parts` / `merge_part`: heads trained in independent parts (MACH's
  repetitions) say how many; each part trains alone (`tfxc.train --part r`) and
  the whole model is assembled from them afterwards.
* `scores_sum_to_one`: a row's scores are one softmax over the labels, not a probability a label.
* `runs_in_levels`: the head's run is a sequence of training runs before its own (XR-Transformer's
  fine-tuned levels, then the ranker: `tfxc.runs.plan.Levels`).
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

import numpy as np

from tfxc._tf import keras, tf
from tfxc.utils.graph import BatchFunction, graph_function
from tfxc.encoders import ENCODERS
from tfxc.precision import mixed_einsum, mixed_matmul


class Head(keras.layers.Layer):
    """Base class of classification heads (see the module docstring).

    Args:
      num_labels: size of the label space L.
    """

    #: `label_logits` is implemented (sampled objectives need it).
    supports_label_logits: ClassVar[bool] = False
    #: `active_set_loss`, `label_vectors` and `query_vectors` are implemented (the active-set objective needs them).
    supports_active_set_loss: ClassVar[bool] = False
    #: `softmax_statistics` is implemented (evaluation then reports "CE").
    supports_softmax_statistics: ClassVar[bool] = False
    #: what `call` returns (module docstring): "categorical", "bernoulli" or None.
    logits_kind: ClassVar[str | None] = None
    #: `index_vectors`, `index_query`, `index_logits` and `index_scores` are implemented (a label index serves top_k).
    supports_label_index: ClassVar[bool] = False
    #: the SavedModel compiles `top_k(features, fixed k)` with XLA (one compilation per batch size).
    serving_jit_compile: ClassVar[bool] = False
    #: the input side of the head's sparse term (`tfxc.heads.sparse_term.SparseInput`; None: the head has none).
    sparse_input = None
    #: the dtype of the head's big matrix products (`model.precision`, set by `tfxc.model.build_model`);
    #: heads run them through `self.matmul` / `self.einsum`, which return float32 whatever it is.
    matmul_dtype: tf.DType = tf.float32

    def __init__(self, num_labels: int, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = num_labels

    # === Building ===
    @classmethod
    def from_config_dataclass(cls, config, context) -> "Head":
        """Builds the head from its config dataclass and a `tfxc.build_context.BuildContext`."""
        raise NotImplementedError(f"{cls.__name__} must implement from_config_dataclass(config, context)")

    def make_encoder(self, encoder_config, context):
        """The encoder this head is trained on: by default one encoder from the registry, which appends the row's
        sparse block to its output when the head has a sparse term (`sparse_input`)."""
        encoder = ENCODERS.build(encoder_config, context)
        return encoder if self.sparse_input is None else self.sparse_input.make_encoder(encoder, context)

    # === Required ===
    def per_example_loss(self, outputs, labels: tf.RaggedTensor) -> tf.Tensor:
        """Loss of each example, float32 [B]; `labels` is int64 ragged [B, None]."""
        raise NotImplementedError

    def top_k(self, features: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
        """The k best labels of each row: (scores float32 [B, k], ids int64 [B, k]), best first.

        `k` is a Python int or a scalar int32 tensor; heads clip it to num_labels.
        """
        raise NotImplementedError

    # === Optional abilities ===
    def encoding(self, features: tf.Tensor) -> tf.Tensor:
        """The encoder's own embedding within the features the head reads, float32 [B, dim]: all of them but
        the row's sparse block that a head with a sparse term has its encoder append
        (`tfxc.encoders.sparse_input`; `sparse_max_nnz` wide). Heads that append more strip it too."""
        return features if self.sparse_input is None else self.sparse_input.split(features)[0]

    def encoding_width(self, input_shape) -> int:
        """dim: the width of `encoding` for features shaped `input_shape` [..., dim (+ the sparse block)]."""
        return input_shape[-1] if self.sparse_input is None else self.sparse_input.encoder_dim(input_shape)

    @property
    def sparse_max_nnz(self) -> int:
        """The input features per row that the sparse term reads (0: no sparse term)."""
        return 0 if self.sparse_input is None else self.sparse_input.max_nnz

    def label_logits(self, features: tf.Tensor, label_ids: tf.Tensor) -> tf.Tensor:
        """Logits of selected labels: float32 [B, K] for features [B, dim] and label_ids int [K]."""
        raise NotImplementedError(f"{type(self).__name__} cannot score a subset of labels")

    def active_set_loss(self, features: tf.Tensor, labels: tf.RaggedTensor, active_ids: tf.Tensor,
                        log_weights: tf.Tensor) -> tf.Tensor:
        """The head's per-example loss float32 [B] estimated from the labels `active_ids` (int32 [M], distinct,
        shared by the rows) with log importance weights `log_weights` (float32 [M]: 0 for a label taken for
        certain, log 1/q for one sampled with probability q); `labels` int64 ragged [B, None]. With every label
        in the set and zero weights it is `per_example_loss` (`tfxc.heads.active_set_losses`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot train on an active set of labels")

    @classmethod
    def active_set_obstacle(cls, config) -> str:
        """What in head config `config` `active_set_loss` cannot estimate ("" when nothing)."""
        return f"head {cls.__name__} has no active-set loss"

    def label_vectors(self) -> tf.Tensor:
        """float32 [L, d]: each label's vector, whose dot product with `query_vectors` is (most of) its logit."""
        raise NotImplementedError(f"{type(self).__name__} has no label vectors")

    def query_vectors(self, features: tf.Tensor) -> tf.Tensor:
        """float32 [B, d]: the part of `features` that `label_vectors` score."""
        raise NotImplementedError(f"{type(self).__name__} has no label vectors")

    def margin_at_columns(self, logits: tf.Tensor, columns: tf.Tensor) -> tf.Tensor:
        """`label_logits` output float32 [B, K] with the head's target margin (ArcFace, CosFace) applied at
        column `columns[i]` (int [B]) of each row i, for sampled objectives; unchanged without a margin."""
        return logits

    def softmax_statistics(self, features: tf.Tensor, labels: tf.Tensor, k):
        """One pass over all labels for evaluation on multi-class data.

        Args:
          features: float32 [B, dim].
          labels: int64 [B], one label per row.
          k: how many best labels to return.

        Returns:
          (cross_entropy float32 [B], top-k logits float32 [B, k], top-k ids int64 [B, k]).
        """
        raise NotImplementedError(f"{type(self).__name__} has no full-softmax statistics")

    def index_vectors(self):
        """float32 [L, d'] as NumPy: label l's vector v_l, whose inner product with `index_query` of a row is
        the row's logit of l (or, with `index_logits`, its dense part), for a label index."""
        raise NotImplementedError(f"{type(self).__name__} cannot be served through a label index")

    def index_query(self, features: tf.Tensor) -> tf.Tensor:
        """float32 [B, d']: the rows' queries against `index_vectors` (features [B, dim])."""
        raise NotImplementedError(f"{type(self).__name__} cannot be served through a label index")

    def index_logits(self, features: tf.Tensor, label_ids: tf.Tensor, dense_logits: tf.Tensor) -> tf.Tensor:
        """The exact logits float32 [B, C] of each row's candidates int32 [B, C] (distinct per row), from their
        inner products `dense_logits` [B, C] with the row's query (adds what else the head scores: its sparse
        term). Default: the inner products."""
        return dense_logits

    def index_scores(self, top_logits: tf.Tensor, candidate_logits: tf.Tensor) -> tf.Tensor:
        """The head's scores float32 [B, k] of the top logits [B, k] of a row's candidates, all of whose
        logits are `candidate_logits` [B, C] (−inf at padding)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be served through a label index")

    def evaluation_top_k(self, model, k: int):
        """A callable batch -> (scores float32 [B, k], ids int64 [B, k]) as NumPy, for evaluation.

        The default runs `model.top_k` in a tf.function, with the head's part
        compiled by XLA when it serves that way (`serving_jit_compile`; batches
        padded to a power of two, so an evaluation compiles once or twice);
        heads with a faster host-side path (MACH's Cython gather) override this.
        """
        if not self.serving_jit_compile:
            fn = BatchFunction(lambda batch: model.top_k(batch, k))

            def top_k(batch):
                scores, ids = fn(batch)
                return scores.numpy(), ids.numpy()

            return top_k
        encode = BatchFunction(lambda batch: model.encoder(batch, training=False))
        compiled = graph_function(lambda features: self.top_k(features, k), jit_compile=True)
        limit = self.top_k_rows_per_call()

        def padded_top_k(features):
            rows = int(features.shape[0])
            scores, ids = compiled(tf.pad(features, [[0, (1 << (rows - 1).bit_length()) - rows], [0, 0]]))
            return scores.numpy()[:rows], ids.numpy()[:rows]

        def compiled_top_k(batch):
            features = encode(batch)
            rows = int(features.shape[0])
            if not limit or rows <= limit:
                return padded_top_k(features)
            parts = [padded_top_k(features[start:start + limit]) for start in range(0, rows, limit)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

        return compiled_top_k

    def top_k_rows_per_call(self) -> int:
        """The most rows (a power of two) one compiled `top_k` of evaluation should score, so that its working
        set stays bounded whatever the evaluation's batch size; 0: any number."""
        return 0

    runs_in_levels: ClassVar[bool] = False
    # The scores of a row are one distribution over the labels (a softmax): a threshold then keeps at most
    # ⌈1/t⌉ − 1 labels (`tfxc.eval.classification.threshold_meaning`).
    scores_sum_to_one: ClassVar[bool] = False

    @classmethod
    def num_parts(cls, config) -> int:
        """How many independently trainable parts a head of `config` has (1: it trains as a whole)."""
        return 1

    def merge_part(self, model, index: int, part) -> None:
        """Sets the weights of part `index` of `model` (built whole, with this head) from `part`, a model of
        that part alone (`ModelDir.assemble` calls it once per part, one part in memory at a time)."""
        raise NotImplementedError(f"{type(self).__name__} trains as a whole; it has no parts to merge")

    def part_scores(self, model, batch) -> tf.Tensor:
        """What a model of one part (`model`, with this head) contributes to ranking a batch: float32
        [B, W] (MACH: its repetition's bucket scores). `tfxc.eval.parts` collects them part by part."""
        raise NotImplementedError(f"{type(self).__name__} trains as a whole; it has no parts to score")

    def ranked_parts(self, trained: int) -> int:
        """How many of the `trained` parts (the first ones) a ranking reads: all, unless the head's prediction
        settings rank with fewer (MACH's evaluation-time repetitions)."""
        return trained

    def rank_part_scores(self, scores, k: int):
        """Top-k of the whole model from all parts' `part_scores`, float32 [B, parts, W]:
        (scores float32 [B, k], ids int64 [B, k]) as NumPy arrays. Called on the whole head, unbuilt."""
        raise NotImplementedError(f"{type(self).__name__} trains as a whole; it has no parts to rank")

    def memory_scores(self, training: bool, labels_per_point: float = 1.0) -> int:
        """Float32 scores per example that the head holds at once in a training step (`training`) or in one
        evaluation block, for the memory plan (`tfxc.training.memory_plan`); `labels_per_point`: the train split's
        average. Default: all L labels."""
        return self.num_labels

    @property
    def sparse_variables(self) -> list:
        """Variables whose gradients are row-sparse (`tf.IndexedSlices`); updated lazily."""
        return []

    # === Helpers ===
    @contextlib.contextmanager
    def products_in(self, dtype: tf.DType):
        """Inside the block, the head's products are traced in `dtype` instead of `matmul_dtype` (the
        SavedModel serves a few rows of a bfloat16 head in float32, `tfxc.export.serving_modules`)."""
        saved, self.matmul_dtype = self.matmul_dtype, dtype
        try:
            yield
        finally:
            self.matmul_dtype = saved

    def matmul(self, a: tf.Tensor, b: tf.Tensor, **kwargs) -> tf.Tensor:
        """`tf.matmul(a, b, **kwargs)` in `matmul_dtype`, as float32 (`tfxc.precision.mixed_matmul`)."""
        return mixed_matmul(a, b, self.matmul_dtype, **kwargs)

    def einsum(self, equation: str, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        """`tf.einsum(equation, a, b)` in `matmul_dtype`, as float32 (`tfxc.precision.mixed_einsum`)."""
        return mixed_einsum(equation, a, b, self.matmul_dtype)

    def get_config(self):
        """The constructor's arguments (module docstring); each head adds its own."""
        return {**super().get_config(), "num_labels": self.num_labels}


def positive_logits(logits: tf.Tensor, labels: tf.RaggedTensor) -> tf.RaggedTensor:
    """Gathers logits[b, l] for every positive label l of row b, as a ragged [B, None].

    Avoids building a dense multi-hot [B, L] target.
    """
    rows = labels.value_rowids()
    values = tf.gather_nd(logits, tf.stack([rows, labels.values], axis=1))
    return tf.RaggedTensor.from_value_rowids(values, rows, nrows=tf.shape(logits, out_type=tf.int64)[0])
