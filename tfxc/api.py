"""The Python API: fit, predict, evaluate, load and export, on in-memory data.

In the conventions of the field (scikit-learn's fit/predict, napkinXC and
omikuji's load, PECOS's CSR matrices):

  import tfxc
  X, Y = tfxc.load_xc("train.txt")                        # SciPy CSR features [n, D] and labels [n, L]
  model = tfxc.fit(X, Y)                                  # the recipe, into a new tfxc_models/fit-<time>/
  model = tfxc.fit(X, Y, config="configs/bibtex.json", model_dir="runs/mine")
  pred = model.predict(X_test, k=5)                       # ids int64 [n, 5], scores float32 [n, 5], label names
  csr = model.predict(X_test, k=5, as_csr=True)            # PECOS-style CSR [n, L] of the top-k scores
  metrics = model.evaluate(X_test, Y_test)                # any labelled pair, no conversion into a data dir
  tfxc.load(model.export("runs/mine-savedmodel"))        # a SavedModel answers the same
  tfxc.load(model.save("models/mine"))                    # a copy of the model directory, for loading elsewhere

Features are a SciPy sparse matrix or a dense 2-D array, or (for models trained
on text) a list of strings: a text encoder (`text_cnn`, `pretrained`, ...)
tokenises them in the graph, a bag-of-words model maps them through the TF-IDF
featurizer fit at conversion; labels a SciPy sparse matrix, a dense 0/1
indicator matrix (NumPy, as `MultiLabelBinarizer` gives), a 1-D array or list
of class ids (one label a row), or a list of label lists (ids, or names for
text). `fit` writes the arrays as PECOS `.npz` (or
JSONL for text) under `model_dir/sources/`, converts them like any data set and
trains with the one training loop, so everything the CLIs guarantee (resume,
the lock, the data binding) holds here too.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import scipy.sparse

from tfxc.data.csr import as_csr, labels_csr
from tfxc.data.files import check_strings
from tfxc.data.in_memory import source_files, write_if_changed
from tfxc.errors import DataError, TfxcError
from tfxc.model_backends import EncodedImages, EnsembleBackend, ModelDirBackend, SavedModelBackend, answered

SOURCES_DIR = "sources"
CONVERTED_DIR = "tfrecords"
# Where `fit` without a model_dir trains (under the working directory), a new directory for each call.
DEFAULT_MODELS_DIR = "tfxc_models"


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


def load_xc(path: str, index_base: int = 0) -> tuple[scipy.sparse.csr_matrix, scipy.sparse.csr_matrix]:
    """Reads an Extreme Classification Repository BoW file into (X float32 CSR [n, D], Y float32 CSR [n, L])."""
    from tfxc.data.csr import rows_to_csr
    from tfxc.data.readers import XcBowReader

    reader = XcBowReader(path, index_base=index_base)
    rows = list(reader)
    return rows_to_csr(rows, reader.num_features, reader.num_labels)


def fit(X, Y, *old_order, config=None, model_dir: str | None = None, X_val=None, Y_val=None, X_test=None,
        Y_test=None, label_names=None, overrides=(), preset: str | None = None, plan_only: bool = False,
        verbose: int = 1):
    """Trains a model on in-memory data and returns it, ready to predict.

    `fit(X, Y)` trains the recipe (`tfxc.recipe`, as `python -m tfxc.train --train` does) into a new
    directory, whose path it prints. The order of earlier releases, `fit(config, X, Y, model_dir=...)`, is
    still read: a config (a path, a dict or an `ExperimentConfig`) is never a feature matrix.

    Args:
      X, Y: the training features and labels (see the module docstring).
      config: a config file path, a dict in the config's JSON layout, or an `ExperimentConfig`; None (the
        default) is the recipe for the data (`{"recipe": true}`). Its `data` section keeps its options
        (shards, text features, label names); the sources become the arrays given.
      model_dir: where the model (and its converted data) go; an existing model there is resumed. None (the
        default) makes a new directory `tfxc_models/fit-<UTC time>` under the working directory (never one
        that exists) and prints its path, for `tfxc.load`.
      X_val, Y_val: an optional validation split (periodic evaluation uses it).
      X_test, Y_test: an optional test split, evaluated at the end of training.
      label_names: names of the label ids (matrices only), instead of `data.label_names`.
      overrides: `--set`-style assignments, e.g. ["trainer.epochs=5"].
      preset: the recipe's point on the speed–accuracy frontier (`tfxc.presets`): "fast", "default" or
        "best" (an ensemble, `tfxc.members`); None keeps the config's own ("preset" in a thin config; the
        default). Only for the recipe (no config, or a thin one).
      plan_only: convert the data, print the memory plan (`tfxc.training.memory_plan`) and return it, untrained.
      verbose: as Keras' `fit`: 1 (the default) reports on stderr what `python -m tfxc.train` logs (the
        conversion, the recipe's choice, a progress line with the step and ETA, each validation, an early
        stop, the final metrics); 2 adds the debugging details; 0 reports only warnings and errors. Only
        for this call, and only where the program has not configured logging itself (a handler on the
        root or "tfxc" logger then receives the same records): no global logging setup is changed.

    Labels (`Y`, `Y_val`, `Y_test`) are any form `tfxc.data.csr.labels_csr` reads: a SciPy sparse matrix, a
    dense 2-D NumPy indicator matrix of 0/1 cells (scikit-learn's `MultiLabelBinarizer`; its column count is
    the number of labels), a 1-D array or list of class ids (scikit-learn's `y`, one label a row), or a list
    of label lists (ids, or names). A train split none of whose rows has a label is refused before training.

    Returns:
      A `Classifier` on `model_dir` (with `plan_only`, the `MemoryPlan`).
    """
    with _reporting(verbose):
        return _fit(X, Y, old_order, config=config, model_dir=model_dir, X_val=X_val, Y_val=Y_val, X_test=X_test,
                    Y_test=Y_test, label_names=label_names, overrides=overrides, preset=preset,
                    plan_only=plan_only, verbose=verbose)


def _reporting(verbose: int):
    """For one `fit`: the "tfxc" loggers' records at the level `verbose` asks, on stderr in the CLIs' format,
    through a handler attached for the call (none when the program has its own on the root or "tfxc")."""
    import contextlib
    import logging
    import sys

    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")

    @contextlib.contextmanager
    def scope():
        logger = logging.getLogger("tfxc")
        level = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}[verbose]
        handler = None
        if not logger.hasHandlers():
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
            logger.addHandler(handler)
        before = logger.level
        logger.setLevel(level)
        try:
            yield
        finally:
            logger.setLevel(before)
            if handler is not None:
                logger.removeHandler(handler)

    return scope()


def _fit(X, Y, old_order, *, config, model_dir, X_val, Y_val, X_test, Y_test, label_names, overrides, preset,
         plan_only, verbose):
    from tfxc import resolve
    from tfxc.launch import start_run
    from tfxc.training.trainer import Trainer

    config, X, Y = _in_order(config, X, Y, old_order)
    splits = {"train": (X, Y), "val": (X_val, Y_val), "test": (X_test, Y_test)}
    new = model_dir is None
    model_dir = _new_model_dir() if new else model_dir
    try:
        sources = os.path.join(model_dir, SOURCES_DIR)
        data, files = source_files({k: v for k, v in splits.items() if v[0] is not None}, label_names, sources)
        source = resolve.read_given(config, overrides, data={**data, "dir": os.path.join(model_dir, CONVERTED_DIR),
                                                             "source_dir": ""}, preset=preset)
    except BaseException:
        if new:
            os.rmdir(model_dir)  # still empty: the arrays or the config were refused before anything was written
        raise

    def write_sources():  # under the lock: a second fit into a directory in use changes nothing
        for path, content in files.items():
            write_if_changed(path, content)

    if source.config.preset == "best" and not plan_only:  # an ensemble of the default config's members
        from tfxc.members import train_ensemble

        train_ensemble(source, model_dir, what="a tfxc.fit run", before_conversion=write_sources)
        return load(model_dir)
    run = start_run(source, model_dir, what="a tfxc.fit run", before_conversion=write_sources)
    if plan_only:
        from tfxc.training.memory_plan import show_plan

        try:
            return show_plan(run.config, run.info)
        finally:
            if run.lock is not None:
                run.lock.release()
    if run.reasons and verbose:  # the recipe chose the config: say what and why, with each preset's estimated time
        print("tfxc.fit: the recipe (tfxc.recipe):\n" + "\n".join(f"  {line}" for line in run.reasons))
    Trainer(run.config, model_dir, run.info, run.strategy, lock=run.lock, prepared_from=run.prepared_from).train()
    return load(model_dir)


def load(path: str, *, trust_imports=False) -> "Classifier":
    """A trained model directory or an exported SavedModel, as a `Classifier`.

    Both are programs, not only data: load only ones you trust. A model directory's config may list
    `imports`, modules whose code runs when imported; they are imported only with `trust_imports` (True,
    or the module names trusted), or when this process has imported them already, and never from files
    inside the directory. A SavedModel's graph runs whatever TensorFlow ops it holds (file reads and
    writes among them) when it is called.
    """
    from tfxc.export.served import GRAPH_FILE, is_saved_model

    from tfxc.model_dir import ModelDir

    if is_saved_model(path):
        return Classifier(SavedModelBackend(path))
    if ModelDir(path).ensemble() is not None:
        return Classifier(EnsembleBackend(path, trust_imports))
    if os.path.exists(os.path.join(path, "config.json")):
        return Classifier(ModelDirBackend(path, trust_imports))
    raise TfxcError(f"{path}: neither a tfxc model directory (config.json) nor a SavedModel ({GRAPH_FILE})")


class Classifier:
    """A trained extreme classifier (from `fit` or `load`).

    Attributes:
      num_features: D, the feature space of the inputs.
      num_labels: L.
      label_names: the L names, id order.
      input_kind: "text" when the encoder reads raw strings, "image" when it reads encoded images, "features"
        when it reads feature rows.
    """

    def __init__(self, backend):
        self._backend = backend
        self.num_features, self.num_labels = backend.num_features, backend.num_labels
        self.label_names = backend.label_names
        self.input_kind = backend.input_kind

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
        x = self._inputs(X)
        ids, scores = [], []
        for start in range(0, _num_rows(x), batch_size):
            s, i = answered(self._backend.top_k, x, start, batch_size, k)
            ids.append(i)
            scores.append(s)
        width = min(k, self.num_labels)
        ids = np.concatenate(ids) if ids else np.zeros((0, width), np.int64)
        scores = np.concatenate(scores) if scores else np.zeros((0, width), np.float32)
        if threshold is not None:
            dropped = ~(scores > threshold)
            ids, scores = np.where(dropped, -1, ids), np.where(dropped, np.float32(-np.inf), scores)
        names = [[self.label_names[i] for i in row if i >= 0] for row in ids.tolist()]
        predictions = Predictions(ids, scores, names)
        return predictions.to_csr(self.num_labels) if as_csr else predictions

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
        if labels.shape[0] != _num_rows(x):
            raise DataError(f"X has {_num_rows(x)} rows but Y has {labels.shape[0]}")
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
                 for start in range(0, _num_rows(x), batch_size)]
        if not parts:
            raise ValueError("encode needs at least one row")
        out = np.concatenate(parts).astype(np.float32, copy=False)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12) if normalize else out

    @property
    def reads_text_as_features(self) -> bool:
        """The model reads feature rows but was trained on text: strings are featurized with its TF-IDF."""
        return self.input_kind != "text" and self._backend.featurizer() is not None

    def export(self, path: str, top_k: int | None = None) -> str:
        """Writes a SavedModel (see `tfxc.export`) and returns its path."""
        return self._backend.export(path, top_k)

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
        _copy_model(self._backend.path, path)
        return path

    # === Inputs ===
    def _inputs(self, X) -> scipy.sparse.csr_matrix | list[str]:
        """CSR feature rows, or the list of strings itself for a model that tokenises text in the graph, or
        `EncodedImages` for an image model (X: encoded images as bytes, or paths of image files)."""
        if self.input_kind == "image":
            return EncodedImages.of(X)
        is_text = isinstance(X, (list, tuple)) and all(isinstance(t, str) for t in X)
        if self.input_kind == "text":
            if not is_text:
                raise TfxcError("this model reads raw text (its encoder tokenises strings); give a list of "
                                "strings instead of a feature matrix")
            check_strings(X, "X")
            return list(X)
        if is_text:
            check_strings(X, "X")
            featurizer = self._backend.featurizer()
            if featurizer is None:
                raise TfxcError("this model was not trained on text; give a feature matrix instead")
            rows = [featurizer.transform(text) for text in X]
            indptr = np.cumsum([0] + [r[0].size for r in rows])
            indices = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int64)
            values = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, np.float32)
            return scipy.sparse.csr_matrix((values, indices, indptr), shape=(len(rows), self.num_features))
        x = as_csr(X)
        if x.shape[1] > self.num_features and x.nnz and x.indices.max() >= self.num_features:
            raise DataError(f"X has feature id {int(x.indices.max())} but the model knows {self.num_features} "
                            "features")
        return x


def _copy_model(source: str, path: str) -> None:
    """Copies the model directory (or SavedModel) `source` to the new directory `path` (see `Classifier.save`)."""
    import shutil
    import tempfile

    from tfxc.model_files import CHECKPOINT_DIR, LOCK_FILE, TENSORBOARD_DIR
    from tfxc.utils import checkpoint_state

    real, target = os.path.realpath(source), os.path.realpath(path)
    if target == real or target.startswith(real.rstrip(os.sep) + os.sep):
        raise TfxcError(f"cannot save the model into {path}: it is (inside) the model's own directory {source}; "
                        "choose a path outside it")
    if os.path.lexists(path):
        raise TfxcError(f"cannot save the model into {path}: it exists; choose a new path")
    left_out = {LOCK_FILE, TENSORBOARD_DIR, SOURCES_DIR, CONVERTED_DIR}

    def ignore(directory: str, names: list[str]) -> set[str]:
        if os.path.basename(directory) != CHECKPOINT_DIR:
            return {name for name in names if name in left_out} if os.path.isfile(
                os.path.join(directory, "config.json")) else set()
        newest = checkpoint_state.checkpoints(directory)[:1]
        keep = {os.path.basename(p) for p in newest}
        return {name for name in names if name.split(".", 1)[0] not in keep}

    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(path))}.saving-", dir=parent)
    try:
        copy = os.path.join(tmp, "model")
        shutil.copytree(source, copy, ignore=ignore)
        for directory, _, names in os.walk(copy):  # each kept checkpoint's state file names it alone
            if os.path.basename(directory) == CHECKPOINT_DIR:
                kept = sorted({n.split(".", 1)[0] for n in names if n.endswith(".index")})
                state = "".join(f'model_checkpoint_path: "{k}"\nall_model_checkpoint_paths: "{k}"\n'
                                for k in kept[:1])
                with open(os.path.join(directory, checkpoint_state.STATE_FILE), "w") as f:
                    f.write(state)
        os.rename(copy, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _num_rows(x) -> int:
    return len(x) if isinstance(x, list) else x.shape[0]


# === fit's arguments and sources ===
def _in_order(config, X, Y, old_order: tuple):
    """(config, X, Y) from `fit(X, Y, config=...)`, or from the order of earlier releases `fit(config, X, Y)`:
    told apart by the first argument, which is then a config (a path, a dict, an `ExperimentConfig`)."""
    from tfxc.config import ExperimentConfig

    if not old_order:
        return config, X, Y
    if len(old_order) == 1 and config is None and isinstance(X, (str, os.PathLike, dict, ExperimentConfig)):
        return X, Y, old_order[0]
    raise TypeError("fit takes the features and labels as its positional arguments, e.g. "
                    "fit(X, Y, config='configs/x.json', model_dir='runs/x'); the rest by keyword")


def _new_model_dir() -> str:
    """A new directory for a `fit` given none, printed (one line) so that the model can be loaded again."""
    import time

    from tfxc.utils.io import new_directory

    path = new_directory(DEFAULT_MODELS_DIR, time.strftime("fit-%Y%m%d-%H%M%S", time.gmtime()))
    print(f"tfxc.fit: training into {path} (tfxc.load({path!r}) reads it again)")
    return path

