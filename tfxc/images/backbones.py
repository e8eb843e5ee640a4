"""keras-hub vision backbones from local preset directories, pooled to one feature vector per image.

Every keras-hub image backbone family loads (`keras_hub.models.Backbone.from_preset(dir)`): convolutional
ones (ResNet, EfficientNet, ...) return a feature map [B, h, w, C]; vision transformers (ViT, DINOv2,
...) a token sequence [B, T, D] with a class token first (DINOv2's register tokens after it); the
image-text ones (CLIP, SigLIP) their projected image embedding (`get_vision_embeddings`), the features
SCENT's TreeOfLife run takes from BioCLIP.

Pretrained weights come from a preset directory on disk (downloaded where there is a network:
`keras_hub.models.Backbone.from_preset("resnet_50_imagenet").save_to_preset(dir)`), never fetched here.
"""

from __future__ import annotations

import math
import os

from tfxc._tf import keras, tf
from tfxc.errors import ConfigError
from tfxc.utils.hub_presets import downloads_explained, is_hub_preset_name

# auto: "embedding" for image-text backbones, "avg" for feature maps, "cls" for token sequences.
POOLINGS = ("auto", "avg", "max", "cls", "embedding")


def load_vision_backbone(preset_dir: str, mixed_bfloat16: bool = False):
    """The backbone of a local preset directory (bfloat16 matmuls with `mixed_bfloat16`; weights stay float32)."""
    import keras_hub

    import tfxc.images.iresnet  # noqa: F401  (registers IResNetBackbone, which presets name in their config)

    if not os.path.isdir(preset_dir) and not is_hub_preset_name(preset_dir):
        raise ConfigError(f"the image backbone preset '{preset_dir}' is not a local directory (a keras-hub preset "
                          "saved to disk: backbone.save_to_preset(dir)) nor a keras-hub preset name")
    extra = {"dtype": "mixed_bfloat16"} if mixed_bfloat16 else {}
    with downloads_explained(preset_dir, "the image preset"):
        backbone = keras_hub.models.Backbone.from_preset(preset_dir, **extra)
    if isinstance(backbone.input, dict) and "images" not in backbone.input:
        raise ConfigError(f"{type(backbone).__name__} ({preset_dir}) takes no images")
    return backbone


def _output_kind(backbone) -> str:
    if hasattr(backbone, "get_vision_embeddings"):
        return "embedding"
    output = backbone.output
    if isinstance(output, dict):
        raise ConfigError(f"{type(backbone).__name__} returns several outputs ({', '.join(output)}); tfxc pools "
                          "a feature map, a token sequence or an image embedding")
    rank = len(output.shape)
    if rank == 4:
        return "map"
    if rank == 3:
        return "tokens"
    raise ConfigError(f"{type(backbone).__name__} returns a rank-{rank} output; tfxc pools a feature map "
                      "[B, h, w, C], a token sequence [B, T, D] or an image embedding")


def resolve_pooling(backbone, pooling: str) -> str:
    """`pooling` checked against what the backbone returns ("auto" made concrete)."""
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling '{pooling}' is not one of {', '.join(POOLINGS)}")
    kind = _output_kind(backbone)
    if pooling == "auto":
        return {"embedding": "embedding", "map": "avg", "tokens": "cls"}[kind]
    allowed = {"embedding": ("embedding",), "map": ("avg", "max"), "tokens": ("cls", "avg", "max")}[kind]
    if pooling not in allowed:
        what = {"embedding": "an image embedding", "map": "a feature map", "tokens": "a token sequence"}[kind]
        raise ConfigError(f"pooling '{pooling}' does not apply to {type(backbone).__name__}, which returns {what}: "
                          f"use {' or '.join(allowed)}")
    return pooling


def prefix_tokens(backbone) -> int:
    """Tokens before the patch tokens: the class token (unless a ViT has none) and DINOv2's registers."""
    has_class = getattr(backbone, "use_class_token", True)
    return int(has_class) + int(getattr(backbone, "num_register_tokens", 0) or 0)


class VisionFeatures(keras.layers.Layer):
    """A vision backbone pooled to one vector per image.

    Args:
      backbone: a keras-hub image backbone (`load_vision_backbone`).
      pooling: one of `POOLINGS`: avg / max over a feature map's positions or a sequence's patch tokens,
        cls (the class token), embedding (an image-text backbone's projected embedding).

    Call args:
      images: float32 [B, S, S, 3], converted by the preset's image converter.

    Returns:
      float32 [B, output_dim].
    """

    def __init__(self, backbone, pooling: str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.pooling = resolve_pooling(backbone, pooling)
        self.kind = _output_kind(backbone)
        self.skip = prefix_tokens(backbone) if self.kind == "tokens" else 0
        self.takes_dict = isinstance(backbone.input, dict)

    @property
    def output_dim(self) -> int:
        if self.kind == "embedding":
            return int(self.backbone.projection_dim)
        return int(self.backbone.output.shape[-1])

    def call(self, images, training=False):
        if self.kind == "embedding":
            return tf.cast(self.backbone.get_vision_embeddings(images), tf.float32)
        out = self.backbone({"images": images} if self.takes_dict else images, training=training)
        out = tf.cast(out, tf.float32)
        if self.pooling == "cls":
            return out[:, 0]
        axes = [1, 2] if self.kind == "map" else [1]
        if self.kind == "tokens":
            out = out[:, self.skip:]
        return tf.reduce_mean(out, axis=axes) if self.pooling == "avg" else tf.reduce_max(out, axis=axes)


def activation_bytes(backbone, image_size: tuple[int, int]) -> tuple[int, int]:
    """(the bytes of every layer's output, of the largest one) for one image of `image_size`: what a training
    step keeps for the gradient, and what a forward pass needs at its peak. Each output counts at its own
    dtype's width.

    Under a mixed policy (bfloat16 compute, float32 weights) a normalisation layer that computes its statistics
    in float32 (Keras's BatchNormalization and GroupNormalization cast their input up) keeps that float32
    copy of its input for the gradient besides the bfloat16 output: ResNet-50 at 224 keeps 39.3 M bfloat16
    elements an image and 11.1 M more in float32, so bfloat16 saves about a fifth of float32's bytes, not a half.

    A backbone built for any image size (ResNet's (None, None, 3)) is counted on a copy built for this size.
    Layers inside a layer (a transformer block's attention scores) are not outputs of the graph and are not
    counted: an underestimate for transformers, which the memory plan's calibration absorbs.
    """
    import numpy as np

    from tfxc._tf import keras

    config = backbone.get_config()
    shape = getattr(backbone, "image_shape", None)
    if shape is not None and None in tuple(shape)[:2] and "image_shape" in config:
        backbone = type(backbone).from_config({**config, "image_shape": (*image_size, 3)})
    upcasting = (keras.layers.BatchNormalization, keras.layers.GroupNormalization)
    total = largest = 0
    stack = list(backbone.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.Model) and layer.layers:
            stack.extend(layer.layers)
            continue
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):  # a layer called more than once has no single output
            continue
        for out in outputs:
            dims = tuple(out.shape)[1:]
            if dims and all(d is not None for d in dims):
                size = math.prod(dims) * np.dtype(str(out.dtype)).itemsize
                largest = max(largest, size)
                if isinstance(layer, upcasting) and np.dtype(str(out.dtype)).itemsize < 4:
                    size += math.prod(dims) * 4  # its input, cast to float32 (same shape as the output)
                total += size
    return total, largest
