"""A trained model, whatever holds it: `load(path)` gives a `Predictor`.

One interface (`top_k`, `predict`, `evaluate`, `encode`, `export`, `save`, `label_names`, `info`) over every
artifact tfxc writes, with one backend per artifact kind (`tfxc.predictors.backends`), chosen from the kind
recorded when the artifact was written (`tfxc.artifacts.kind_of`), never by looking for files. The user's
rows become the model's inputs in one place (`tfxc.predictors.inputs`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse

from tfxc import artifacts
from tfxc.data.csr import labels_csr
from tfxc.errors import ConfigError, DataError
from tfxc.predictors.backends import EnsembleBackend, ModelDirBackend, SavedModelBackend
from tfxc.predictors.inputs import answered, num_rows, rows_of
from tfxc.predictors.saving import copy_model

# How each artifact kind is read: linked parts are a model directory whose model is assembled from them.
BACKENDS = {artifacts.MODEL_DIR: ModelDirBackend, artifacts.LINKED_PARTS: ModelDirBackend,
            artifacts.ENSEMBLE: EnsembleBackend, artifacts.SAVED_MODEL: SavedModelBackend}


class Predictions(NamedTuple):
    """The k best labels of each row, best first.

    Attributes:
      ids: int64 [n, k] label ids (-1 pads rows with fewer labels: k above the label count, a beam that
        reached fewer, or labels under `predict`'s threshold).
      scores: float32 [n, k].
      labels: the label names, a list of n lists of strings (the names of the ids that are not -1).
    """

    ids: np.ndarray
    scores: np.ndarray
    labels: list

    def to_csr(self, num_labels: int) -> scipy.sparse.csr_matrix:
        """A CSR matrix [n, num_labels] holding each row's top-k scores at their ids (PECOS's output format)."""
        n, k = self.ids.shape
        keep = self.ids >= 0
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(keep.sum(axis=1), out=indptr[1:])
        return scipy.sparse.csr_matrix((self.scores[keep], self.ids[keep], indptr), shape=(n, num_labels))


def load(path: str, *, trust_imports=False, overrides=()) -> "Predictor":
    """The trained artifact at `path` (a model directory, a directory of linked parts, an ensemble, or an
    exported SavedModel) as a `Predictor`.

    All are programs, not only data: load only ones you trust. A model directory's config may list
    `imports`, modules whose code runs when imported; they are imported only with `trust_imports` (True,
    or the module names trusted), or when this process has imported them already, and never from files
    inside the directory. A SavedModel's graph runs whatever TensorFlow ops it holds (file reads and
    writes among them) when it is called. `overrides` are `--set` assignments of prediction settings
    (e.g. "model.head.prediction.beam_size=20"), for the artifacts that are not SavedModels.

    Raises:
      TfxcError: nothing tfxc wrote is at `path` (`tfxc.artifacts.kind_of`), or it is damaged.
    """
    kind = artifacts.kind_of(path)
    return Predictor(BACKENDS[kind["artifact"]](path, trust_imports, tuple(overrides)), kind)


class Predictor:
    """A trained extreme classifier (from `tfxc.fit` or `tfxc.load`).

    Attributes:
      num_features: D, the feature space of the inputs.
      num_labels: L.
      label_names: the L names, id order.
      input_kind: "text" when the encoder reads raw strings, "image" when it reads encoded images, "features"
        when it reads feature rows.
      info: what it is: {"path", "artifact", "run", "format_version", "input_kind", "num_features",
        "num_labels", "head", "top_k"} (`tfxc.artifacts`; None where it has none: a SavedModel has no run,
        an ensemble no single head, only a SavedModel a k of its own).
    """

    def __init__(self, backend, kind: dict | None = None):
        kind = kind or {"format_version": None, "run": None, "artifact": None}
        self._backend = backend
        self.num_features, self.num_labels = backend.num_features, backend.num_labels
        self.label_names = backend.label_names
        self.input_kind = backend.input_kind
        self.info = {"path": getattr(backend, "path", None), **kind, "input_kind": self.input_kind,
                     "num_features": self.num_features, "num_labels": self.num_labels,
                     "head": getattr(backend, "head_name", None), "top_k": getattr(backend, "default_k", None)}

    def predict(self, X, k: int = 10, batch_size: int = 1024, as_csr: bool = False, threshold: float | None = None):
        """The k best labels of every row: `Predictions`, or with `as_csr` a CSR [n, L] of their scores.

        With `threshold`, only the labels scored above it are kept (multi-label prediction; 0.5 for one-vs-all
        sigmoids): the others become id -1 with score -inf, and their names are left out of `labels`. On a softmax
        head, whose scores of a row sum to 1, it warns (`tfxc.eval.classification.SoftmaxThresholdWarning`) how
        many labels a row the threshold can keep.

        An image model answers every row or none, as a served request: images that cannot be used (empty,
        not an image, damaged, over the model's pixel budget) raise one DataError naming each by its 0-based
        row of X and why, and no row is answered.
        """
        from tfxc.eval.classification import warn_threshold_meaning
        from tfxc.utils.numbers import finite_number

        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if threshold is not None:  # NaN would drop every label, silently
            threshold = finite_number(threshold, "threshold")
            warn_threshold_meaning(getattr(self._backend, "head_name", None), threshold)  # a softmax's scores sum to 1
        ids, scores = self.top_k(X, k, batch_size)
        if threshold is not None:
            dropped = ~(scores > threshold)
            ids, scores = np.where(dropped, -1, ids), np.where(dropped, np.float32(-np.inf), scores)
        names = [[self.label_names[i] for i in row if i >= 0] for row in ids.tolist()]
        predictions = Predictions(ids, scores, names)
        return predictions.to_csr(self.num_labels) if as_csr else predictions

    def top_k(self, X, k: int = 10, batch_size: int = 1024, names=None) -> tuple[np.ndarray, np.ndarray]:
        """The k best label ids of every row and their scores, best first: (int64 [n, min(k, L)], float32
        [n, min(k, L)]); -1 pads a row with fewer labels (a beam that reached fewer). X as for `predict`;
        `names(i)` names row i in the error of an image model's refused images (default "X[i]")."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        x = self._inputs(X)
        ids, scores = [], []
        for start in range(0, num_rows(x), batch_size):
            s, i = answered(self._backend.top_k, x, start, batch_size, k, name=names)
            ids.append(i)
            scores.append(s)
        width = min(k, self.num_labels)
        ids = np.concatenate(ids) if ids else np.zeros((0, width), np.int64)
        scores = np.concatenate(scores) if scores else np.zeros((0, width), np.float32)
        return ids, scores

    def evaluate(self, X, Y, ks=(1, 3, 5), classification: bool = False, threshold: float = 0.5) -> dict[str, float]:
        """P@k, nDCG@k, R@k and (with the training label counts) PSP@k/PSnDCG@k, in percent, on any labelled pair.

        With `classification`, also precision, recall and F1 (micro, macro, weighted, samples) and accuracy of
        the predicted label sets (`tfxc.eval.classification`): the top label when every row of Y has one label,
        else the labels of the top max(ks) scored above `threshold`.
        """
        from tfxc.data.info import one_label_per_row
        from tfxc.eval.classification import ClassificationMetrics, predicted_sets, warn_threshold_meaning
        from tfxc.eval.metrics import XmcMetrics
        from tfxc.data.propensity import MIN_POINTS_FOR_PROPENSITIES, propensities
        from tfxc.utils.numbers import finite_number

        threshold = finite_number(threshold, "threshold")  # NaN would predict no label for any row, silently
        labels = labels_csr(Y, num_labels=self.num_labels, names=self.label_names)
        x = self._inputs(X)
        if labels.shape[0] != num_rows(x):
            raise DataError(f"X has {num_rows(x)} rows but Y has {labels.shape[0]}")
        freq, n_train = self._backend.label_freq, self._backend.num_train_points
        multiclass = one_label_per_row(labels.nnz / max(labels.shape[0], 1), int(np.sum(np.diff(labels.indptr) == 0)))
        metrics = XmcMetrics(ks=tuple(ks), multiclass=multiclass,
                             propensities=propensities(freq, n_train) if n_train >= MIN_POINTS_FOR_PROPENSITIES
                             else None)
        kmax = max(ks)
        predictions = self.predict(x, k=kmax)
        ids = predictions.ids
        if ids.shape[1] < kmax:
            ids = np.pad(ids, ((0, 0), (0, kmax - ids.shape[1])), constant_values=-1)
        indptr, indices = labels.indptr.astype(np.int64), labels.indices.astype(np.int64)
        metrics.update(ids, indptr, indices)
        out = metrics.result()
        if classification:
            if not multiclass:  # the labels scored above `threshold`: a softmax's scores sum to 1
                warn_threshold_meaning(getattr(self._backend, "head_name", None), threshold)
            sets = ClassificationMetrics(self.num_labels)
            chosen = predicted_sets(predictions.ids, predictions.scores, threshold=None if multiclass else threshold)
            sets.update(chosen, indptr, indices)
            out.update(sets.result())
        return out

    def encode(self, X, batch_size: int = 256, normalize: bool = False) -> np.ndarray:
        """The encoder's embedding of every row, float32 [n, dim]: not normalised unless `normalize` (as
        PECOS's `XTransformer.encode`), the SavedModel `embed` signature's "raw_embedding". X as for `predict`:
        strings for a model that reads text (or was trained on text), else feature rows. An ensemble embeds
        with its first member, as its SavedModel does."""
        x = self._inputs(X)
        parts = [answered(self._backend.encode, x, start, batch_size)
                 for start in range(0, num_rows(x), batch_size)]
        if not parts:
            raise ValueError("encode needs at least one row")
        out = np.concatenate(parts).astype(np.float32, copy=False)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12) if normalize else out

    @property
    def reads_text_as_features(self) -> bool:
        """The model reads feature rows but was trained on text: strings are featurized with its TF-IDF."""
        return self.input_kind != "text" and self._backend.featurizer() is not None

    def export(self, path: str, top_k: int | None = None, format: str = "saved_model") -> str:
        """Writes a SavedModel (see `tfxc.export`), or with `format="onnx"` the ONNX twin (`tfxc.export.onnx`),
        and returns its path.

        Raises:
          ConfigError: an unknown format, or ONNX without tf2onnx installed.
        """
        from tfxc.export import FORMATS

        if format not in FORMATS:
            raise ConfigError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
        return self._backend.export(path, top_k, format)

    def save(self, path: str) -> str:
        """Writes this model to a new directory `path` that `tfxc.load` reads, and returns `path`.

        A model directory is copied with what loading it needs (the config, the selected weights `best/` or
        else the newest checkpoint alone, the data card with the label names and TF-IDF featurizer, the
        heads' assets, an ensemble's members), without the converted rows, the arrays `fit` wrote, older
        checkpoints or TensorBoard logs; a SavedModel is copied as it is. The directory appears whole or
        not at all (written aside, then renamed).

        Raises:
          TfxcError: `path` exists, or is the model's own directory or inside it.
        """
        copy_model(self._backend.path, path)
        return path

    # === Inputs ===
    def _inputs(self, X):
        """`X` as the rows this model reads (`tfxc.predictors.inputs.rows_of`)."""
        return rows_of(X, self.input_kind, lambda: self._backend.featurizer(), self.num_features)
