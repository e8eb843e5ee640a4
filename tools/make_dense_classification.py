"""Writes a synthetic dense multi-class data set in the `{train,val,test}/features.npy + labels.npy` layout.

The default is Glint360K-shaped (SCENT, arXiv 2602.02877): 512-d unnormalised
features and 360,232 classes, here with 300k training points:

  python tools/make_dense_classification.py --out data/glint_synthetic
  python -m tfxc.train --config configs/scent_glint360k.json --data-dir data/glint_synthetic \
      --set data.dir=data/glint_synthetic_tfrecord --set trainer.epochs=1
"""

from __future__ import annotations

import argparse
import time

from tfxc.cli import FiniteFloat, non_negative_int, positive_int
from tfxc.data.synthetic import write_dense_classification


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--classes", type=positive_int, default=360232)
    parser.add_argument("--dim", type=positive_int, default=512)
    parser.add_argument("--train", type=positive_int, default=300000)
    parser.add_argument("--val", type=positive_int, default=10000)
    parser.add_argument("--test", type=positive_int, default=10000)
    parser.add_argument("--noise", type=FiniteFloat(0), default=1.0, help="per-coordinate noise std (centres have std 1)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    args = parser.parse_args(argv)
    start = time.time()
    write_dense_classification(args.out, num_classes=args.classes, dim=args.dim, num_train=args.train,
                               num_val=args.val, num_test=args.test, noise=args.noise, seed=args.seed)
    print(f"wrote {args.out} in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
