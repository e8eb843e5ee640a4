"""Out-of-fold predictions of K fold models (`tfxc.data.folds`): each train point predicted by the model that
did not train on it, the usual input of stacking and of checking a k-fold ensemble on all of train."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from tfxc.data.folds import VAL_SOURCE_ROWS
from tfxc.errors import TfxcError
from tfxc.utils.io import atomic_writer


def write_out_of_fold(model_dirs: list[str], path: str, k: int | None = None, overrides=(), trust_imports=False) -> int:
    """Writes, for every row of the train source, its top-`k` labels (default: max(eval.ks) of each model) by the
    fold model that held it out, as JSON lines in source order: {"row", "fold", "label_ids", "labels",
    "scores"}. Returns the number of rows.

    Raises:
      TfxcError: a model was not trained on a fold view, two models on the same fold, or the folds of
        different conversions (or not all K of them).
    """
    from tfxc.eval.evaluator import Evaluator
    from tfxc.model_dir import ModelDir

    rows: dict[int, dict] = {}
    seen_folds, conversion, folds = {}, None, 0
    for model_dir in model_dirs:
        directory = ModelDir(model_dir)
        trained = directory.restore(directory.load_config(overrides, trust_imports=trust_imports), need_rows=True)
        fold = trained.info.fold
        if fold is None:
            raise TfxcError(f"{model_dir} was not trained on a fold (data.val_fold): it has no out-of-fold rows")
        if conversion not in (None, fold["conversion"]) or fold["index"] in seen_folds:
            raise TfxcError(f"{model_dir}: fold {fold['index']} of {fold['folds']} of another conversion, or given "
                            f"twice (also {seen_folds.get(fold['index'])})")
        conversion, folds, seen_folds[fold["index"]] = fold["conversion"], fold["folds"], model_dir
        source_rows = np.load(os.path.join(trained.info.dir, VAL_SOURCE_ROWS), allow_pickle=False)
        names = trained.info.label_names()
        evaluator = Evaluator(trained.model, trained.info, dataclasses.replace(trained.config.eval, ks=(k or max(trained.config.eval.ks),)),
                              split="val")
        position = 0
        for scores, ids, _labels in evaluator.predictions():
            for score_row, id_row in zip(np.asarray(scores), ids):
                found = np.flatnonzero(id_row[:score_row.size] >= 0)  # ids beyond the label count are padding
                row = int(source_rows[position])
                rows[row] = {"row": row, "fold": fold["index"], "label_ids": id_row[found].tolist(),
                             "labels": [names[i] for i in id_row[found]],
                             "scores": [round(float(v), 6) for v in score_row[found]]}
                position += 1
    missing = sorted(set(range(folds)) - set(seen_folds))
    if missing:
        raise TfxcError(f"out-of-fold predictions need every fold's model; fold(s) {missing} of {folds} are missing")
    with atomic_writer(path) as out:
        for row in sorted(rows):
            out.write(json.dumps(rows[row], ensure_ascii=False) + "\n")
    return len(rows)
