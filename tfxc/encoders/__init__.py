"""Encoders: map a batch of inputs to dense feature vectors [B, dim]. See `tfxc.encoders.base.Encoder`."""

from tfxc.encoders.base import Encoder
from tfxc.encoders.dense_features import DenseFeaturesEncoder, DenseFeaturesEncoderConfig
from tfxc.encoders.fasttext import FastTextEncoder, FastTextEncoderConfig
from tfxc.encoders.image import ImageEncoder, ImageEncoderConfig
from tfxc.encoders.pretrained import PretrainedEncoder, PretrainedEncoderConfig
from tfxc.encoders.repeated import RepeatedEncoder
from tfxc.encoders.sparse_bow import SparseBowEncoder, SparseBowEncoderConfig
from tfxc.encoders.text_cnn import TextCnnEncoder, TextCnnEncoderConfig
from tfxc.encoders.text_rnn import TextRcnnEncoder, TextRcnnEncoderConfig, TextRnnEncoder, TextRnnEncoderConfig
from tfxc.encoders.text_transformer import TextTransformerEncoder, TextTransformerEncoderConfig
from tfxc.registry import Registry

ENCODERS = Registry("encoder")
ENCODERS.register("sparse_bow", config=SparseBowEncoderConfig)(SparseBowEncoder)
ENCODERS.register("dense_features", config=DenseFeaturesEncoderConfig)(DenseFeaturesEncoder)
# Text encoders: raw strings, tokenised in tf.data and in the SavedModel (`Encoder.tokenize`).
ENCODERS.register("fasttext", config=FastTextEncoderConfig)(FastTextEncoder)
ENCODERS.register("text_cnn", config=TextCnnEncoderConfig)(TextCnnEncoder)
ENCODERS.register("text_rnn", config=TextRnnEncoderConfig)(TextRnnEncoder)
ENCODERS.register("text_rcnn", config=TextRcnnEncoderConfig)(TextRcnnEncoder)
ENCODERS.register("text_transformer", config=TextTransformerEncoderConfig)(TextTransformerEncoder)
ENCODERS.register("pretrained", config=PretrainedEncoderConfig)(PretrainedEncoder)
# Image encoders: encoded images, decoded in tf.data and in the SavedModel (`Encoder.decode_images`).
ENCODERS.register("image", config=ImageEncoderConfig)(ImageEncoder)

__all__ = ["ENCODERS", "DenseFeaturesEncoder", "DenseFeaturesEncoderConfig", "Encoder", "FastTextEncoder",
           "FastTextEncoderConfig", "ImageEncoder", "ImageEncoderConfig", "PretrainedEncoder",
           "PretrainedEncoderConfig", "RepeatedEncoder", "SparseBowEncoder", "SparseBowEncoderConfig",
           "TextCnnEncoder", "TextCnnEncoderConfig", "TextRcnnEncoder", "TextRcnnEncoderConfig", "TextRnnEncoder",
           "TextRnnEncoderConfig", "TextTransformerEncoder", "TextTransformerEncoderConfig"]
