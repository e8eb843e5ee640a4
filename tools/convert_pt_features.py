"""Converts SCENT-style PyTorch feature files to the dense layout tfxc reads.

The SCENT repository (arXiv 2602.02877) stores pre-extracted features as
`DIR/{train,val,test}/features.pt` (float [N, 512]) and `labels.pt` (int [N]).
tfxc reads `{train,val,test}/features.npy` + `labels.npy` (`data.format = "dense"`,
`--data-dir`). This tool needs PyTorch (`pip install torch`, not a tfxc dependency):

  python tools/convert_pt_features.py --src /data/glint360k_pt --out /data/glint360k
  python -m tfxc.train --config configs/scent_glint360k.json --data-dir /data/glint360k

Files are opened with `torch.load(..., weights_only=True, mmap=True)`: no
arbitrary unpickling, and the 17M x 512 Glint360K matrix (35 GB) is copied in
row chunks to a memory-mapped .npy, never held in memory at once. Each output
is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

CHUNK_ROWS = 1 << 16


def copy_rows(source, out_path: str, dtype) -> tuple[int, ...]:
    """Copies an array-like (a torch tensor or a NumPy array) to `out_path` (.npy) in row chunks."""
    shape = tuple(int(s) for s in source.shape)
    tmp = out_path + ".tmp"
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    for start in range(0, shape[0], CHUNK_ROWS):
        chunk = source[start:start + CHUNK_ROWS]
        out[start:start + len(chunk)] = chunk.numpy() if hasattr(chunk, "numpy") else np.asarray(chunk)
    out.flush()
    del out
    os.replace(tmp, out_path)
    return shape


def load_pt(path: str):
    try:
        import torch
    except ImportError:
        raise SystemExit("this tool needs PyTorch to read .pt files: pip install torch") from None
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def convert(src: str, out: str, load=load_pt) -> dict[str, tuple[int, ...]]:
    """Converts every split present under `src`; returns {split: features shape}."""
    shapes = {}
    for split in ("train", "val", "test"):
        x_path, y_path = (os.path.join(src, split, f"{name}.pt") for name in ("features", "labels"))
        if not os.path.exists(x_path):
            if split == "val":
                continue
            raise SystemExit(f"{x_path}: missing")
        os.makedirs(os.path.join(out, split), exist_ok=True)
        x, y = load(x_path), load(y_path)
        if len(x.shape) != 2 or len(y.shape) != 1 or x.shape[0] != y.shape[0]:
            raise SystemExit(f"{split}: features {tuple(x.shape)} and labels {tuple(y.shape)} do not match "
                             "([N, dim] and [N])")
        copy_rows(y, os.path.join(out, split, "labels.npy"), np.int64)
        shapes[split] = copy_rows(x, os.path.join(out, split, "features.npy"), np.float32)
    return shapes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="directory with {train,val,test}/features.pt, labels.pt")
    parser.add_argument("--out", required=True, help="output directory ({split}/features.npy, labels.npy)")
    args = parser.parse_args(argv)
    for split, shape in convert(args.src, args.out).items():
        print(f"{split}: {shape[0]} rows x {shape[1]} features")


if __name__ == "__main__":
    main()
