"""K-fold training into one directory: `data.val_fold: "*/K"`, the K fold models as the parts of one ensemble.

  python -m tfxc.train --config CONFIG --set 'data.val_fold=*/5' --model-dir DIR      # one after another
  bash train.sh CONFIG 2 DIR --set 'data.val_fold=*/5'                                # 2 at a time

Fold i is CONFIG with `data.val_fold=i/K` (`tfxc.data.folds`: one conversion serves them all), trained into

  DIR/members/member-NNN/   fold NNN's model, selected on its own validation fold
  DIR/ensemble.json         written last: {"preset": "folds", "folds", "method": "log_average", "members", ...}
  DIR/out_of_fold.jsonl     each train point's top labels by the fold that held it out (`tfxc.eval.out_of_fold`)
  DIR/metrics.json          the ensemble's test metrics and the folds' training time

The folds combine as text_classifier's k-fold does, by their averaged log-probabilities (`log_average`: for
softmax models whose lists hold every label, the ranking of the averaged logits); `tfxc.evaluate`,
`tfxc.export` and `tfxc.load` then read DIR as one model, and `loss.teachers` may name the members to distil
them into one student. Like the `best` preset (`tfxc.members`), the folds are parts: `--num-parts` is K,
`--part i` trains fold i, `--link-parts` combines finished folds; a killed run resumes with the same command.
"""

from __future__ import annotations

import os

from tfxc import resolve
from tfxc.errors import ConfigError, TrainingError
from tfxc.model_dir import ModelDir
from tfxc.model_files import METRICS_FILE

FOLDS_PRESET = "folds"
METHOD = "log_average"
OUT_OF_FOLD_FILE = "out_of_fold.jsonl"


def folds_of(config) -> int | None:
    """K when `config` trains every fold (`data.val_fold` "*/K"), else None."""
    from tfxc.data.folds import fold_of

    fold = fold_of(config.data)
    return fold[1] if fold is not None and fold[0] is None else None


def fold_source(source: resolve.ConfigSource, index: int, folds: int) -> resolve.ConfigSource:
    """`source` with fold `index` of `folds` held out."""
    return resolve.member_source(source, source.tree.get("preset", ""), (f"data.val_fold={index}/{folds}",))


def train_folds(source: resolve.ConfigSource, model_dir: str, *, part: int | None = None, link: bool = False,
                final_evaluation: bool = True, trust_imports=False, show=print) -> dict:
    """Trains the K folds of `source` into `model_dir` and combines them (module docstring).

    Args:
      source: a config whose `data.val_fold` is "*/K".
      part: train fold `part` only (`train.sh` runs the folds as parallel parts); nothing is combined.
      link: combine the finished folds only (`--link-parts`).

    Returns:
      The ensemble's test metrics ({} for a part, or without a test split or `final_evaluation`).
    """
    from tfxc.launch import start_run
    from tfxc.training.trainer import Trainer

    folds = folds_of(source.config)
    root = ModelDir(model_dir)
    if part is not None and not 0 <= part < folds:
        raise ConfigError(f"--part {part}: data.val_fold '*/{folds}' has folds 0 to {folds - 1}")
    if os.path.exists(root.config_path):
        raise TrainingError(f"{root.path} holds a single model (config.json); train the folds into another "
                            "--model-dir")
    todo = [] if link else ([part] if part is not None else range(folds))
    for index in todo:
        member = root.member(index)
        run = start_run(fold_source(source, index, folds), member.path, what="a k-fold run")
        show(f"fold {index} of 0..{folds - 1} -> {member.path}")
        Trainer(run.config, member.path, run.info, run.strategy, lock=run.lock, prepared_from=run.prepared_from,
                final_evaluation=False, trust_imports=trust_imports).train()
    if part is not None:
        return {}
    return _combine(root, folds, source.config.trainer.select_metric, final_evaluation, show)


def _combine(root: ModelDir, folds: int, select_metric: str, final_evaluation: bool, show) -> dict:
    """Writes out_of_fold.jsonl, ensemble.json and metrics.json for the `folds` finished members of `root`."""
    from tfxc.ensemble import DEFAULT_LIST_SIZE, run_ensemble
    from tfxc.eval.out_of_fold import write_out_of_fold

    members = [root.member(index) for index in range(folds)]
    for index, member in enumerate(members):
        if not os.path.exists(member.file(METRICS_FILE)):  # written when its training ends
            raise TrainingError(f"fold {index} ({member.path}) has not finished training: train it with --part "
                                f"{index}, or run the same command without --link-parts")
    paths = [member.path for member in members]
    rows = write_out_of_fold(paths, root.file(OUT_OF_FOLD_FILE))
    root.write_ensemble({"preset": FOLDS_PRESET, "folds": folds, "method": METHOD, "list_size": DEFAULT_LIST_SIZE,
                         "members": [os.path.relpath(path, root.path) for path in paths],
                         "select_metric": select_metric, "validation": {}})
    show(f"ensemble: {METHOD} of {folds} folds; out-of-fold predictions of {rows} train points in "
         f"{root.file(OUT_OF_FOLD_FILE)}")
    metrics = {}
    info = members[0].bound_data()
    if final_evaluation and "test" in info.splits:
        metrics = run_ensemble(paths, METHOD, "test", DEFAULT_LIST_SIZE)["ensemble"]
    seconds = [member.metrics().get("train_seconds", 0.0) for member in members]
    root.write_metrics({"split": "test", "train_seconds": round(sum(seconds), 3), "members_train_seconds": seconds,
                        "method": METHOD, **metrics})
    return metrics
