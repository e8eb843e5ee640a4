"""The model: an encoder (features -> [B, dim]) and a head (labels)."""

from __future__ import annotations

from tfxc._tf import keras, tf
from tfxc.encoders import ENCODERS
from tfxc.heads import HEADS


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

    @property
    def sparse_variables(self) -> list:
        return self.encoder.sparse_variables + self.head.sparse_variables

    # Keras 3 would trace an automatic dense-input serving signature for any
    # reachable model when saving, which fails for ragged inputs (tf-notes §5);
    # tfxc.export writes explicit signatures instead.
    @property
    def _default_save_signature(self):
        return None


def build_model(model_config, *, num_features: int, num_labels: int, seed: int | None = None) -> XCModel:
    """Builds and creates all variables (call under the strategy scope)."""
    encoder = ENCODERS.build(model_config.encoder, num_features=num_features, seed=seed)
    head = HEADS.build(model_config.head, num_labels=num_labels)
    model = XCModel(encoder, head, name="xc_model")
    encoder.build()
    head.build((None, encoder.output_dim))
    model.built = True
    return model
