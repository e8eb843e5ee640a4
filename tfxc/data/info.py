"""What a converted data directory holds: `stats.json`, `label_freq.npy`, `labels.txt` and TFRecord shards."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
from dataclasses import dataclass

import numpy as np

from tfxc.errors import DamagedFile, DataError
from tfxc.utils.files import read_json_object, read_npy, read_text

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

    @classmethod
    def load(cls, directory: str) -> "DatasetInfo":
        path = os.path.join(directory, STATS_FILE)
        if not os.path.exists(path):
            raise DataError(f"no converted data set here (missing {STATS_FILE}); run `python -m tfxc.convert` "
                            "or give the config a source format", path=directory)
        advice = _card_advice(directory)
        stats = read_json_object(path, advice)
        missing = [key for key in ("num_features", "num_labels", "splits") if key not in stats]
        if missing or not isinstance(stats.get("num_labels"), int) or not isinstance(stats.get("splits"), dict):
            raise DamagedFile(f"not a converted data set's stats (missing or bad: "
                              f"{', '.join(missing) or 'num_labels, splits'})", path=path, advice=advice)
        freq_path = os.path.join(directory, LABEL_FREQ_FILE)
        if os.path.exists(freq_path):
            label_freq = read_npy(freq_path, advice).astype(np.int64, copy=False)
        elif "label_freq" in stats:  # converted before label_freq.npy existed: the counts are in stats.json
            label_freq = np.asarray(stats["label_freq"], np.int64)
        else:
            raise DamagedFile(f"{LABEL_FREQ_FILE} is missing", path=freq_path, advice=advice)
        if label_freq.shape != (stats["num_labels"],):
            raise DamagedFile(f"label frequencies have shape {label_freq.shape}, expected ({stats['num_labels']},)",
                              path=freq_path, advice=advice)
        return cls(directory, stats["num_features"], stats["num_labels"], stats["splits"], label_freq)

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

    def fingerprint(self) -> str:
        """sha256 of the card files (`CARD_FILES`): changes whenever the data is converted differently."""
        digest = hashlib.sha256()
        for name in CARD_FILES:
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                digest.update(name.encode() + b"\0")
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
