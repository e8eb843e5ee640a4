"""A keras-hub image backbone preset of a given family with random weights, its image converter included.

Pretrained vision checkpoints need a download this machine cannot make, so the tests and the extraction
benchmark exercise each family's own path (a feature map, a token sequence with a class token and
registers, a projected image-text embedding) through a preset written here in keras-hub's native
layout (config.json, model.weights.h5, image_converter.json): what `Backbone.from_preset(dir)` and
`ImageConverter.from_preset(dir)` read for a downloaded checkpoint. The converters normalise as the
families' published presets do. The weights are random: accuracy measures the path, not the family.

  python tools/tiny_vision_preset.py --family resnet --image-size 32 --out runs/presets/resnet_tiny
  python tools/tiny_vision_preset.py --family resnet_50 --image-size 224 --out runs/presets/resnet_50_random
"""

from __future__ import annotations

import argparse
import sys

from tfxc.cli import non_negative_int, positive_int
from tfxc.utils.display import json_text

FAMILIES = ("resnet", "resnet_50", "vit", "dinov2", "clip")
# ImageNet's channel statistics, as ResNet's and DINOv2's presets normalise; CLIP's are its own.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def _normalising(mean, std) -> dict:
    """The converter's scale and offset for pixels in [0, 255]: (x / 255 - mean) / std."""
    return {"scale": [1 / (255 * s) for s in std], "offset": [-m / s for m, s in zip(mean, std)]}


def build_preset(family: str, directory: str, *, image_size: int = 32, width: int = 16, seed: int = 0) -> str:
    """Writes a random-weight `family` backbone and its image converter to `directory`; returns it.

    `width` is the hidden size of the transformer families (their patch size is image_size / 4);
    "resnet" is a 2-stage basic-block ResNet, "resnet_50" ResNet-50's exact shape (25.6M parameters).
    """
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    size = (image_size, image_size)
    patch = max(image_size // 4, 1)
    if family == "resnet":
        backbone = keras_hub.models.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, width],
            stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block")
        converter = keras_hub.layers.ResNetImageConverter(image_size=size, **_normalising(IMAGENET_MEAN, IMAGENET_STD))
    elif family == "resnet_50":
        backbone = keras_hub.models.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
            stackwise_num_blocks=[3, 4, 6, 3], stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block")
        converter = keras_hub.layers.ResNetImageConverter(image_size=size, **_normalising(IMAGENET_MEAN, IMAGENET_STD))
    elif family == "vit":
        backbone = keras_hub.models.ViTBackbone(image_shape=(*size, 3), patch_size=patch, num_layers=2, num_heads=2,
                                                hidden_dim=width, mlp_dim=2 * width)
        converter = keras_hub.layers.ViTImageConverter(image_size=size, scale=1 / 127.5, offset=-1.0)
    elif family == "dinov2":
        backbone = keras_hub.models.DINOV2Backbone(
            patch_size=patch, num_layers=2, hidden_dim=width, num_heads=2, intermediate_dim=2 * width,
            num_register_tokens=2, image_shape=(*size, 3), position_embedding_shape=(*size, 3))
        converter = keras_hub.layers.DINOV2ImageConverter(image_size=size, **_normalising(IMAGENET_MEAN, IMAGENET_STD))
    elif family == "clip":
        vision = keras_hub.models.CLIPVisionEncoder(patch_size=patch, hidden_dim=width, num_layers=2, num_heads=2,
                                                    intermediate_dim=2 * width, image_shape=(*size, 3))
        text = keras_hub.models.CLIPTextEncoder(vocabulary_size=64, embedding_dim=width, hidden_dim=width,
                                                num_layers=1, num_heads=2, intermediate_dim=2 * width,
                                                max_sequence_length=8)
        backbone = keras_hub.models.CLIPBackbone(vision, text, projection_dim=width)
        converter = keras_hub.layers.CLIPImageConverter(image_size=size, **_normalising(CLIP_MEAN, CLIP_STD))
    else:
        raise ValueError(f"unknown family '{family}': one of {', '.join(FAMILIES)}")
    backbone.save_to_preset(directory)
    converter.save_to_preset(directory)
    return directory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", required=True, choices=FAMILIES)
    parser.add_argument("--image-size", type=positive_int, default=32)
    parser.add_argument("--width", type=positive_int, default=16)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    build_preset(args.family, args.out, image_size=args.image_size, width=args.width, seed=args.seed)
    print(json_text({"family": args.family, "preset": args.out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
