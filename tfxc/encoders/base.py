"""The contract every encoder implements: a batch of inputs -> dense features float32 [B, output_dim]."""

from __future__ import annotations

import contextlib
from typing import ClassVar

from tfxc._tf import keras, tf


class Encoder(keras.layers.Layer):
    """Base class of encoders.

    An encoder reads the parsed batch dict of `tfxc.data.tfrecord` (e.g.
    `feat_idx`/`feat_val` int64/float32 ragged [B, None]) and returns float32
    [B, output_dim]. Heads are built on `output_dim`; `sparse_variables` names
    the variables whose gradients are row-sparse (`tf.IndexedSlices`), which the
    optimizers then update lazily.

    Text encoders (`input_kind = "text"`) read raw strings: `tokenize` maps
    string [B] to the tensors their `call` reads (token ids, masks). It is a
    stateless graph function that runs inside `tf.data` (`preprocess`, after
    parsing, for training and evaluation) and inside the SavedModel (whose
    signatures then take raw strings), never in the training step itself.
    """

    #: "features": reads feat_idx/feat_val; "text": reads the raw "text" through `tokenize`; "image": reads the
    #: encoded "image" through `decode_images`.
    input_kind: ClassVar[str] = "features"

    #: The dtype of the encoder's big products where it has one that dominates a step (the full
    #: embedding bag); set from `model.precision` when the model is built (`tfxc.precision`).
    matmul_dtype = tf.float32

    @classmethod
    def from_config_dataclass(cls, config, context, *, name: str = "encoder") -> "Encoder":
        """Builds the encoder from its config dataclass and a `tfxc.build_context.BuildContext`."""
        raise NotImplementedError(f"{cls.__name__} must implement from_config_dataclass(config, context)")

    @property
    def output_dim(self) -> int:
        raise NotImplementedError

    @property
    def sparse_variables(self) -> list:
        return []

    @contextlib.contextmanager
    def tracing_for_serving(self):
        """Inside, calls are traced into a SavedModel's signatures (`tfxc.export.saved_model`): an encoder
        may then compute differently where a served graph can afford to (this one does not)."""
        yield

    def memory_step_bytes(self, batch_size: int, training: bool = True) -> int:
        """Bytes of activations a step of `batch_size` rows holds inside the encoder, for the memory plan
        (`tfxc.training.memory_plan`), which counts the inputs and outputs itself: 0 here; an encoder with a
        deep network over its inputs (a vision backbone) says how many."""
        return 0

    def memory_input_bytes(self) -> int:
        """Bytes of one preprocessed row in the input pipeline, for the memory plan: 0 here (feature rows and
        token ids are counted from the data's card); a decoded image's pixels for an image encoder."""
        return 0

    #: `embed` / `from_embedded` are implemented (adversarial training perturbs the input embeddings).
    supports_embedding_perturbation: ClassVar[bool] = False

    def embed(self, inputs, training=False):
        """The input embeddings an adversary may perturb: float32 [B, T, E], or ragged [B, None, E]."""
        raise NotImplementedError(f"{type(self).__name__} has no perturbable input embeddings")

    def from_embedded(self, embedded, inputs, training=False):
        """The rest of `call` after `embed`: call(x) == from_embedded(embed(x), x)."""
        raise NotImplementedError(f"{type(self).__name__} has no perturbable input embeddings")

    def tokenize(self, texts) -> dict:
        """string [B] -> the dict of tensors `call` reads (text encoders only)."""
        raise NotImplementedError(f"{type(self).__name__} does not read raw text")

    def decode_images(self, images) -> dict:
        """string [B] of encoded images -> the dict of tensors `call` reads (image encoders only)."""
        raise NotImplementedError(f"{type(self).__name__} does not read images")

    def save_tokenizer(self, directory: str) -> None:
        """Writes into `directory` (which exists) the files `tokenize` reads, for readers outside TensorFlow
        (the ONNX export, `tfxc.export.onnx`): none here; a vocabulary, a keras-hub tokenizer."""

    def preprocess(self, batch: dict) -> dict:
        """The input pipeline's last step on a parsed batch: text encoders swap "text" for its tokens, image
        encoders "image" for the decoded pixels.

        The others drop both, so JSONL rows' strings and images' bytes never travel to the replicas.
        """
        out = {key: value for key, value in batch.items() if key not in ("text", "image")}
        if self.input_kind == "text":
            out.update(self.tokenize(batch["text"]))
        elif self.input_kind == "image":
            out.update(self.decode_images(batch["image"]))
        return out


class WrappingEncoder(Encoder):
    """An encoder around another (`inner`) that appends to or transforms its output: it reads what the inner
    one reads, tokenises as it does and shares its matmul dtype. Subclasses define `call` (and `output_dim`
    when they change the width)."""

    def __init__(self, inner: Encoder, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    @property
    def input_kind(self) -> str:
        return self.inner.input_kind

    def tokenize(self, texts) -> dict:
        return self.inner.tokenize(texts)

    def decode_images(self, images) -> dict:
        return self.inner.decode_images(images)

    def save_tokenizer(self, directory: str) -> None:
        self.inner.save_tokenizer(directory)

    @property
    def output_dim(self) -> int:
        return self.inner.output_dim

    def tracing_for_serving(self):
        return self.inner.tracing_for_serving()

    @property
    def matmul_dtype(self):
        return self.inner.matmul_dtype

    @matmul_dtype.setter
    def matmul_dtype(self, dtype):
        self.inner.matmul_dtype = dtype

    def build(self, input_shape=None):
        self.inner.build()
        self.built = True

    @property
    def sparse_variables(self) -> list:
        return self.inner.sparse_variables

    def memory_step_bytes(self, batch_size: int, training: bool = True) -> int:
        return self.inner.memory_step_bytes(batch_size, training)

    def memory_input_bytes(self) -> int:
        return self.inner.memory_input_bytes()
