"""scikit-learn's 1,797 real 8x8 digit scans (`load_digits`) as image files, a folder per digit.

The image path's smallest real data set that ships with a package: what the tests, the docs and the
benchmarks run `tfxc.extract` and the `image` encoder on.

  python tools/make_digit_images.py --out runs/digits --size 16 --test-every 5
      -> runs/digits/{train,test}/digit<d>/<index>.png (every 5th scan of each digit in test)

Pixels are repeated (size/8 times each way), grey replicated into RGB; PNG by default, written by
`png_rgb` with zlib alone (no TensorFlow to start: the whole set takes about a second); --format jpeg
encodes with Pillow (installed with tensorboard, a dependency of tfxc). Prints one JSON line with the counts.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import zlib

from tfxc.cli import non_negative_int, positive_int
from tfxc.utils.display import json_text


def png_rgb(pixels) -> bytes:
    """A PNG file (8-bit RGB, no interlace) of uint8 [H, W, 3] pixels."""
    height, width, _ = pixels.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)  # each row: filter 0 (none), then its bytes
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def jpeg_rgb(pixels) -> bytes:
    """A JPEG file (Pillow's default quality, 75) of uint8 [H, W, 3] pixels."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG")
    return out.getvalue()


def write_digits(out: str, size: int = 16, test_every: int = 5, fmt: str = "png") -> dict:
    """Writes the scans and returns {"train": n, "test": n}; `test_every` 0 writes one folder per digit."""
    import numpy as np
    from sklearn.datasets import load_digits

    if size % 8:
        raise SystemExit(f"--size {size} must be a multiple of 8 (the scans are 8x8)")
    digits = load_digits()
    seen = {d: 0 for d in range(10)}
    counts = {"train": 0, "test": 0}
    encode = png_rgb if fmt == "png" else jpeg_rgb
    for index, (image, digit) in enumerate(zip(digits.images, digits.target)):
        digit = int(digit)
        split = "test" if test_every and seen[digit] % test_every == 0 else "train"
        seen[digit] += 1
        folder = os.path.join(out, split, f"digit{digit}") if test_every else os.path.join(out, f"digit{digit}")
        os.makedirs(folder, exist_ok=True)
        pixels = (image * (255 / 16)).astype(np.uint8).repeat(size // 8, 0).repeat(size // 8, 1)
        data = encode(np.ascontiguousarray(np.repeat(pixels[..., None], 3, axis=-1)))
        with open(os.path.join(folder, f"{index:04d}.{'png' if fmt == 'png' else 'jpg'}"), "wb") as f:
            f.write(data)
        counts[split] += 1
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=positive_int, default=16)
    parser.add_argument("--test-every", type=non_negative_int, default=5, help="every N-th scan of a digit goes to test/ "
                                                                    "(0: one folder per digit, no split)")
    parser.add_argument("--format", choices=("png", "jpeg"), default="png")
    args = parser.parse_args(argv)
    print(json_text(write_digits(args.out, args.size, args.test_every, args.format)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
