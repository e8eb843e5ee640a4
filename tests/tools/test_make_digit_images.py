"""tools/make_digit_images.py: scikit-learn's digit scans as PNG files, a folder per digit, without TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from helpers import REPO

from tfxc._tf import tf


def test_the_scans_are_written_as_pngs_without_starting_tensorflow(tmp_path):
    tool = os.path.join(REPO, "tools", "make_digit_images.py")
    script = (f"import importlib.util, sys\n"
              f"spec = importlib.util.spec_from_file_location('tool', {tool!r})\n"
              f"tool = importlib.util.module_from_spec(spec); spec.loader.exec_module(tool)\n"
              f"tool.main(['--out', {str(tmp_path / 'digits')!r}, '--size', '16'])\n"
              f"print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n")
    # (tfxc.cli, for its integer flag type, imports no TensorFlow.)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    counts, imported = run.stdout.strip().splitlines()
    assert json.loads(counts) == {"train": 1433, "test": 364} and imported == "[]"
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index in (0, 1796):
        digit = int(digits.target[index])
        split = [s for s in ("train", "test") if os.path.exists(tmp_path / "digits" / s / f"digit{digit}" /
                                                                 f"{index:04d}.png")]
        data = (tmp_path / "digits" / split[0] / f"digit{digit}" / f"{index:04d}.png").read_bytes()
        pixels = tf.io.decode_png(data).numpy()
        expected = (digits.images[index] * (255 / 16)).astype(np.uint8).repeat(2, 0).repeat(2, 1)
        assert pixels.shape == (16, 16, 3) and all((pixels[..., c] == expected).all() for c in range(3))
