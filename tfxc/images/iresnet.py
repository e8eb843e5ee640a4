"""insightface's face backbones, IResNet r18 / r34 / r50 / r100, as keras-hub backbones.

The improved residual networks of insightface's `arcface_torch` (Duta et al., "Improved Residual Networks for
Image and Video Recognition", 2020, as Deng et al. train them for ArcFace, CVPR 2019), layer for layer:

  stem      3x3 conv (64, stride 1), BN, PReLU
  4 stages  64, 128, 256, 512 channels; blocks (2,2,2,2) r18, (3,4,6,3) r34, (3,4,14,3) r50, (3,13,30,3) r100.
            A block is BN, 3x3 conv, BN, PReLU, 3x3 conv, BN, plus the shortcut; the first block of each
            stage strides by 2 in its second conv, and its shortcut is a strided 1x1 conv and BN.
  embedding BN, flatten (7x7x512 at 112x112), dropout, linear to 512, BN with its scale fixed at 1 (none).

Details a weight conversion depends on: convolutions have no bias; BN's epsilon is 1e-5; PReLU has one slope a
channel; a strided 3x3 conv pads one pixel on every side (PyTorch's padding=1; Keras's "same" would pad only
after); the flattened map is in Keras's (height, width, channel) order, where PyTorch's is (channel, height,
width). The linear map and the last BN run in float32 under a float16 policy, as insightface runs its `fc`
outside autocast: a 25,088-wide dot product can overflow float16.

`IResNetBackbone` returns the 512-d embedding and, like keras-hub's image-text backbones, answers
`get_vision_embeddings`, so the `image` encoder and `tfxc.extract` take it with pooling "embedding".
"""

from __future__ import annotations

import keras_hub

from tfxc._tf import keras

DEPTHS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3), "r100": (3, 13, 30, 3)}
WIDTHS = (64, 128, 256, 512)
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch's momentum 0.1 of the new statistics
CONV_STDDEV = 0.1  # insightface's initialisation of every convolution


@keras.saving.register_keras_serializable(package="tfxc")
class IResNetBackbone(keras_hub.models.Backbone):
    """An IResNet: images [B, S, S, 3] (converted: (pixel - 127.5) / 127.5) to embeddings [B, embedding_dim].

    Args:
      stackwise_num_blocks: blocks a stage, e.g. `DEPTHS["r50"]`.
      stackwise_num_filters: channels a stage (`WIDTHS`).
      image_shape: (S, S, 3); the flattened map fixes S (112 gives 7x7).
      embedding_dim: the embedding's width (512).
      dropout: dropout rate before the linear map (insightface's default 0).
      dtype: the layers' dtype policy; the linear map and the last BN stay float32.
    """

    def __init__(self, stackwise_num_blocks=DEPTHS["r50"], stackwise_num_filters=WIDTHS, image_shape=(112, 112, 3),
                 embedding_dim=512, dropout=0.0, dtype=None, **kwargs):
        if len(stackwise_num_blocks) != len(stackwise_num_filters):
            raise ValueError(f"{len(stackwise_num_blocks)} stages of blocks but {len(stackwise_num_filters)} widths")
        images = keras.Input(shape=tuple(image_shape), name="images")
        x = _conv(images, stackwise_num_filters[0], 1, "stem_conv", dtype)
        x = _bn(x, "stem_bn", dtype)
        x = _prelu(x, "stem_prelu", dtype)
        for stage, (blocks, width) in enumerate(zip(stackwise_num_blocks, stackwise_num_filters), start=1):
            for block in range(1, blocks + 1):
                x = _block(x, width, 2 if block == 1 else 1, f"stage{stage}_block{block}", dtype)
        x = _bn(x, "features_bn", dtype)
        x = keras.layers.Flatten(dtype=dtype, name="flatten")(x)
        x = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")(x)
        x = keras.layers.Dense(embedding_dim, dtype="float32", name="fc")(x)
        # insightface fixes the last BN's scale at 1 (a weight it never trains): here, a BN without a scale.
        outputs = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, scale=False,
                                                  dtype="float32", name="embedding_bn")(x)
        super().__init__(inputs=images, outputs=outputs, dtype=dtype, **kwargs)
        self.stackwise_num_blocks = tuple(stackwise_num_blocks)
        self.stackwise_num_filters = tuple(stackwise_num_filters)
        self.image_shape = tuple(image_shape)
        self.embedding_dim = embedding_dim
        self.projection_dim = embedding_dim  # what `tfxc.images.backbones` reads of an embedding backbone
        self.dropout = dropout

    def get_vision_embeddings(self, images, training=False):
        """The face embeddings of converted images, float32 [B, embedding_dim]."""
        return self(images, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"stackwise_num_blocks": list(self.stackwise_num_blocks),
                       "stackwise_num_filters": list(self.stackwise_num_filters),
                       "image_shape": list(self.image_shape), "embedding_dim": self.embedding_dim,
                       "dropout": self.dropout})
        return config


@keras.saving.register_keras_serializable(package="tfxc")
class IResNetImageConverter(keras_hub.layers.ImageConverter):
    """The image converter of an IResNet preset (keras-hub pairs a preset's converter with its backbone class)."""

    backbone_cls = IResNetBackbone


def iresnet(depth: str = "r50", image_size: int = 112, embedding_dim: int = 512, dropout: float = 0.0,
            dtype=None) -> IResNetBackbone:
    """insightface's IResNet of `depth` ("r18", "r34", "r50" or "r100"), randomly initialised."""
    if depth not in DEPTHS:
        raise ValueError(f"no IResNet '{depth}': the depths are {', '.join(DEPTHS)}")
    return IResNetBackbone(DEPTHS[depth], WIDTHS, (image_size, image_size, 3), embedding_dim, dropout, dtype=dtype,
                           name=f"iresnet_{depth}")


def save_iresnet_preset(directory: str, depth: str = "r50", image_size: int = 112, embedding_dim: int = 512,
                        backbone: IResNetBackbone | None = None,
                        converter: IResNetImageConverter | None = None) -> str:
    """A keras-hub preset directory of `backbone` (default: a randomly initialised IResNet of `depth`) and
    `converter` (default: insightface's input conversion, (pixel - 127.5) / 127.5 at the backbone's image size):
    loadable by `keras_hub.models.Backbone.from_preset` once this module is imported. Returns `directory`."""
    if backbone is None:
        backbone = iresnet(depth, image_size, embedding_dim)
    backbone.save_to_preset(directory)
    if converter is None:
        converter = IResNetImageConverter(image_size=backbone.image_shape[:2], scale=1 / 127.5, offset=-1.0)
    converter.save_to_preset(directory)
    return directory


def _block(x, width: int, stride: int, name: str, dtype):
    shortcut = x
    if stride != 1 or x.shape[-1] != width:
        shortcut = _conv(x, width, stride, f"{name}_downsample_conv", dtype, kernel=1)
        shortcut = _bn(shortcut, f"{name}_downsample_bn", dtype)
    x = _bn(x, f"{name}_bn1", dtype)
    x = _conv(x, width, 1, f"{name}_conv1", dtype)
    x = _bn(x, f"{name}_bn2", dtype)
    x = _prelu(x, f"{name}_prelu", dtype)
    x = _conv(x, width, stride, f"{name}_conv2", dtype)
    x = _bn(x, f"{name}_bn3", dtype)
    return keras.layers.Add(dtype=dtype, name=f"{name}_add")([x, shortcut])


def _conv(x, filters: int, stride: int, name: str, dtype, kernel: int = 3):
    if kernel == 3:  # one pixel on every side, as PyTorch's padding=1 (Keras's "same" pads a strided conv after)
        x = keras.layers.ZeroPadding2D(1, dtype=dtype, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False, dtype=dtype,
                               kernel_initializer=keras.initializers.RandomNormal(stddev=CONV_STDDEV), name=name)(x)


def _bn(x, name: str, dtype):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, dtype=dtype, name=name)(x)


def _prelu(x, name: str, dtype):
    return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2], dtype=dtype,
                              name=name)(x)

