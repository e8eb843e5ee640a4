"""What a converted data directory holds: `stats.json`, `label_freq.npy`, `labels.txt` and TFRecord shards."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
from dataclasses import dataclass

import numpy as np

from tfxc.compat import DATA, FORMATS, stand_ins, upgrade, version_of
from tfxc.errors import DamagedFile, DataError
from tfxc.utils.files import read_npy, read_text
from tfxc.utils.json_files import read_json_object, required

STATS_FILE = "stats.json"
LABEL_FREQ_FILE = "label_freq.npy"  # int64 [L]: binary, since 10^7 counts as JSON text are slow to parse
LABELS_FILE = "labels.txt"
FEATURIZER_FILE = "featurizer.json"
# Everything of a converted directory but the shards: what a trained model depends on besides the rows
# (sizes, label names and frequencies, the text featurizer). A model directory keeps a copy.
CARD_FILES = (STATS_FILE, LABEL_FREQ_FILE, LABELS_FILE, FEATURIZER_FILE)


@dataclass(frozen=True)
class DatasetInfo:
    """The contents of a converted directory (read from its stats.json)."""

    dir: str
    num_features: int
    num_labels: int
    splits: dict
    label_freq: np.ndarray  # int64 [L], train-split label counts
    # {"index", "folds", "conversion"} of a fold's view of a conversion (`tfxc.data.folds`), else None.
    fold: dict | None = None

    @classmethod
    def load(cls, directory: str) -> "DatasetInfo":
        path = os.path.join(directory, STATS_FILE)
        if not os.path.exists(path):
            raise DataError(f"no converted data set here (missing {STATS_FILE}); run `python -m tfxc.convert` "
                            "or give the config a source format", path=directory)
        stats = read_json_object(path, "the data set's statistics")
        version = version_of(DATA, stats, path)
        stats = upgrade(DATA, stats, path)
        freq_path = os.path.join(directory, LABEL_FREQ_FILE)
        if os.path.exists(freq_path):
            label_freq = read_npy(freq_path, _card_advice(directory)).astype(np.int64, copy=False)
        else:  # a conversion of format 0 may keep the counts in stats.json
            label_freq = stand_ins.label_freq_in_stats(stats, version, freq_path, path)
        if label_freq.shape != (required(stats, "num_labels", path, int),):
            raise DataError(f"label frequencies have shape {label_freq.shape}, expected ({stats['num_labels']},)",
                            path=freq_path)
        fold = stats.get("fold")
        return cls(directory, required(stats, "num_features", path, int), required(stats, "num_labels", path, int),
                   required(stats, "splits", path, dict), label_freq, fold if isinstance(fold, dict) else None)

    def require_train_labels(self) -> None:
        """Refuses a train split none of whose rows has a label (no label declared, or labels declared but
        none used): there is nothing to learn, and the heads fail on it far from the cause (a zero-width
        matmul aborts the process in oneDNN, a loss of NaN, or P@1 0 without a word).

        Raises:
          DataError: naming the data's sources (or its converted directory).
        """
        if "train" not in self.splits or (self.num_labels and self.label_freq.any()):
            return
        why = ("it declares 0 labels" if not self.num_labels else
               f"it declares {self.num_labels} labels but none of its {self.num_points('train')} rows has one")
        sources = self.source_paths()
        where = (f"converted from {', '.join(sources[:3])}{' ...' if len(sources) > 3 else ''}" if sources
                 else f"converted in {self.dir}")
        raise DataError(f"the train split has no labels ({where}): {why}; a model learns only from labelled "
                        "rows (check the labels' column or field, and the header's label count)")

    def source_paths(self) -> list[str]:
        """The source files the data was converted from (stats.json's content cache), sorted; [] unknown."""
        try:
            with open(os.path.join(self.dir, STATS_FILE)) as f:
                files = json.load(f).get("source_files")
        except (OSError, ValueError):
            return []
        return sorted(files) if isinstance(files, dict) else []

    def files(self, split: str) -> list[str]:
        if split not in self.splits:
            raise DataError(f"split '{split}' was not converted; have: {', '.join(self.splits)}", path=self.dir)
        files = sorted(glob.glob(os.path.join(self.dir, f"{split}-*.tfrecord")))
        expected = self.splits[split]["num_shards"]
        if len(files) != expected:
            raise DataError(f"expected {expected} {split} shards, found {len(files)}", path=self.dir)
        return files

    def num_points(self, split: str) -> int:
        return int(self.splits[split]["num_points"])

    def is_multiclass(self, split: str) -> bool:
        """Whether every row of `split` has exactly one label (`one_label_per_row` of its statistics)."""
        stats = self.splits[split]
        return one_label_per_row(stats["avg_labels_per_point"], stats["points_without_labels"])

    def label_names(self) -> list[str]:
        path = os.path.join(self.dir, LABELS_FILE)
        if not os.path.exists(path):
            return [str(i) for i in range(self.num_labels)]
        names = read_text(path, _card_advice(self.dir)).split("\n")[: self.num_labels]
        return names + [str(i) for i in range(len(names), self.num_labels)]

    @property
    def featurizer_path(self) -> str | None:
        path = os.path.join(self.dir, FEATURIZER_FILE)
        return path if os.path.exists(path) else None

    def fold_siblings(self, other: "DatasetInfo") -> bool:
        """Whether `self` and `other` are views of two folds of one conversion: the same labels, features and
        test split, the train and val splits apart (an ensemble of the folds, or a student of them)."""
        mine, theirs = self.fold, other.fold
        return (mine is not None and theirs is not None and mine.get("conversion") == theirs.get("conversion")
                and mine.get("folds") == theirs.get("folds"))

    def same_data_as(self, other: "DatasetInfo") -> bool:
        """Whether `other` holds the same data (`fingerprint`); the rows' digests count where both have them
        (conversions written before they were recorded have none)."""
        rows = self.has_row_digests and other.has_row_digests
        return self.fingerprint(rows) == other.fingerprint(rows)

    @property
    def has_row_digests(self) -> bool:
        return all(isinstance(split, dict) and "sha256" in split for split in self.splits.values())

    def fingerprint(self, rows: bool = True) -> str:
        """sha256 of what the data is: the card files (`CARD_FILES`) and, with `rows`, the rows' digests.

        Where the data came from (the sources' paths and the hashes that decide whether to convert
        again) is left out, so the same rows converted from moved or re-copied sources are the same data.
        """
        digest = hashlib.sha256()
        for name in CARD_FILES:
            path = os.path.join(self.dir, name)
            if not os.path.exists(path):
                continue
            digest.update(name.encode() + b"\0")
            if name == STATS_FILE:
                digest.update(_stats_without_provenance(path, rows))
                continue
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    def copy_card(self, directory: str) -> None:
        """Copies the card files (not the shards) into `directory`, which must exist and be empty."""
        for name in CARD_FILES:
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                shutil.copyfile(path, os.path.join(directory, name))



def one_label_per_row(labels_per_point: float, points_without_labels: int) -> bool:
    """Whether data is multi-class, every row with exactly one label, from two statistics (a split's in
    stats.json, or a label matrix's: nnz / max(rows, 1) and its empty rows): one label per row on average
    and no row without, which leaves no row with two. Evaluation then reports Acc@k; the dual-variable
    losses need it."""
    return labels_per_point == 1.0 and points_without_labels == 0


# stats.json keys that say where a conversion came from, not what it holds.
PROVENANCE_KEYS = ("source_fingerprint", "source_files")


def _stats_without_provenance(path: str, rows: bool) -> bytes:
    """stats.json as canonical JSON without `PROVENANCE_KEYS` and its format version (the same rows are the same
    data, whichever tfxc wrote the card), and without the splits' row digests unless `rows`; the file's bytes
    if it is not a JSON object."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        stats = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(stats, dict):
        return raw
    kept = {k: v for k, v in stats.items() if k not in PROVENANCE_KEYS + (FORMATS[DATA].key,)}
    if not rows and isinstance(kept.get("splits"), dict):
        kept["splits"] = {name: {k: v for k, v in split.items() if k != "sha256"} if isinstance(split, dict)
                          else split for name, split in kept["splits"].items()}
    return json.dumps(kept, sort_keys=True).encode()


def _card_advice(directory: str) -> str:
    """What to do about a damaged card file in `directory`: a model directory's copy (`dataset/`) cannot be
    converted again, a data directory can."""
    parent, name = os.path.split(os.path.normpath(directory))
    if name == "dataset" and (os.path.isdir(os.path.join(parent, "checkpoints"))
                              or os.path.exists(os.path.join(parent, "config.json"))):
        return (f"it is the model's copy of its data's card: copy the files of the data.dir it was trained on "
                f"into {directory} (if that data was not converted differently since)")
    return f"convert the data again (`python -m tfxc.convert --config CONFIG --force`), or delete {directory}"


def check_shards(info: DatasetInfo, split: str) -> None:
    """Reads every record of the split's shards (checking their CRCs); a damaged shard raises `DamagedFile`.

    Used after a `tf.errors.DataLossError`, whose message does not say which file was damaged.
    """
    from tfxc._tf import tf

    for path in info.files(split):
        try:
            for _ in tf.data.TFRecordDataset(path, buffer_size=1 << 20):
                pass
        except tf.errors.DataLossError as e:
            # "{{function_node ...}} truncated record at 4929' failed with Read less bytes than requested"
            reason = str(e).split("}}", 1)[-1].split("' failed with", 1)[0].split(" [Op:", 1)[0].strip()
            raise DamagedFile(f"a TFRecord shard is cut short or corrupted ({reason})", path=path,
                              advice=_card_advice(info.dir)) from None


@contextlib.contextmanager
def damaged_shards_named(info: DatasetInfo, *splits: str):
    """Turns a `tf.errors.DataLossError` raised inside the block into a `DamagedFile` naming the shard.

    Args:
      info: the data being read.
      splits: the splits the block reads (their shards are checked, in order, when the error comes);
        default: every split of the data.
    """
    from tfxc._tf import tf

    try:
        yield
    except tf.errors.DataLossError:
        for split in splits or tuple(info.splits):
            check_shards(info, split)
        raise  # no shard is damaged now (it was replaced meanwhile?): the error as it was
