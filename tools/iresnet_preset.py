"""Writes a keras-hub preset of insightface's IResNet with random weights (training from scratch, as insightface
does), for `model.encoder.preset` and `tfxc.extract --preset`.

  python tools/iresnet_preset.py r18 runs/presets/iresnet_r18
  python tools/iresnet_preset.py r100 presets/iresnet_r100 --image-size 112 --embedding-dim 512

The preset holds the backbone (`tfxc.images.iresnet`) and insightface's input conversion, (pixel - 127.5) /
127.5 at the image size.
"""

from __future__ import annotations

import argparse

from tfxc.cli import positive_int
from tfxc.images.iresnet import DEPTHS, save_iresnet_preset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("depth", choices=sorted(DEPTHS, key=lambda depth: int(depth[1:])))
    parser.add_argument("out", help="the preset directory to write")
    parser.add_argument("--image-size", type=positive_int, default=112)
    parser.add_argument("--embedding-dim", type=positive_int, default=512)
    args = parser.parse_args(argv)
    if args.image_size < 16:  # four stride-2 stages halve 16 down to 1
        parser.error("--image-size must be at least 16")
    save_iresnet_preset(args.out, args.depth, args.image_size, args.embedding_dim)
    print(f"wrote {args.out}: IResNet {args.depth} at {args.image_size}x{args.image_size}, {args.embedding_dim}-d")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
