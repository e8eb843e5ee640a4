"""Reading an exported SavedModel back: `ServedModel`, and the names of the files the writer puts in it.

An export (`tfxc.export.saved_model.export_saved_model`) is a plain SavedModel plus tfxc's own
assets in `assets.extra/tfxc/`, which TF Serving ignores and tfxc's readers need:

  config.json      the resolved training config
  export.json      {"top_k", "input" ("features" | "text"), "num_features", "num_labels", "num_train_points",
                   "index" (the label index: `tfxc.export.index_choice.IndexChoice.record`)}
  labels.txt       one label name per line, id order
  label_freq.npy   the train label counts, int64 [num_labels] (PSP@k's propensities derive from them)
  featurizer.json  the TF-IDF featurizer fit at conversion (models trained on text through a bag of words)

export.json carries its format version (`tfxc.compat.EXPORT`) and is read in today's layout; an export of
format 0 may lack labels.txt or label_freq.npy and gets the stand-ins of `tfxc.compat.stand_ins` (ids as
names, zero counts), one of today's format a `DataError` naming the missing file. A SavedModel may come from someone else or be damaged in a copy: every read gives
the value or one `TfxcError` naming the file, never a traceback.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from tfxc.compat import EXPORT, stand_ins, upgrade, version_of
from tfxc.errors import DataError, TfxcError
from tfxc.utils.io import recover_directory
from tfxc.utils.json_files import read_json_object, required

GRAPH_FILE = "saved_model.pb"
ASSETS_DIR = "tfxc"
ASSETS_PATH = os.path.join("assets.extra", ASSETS_DIR)  # relative to the SavedModel directory
CONFIG_ASSET = "config.json"
EXPORT_ASSET = "export.json"
LABELS_ASSET = "labels.txt"
LABEL_FREQ_ASSET = "label_freq.npy"
FEATURIZER_ASSET = "featurizer.json"

# export.json's keys a reader relies on, with their types.
_EXPORT_KEYS = {"top_k": int, "num_features": int, "num_labels": int, "num_train_points": int, "index": dict,
                "input": str}


def is_saved_model(path: str) -> bool:
    """Whether `path` is a SavedModel directory (holds the graph file), exported by tfxc or not."""
    return os.path.exists(os.path.join(path, GRAPH_FILE))


def extra_asset(saved_model_dir: str, name: str) -> str | None:
    """The path of tfxc's asset `name` (one of the `*_ASSET` names) in the export, None if it has none."""
    path = os.path.join(saved_model_dir, ASSETS_PATH, name)
    return path if os.path.exists(path) else None


class ServedModel:
    """An exported tfxc SavedModel, as `tfxc.predict` and `tfxc.load` read it.

    Making one reads and checks export.json only; the other assets and the graph are read on first
    use (loading the graph takes most of a second and needs TensorFlow), in the order the caller asks.

    Attributes:
      path: the SavedModel directory.
      top_k: int >= 1, the k of the `serving_default` signature.
      input_kind: "text" when the signatures take raw strings (`text` string [B]), "image" when they take
        encoded images (`image` string [B]), "features" when they take CSR feature rows (`feat_idx` int64 [nnz], `feat_val` float32 [nnz], `row_splits`
        int64 [B+1]); see `tfxc.export.saved_model` for the signatures.
      num_features: int >= 1, D, the feature ids a row may hold (0 for image models).
      num_labels: int >= 1, L.
      num_train_points: int, the training rows (0 for exports of format 0 that did not record it).
      index: dict, the label index export.json records ({"mode", "used", "beam", "recall@5", ...}; {} for
        exports of format 0 that did not record it).
      format_version: int, the format export.json was written at (`tfxc.compat.EXPORT`).

    Raises (on construction):
      TfxcError: no such directory, or not a tfxc SavedModel (no export.json).
      DataError: export.json is unreadable, not JSON, or lacks a field or has a wrong one.
    """

    def __init__(self, path: str):
        self.path = path
        info = self._read_export_info()
        self.top_k, self.num_features, self.num_labels = info["top_k"], info["num_features"], info["num_labels"]
        self.input_kind, self.num_train_points, self.index = info["input"], info["num_train_points"], info["index"]
        self._loaded = None

    def _read_export_info(self) -> dict:
        """export.json in today's layout (`tfxc.compat.EXPORT`), its keys checked (`_EXPORT_KEYS`)."""
        if not os.path.isdir(self.path):
            # An export killed while it replaced this one left it aside: put it back, as the next export would.
            with contextlib.suppress(OSError):
                recover_directory(self.path)
        if not os.path.isdir(self.path):
            raise TfxcError(f"{self.path}: no SavedModel directory")
        path = self.asset(EXPORT_ASSET)
        if path is None:
            raise TfxcError(f"{self.path}: not a tfxc SavedModel (no {os.path.join(ASSETS_PATH, EXPORT_ASSET)})")
        info = read_json_object(path, "the export's description")
        self.format_version = version_of(EXPORT, info, path)
        info = upgrade(EXPORT, info, path)
        for key, kind in _EXPORT_KEYS.items():
            required(info, key, path, kind)
            # Images have no feature ids; an export of format 0 may not have recorded its training rows.
            least = 0 if key == "num_train_points" or (key == "num_features" and info["input"] == "image") else 1
            if kind is int and info[key] < least:
                raise DataError(f"damaged export description: {key} is {info[key]!r}, expected an integer >= "
                                f"{least}; export the model again", path=path)
        return info

    @property
    def reads_text(self) -> bool:
        """Whether the model tokenises raw text inside the graph (its signatures take `text`)."""
        return self.input_kind == "text"

    def asset(self, name: str) -> str | None:
        """The path of tfxc's asset `name` in this export, None if it has none."""
        return extra_asset(self.path, name)

    def _missing(self, name: str) -> str:
        return os.path.join(self.path, ASSETS_PATH, name)

    def label_names(self) -> list[str]:
        """The `num_labels` label names of labels.txt, id order (the ids as names for exports of format 0 without it).

        Raises:
          DataError: the file is unreadable, not UTF-8, has fewer than `num_labels` lines, or is missing from an
            export of today's format.
        """
        path = self.asset(LABELS_ASSET)
        if path is None:
            return stand_ins.export_label_names(self.format_version, self.num_labels, self._missing(LABELS_ASSET))
        try:
            with open(path, encoding="utf-8") as f:
                names = f.read().split("\n")[:self.num_labels]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read the label names ({e}); export the model again", path=path) from None
        if len(names) < self.num_labels:
            raise DataError(f"has {len(names)} label names, the model {self.num_labels} (cut short?); export the "
                            "model again", path=path)
        return names

    def label_freq(self) -> np.ndarray:
        """The train label counts of label_freq.npy, int64 [num_labels] (zeros for exports of format 0 without it).

        Raises:
          DataError: the file is unreadable, cut short, of another shape, or missing from an export of today's
            format.
        """
        path = self.asset(LABEL_FREQ_ASSET)
        if path is None:
            return stand_ins.export_label_freq(self.format_version, self.num_labels,
                                               self._missing(LABEL_FREQ_ASSET))
        try:
            freq = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise DataError(f"cannot read the label counts ({e}); export the model again", path=path) from None
        if freq.shape != (self.num_labels,):
            raise DataError(f"holds {freq.shape} label counts, the model has {self.num_labels} labels; export the "
                            "model again", path=path)
        return freq

    def featurizer(self):
        """The `TfidfFeaturizer` that turns a text into this model's feature row, None for a model not trained on
        text through one (feature rows only, or a text encoder that tokenises in the graph).

        Raises:
          DataError: featurizer.json is unreadable or not a featurizer.
        """
        from tfxc.data.text_features import TfidfFeaturizer

        path = self.asset(FEATURIZER_ASSET)
        return TfidfFeaturizer.load(path) if path else None

    def load(self):
        """The SavedModel as `tf.saved_model.load` returns it (loaded once, then kept).

        Raises:
          DataError: naming the file that cannot be read (graph, fingerprint or variables).
        """
        if self._loaded is None:
            from google.protobuf.message import DecodeError

            import tensorflow_text  # noqa: F401  (registers TF-Text ops for text-input models)

            from tfxc._tf import tf

            try:
                self._loaded = tf.saved_model.load(self.path)
            except (OSError, IndexError, ValueError, RuntimeError, DecodeError, tf.errors.OpError) as e:
                detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise DataError(f"cannot load the SavedModel, it is damaged or incomplete ({detail}); export the "
                                "model again", path=_damaged_file(self.path, e)) from None
        return self._loaded

    def signature(self, name: str):
        """The concrete function of signature `name` ("serving_default", "top_k", "embed", "tokenize" for text)."""
        signatures = self.load().signatures
        if name not in signatures:
            raise TfxcError(f"{self.path}: has no '{name}' signature (it has: {', '.join(sorted(signatures))})")
        return signatures[name]


def _damaged_file(saved_model_dir: str, error: BaseException) -> str:
    """The file of the SavedModel a load error points at: the graph, the fingerprint or the variables."""
    text = str(error)
    for name in ("fingerprint.pb", GRAPH_FILE):
        if name in text:
            return os.path.join(saved_model_dir, name)
    variables = os.path.join(saved_model_dir, "variables")
    # TF's checkpoint reader: IndexError "Read less bytes than requested" for a cut data shard, an OpError
    # ("not an sstable", "truncated block") for a damaged index.
    if isinstance(error, IndexError) or "data-" in text:
        shards = sorted(n for n in os.listdir(variables) if ".data-" in n) if os.path.isdir(variables) else []
        return os.path.join(variables, shards[0] if len(shards) == 1 else "variables.data-*")
    return os.path.join(variables, "variables.index")

