"""Images' headers read in the graph before decoding: each format's size as the decoder finds it, and the
refusals (empty, no known format, a cut header, over the pixel budget) before the decoder runs."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image  # installed with tensorboard, a dependency

from helpers import huge_png
from tfxc._tf import tf
from tfxc.images import DEFAULT_MAX_PIXELS
from tfxc.images.preprocessing import batch_inputs, decode_rgb, image_header, image_problem, reason_of

# JPEG XL codestreams written by libjxl (imagecodecs.jpegxl_encode, lossless): 17 x 33 and 1000 x 1 pixels.
JXL_17x33 = bytes.fromhex(
    "ff0a80004080480804010010024b3840f5323d7e7aa2c2282828290a0a466c608c31c6c618cc50548cc506cec4184c2596215e8c1131b8c2"
    "071017e1fc6f7ee377fc3ee3f91d3ffc72de4306c6bcb668ef734944c4ae79bf8adf10f28cb7c8e60db6db306f28cb9bdb168133f6be9ceb"
    "11dd13e615937c23a40c19bfb6ed8590da01cbb643f9aa776dfda7bab6f9a6ea1a")
JXL_1000x1 = bytes.fromhex(
    "ff0a3a1f00008804080201008c000000400558800554004b18938e8383290a466c60668cc154626b8c1363648cc1dbc4a0891383191c0080"
    "090007100561de917e29f7d6c2dbde78b57da6098c6bd70710058ccb8fc805d85b07623723d6f6540336a25d03071007ef4e8c3e94da3b59"
    "6143a3d636f803369e5d03071005107c00403bbf01fd76c9756df3a92323db35")


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def jxl_container(codestream: bytes, parts: int = 1) -> bytes:
    """The codestream in JPEG XL's box container: one jxlc box, or `parts` jxlp boxes."""
    head = b"\x00\x00\x00\x0cJXL \r\n\x87\n" + box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ") + box(b"jxll", b"\x05")
    if parts == 1:
        return head + box(b"jxlc", codestream)
    cut = len(codestream) // 2
    return (head + box(b"jxlp", b"\x00\x00\x00\x00" + codestream[:cut])
            + box(b"jxlp", b"\x80\x00\x00\x01" + codestream[cut:]))


def pillow(fmt: str, size=(33, 17), mode="RGB", **options) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (90,) * len(mode)).save(out, fmt, **options)  # grey: 90 in every channel
    return out.getvalue()


def test_the_header_gives_each_format_the_size_the_decoder_finds():
    images = {"png": pillow("PNG"), "grey png": pillow("PNG", mode="L"), "jpeg": pillow("JPEG"),
              "gif": pillow("GIF"), "bmp": pillow("BMP"), "top-down bmp": None, "webp": pillow("WEBP"),
              "lossless webp": pillow("WEBP", lossless=True), "extended webp": pillow("WEBP", mode="RGBA"),
              "wide webp": pillow("WEBP", size=(16383, 2), lossless=True), "jxl": JXL_17x33, "tall jxl": JXL_1000x1,
              "jxl container": jxl_container(JXL_17x33), "jxl in parts": jxl_container(JXL_1000x1, parts=2)}
    bmp = bytearray(images["bmp"])
    bmp[22:26] = struct.pack("<i", -17)  # a negative height: rows stored top-down
    images["top-down bmp"] = bytes(bmp)
    header = tf.function(image_header)
    for name, data in images.items():
        fmt, height, width = (int(v) for v in header(tf.constant(data)))
        decoded = tf.io.decode_image(data, expand_animations=False).shape
        assert (height, width) == tuple(decoded[:2]) and fmt > 0, name


def test_what_is_refused_before_decoding_and_why():
    problem = tf.function(lambda data: image_problem(data, 500, "the budget's flag"))
    reasons = {data: problem(tf.constant(data)).numpy().decode() for data in
               (b"", b"xx", pillow("PNG")[:20], b"GIF89a", b"BM", JXL_17x33[:4], pillow("PNG", size=(30, 20)),
                pillow("PNG")[:16] + b"\xff" * 8 + pillow("PNG")[24:], pillow("PNG", size=(25, 20)))}
    assert list(reasons.values()) == [
        "empty (0 bytes)",
        "not an image in a format the decoder reads (JPEG, PNG, GIF, BMP, WebP or JPEG XL, told by content, not by "
        "name)",
        "a PNG whose header is cut short or damaged (no width and height)",
        "a GIF whose header is cut short or damaged (no width and height)",
        "a BMP whose header is cut short or damaged (no width and height)",
        "a JPEG XL whose header is cut short or damaged (no width and height)",
        "a PNG of 30x20 = 600 pixels, over the budget of 500 pixels (the budget's flag)",
        # 2^32 - 1 a side: the product (capped at 2^31 a side) must not wrap around to a small number
        "a PNG of 4294967295x4294967295 = 4611686018427387904 pixels, over the budget of 500 pixels (the budget's "
        "flag)",
        ""]


def test_an_image_over_the_budget_never_reaches_the_decoder(monkeypatch):
    def decoder(*args, **kwargs):
        raise AssertionError("the decoder was called")

    monkeypatch.setattr(tf.io, "decode_image", decoder)
    with pytest.raises(tf.errors.InvalidArgumentError) as refused:
        decode_rgb(tf.constant(huge_png()))  # eager: the assertion raises before the next line runs
    assert reason_of(refused.value) == (f"a PNG of 20000x20000 = 400000000 pixels, over the budget of "
                                        f"{DEFAULT_MAX_PIXELS} pixels (max_pixels)")


def test_a_saved_model_refuses_a_batch_naming_every_bad_image(tmp_path):
    import keras_hub

    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.converter = keras_hub.layers.ImageConverter(image_size=(8, 8), scale=1 / 255.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, image):
            return batch_inputs(self.converter)(image)

    tf.saved_model.save(Module(), str(tmp_path / "sm"))
    served = tf.saved_model.load(str(tmp_path / "sm"))
    good = pillow("PNG")
    assert served.serve(tf.constant([good, good])).shape == (2, 8, 8, 3)
    with pytest.raises(tf.errors.InvalidArgumentError) as refused:
        served.serve(tf.constant([good, b"", huge_png(), good, b"xx"]))
    assert reason_of(refused.value) == (
        "3 of the 5 images refused, none answered: image 1: empty (0 bytes); image 2: a PNG of 20000x20000 = "
        f"400000000 pixels, over the budget of {DEFAULT_MAX_PIXELS} pixels (max_pixels); image 4: not an image in "
        "a format the decoder reads (JPEG, PNG, GIF, BMP, WebP or JPEG XL, told by content, not by name)")
    np.testing.assert_allclose(served.serve(tf.constant([good])).numpy(), 90 / 255.0, rtol=1e-5)


class ImageBackend:
    """What `tfxc.load` gives an image model, reduced to the images' decoding: scores are mean pixels."""

    num_features, num_labels, label_names, input_kind = 0, 2, ["dark", "light"], "image"

    def __init__(self):
        import keras_hub

        self.convert = batch_inputs(keras_hub.layers.ImageConverter(image_size=(8, 8), scale=1 / 255.0), 5000)
        self.calls = 0

    def top_k(self, images, k):
        self.calls += 1
        mean = tf.reduce_mean(self.convert(tf.constant(list(images), tf.string)), axis=[1, 2, 3]).numpy()
        return np.stack([mean, 1 - mean], 1)[:, :k], np.tile(np.arange(k), (len(mean), 1))


def test_predict_names_every_image_it_cannot_use_by_row():
    from tfxc.api import Predictor
    from tfxc.errors import DataError

    model, good = Predictor(ImageBackend()), pillow("PNG")
    assert model.predict([good, good], k=1).ids.shape == (2, 1)
    with pytest.raises(DataError) as refused:  # found by the headers, in the batch's one call; the first batch's
        model.predict([good, b"", good, pillow("PNG", size=(100, 100)), b"xx"], k=1, batch_size=3)
    assert str(refused.value) == (
        "1 image cannot be used, so no row was answered (a call answers every row or none): X[1]: empty (0 bytes)")
    with pytest.raises(DataError) as refused:
        model.predict([good, good, good, pillow("PNG", size=(100, 100)), b"xx"], k=1, batch_size=3)
    assert str(refused.value).endswith(
        "X[3]: a PNG of 100x100 = 10000 pixels, over the budget of 5000 pixels (max_pixels); X[4]: not an image in "
        "a format the decoder reads (JPEG, PNG, GIF, BMP, WebP or JPEG XL, told by content, not by name)")
    # A damaged body passes the header: the decoder's error names no image, so each is tried alone.
    with pytest.raises(DataError, match=r"^1 image cannot be used, .*: X\[1\]: Invalid PNG data, size 60$"):
        model.predict([good, good[:60], good], k=1)


def test_a_training_batch_refused_in_tf_data_is_one_data_error():
    from tfxc.images.preprocessing import batch_problems, refused_in_training

    def check(images):
        with tf.control_dependencies([batch_problems(images, 500, "model.encoder.max_pixels")]):
            return tf.identity(images)

    ds = tf.data.Dataset.from_tensor_slices([pillow("PNG", size=(20, 20)), pillow("PNG", size=(30, 20)), b""])
    ds = ds.batch(3).map(check)
    with pytest.raises(tf.errors.InvalidArgumentError) as refused:
        list(ds)
    assert str(refused_in_training(refused.value, 7)) == (
        "the training data holds images the model refuses before decoding, at step 7: a PNG of 30x20 = 600 pixels, "
        "over the budget of 500 pixels (model.encoder.max_pixels) (image 1 of the batch); empty (0 bytes) (image 2 "
        "of the batch); python -m tfxc.extract over the same images (with --max-pixels) names their files")
    with pytest.raises(tf.errors.InvalidArgumentError) as other:
        tf.io.decode_png(b"xx")
    assert refused_in_training(other.value, 7) is None
