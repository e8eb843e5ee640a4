"""tools/convert_pt_features.py: chunked copy into the dense layout that training reads.

PyTorch is not a dependency, so the loader is replaced by one that returns the
arrays a `torch.load` of the files would; the chunking, checks and layout are real.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import tool_module



def test_converts_splits_in_chunks(tmp_path, monkeypatch):
    tool = tool_module("convert_pt_features")
    monkeypatch.setattr(tool, "CHUNK_ROWS", 7)  # several chunks and a short last one
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 30), ("test", 9)):
        os.makedirs(tmp_path / "src" / split)
        for name, value in (("features", rng.normal(size=(n, 5))), ("labels", rng.integers(0, 4, n))):
            path = str(tmp_path / "src" / split / f"{name}.pt")
            open(path, "wb").close()
            arrays[path] = value
    shapes = tool.convert(str(tmp_path / "src"), str(tmp_path / "out"), load=arrays.__getitem__)
    assert shapes == {"train": (30, 5), "test": (9, 5)}  # no val split: skipped
    for split in ("train", "test"):
        x = np.load(tmp_path / "out" / split / "features.npy")
        y = np.load(tmp_path / "out" / split / "labels.npy")
        assert x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_allclose(x, arrays[str(tmp_path / "src" / split / "features.pt")], rtol=1e-6)
        np.testing.assert_array_equal(y, arrays[str(tmp_path / "src" / split / "labels.pt")])


def test_mismatched_rows_are_refused(tmp_path):
    tool = tool_module("convert_pt_features")
    os.makedirs(tmp_path / "src" / "train")
    arrays = {str(tmp_path / "src" / "train" / "features.pt"): np.zeros((3, 2)),
              str(tmp_path / "src" / "train" / "labels.pt"): np.zeros(4)}
    for path in arrays:
        open(path, "wb").close()
    with pytest.raises(SystemExit, match=r"train: features \(3, 2\) and labels \(4,\) do not match"):
        tool.convert(str(tmp_path / "src"), str(tmp_path / "out"), load=arrays.__getitem__)
