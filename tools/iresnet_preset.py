"""Writes a keras-hub preset of insightface's IResNet: random weights (training from scratch, as insightface
does), or the weights of one of its released ONNX models, for `model.encoder.preset` and `tfxc.extract --preset`.

  python tools/iresnet_preset.py r18 runs/presets/iresnet_r18
  python tools/iresnet_preset.py r100 presets/iresnet_r100 --image-size 112 --embedding-dim 512
  python tools/iresnet_preset.py r50 presets/w600k_r50 --onnx buffalo_l/w600k_r50.onnx

The preset holds the backbone (`tfxc.images.iresnet`) and its input conversion: insightface's (pixel - 127.5) /
127.5 at the image size, or, from an ONNX model that normalises pixels itself, that model's. With --onnx the
depth must be the model's; its image size and embedding width are read from it (`tfxc.images.onnx_iresnet`).
"""

from __future__ import annotations

import argparse

from tfxc.cli import positive_int
from tfxc.errors import TfxcError
from tfxc.images.iresnet import DEPTHS, iresnet, save_iresnet_preset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("depth", choices=sorted(DEPTHS, key=lambda depth: int(depth[1:])))
    parser.add_argument("out", help="the preset directory to write")
    parser.add_argument("--image-size", type=positive_int, help="the input's side (default 112)")
    parser.add_argument("--embedding-dim", type=positive_int, help="the embedding's width (default 512)")
    parser.add_argument("--onnx", metavar="FILE", help="an insightface ONNX recognition model whose weights to take")
    args = parser.parse_args(argv)
    if args.onnx:
        if args.image_size or args.embedding_dim:
            parser.error("--image-size and --embedding-dim are the ONNX model's; leave them out with --onnx")
        from tfxc.images.onnx_iresnet import iresnet_from_onnx

        try:
            backbone, converter = iresnet_from_onnx(args.onnx, depth=args.depth)
        except TfxcError as error:
            parser.exit(1, f"error: {error}\n")
        source = f"the weights of {args.onnx}"
    else:
        if args.image_size is not None and args.image_size < 16:  # four stride-2 stages halve 16 down to 1
            parser.error("--image-size must be at least 16")
        backbone, converter = iresnet(args.depth, args.image_size or 112, args.embedding_dim or 512), None
        source = "random weights"
    save_iresnet_preset(args.out, backbone=backbone, converter=converter)
    size = backbone.image_shape[0]
    print(f"wrote {args.out}: IResNet {args.depth} at {size}x{size}, {backbone.embedding_dim}-d, {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
