"""tfxc.images.iresnet: insightface's IResNet face backbones, checked against the published architecture."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import keras
from tfxc.images.iresnet import DEPTHS, WIDTHS, iresnet, save_iresnet_preset


def counted_from_the_architecture(blocks: tuple[int, ...], size: int = 112, embedding_dim: int = 512) -> tuple[int,
                                                                                                              int]:
    """(trainable parameters, multiply-accumulates of the convolutions and the linear map) of an IResNet, summed
    from insightface's layer list rather than read from the model: BN has a scale and an offset, PReLU a slope a
    channel, the last BN an offset only (its scale is fixed)."""
    params = 27 * 64 + 2 * 64 + 64
    macs, side, channels = size * size * 27 * 64, size, 64
    for stage_blocks, width in zip(blocks, WIDTHS):
        for block in range(stage_blocks):
            stride = 2 if block == 0 else 1
            out = side // stride
            params += 2 * channels + 9 * channels * width + 3 * width + 9 * width * width + 2 * width
            macs += side * side * 9 * channels * width + out * out * 9 * width * width
            if stride != 1 or channels != width:
                params += channels * width + 2 * width
                macs += out * out * channels * width
            side, channels = out, width
    params += 2 * 512 + 512 * side * side * embedding_dim + embedding_dim + embedding_dim
    macs += 512 * side * side * embedding_dim
    return params, macs


def conv_and_dense_macs(model) -> int:
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, _ = layer.output.shape
            total += h * w * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


@pytest.mark.parametrize("depth, published_gmacs", [("r18", 2.6), ("r50", 6.3)])
def test_parameters_and_multiply_adds_are_insightfaces(depth, published_gmacs):
    """Every weight and every product as insightface's layer list has them; the multiply-adds at 112x112 as
    arcface_torch's README lists them (R18 2.6G, R50 6.3G, R100 12.1G FLOPs, its multiply-accumulates)."""
    model = iresnet(depth)
    params, macs = counted_from_the_architecture(DEPTHS[depth])
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == params
    assert conv_and_dense_macs(model) == macs
    assert macs / 1e9 == pytest.approx(published_gmacs, abs=0.05)
    # The only weights not trained: BN's moving statistics, two a channel of every BN.
    assert all("moving" in w.path for w in model.non_trainable_weights)


def test_r100_is_insightfaces_65_million_parameters():
    """r100's count from the layer list (building it takes 65 M weights) against the published 65.13 M of
    insightface's LResNet100E-IR (OpenVINO's model zoo card of face-recognition-resnet100-arcface-onnx)."""
    params, macs = counted_from_the_architecture(DEPTHS["r100"])
    assert params / 1e6 == pytest.approx(65.132, rel=1e-3) and macs / 1e9 == pytest.approx(12.1, abs=0.05)


def test_each_stage_halves_the_map_in_its_first_blocks_second_conv():
    model = iresnet("r18")
    sides = [model.get_layer(f"stage{s}_block1_add").output.shape[1:] for s in range(1, 5)]
    assert sides == [(56, 56, 64), (28, 28, 128), (14, 14, 256), (7, 7, 512)]
    for stage in range(1, 5):
        assert model.get_layer(f"stage{stage}_block1_conv1").strides == (1, 1)
        assert model.get_layer(f"stage{stage}_block1_conv2").strides == (2, 2)
        assert model.get_layer(f"stage{stage}_block1_downsample_conv").strides == (2, 2)
        assert model.get_layer(f"stage{stage}_block2_conv2").strides == (1, 1)
    assert model.output.shape == (None, 512) and model.get_layer("flatten").output.shape == (None, 7 * 7 * 512)
    assert not model.get_layer("stage1_block1_conv1").use_bias


def test_the_embedding_is_float32_under_float16():
    """A 25,088-wide dot product overflows float16 (max 65,504) at activations of a few units: the linear map and
    the last BN run in float32, as insightface runs its fc outside autocast."""
    model = iresnet("r18", image_size=32, dtype="mixed_float16")
    assert model.get_layer("stage4_block2_conv2").compute_dtype == "float16"
    assert model.get_layer("fc").compute_dtype == "float32" and model.output.dtype == "float32"
    images = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    # In training (batch statistics): an untrained model's moving statistics normalise nothing yet.
    assert np.isfinite(np.asarray(model(images, training=True))).all()


def test_a_preset_loads_as_an_image_backbone_with_the_same_embeddings(tmp_path):
    from tfxc.images.backbones import VisionFeatures, load_vision_backbone
    from tfxc.images.preprocessing import load_converter

    model = iresnet("r18", image_size=32)
    directory = save_iresnet_preset(str(tmp_path / "r18"), backbone=model)
    backbone = load_vision_backbone(directory)
    assert type(backbone).__name__ == "IResNetBackbone" and backbone.image_shape == (32, 32, 3)
    features = VisionFeatures(backbone)
    assert features.pooling == "embedding" and features.output_dim == 512
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    converted = np.asarray(load_converter(directory)(pixels))
    np.testing.assert_allclose(converted, pixels / 127.5 - 1.0, atol=1e-5)  # insightface's (x - 127.5) / 127.5
    np.testing.assert_allclose(np.asarray(features(converted)), np.asarray(model(converted)), rtol=1e-5, atol=1e-5)


def test_the_command_writes_a_preset_the_image_encoder_takes(tmp_path):
    from helpers import tool_module

    from tfxc.encoders.image import ImageEncoder

    assert tool_module("iresnet_preset").main(["r18", str(tmp_path / "preset"), "--image-size", "32",
                                               "--embedding-dim", "64"]) == 0
    encoder = ImageEncoder(str(tmp_path / "preset"))
    out = encoder({"images": np.zeros((2, 32, 32, 3), np.float32)})
    assert out.shape == (2, 64) and encoder.output_dim == 64
