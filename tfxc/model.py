"""The model: an encoder (features -> [B, dim]) and a head (labels)."""

from __future__ import annotations

import os

from tfxc._tf import keras
from tfxc.encoders import ENCODERS
from tfxc.encoders.repeated import RepeatedEncoder
from tfxc.errors import ConfigError
from tfxc.heads import HEADS

MACH_LOOKUP_FILE = "mach_lookup.npz"


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


def build_model(model_config, *, num_features: int, num_labels: int, seed: int | None = None,
                repetitions=None, model_dir: str | None = None) -> XCModel:
    """Builds and creates all variables (call under the strategy scope).

    Args:
      model_config: a `ModelConfig`.
      num_features, num_labels: sizes of the converted data.
      seed: seeds initialisers and dropout.
      repetitions: MACH only: build just these repetitions (e.g. [r] to train
        repetition r alone); None builds all of them.
      model_dir: MACH only: where the label->bucket lookup is saved on first use
        (`mach_lookup.npz`) and reloaded, checked against the config, afterwards.
    """
    head_config = model_config.head
    if repetitions is not None and not (head_config.name == "mach" and head_config.separate_encoders):
        raise ConfigError("--repetition needs model.head.name 'mach' with separate_encoders=true "
                          "(only then are repetitions independent)")
    if head_config.name == "mach":
        reps = list(range(head_config.num_repetitions)) if repetitions is None else list(repetitions)
        bad = [r for r in reps if not 0 <= r < head_config.num_repetitions]
        if bad:
            raise ConfigError(f"repetition {bad[0]} is out of range [0, {head_config.num_repetitions})")
        lookup_path = os.path.join(model_dir, MACH_LOOKUP_FILE) if model_dir else None
        head = HEADS.build(head_config, num_labels=num_labels, repetitions=reps, seed=seed, lookup_path=lookup_path)
    else:
        head = HEADS.build(head_config, num_labels=num_labels, seed=seed)
    if head_config.name == "mach" and head_config.separate_encoders:
        encoder = RepeatedEncoder([_repetition_encoder(model_config.encoder, head_config, r, num_features, seed)
                                   for r in reps], reps, name="encoder")
    else:
        encoder = ENCODERS.build(model_config.encoder, num_features=num_features, seed=seed)
    model = XCModel(encoder, head, name="xc_model")
    encoder.build()
    head.build((None, encoder.output_dim))
    model.built = True
    return model


def _repetition_encoder(encoder_config, head_config, r: int, num_features: int, seed):
    from tfxc.hashing import feature_map
    from tfxc.heads.mach import repetition_seed

    hashed = head_config.feat_hash_dim
    return ENCODERS.build(encoder_config, num_features=hashed or num_features, seed=repetition_seed(seed, r),
                          feature_map=feature_map(num_features, hashed, seed=r) if hashed else None,
                          name=f"encoder_{r}")
