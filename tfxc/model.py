"""The model: an encoder (features -> [B, dim]) and a head (labels), built from a `ModelConfig`."""

from __future__ import annotations

from tfxc._tf import keras, tf
from tfxc.build_context import BuildContext
from tfxc.errors import ConfigError
from tfxc.heads import HEADS
from tfxc.precision import matmul_dtype


class XCModel(keras.Model):
    """Encoder + head. Inputs are the parsed batch dict of `tfxc.data.tfrecord`.

    Call returns the head's raw outputs (logits [B, L] for the dense heads);
    `per_example_loss` and `top_k` delegate to the head.
    """

    def __init__(self, encoder, head, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head = head

    def call(self, inputs, training=False):
        return self.head(self.encoder(inputs, training=training), training=training)

    def per_example_loss(self, inputs, training=False):
        return self.head.per_example_loss(self(inputs, training=training), inputs["labels"])

    def top_k(self, inputs, k: int):
        """(scores float32 [B, k], ids int64 [B, k])."""
        return self.head.top_k(self.encoder(inputs, training=False), k)

    def embedding(self, inputs) -> tf.Tensor:
        """The encoder's embedding of a batch, float32 [B, dim], not normalised: what `tfxc.encode` writes and
        the SavedModel's `embed` signature returns (`Head.encoding`: without what a head has the encoder
        append, such as a sparse term's block)."""
        return self.head.encoding(tf.cast(self.encoder(inputs, training=False), tf.float32))

    @property
    def sparse_variables(self) -> list:
        return self.encoder.sparse_variables + self.head.sparse_variables

    # Keras 3 would trace an automatic dense-input serving signature for any
    # reachable model when saving, which fails for ragged inputs (tf-notes §5);
    # tfxc.export writes explicit signatures instead.
    @property
    def _default_save_signature(self):
        return None


def num_parts(model_config) -> int:
    """How many independently trainable parts the configured head has (1: it trains as a whole)."""
    return HEADS.get(model_config.head.name).num_parts(model_config.head)


def runs_in_levels(head_name: str) -> bool:
    """Whether the run of the head registered as `head_name` is a sequence of runs before its own
    (`Head.runs_in_levels`); False for a name no head is registered under (the config's check names it)."""
    return head_name in HEADS.names() and HEADS.get(head_name).runs_in_levels


def build_model(model_config, context: BuildContext) -> XCModel:
    """Builds the model and creates all its variables (call under the strategy scope).

    The head comes first and then arranges its encoder (`Head.make_encoder`),
    so a head such as MACH can give every part its own network.

    Args:
      model_config: a `ModelConfig`.
      context: sizes of the data, the seed, the model directory and, to build
        one independently trained part alone, `context.part`.
    """
    parts = num_parts(model_config)
    if context.part is not None:
        if parts == 1:
            raise ConfigError(f"model.head '{model_config.head.name}' trains as a whole; training one part "
                              "needs a head with independent parts")
        if not 0 <= context.part < parts:
            raise ConfigError(f"part {context.part} is out of range [0, {parts})")
    head = HEADS.build(model_config.head, context)
    head.matmul_dtype = matmul_dtype(model_config.precision)
    encoder = head.make_encoder(model_config.encoder, context)
    encoder.matmul_dtype = head.matmul_dtype
    model = XCModel(encoder, head, name="xc_model")
    encoder.build()
    head.build((None, encoder.output_dim))
    model.built = True
    return model
