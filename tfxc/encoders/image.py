"""A keras-hub vision backbone from a local preset as the encoder: images in, fine-tuned or frozen.

The counterpart of the text `pretrained` encoder for MHE's image experiments (CIFAR ResNets under
MHP/MHC/MHS, ImageNet ResNet-50 under MHP, face ResNets under MHS-ArcFace) and SCENT's feature
extractors. Images travel as encoded bytes (the TFRecords' `image`, a SavedModel's `image` input) and are
decoded and converted in `tf.data` by the preset's own image converter (`tfxc.images.preprocessing`); the
augmentations image classifiers train with run in the training step, per image:

* "flip": a horizontal flip with probability 1/2;
* "crop": CIFAR's padded crop (pad by `crop_padding` pixels on each side, crop back at a random offset);
* "resized_crop": Inception's random-resized crop (Szegedy et al., 2015): a box of 8-100 % of the area and
  aspect ratio 3/4-4/3, resized back to the input size.

`embedding_dim` > 0 adds insightface's embedding layer on the pooled features (batch norm, dropout, a
linear map to `embedding_dim`, batch norm: the 512-d face embedding the ArcFace / MHS heads and the
verification protocol compare).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.encoders.base import Encoder
from tfxc.errors import ConfigError
from tfxc.images import DEFAULT_MAX_PIXELS

AUGMENTATIONS = ("flip", "crop", "resized_crop")
# A training step's activations, in multiples of every layer output of the backbone (the forward outputs kept
# for the gradient; the gradients are freed as back-propagation passes them). Calibrated on ResNet-50 at
# 224x224, batch 32: planned 5.8 GiB, measured 5.08 GiB peak (BENCHMARKS.md, "Images").
ACTIVATION_COPIES = 1
# A forward pass without gradient holds a few layer outputs at once: the largest, in multiples.
FORWARD_COPIES = 3


@dataclass(frozen=True)
class ImageEncoderConfig:
    """Config of `ImageEncoder`.

    Attributes:
      name: "image".
      preset: a local keras-hub image backbone preset directory (config.json, weights, image_converter.json).
      image_size: the square input size; 0 = the preset converter's.
      pooling: auto, avg, max, cls or embedding (`tfxc.images.backbones`).
      trainable: fine-tune the backbone (True) or keep it frozen, training only what is on top.
      augment: training augmentations, among flip, crop and resized_crop (module docstring).
      crop_padding: the padding of "crop" (4 on CIFAR's 32x32 images).
      embedding_dim: > 0: insightface's BN-dropout-linear-BN embedding of this width on the pooled features.
      dropout: dropout rate on the output (in the embedding layer, before its linear map).
      mixed_bfloat16: run the backbone's matmuls and convolutions in bfloat16 (weights stay float32).
      max_pixels: an image of more pixels (width x height, read from its header) is refused before it is
        decoded, in training's input pipeline and in the SavedModel (`tfxc.images.preprocessing`).
    """

    name: str = "image"
    preset: str = ""
    image_size: int = 0
    pooling: str = "auto"
    trainable: bool = True
    augment: tuple[str, ...] = ("flip",)
    crop_padding: int = 4
    embedding_dim: int = 0
    dropout: float = 0.0
    mixed_bfloat16: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS

    def validate(self, path: str) -> None:
        if not self.preset:
            raise ConfigError(f"{path}.preset must name a local keras-hub image backbone preset directory")
        unknown = [a for a in self.augment if a not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(f"{path}.augment {unknown} are not among {', '.join(AUGMENTATIONS)}")
        if "crop" in self.augment and "resized_crop" in self.augment:
            raise ConfigError(f"{path}.augment: crop and resized_crop are two ways of cropping; choose one")
        if self.image_size < 0 or self.crop_padding < 0 or self.embedding_dim < 0:
            raise ConfigError(f"{path}: image_size, crop_padding and embedding_dim must be >= 0")
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ConfigError(f"{path}.max_pixels ({self.max_pixels!r}) must be an integer >= 1 (pixels an image may "
                              f"have; default {DEFAULT_MAX_PIXELS:,}, Pillow's limit)")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{path}.dropout ({self.dropout}) must be in [0, 1)")


class ImageEncoder(Encoder):
    """A keras-hub image backbone pooled to one vector per image, with training augmentations.

    Call args:
      inputs: {"images": float32 [B, S, S, 3]}, from `decode_images` (the preset's converter applied).

    Returns:
      float32 [B, output_dim]: the pooled backbone output, or the embedding with `embedding_dim`.
    """

    input_kind = "image"

    def __init__(self, preset_dir: str, *, image_size=0, pooling="auto", trainable=True, augment=("flip",),
                 crop_padding=4, embedding_dim=0, dropout=0.0, mixed_bfloat16=False, max_pixels=DEFAULT_MAX_PIXELS,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        from tfxc.images.backbones import VisionFeatures, load_vision_backbone
        from tfxc.images.preprocessing import load_converter

        self.preset_dir, self.augment, self.crop_padding = preset_dir, tuple(augment), crop_padding
        self.max_pixels = max_pixels
        self.features = VisionFeatures(load_vision_backbone(preset_dir, mixed_bfloat16=mixed_bfloat16), pooling,
                                       name="features")
        self.converter = load_converter(preset_dir, image_size)
        self.image_size = tuple(self.converter.image_size)
        self.features.trainable = trainable
        self.embedding_dim = embedding_dim
        if embedding_dim:
            self.embedding = keras.Sequential([
                keras.layers.BatchNormalization(epsilon=1e-5, name="features_bn"),
                keras.layers.Dropout(dropout, seed=seed),
                keras.layers.Dense(embedding_dim, name="fc"),
                keras.layers.BatchNormalization(epsilon=1e-5, name="embedding_bn"),
            ], name="embedding")
        elif dropout:
            self.dropout = keras.layers.Dropout(dropout, seed=seed, name="dropout")
        self.dropout_rate = dropout
        self.seed_generator = keras.random.SeedGenerator(seed if seed is not None else 0, name="augment_seed")

    @classmethod
    def from_config_dataclass(cls, config: ImageEncoderConfig, context, *, name="encoder"):
        return cls(config.preset, image_size=config.image_size, pooling=config.pooling, trainable=config.trainable,
                   augment=config.augment, crop_padding=config.crop_padding, embedding_dim=config.embedding_dim,
                   dropout=config.dropout, mixed_bfloat16=config.mixed_bfloat16, max_pixels=config.max_pixels,
                   seed=context.seed, name=name)

    @property
    def output_dim(self) -> int:
        return self.embedding_dim or self.features.output_dim

    def memory_step_bytes(self, batch_size: int, training: bool = True) -> int:
        from tfxc.images.backbones import activation_bytes

        if not hasattr(self, "_activations"):
            self._activations = activation_bytes(self.features.backbone, self.image_size)
        total, largest = self._activations  # an image's, at each output's dtype (bfloat16's float32 copies too)
        kept = ACTIVATION_COPIES * total if training and self.features.trainable else FORWARD_COPIES * largest
        return int(batch_size * kept)

    def memory_input_bytes(self) -> int:
        return 4 * 3 * self.image_size[0] * self.image_size[1]  # float32 [S, S, 3] after conversion

    def decode_images(self, images) -> dict:
        from tfxc.images.preprocessing import batch_inputs

        return {"images": batch_inputs(self.converter, self.max_pixels, "model.encoder.max_pixels")(images)}

    def build(self, input_shape=None):
        # Every variable exists before the first step: the optimizer is built on them.
        if self.embedding_dim:
            self.embedding.build((None, self.features.output_dim))
        self.built = True

    def call(self, inputs, training=False):
        images = inputs["images"]
        if training and self.augment:
            images = self.augmented(images)
        h = self.features(images, training=training and self.features.trainable)
        if self.embedding_dim:
            return tf.cast(self.embedding(h, training=training), tf.float32)
        if self.dropout_rate:
            h = self.dropout(h, training=training)
        return h

    def augmented(self, images):
        """float32 [B, S, S, 3] -> the same, each image cropped and flipped at random (module docstring)."""
        batch, (height, width) = tf.shape(images)[0], self.image_size
        uniform = lambda *shape: keras.random.uniform(shape, seed=self.seed_generator)  # noqa: E731
        if "crop" in self.augment and self.crop_padding:
            p = self.crop_padding
            padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]])
            dy = tf.cast(tf.floor(uniform(batch) * (2 * p + 1)), tf.int32)
            dx = tf.cast(tf.floor(uniform(batch) * (2 * p + 1)), tf.int32)
            rows = dy[:, None] + tf.range(height)[None, :]
            cols = dx[:, None] + tf.range(width)[None, :]
            images = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
        elif "resized_crop" in self.augment:
            area = 0.08 + 0.92 * uniform(batch)
            ratio = tf.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * uniform(batch))
            h = tf.minimum(tf.sqrt(area / ratio), 1.0)  # box sides as fractions of the image's
            w = tf.minimum(tf.sqrt(area * ratio), 1.0)
            top, left = uniform(batch) * (1.0 - h), uniform(batch) * (1.0 - w)
            boxes = tf.stack([top, left, top + h, left + w], axis=1)
            images = tf.image.crop_and_resize(images, boxes, tf.range(batch), [height, width])
        if "flip" in self.augment:
            flip = uniform(batch) < 0.5
            images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
        return images
