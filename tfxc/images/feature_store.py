"""An extraction's output directory: the row plan, the feature files filled in row chunks, the resume point.

Layout (what `data.format = "dense"` reads as a `source_dir`, plus what maps rows back to images):

    OUT/{train,val,test}/features.npy   float32 [n_split, D] (a split without rows has no folder)
    OUT/{train,val,test}/labels.npy     int64 [n_split]
    OUT/{train,val,test}/refs.txt       the image behind each row (its path or tar key), one per line
    OUT/labels.txt                      class names, line i = class i (not for integer class ids)
    OUT/extract.json                    the settings, counts, dimension and throughput

While it runs, OUT/.extract/ holds the plan (every image's label and split, in stream order), the
settings it was made with, and `progress.json`, the number of images whose features are on disk. Features
go into `features.npy.partial` files (memory-mapped .npy of the final shape); `progress.json` is replaced
atomically only after those rows are flushed, so a kill at any point loses at most the rows after it, and
a rerun with the same settings recomputes exactly those. The partial files become `features.npy` (a
rename) when every row is in.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil

import numpy as np

from tfxc.compat import FEATURE_STORE, stamped, upgrade
from tfxc.data.files import delimited_rows
from tfxc.errors import DataError
from tfxc.images.sources import SPLITS
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_write_text, atomic_writer
from tfxc.utils.numbers import ascii_float

STATE_DIR = ".extract"
CARD_FILE = "extract.json"


def parse_fractions(text: str) -> dict[str, float]:
    """"train=0.8,val=0.1,test=0.1" -> {split: fraction} (fractions summing to 1)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        out[name.strip()] = ascii_float(value.strip())
        if out[name.strip()] is None:  # float() would take nan, which passes every check below
            raise DataError(f"'{part}' is not split=fraction (a finite number, e.g. train=0.8)", field="--split")
    if set(out) - set(SPLITS) or "train" not in out or any(v < 0 for v in out.values()):
        raise DataError(f"'{text}': name train (and val, test) with fractions >= 0", field="--split")
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise DataError(f"'{text}': the fractions sum to {sum(out.values()):g}, not 1", field="--split")
    return out


def split_by_rows(num_rows: int, fractions: dict[str, float], seed: int) -> np.ndarray:
    """int8 [num_rows]: a split index (into SPLITS) per row, the counts rounded from `fractions`, rows drawn
    by a permutation seeded with `seed`."""
    counts = [int(round(fractions.get(s, 0.0) * num_rows)) for s in SPLITS]
    counts[0] = num_rows - sum(counts[1:])
    order = np.random.default_rng(seed).permutation(num_rows)
    out = np.empty(num_rows, np.int8)
    out[order] = np.repeat(np.arange(len(SPLITS), dtype=np.int8), counts)
    return out


def read_split_file(path: str) -> dict[str, str]:
    """{ref: split} of a split file: one `ref,split` line per image (CSV; a `ref,split` header is allowed).

    Raises:
      DataError: naming the file and line: a row of other than two cells, a split other than train, val and
        test, bytes that are not UTF-8, a malformed quote.
    """
    out = {}
    for lineno, row in delimited_rows(path, cells=2, first="ref,split"):
        if lineno == 1 and row == ["ref", "split"]:
            continue
        if row[1] not in SPLITS:
            raise DataError(f"expected ref,split with split one of {', '.join(SPLITS)}, got {row!r}", path=path,
                            line=lineno)
        out[row[0]] = row[1]
    return out


class FeatureStore:
    """The output directory of one extraction (module docstring).

    Args:
      out_dir: the directory.
      settings: what the features depend on (source, preset, pooling, sizes, batch, precision, split);
        a partial extraction resumes only under equal settings.
    """

    def __init__(self, out_dir: str, settings: dict):
        self.out_dir, self.settings = out_dir, settings
        self.state_dir = os.path.join(out_dir, STATE_DIR)
        self._maps: dict[int, np.memmap] = {}

    # === the plan ===
    def saved_settings(self) -> dict | None:
        path = os.path.join(self.state_dir, "settings.json")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def finished_settings(self) -> dict | None:
        path = os.path.join(self.out_dir, CARD_FILE)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return upgrade(FEATURE_STORE, json.load(f), path).get("settings")

    def write_plan(self, labels: np.ndarray, splits: np.ndarray, refs, label_names: list[str] | None,
                   dim: int) -> None:
        """Writes labels.npy, refs.txt and labels.txt, creates the partial feature files and the state.

        Args:
          labels: int64 [N], each image's class id in stream order.
          splits: int8 [N], each image's split (index into SPLITS).
          refs: an iterable of the images' refs in stream order (streamed: a large source's are not held).
          label_names: class names (id order), or None for integer class ids.
          dim: the feature dimension D.
        """
        if os.path.isdir(self.state_dir):
            shutil.rmtree(self.state_dir)
        os.makedirs(self.state_dir)
        present = [index for index in range(len(SPLITS)) if np.any(splits == index)]
        for index in present:  # an empty split gets no folder: the dense layout's val is optional
            split = SPLITS[index]
            mine = splits == index
            folder = os.path.join(self.out_dir, split)
            os.makedirs(folder, exist_ok=True)
            with atomic_writer(os.path.join(folder, "labels.npy"), binary=True) as f:
                np.save(f, labels[mine].astype(np.int64), allow_pickle=False)
            partial = os.path.join(folder, "features.npy.partial")
            np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(int(mine.sum()), dim)).flush()
        with contextlib.ExitStack() as stack:
            files = {i: stack.enter_context(atomic_writer(os.path.join(self.out_dir, SPLITS[i], "refs.txt")))
                     for i in present}
            for ref, index in zip(refs, splits):
                files[int(index)].write(ref.replace("\n", " ") + "\n")
        if label_names is not None:
            atomic_write_text(os.path.join(self.out_dir, "labels.txt"), "".join(n + "\n" for n in label_names))
        with atomic_writer(os.path.join(self.state_dir, "plan.npz"), binary=True) as f:
            np.savez(f, labels=labels, splits=splits)
        atomic_write_text(os.path.join(self.state_dir, "settings.json"), json.dumps(self.settings, sort_keys=True))
        self.commit(0)

    def load_plan(self) -> tuple[np.ndarray, np.ndarray]:
        with np.load(os.path.join(self.state_dir, "plan.npz"), allow_pickle=False) as plan:
            return plan["labels"], plan["splits"]

    # === the rows ===
    def done(self) -> int:
        """Images whose features are on disk (in stream order)."""
        with open(os.path.join(self.state_dir, "progress.json"), encoding="utf-8") as f:
            return int(json.load(f)["done"])

    def open(self) -> None:
        for index, split in enumerate(SPLITS):
            path = os.path.join(self.out_dir, split, "features.npy.partial")
            if not os.path.exists(path):
                continue  # no rows in that split
            array = np.load(path, mmap_mode="r+", allow_pickle=False)
            if array.shape[0]:
                self._maps[index] = array

    def write(self, splits: np.ndarray, offsets: np.ndarray, features: np.ndarray) -> None:
        """Rows of consecutive images: `splits` int8 [b] their splits, `offsets` int64 [len(SPLITS)] the
        first row of each split they fill, `features` float32 [b, D]."""
        for index in np.unique(splits):
            mine = splits == index
            start = int(offsets[index])
            self._maps[int(index)][start:start + int(mine.sum())] = features[mine]

    def commit(self, done: int) -> None:
        """Flushes the rows written so far to disk, then records `done` as the resume point."""
        for array in self._maps.values():
            array.flush()
        atomic_write_text(os.path.join(self.state_dir, "progress.json"), json.dumps({"done": done}))

    def finish(self, card: dict) -> None:
        """Renames the partial files into place, writes the card and removes the state."""
        self.commit(card["images"])
        self._maps.clear()
        for split in SPLITS:
            folder = os.path.join(self.out_dir, split)
            partial = os.path.join(folder, "features.npy.partial")
            if os.path.exists(partial):
                os.replace(partial, os.path.join(folder, "features.npy"))
        atomic_write_text(os.path.join(self.out_dir, CARD_FILE), json_text(stamped(FEATURE_STORE, {**card, "settings": self.settings}),
                                                                            indent=2, sort_keys=True) + "\n")
        shutil.rmtree(self.state_dir)



def read_extraction(out_dir: str) -> tuple[list[str], np.ndarray]:
    """(refs, features float32 [n, D]) of a finished extraction, its splits in train, val, test order, the
    features memory-mapped. Raises DataError when `out_dir` is not one, or a split's files disagree."""
    if not os.path.isfile(os.path.join(out_dir, CARD_FILE)):
        raise DataError(f"not a finished tfxc.extract output (no {CARD_FILE})", path=out_dir)
    refs, parts = [], []
    for split in SPLITS:
        features_path = os.path.join(out_dir, split, "features.npy")
        if not os.path.exists(features_path):
            continue
        with open(os.path.join(out_dir, split, "refs.txt"), encoding="utf-8") as file:
            split_refs = file.read().splitlines()
        part = np.load(features_path, mmap_mode="r", allow_pickle=False)
        if part.ndim != 2 or part.shape[0] != len(split_refs):
            raise DataError(f"{part.shape[0] if part.ndim else 0} feature rows but {len(split_refs)} refs",
                            path=features_path)
        refs += split_refs
        parts.append(part)
    if not parts:
        raise DataError("the extraction has no features", path=out_dir)
    return refs, np.concatenate(parts).astype(np.float32, copy=False)
