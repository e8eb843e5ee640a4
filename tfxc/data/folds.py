"""K-fold training on one conversion: the fold views of a converted directory.

`data.val_fold: "i/K"` trains on fold i of K: the train source's groups whose md5 mod K is i are its
validation split, the others its train split (`tfxc.data.holdout`). The sources are converted once for all
K folds: `data.dir` holds the conversion (its stats.json, the label names, the TF-IDF featurizer fit on the
whole train source) and one complete converted directory per fold,

  DATA_DIR/fold-I-of-K/    train (the other folds), val (fold I), test: shards and card, as any conversion,
                           and val_source_rows.npy (the train source's row number of each val row)

so fold i reads `DATA_DIR/fold-i-of-K` (`converted_dir`) and every fold shares the label space, the features
and the test split. A fold's card names the conversion it belongs to (`fold` in its stats.json), which is how
an ensemble of the folds, or a student distilled from them, knows they are siblings (`DatasetInfo.fold_siblings`).
The rows of a fold's train split are numbered from 0 in source order, as in any conversion.
"""

from __future__ import annotations

import os

__all__ = ["FOLD_KEY", "VAL_SOURCE_ROWS", "converted_dir", "fold_of", "fold_view_name"]

FOLD_KEY = "fold"  # in a fold view's stats.json: {"index": i, "folds": K, "conversion": id of the conversion}
# int64 [val points]: the train source's row number (0-based) of each of a fold view's val rows, in order:
# where the out-of-fold predictions go (`tfxc.eval.out_of_fold`).
VAL_SOURCE_ROWS = "val_source_rows.npy"


def fold_view_name(index: int, folds: int) -> str:
    return f"fold-{index}-of-{folds}"


def fold_of(data_config) -> tuple[int | None, int] | None:
    """(i, K) of `data.val_fold` "i/K", (None, K) of "*/K" (every fold), or None."""
    from tfxc.data.holdout import parse_fold

    return parse_fold(data_config.val_fold) if data_config.val_fold else None


def converted_dir(data_config) -> str:
    """The converted directory a run of `data_config` reads: `data.dir`, or its view of fold i for `val_fold`
    "i/K" ("*/K", every fold: `data.dir`, the conversion itself)."""
    fold = fold_of(data_config)
    return data_config.dir if fold is None or fold[0] is None else os.path.join(data_config.dir,
                                                                                 fold_view_name(*fold))
