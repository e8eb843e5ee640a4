"""Encoded images -> a backbone's inputs, in the graph (`tf.data`, a SavedModel's signatures).

An image is decoded (JPEG, PNG, GIF's first frame, BMP, WebP, JPEG XL; grey and RGBA become RGB), then passed
through the preset's own `keras_hub.layers.ImageConverter`: resized to its `image_size` (by default cropping the
largest centred window of that aspect ratio first), scaled and offset as the backbone was trained (ImageNet
mean and std for ResNet, [-1, 1] for ViT and CLIP). The same ops run in extraction, in training's input
pipeline and in serving, so a served image is preprocessed exactly as the training ones were.

Before anything is decoded, each image's width and height are read from its header (`image_header`, graph
ops: PNG's IHDR, GIF's logical screen, BMP's info header, WebP's VP8/VP8L/VP8X chunk, JPEG's frame header
through `tf.image.extract_jpeg_shape`, JPEG XL's size header, bare or in its box container), and an image
over the pixel budget is refused: a small file can hold a huge image (a 1.2 MB PNG of 20000 x 20000 grey
pixels decodes to 1.2 GB, and to 4.8 GB as float32 RGB). The budget's default is Pillow's
(`Image.MAX_IMAGE_PIXELS`, 89,478,485 pixels); an empty input,
bytes in no known format and a header too short to hold the size are refused the same way, by name.
"""

from __future__ import annotations

import os
import re

from tfxc._tf import tf
from tfxc.errors import ConfigError, DataError
from tfxc.utils.hub_presets import downloads_explained, is_hub_preset_name
from tfxc.images import DEFAULT_MAX_PIXELS

CONVERTER_FILE = "image_converter.json"
#: The formats `tf.io.decode_image` reads, by `image_header`'s format code (0: none of them).
FORMATS = ("unknown", "JPEG", "PNG", "GIF", "BMP", "WebP", "JPEG XL")
_HEAD = 32  # bytes: every fixed-offset header field lies in the first 30
_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_JXL_RATIOS = ((1, 1), (1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1))  # SizeHeader's ratio 1..7
_MAX_BOXES = 64  # boxes looked at before a JPEG XL container's codestream


def load_converter(preset_dir: str, image_size: int = 0):
    """The preset's `ImageConverter`, resizing to `image_size` x `image_size` when given (> 0).

    Raises:
      ConfigError: the preset has no image converter and no `image_size` says what to resize to.
    """
    import keras_hub

    import tfxc.images.iresnet  # noqa: F401  (registers IResNet's converter, which its presets name)

    if os.path.exists(os.path.join(preset_dir, CONVERTER_FILE)) or is_hub_preset_name(preset_dir):
        with downloads_explained(preset_dir, "the image preset", "keras_hub.layers.ImageConverter"):
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


# === the header: format and size before decoding ===
def _read(data, length, pos, n: int):
    """int64 [n]: the bytes data[pos:pos + n], zeros past the end (`pos` int64 [], `n` a Python int)."""
    pos = tf.clip_by_value(pos, 0, length)  # substr refuses a position past the end
    piece = tf.strings.substr(data, pos, tf.constant(n, tf.int64))  # shorter at the end
    start, size = tf.constant(0, tf.int64), tf.constant(n, tf.int64)
    padded = tf.strings.substr(tf.strings.join([piece, b"\x00" * n]), start, size)
    return tf.cast(tf.io.decode_raw(padded, tf.uint8), tf.int64)


def _number(values, big_endian: bool):
    """int64 []: unsigned bytes (int64 [n]) as one number."""
    values = tf.reverse(values, [0]) if big_endian else values
    return tf.reduce_sum(values * tf.bitwise.left_shift(tf.constant(1, tf.int64), 8 * tf.range(tf.size(values,
                                                                                                 tf.int64))))


def _starts(head, signature: bytes):
    return tf.reduce_all(tf.equal(head[:len(signature)], tf.constant(list(signature), tf.int64)))


def _jxl_codestream_size(data, length, start):
    """(height, width) int64 of a JPEG XL codestream at `start` (its FF 0A, then the SizeHeader's bits,
    least significant first), or (-1, -1) when no codestream starts there."""
    head = _read(data, length, start, 14)
    bits = tf.reshape(tf.bitwise.bitwise_and(tf.bitwise.right_shift(head[2:, None], tf.range(8, dtype=tf.int64)),
                                             1), [-1])  # 96 bits: the header needs at most 68

    def take(pos, n):
        return tf.reduce_sum(tf.gather(bits, pos + tf.range(n, dtype=tf.int64)) * tf.bitwise.left_shift(
            tf.constant(1, tf.int64), tf.range(n, dtype=tf.int64))), pos + n

    def u32(pos):  # U32(1 + u(9), 1 + u(13), 1 + u(18), 1 + u(30))
        selector, pos = take(pos, 2)
        widths = tf.constant([9, 13, 18, 30], tf.int64)
        values = tf.stack([take(pos, n)[0] for n in (9, 13, 18, 30)])
        return 1 + tf.gather(values, selector), pos + tf.gather(widths, selector)

    div8, pos = take(tf.constant(0, tf.int64), 1)
    small_height, after_small = take(pos, 5)
    large_height, after_large = u32(pos)
    height = tf.where(div8 == 1, 8 * (small_height + 1), large_height)
    pos = tf.where(div8 == 1, after_small, after_large)
    ratio, pos = take(pos, 3)
    small_width = 8 * (take(pos, 5)[0] + 1)
    large_width = u32(pos)[0]
    fraction = tf.constant(_JXL_RATIOS, tf.int64)
    width = tf.where(ratio > 0, height * tf.gather(fraction[:, 0], ratio) // tf.gather(fraction[:, 1], ratio),
                     tf.where(div8 == 1, small_width, large_width))
    is_codestream = (head[0] == 0xFF) & (head[1] == 0x0A) & (length >= start + 12)
    minus = tf.constant(-1, tf.int64)
    return tf.where(is_codestream, height, minus), tf.where(is_codestream, width, minus)


def _jxl_size(data, length, head):
    """(height, width) of a JPEG XL image: a bare codestream, or the one in a container's jxlc or first jxlp box."""
    def codestream_start():
        def more(pos, found, i):
            return (found < 0) & (pos + 8 <= length) & (i < _MAX_BOXES)

        def step(pos, found, i):
            box = _read(data, length, pos, 16)
            size, kind = _number(box[:4], True), box[4:8]
            wide = size == 1  # a 64-bit size follows the type
            size = tf.where(wide, _number(box[8:16], True), tf.where(size == 0, length - pos, size))
            payload = pos + tf.where(wide, tf.constant(16, tf.int64), 8)
            found = tf.where(_starts(kind, b"jxlc"), payload, tf.where(_starts(kind, b"jxlp"), payload + 4, found))
            return pos + tf.maximum(size, 8), found, i + 1

        _, found, _ = tf.while_loop(more, step, (tf.constant(len(_JXL_CONTAINER), tf.int64),
                                                 tf.constant(-1, tf.int64), tf.constant(0)))
        return found

    start = tf.cond(_starts(head, _JXL_CONTAINER), codestream_start, lambda: tf.constant(0, tf.int64))
    return tf.cond(start >= 0, lambda: _jxl_codestream_size(data, length, start),
                   lambda: (tf.constant(-1, tf.int64), tf.constant(-1, tf.int64)))


def image_header(data: tf.Tensor):
    """(format int32 [], height int64 [], width int64 []) of an encoded image (string []), read from its
    header without decoding it: format indexes `FORMATS` (0: no known format); height and width are -1 when
    the header is too short to hold them. A JPEG whose header libjpeg cannot parse raises its
    InvalidArgumentError."""
    length = tf.cast(tf.strings.length(data), tf.int64)
    head = _read(data, length, tf.constant(0, tf.int64), _HEAD)
    riff_webp = _starts(head, b"RIFF") & _starts(head[8:], b"WEBP")
    kinds = [_starts(head, b"\xff\xd8\xff"), _starts(head, b"\x89PNG\r\n\x1a\n"),
             _starts(head, b"GIF87a") | _starts(head, b"GIF89a"), _starts(head, b"BM"), riff_webp,
             _starts(head, b"\xff\x0a") | _starts(head, _JXL_CONTAINER)]
    fmt = tf.reduce_max(tf.where(tf.stack(kinds), tf.range(1, len(FORMATS)), 0))
    be, le = (lambda a, b: _number(head[a:b], True)), (lambda a, b: _number(head[a:b], False))
    unknown = (tf.constant(-1, tf.int64), tf.constant(-1, tf.int64))

    def fits(needed, size):  # the fields lie inside the bytes given
        return tuple(tf.where(length >= needed, value, tf.constant(-1, tf.int64)) for value in size)

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0], shape[1]

    def webp():
        chunk = head[12:16]
        lossy = (le(28, 30) % 16384, le(26, 28) % 16384)  # 14 bits each (the top 2: the scale)
        lossless = (1 + (head[22] // 64 + head[23] * 4 + (head[24] % 16) * 1024),
                    1 + (head[21] + (head[22] % 64) * 256))
        extended = (1 + le(27, 30), 1 + le(24, 27))
        none = tf.constant(-1, tf.int64)
        return tuple(tf.where(_starts(chunk, b"VP8 "), a, tf.where(_starts(chunk, b"VP8L"), b,
                                                                   tf.where(_starts(chunk, b"VP8X"), c, none)))
                     for a, b, c in zip(lossy, lossless, extended))

    height, width = tf.switch_case(fmt, [
        lambda: unknown,
        jpeg,
        lambda: fits(24, (be(20, 24), be(16, 20))),  # PNG: IHDR's width, height (big-endian)
        lambda: fits(10, (le(8, 10), le(6, 8))),  # GIF: the logical screen, which frames may not exceed
        lambda: fits(26, (tf.abs(le(22, 26) - (le(22, 26) // 2**31) * 2**32), le(18, 22))),  # BMP: signed 32-bit
        lambda: fits(30, webp()),
        lambda: _jxl_size(data, length, head),
    ])
    return fmt, height, width


def image_problem(data: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS, setting: str = "max_pixels") -> tf.Tensor:
    """string []: why an encoded image (string []) is refused before decoding ("" when it is not): empty, no
    known format, a header too short to hold its size, or more pixels than `max_pixels` (the message names
    `setting`, the option that sets the budget)."""
    length = tf.strings.length(data)
    fmt, height, width = image_header(data)
    name = tf.gather(tf.constant(FORMATS), fmt)
    size = tf.strings.join([tf.strings.as_string(width), "x", tf.strings.as_string(height)])
    # A header may claim 2^32 - 1 pixels a side: sides capped at 2^31 keep the product inside int64.
    pixels = tf.minimum(height, 2**31) * tf.minimum(width, 2**31)
    return tf.case([
        (length == 0, lambda: tf.constant("empty (0 bytes)")),
        (fmt == 0, lambda: tf.constant("not an image in a format the decoder reads (" + ", ".join(FORMATS[1:-1])
                                       + f" or {FORMATS[-1]}, told by content, not by name)")),
        ((height <= 0) | (width <= 0), lambda: tf.strings.join(["a ", name, " whose header is cut short or damaged "
                                                                "(no width and height)"])),
        (pixels > max_pixels, lambda: tf.strings.join([
            "a ", name, " of ", size, " = ", tf.strings.as_string(pixels), " pixels, over the budget of ",
            str(max_pixels), f" pixels ({setting})"])),
    ], default=lambda: tf.constant(""))


def reason_of(error: Exception) -> str:
    """The one-line reason inside a TensorFlow error of `decode_rgb` or `batch_inputs` (an assertion's
    message, or the decoder's own first line without TF's node prefix)."""
    text = str(getattr(error, "message", None) or error).strip()
    if "assertion failed: [" in text:  # a graph's assertion: "[message] [data] ..." on one line
        line = text.split("assertion failed: [", 1)[1].split("\n", 1)[0].strip()
        return line.removesuffix("]").replace("] [", " ").strip()
    if "Summarized data: b" in text:  # an eager one
        return text.split("Summarized data: b", 1)[1].strip()[1:-1].split("\n", 1)[0]
    if text.startswith("in user code:"):  # autograph's: the call's frames, then "SomeError: message"
        text = text.splitlines()[-1].strip().split("Error: ", 1)[-1]
    # A graph's error: "Graph execution error:", "Detected at node ...", a stack trace (indented lines), then
    # the op's own line, then "\t [[{{node ...}}]]" lines.
    lines = [line for line in text.splitlines() if line and not line[0].isspace()
             and not line.startswith(("Graph execution error", "Detected at node", "<stack traces"))]
    line = lines[-1] if lines else type(error).__name__
    return line.split("}} ", 1)[-1].split(" [Op:", 1)[0].strip()[:300]


_BATCH_REFUSED = re.compile(r"^\d+ of the \d+ images refused, none answered: ")
_LISTED = re.compile(r"image (\d+): (.*?)(?=; image \d+: |$)")


def refused_images(error: Exception, call_one, count: int, offset: int = 0, name=None) -> DataError:
    """The DataError of a batch of `count` images (rows `offset`... of the caller's X) that TensorFlow refused
    with `error`: every image that cannot be used, by its 0-based row of X (or `name(j)` of the batch's j-th
    image), and why. The rows come from the batch's assertion (`batch_problems`); a decoder's error names no
    image, so then each image is tried alone (`call_one(j)` runs the j-th image of the batch)."""
    reason = reason_of(error)
    if _BATCH_REFUSED.match(reason):
        bad = [(int(j), why) for j, why in _LISTED.findall(_BATCH_REFUSED.sub("", reason))]
    else:
        bad = []
        for j in range(count):
            try:
                call_one(j)
            except tf.errors.InvalidArgumentError as e:
                bad.append((j, _LISTED.sub(r"\2", _BATCH_REFUSED.sub("", reason_of(e)))))
        bad = bad or [(0, reason)]
    name = name or (lambda j: f"X[{offset + j}]")
    listed = "; ".join(f"{name(j)}: {why}" for j, why in bad)
    return DataError(f"{len(bad)} image{'s' if len(bad) > 1 else ''} cannot be used, so no row was answered (a call "
                     f"answers every row or none): {listed}")


def refused_in_training(error: Exception, step: int) -> DataError | None:
    """The DataError of a training step whose input batch held images `batch_problems` refused (None for any
    other error): the reason of each, by its index in the batch; the converted records keep no file name."""
    reason = reason_of(error)
    if not _BATCH_REFUSED.match(reason):
        return None
    listed = "; ".join(f"{why} (image {j} of the batch)" for j, why in _LISTED.findall(_BATCH_REFUSED.sub("", reason)))
    return DataError(f"the training data holds images the model refuses before decoding, at step {step}: {listed}; "
                     "python -m tfxc.extract over the same images (with --max-pixels) names their files")


def decode_rgb(data: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS, setting: str = "max_pixels") -> tf.Tensor:
    """string [] (an encoded image) -> uint8 [H, W, 3]; an image `image_problem` refuses raises
    InvalidArgumentError with the reason, and the decoder never runs on it."""
    problem = image_problem(data, max_pixels, setting)
    with tf.control_dependencies([tf.debugging.Assert(tf.equal(problem, ""), [problem])]):
        return tf.io.decode_image(tf.identity(data), channels=3, expand_animations=False)


def image_inputs(converter, max_pixels: int = DEFAULT_MAX_PIXELS, setting: str = "max_pixels"):
    """The function string [] -> float32 [S, S, 3] (S: the converter's size) that decodes and converts one image
    (`decode_rgb`: refused over `max_pixels`)."""
    height, width = converter.image_size

    def convert(data):
        image = converter(tf.cast(decode_rgb(data, max_pixels, setting), tf.float32))
        return tf.ensure_shape(tf.cast(image, tf.float32), [height, width, 3])

    return convert


def batch_problems(data: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS, setting: str = "max_pixels") -> tf.Tensor:
    """The assertion that no image of a batch (string [B]) has an `image_problem`; its message names every
    refused image by its 0-based index in the batch, with the reason."""
    problems = tf.map_fn(lambda one: image_problem(one, max_pixels, setting), data, fn_output_signature=tf.string)
    bad = tf.where(tf.not_equal(problems, ""))[:, 0]
    listed = tf.strings.reduce_join(tf.strings.join(["image ", tf.strings.as_string(bad), ": ",
                                                     tf.gather(problems, bad)]), separator="; ")
    message = tf.strings.join([tf.strings.as_string(tf.size(bad)), " of the ", tf.strings.as_string(tf.size(data)),
                               " images refused, none answered: ", listed])
    return tf.debugging.Assert(tf.equal(tf.size(bad), 0), [message])


def batch_inputs(converter, max_pixels: int = DEFAULT_MAX_PIXELS, setting: str = "max_pixels"):
    """The function string [B] -> float32 [B, S, S, 3] of `image_inputs`, image by image (sizes differ). Every
    image's header is checked before any is decoded (`batch_problems`): one refused image refuses the batch."""
    one = image_inputs(converter, max_pixels, setting)
    spec = tf.TensorSpec([*converter.image_size, 3], tf.float32)

    def convert(data):
        with tf.control_dependencies([batch_problems(data, max_pixels, setting)]):
            data = tf.identity(data)
        return tf.map_fn(one, data, fn_output_signature=spec)

    return convert


def mirrored_png(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """An encoded image flipped left to right, as lossless PNG bytes: what a model given encoded images sees of
    a mirror image (flip-test verification), decoded by the same TensorFlow decoder as the original."""
    return tf.io.encode_png(tf.image.flip_left_right(decode_rgb(tf.constant(data), max_pixels))).numpy()
