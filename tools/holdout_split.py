"""Splits a train set into train and validation parts by group, for tuning without the test set.

The split of a config's `data.val_percent` (whole groups to one side, by the md5 of the
group key; see `tfxc.data.holdout`), written out as files. The XC BoW file and the JSONL
file of the same points (same order) are read together; the group key is the JSONL `id`
up to `--group-sep`. Without a JSONL file every point is its own group.

PECOS .npz matrices (`--x-npz X.trn.npz --y-npz Y.trn.npz`, e.g. the synthetic scale
sets `tools/bench.py` writes) are split point by point into X/Y.{train,val}.npz.

  python tools/holdout_split.py --xc ../shared/data/wordnet-nextword/train.txt.gz \
      --jsonl ../shared/data/wordnet-nextword/train.jsonl.gz --out data/nextword-holdout
  # -> data/nextword-holdout/{train,val}.txt, then e.g.
  python -m tfxc.train --config configs/linear_wordnet_nextword.json \
      --set data.train=data/nextword-holdout/train.txt --set data.val=data/nextword-holdout/val.txt \
      --set data.dir=runs/data/nextword-holdout
"""

from __future__ import annotations

import argparse
import os

from tfxc.cli import AsciiInt
from tfxc.data.holdout import group_keys, in_validation
from tfxc.data.readers import open_text
from tfxc.errors import DataError, TfxcError
from tfxc.utils.io import atomic_writer, refuse_to_overwrite_inputs
from tfxc.utils.numbers import ascii_int


def split(xc_path: str, jsonl_path: str | None, out_dir: str, percent: int, group_sep: str) -> tuple[int, int]:
    """Writes out_dir/{train,val}.txt (XC format with a header each); returns their point counts."""
    with open_text(xc_path) as xc:
        header = xc.readline().split()
        if len(header) != 3 or any(ascii_int(field) is None for field in header):
            raise DataError(f"{xc_path}:1: expected the header 'points features labels', got {header}")
        parts = {"train": [], "val": []}
        keys = group_keys(jsonl_path, group_sep)
        for line_no, row in enumerate(xc, start=2):
            key = next(keys, None)
            if key is None:
                raise DataError(f"{xc_path}:{line_no}: {jsonl_path} has fewer points (the two files must hold "
                                "the same points in the same order)")
            row = row if row.endswith("\n") else row + "\n"  # the file's last line may lack one
            parts["val" if in_validation(key, percent) else "train"].append(row)
        if jsonl_path is not None and next(keys, None) is not None:
            raise DataError(f"{jsonl_path}: more points than {xc_path} (the two files must hold the same points)")
        if sum(map(len, parts.values())) != int(header[0]):
            raise DataError(f"{xc_path}: {sum(map(len, parts.values()))} points read, the header says {header[0]}")
    os.makedirs(out_dir, exist_ok=True)
    for name, rows in parts.items():
        with atomic_writer(os.path.join(out_dir, f"{name}.txt")) as f:
            f.write(f"{len(rows)} {header[1]} {header[2]}\n")
            f.writelines(rows)
    return len(parts["train"]), len(parts["val"])


def split_npz(x_path: str, y_path: str, out_dir: str, percent: int) -> tuple[int, int]:
    """Writes out_dir/{X,Y}.{train,val}.npz, each point its own group; returns the point counts."""
    import numpy as np
    import scipy.sparse as sp

    x, y = sp.load_npz(x_path).tocsr(), sp.load_npz(y_path).tocsr()
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{x_path} has {x.shape[0]} points but {y_path} has {y.shape[0]}")
    val = np.array([in_validation(str(i), percent) for i in range(x.shape[0])])
    os.makedirs(out_dir, exist_ok=True)
    for name, rows in (("train", ~val), ("val", val)):
        for prefix, matrix in (("X", x), ("Y", y)):
            with atomic_writer(os.path.join(out_dir, f"{prefix}.{name}.npz"), binary=True) as f:
                sp.save_npz(f, matrix[rows])
    return int((~val).sum()), int(val.sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xc", help="XC BoW train file (may be .gz)")
    parser.add_argument("--x-npz", help="PECOS feature matrix of the train set (instead of --xc)")
    parser.add_argument("--y-npz", help="PECOS label matrix of the train set (with --x-npz)")
    parser.add_argument("--jsonl", help="JSONL file of the same points, with an 'id' field (default: each "
                        "point is its own group)")
    parser.add_argument("--out", required=True, help="output directory for train.txt and val.txt")
    parser.add_argument("--percent", type=AsciiInt(0, 100), default=10, help="share of the groups held out, in percent")
    parser.add_argument("--group-sep", default=":", help="the group key is the id up to this separator")
    args = parser.parse_args(argv)
    if bool(args.xc) == bool(args.x_npz and args.y_npz):
        parser.error("give either --xc or both --x-npz and --y-npz")
    # `--x-npz data/X.train.npz --out data` would write the train part over the file it was read from.
    names = ["train.txt", "val.txt"] if args.xc else [f"{p}.{n}.npz" for p in "XY" for n in ("train", "val")]
    inputs = {"--xc": args.xc, "--jsonl": args.jsonl, "--x-npz": args.x_npz, "--y-npz": args.y_npz}
    try:
        for name in names:
            refuse_to_overwrite_inputs(os.path.join(args.out, name), inputs)
    except TfxcError as e:
        parser.error(str(e))
    if args.xc:
        n_train, n_val = split(args.xc, args.jsonl, args.out, args.percent, args.group_sep)
    else:
        n_train, n_val = split_npz(args.x_npz, args.y_npz, args.out, args.percent)
    print(f"{args.out}: train {n_train:,} points, val {n_val:,} points")


if __name__ == "__main__":
    main()
