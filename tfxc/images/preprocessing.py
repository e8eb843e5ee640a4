"""Encoded images -> a backbone's inputs, in the graph (`tf.data`, a SavedModel's signatures).

An image is decoded (JPEG, PNG, GIF's first frame, BMP; grey and RGBA become RGB), then passed through the
preset's own `keras_hub.layers.ImageConverter`: resized to its `image_size` (by default cropping the
largest centred window of that aspect ratio first), scaled and offset as the backbone was trained (ImageNet
mean and std for ResNet, [-1, 1] for ViT and CLIP). The same ops run in extraction, in training's input
pipeline and in serving, so a served image is preprocessed exactly as the training ones were.
"""

from __future__ import annotations

import os

from tfxc._tf import tf
from tfxc.errors import ConfigError

CONVERTER_FILE = "image_converter.json"


def load_converter(preset_dir: str, image_size: int = 0):
    """The preset's `ImageConverter`, resizing to `image_size` x `image_size` when given (> 0).

    Raises:
      ConfigError: the preset has no image converter and no `image_size` says what to resize to.
    """
    import keras_hub

    if os.path.exists(os.path.join(preset_dir, CONVERTER_FILE)):
        converter = keras_hub.layers.ImageConverter.from_preset(preset_dir)
        if image_size:
            converter.image_size = (image_size, image_size)
    elif image_size:
        converter = keras_hub.layers.ImageConverter(image_size=(image_size, image_size), scale=1 / 255.0)
    else:
        raise ConfigError(
            f"the preset {preset_dir} has no {CONVERTER_FILE} (the backbone's resizing and normalisation): give the "
            "image size (its scale is then 1/255), or save the backbone's converter into the preset "
            "(keras_hub.layers.ImageConverter(image_size=..., scale=..., offset=...).save_to_preset(dir))")
    if converter.image_size is None:
        raise ConfigError(f"the image converter of {preset_dir} does not resize: give the image size")
    return converter


def decode_rgb(data: tf.Tensor) -> tf.Tensor:
    """string [] (an encoded image) -> uint8 [H, W, 3]."""
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def image_inputs(converter):
    """The function string [] -> float32 [S, S, 3] (S: the converter's size) that decodes and converts one image."""
    height, width = converter.image_size

    def convert(data):
        image = converter(tf.cast(decode_rgb(data), tf.float32))
        return tf.ensure_shape(tf.cast(image, tf.float32), [height, width, 3])

    return convert


def batch_inputs(converter):
    """The function string [B] -> float32 [B, S, S, 3] of `image_inputs`, image by image (sizes differ)."""
    one = image_inputs(converter)
    spec = tf.TensorSpec([*converter.image_size, 3], tf.float32)

    def convert(data):
        return tf.map_fn(one, data, fn_output_signature=spec)

    return convert
