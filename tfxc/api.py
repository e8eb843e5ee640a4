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

import scipy.sparse

from tfxc.data.in_memory import CONVERTED_DIR, SOURCES_DIR, source_files, write_if_changed
from tfxc.compat.deprecations import renamed
from tfxc.predictors import Predictions, Predictor, load

__all__ = ["Predictions", "Predictor", "fit", "load", "load_xc"]


def __getattr__(name):
    """Names of earlier releases (`Classifier`), with a warning: `tfxc.compat.deprecations.RENAMED`."""
    return renamed(__name__, name, globals())

# Where `fit` without a model_dir trains (under the working directory), a new directory for each call.
DEFAULT_MODELS_DIR = "tfxc_models"


def load_xc(path: str, index_base: int = 0) -> tuple[scipy.sparse.csr_matrix, scipy.sparse.csr_matrix]:
    """Reads an Extreme Classification Repository BoW file into (X float32 CSR [n, D], Y float32 CSR [n, L])."""
    from tfxc.data.csr import rows_to_csr
    from tfxc.data.readers import XcBowReader

    reader = XcBowReader(path, index_base=index_base)
    rows = list(reader)
    return rows_to_csr(rows, reader.num_features, reader.num_labels)


def fit(X, Y, *old_order, config=None, model_dir: str | None = None, X_val=None, Y_val=None, X_test=None,
        Y_test=None, label_names=None, overrides=(), recipe: str | None = None, plan_only: bool = False,
        verbose: int = 1, preset: str | None = None):
    """Trains a model on in-memory data and returns it, ready to predict.

    `fit(X, Y)` trains the recipe (`tfxc.recipe`, as `python -m tfxc.train --train` does) into a new
    directory, whose path it prints. Every kind of run `tfxc.train` trains, fit trains too (`tfxc.runs`): a
    head of parts (trained together), XR-Transformer's levels, the recipe's best point's members, and k-fold's folds
    (`overrides=["data.val_fold=*/5"]`). The order of earlier releases, `fit(config, X, Y, model_dir=...)`, is
    still read, with a `DeprecationWarning` (`tfxc.compat.deprecations`): a config (a path, a dict or an
    `ExperimentConfig`) is never a feature matrix.

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
      recipe: the recipe's point on the speed–accuracy frontier (`tfxc.recipe.points`): "fast", "default",
        "best" (an ensemble, `tfxc.runs.members`) or "xrt" (text); None keeps the config's own ("recipe" in a
        thin config; the default). Only for the recipe (no config, or a thin one).
      plan_only: convert the data, print the memory plan (`tfxc.training.memory_plan`) and return it, untrained.
      verbose: as Keras' `fit`: 1 (the default) reports on stderr what `python -m tfxc.train` logs (the
        conversion, the recipe's choice, a progress line with the step and ETA, each validation, an early
        stop, the final metrics); 2 adds the debugging details; 0 reports only warnings and errors. Only
        for this call, and only where the program has not configured logging itself (a handler on the
        root or "tfxc" logger then receives the same records): no global logging setup is changed.
      preset: the old spelling of `recipe`, still accepted with a note (`tfxc.compat.spellings`).

    Labels (`Y`, `Y_val`, `Y_test`) are any form `tfxc.data.csr.labels_csr` reads: a SciPy sparse matrix, a
    dense 2-D NumPy indicator matrix of 0/1 cells (scikit-learn's `MultiLabelBinarizer`; its column count is
    the number of labels), a 1-D array or list of class ids (scikit-learn's `y`, one label a row), or a list
    of label lists (ids, or names). A train split none of whose rows has a label is refused before training.

    Returns:
      A `Predictor` on `model_dir` (with `plan_only`, the `MemoryPlan`).
    """
    from tfxc.compat.spellings import point_of

    with _reporting(verbose):
        # An old spelling (`preset=`), still accepted: tfxc.compat.spellings.
        recipe = point_of(recipe, preset, "fit(preset={!r})", "fit(recipe={!r})")
        return _fit(X, Y, old_order, config=config, model_dir=model_dir, X_val=X_val, Y_val=Y_val, X_test=X_test,
                    Y_test=Y_test, label_names=label_names, overrides=overrides, recipe=recipe,
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


def _fit(X, Y, old_order, *, config, model_dir, X_val, Y_val, X_test, Y_test, label_names, overrides, recipe,
         plan_only, verbose):
    from tfxc import resolve

    config, X, Y = _in_order(config, X, Y, old_order)
    splits = {"train": (X, Y), "val": (X_val, Y_val), "test": (X_test, Y_test)}
    new = model_dir is None
    model_dir = _new_model_dir() if new else model_dir
    try:
        sources = os.path.join(model_dir, SOURCES_DIR)
        data, files = source_files({k: v for k, v in splits.items() if v[0] is not None}, label_names, sources)
        source = resolve.read_given(config, overrides, data={**data, "dir": os.path.join(model_dir, CONVERTED_DIR),
                                                             "source_dir": ""}, recipe=recipe)
    except BaseException:
        if new:
            os.rmdir(model_dir)  # still empty: the arrays or the config were refused before anything was written
        raise

    def write_sources():  # under the lock: a second fit into a directory in use changes nothing
        for path, content in files.items():
            write_if_changed(path, content)

    if plan_only:
        from tfxc.launch import start_run
        from tfxc.training.memory_plan import show_plan

        run = start_run(source, model_dir, what="a tfxc.fit run", before_conversion=write_sources)
        try:
            return show_plan(run.config, run.info)
        finally:
            if run.lock is not None:
                run.lock.release()
    from tfxc.runs import Options, plan_for

    def announce(reasons, kept):  # the recipe chose the config: say what and why, with each point's estimated time
        if reasons and verbose:
            print("tfxc.fit: the recipe (tfxc.recipe):\n" + "\n".join(f"  {line}" for line in reasons))

    plan_for(source).train(model_dir, Options(what="a tfxc.fit run", before_conversion=write_sources,
                                              announce=announce, show=print if verbose else lambda line: None))
    return load(model_dir)


# === fit's arguments and sources ===
def _in_order(config, X, Y, old_order: tuple):
    """(config, X, Y) from `fit(X, Y, config=...)`, or from the order of earlier releases (`tfxc.compat`)."""
    from tfxc.compat.deprecations import fit_arguments
    from tfxc.config import ExperimentConfig

    return fit_arguments(config, X, Y, old_order,  # the warning points at the call of fit: fit -> _fit -> here
                         lambda first: isinstance(first, (str, os.PathLike, dict, ExperimentConfig)), stacklevel=3)


def _new_model_dir() -> str:
    """A new directory for a `fit` given none, printed (one line) so that the model can be loaded again."""
    import time

    from tfxc.utils.io import new_directory

    path = new_directory(DEFAULT_MODELS_DIR, time.strftime("fit-%Y%m%d-%H%M%S", time.gmtime()))
    print(f"tfxc.fit: training into {path} (tfxc.load({path!r}) reads it again)")
    return path

