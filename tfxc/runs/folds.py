"""K-fold training into one directory: `data.val_fold: "*/K"`, the K fold models as the parts of one ensemble.

  python -m tfxc.train --config CONFIG --set 'data.val_fold=*/5' --model-dir DIR      # one after another
  bash train.sh CONFIG 2 DIR --set 'data.val_fold=*/5'                                # 2 at a time

Fold i is CONFIG with `data.val_fold=i/K` (`tfxc.data.folds`: one conversion serves them all), trained into

  DIR/members/member-NNN/   fold NNN's model, selected on its own validation fold
  DIR/ensemble.json         written last: {"run": "folds", "folds", "method": "log_average", "members", ...}
  DIR/out_of_fold.jsonl     each train point's top labels by the fold that held it out (`tfxc.eval.out_of_fold`)
  DIR/metrics.json          the ensemble's test metrics and the folds' training time

The folds combine as text_classifier's k-fold does, by their averaged log-probabilities (`log_average`: for
softmax models whose lists hold every label, the ranking of the averaged logits); `tfxc.evaluate`,
`tfxc.export` and `tfxc.load` then read DIR as one model, and `loss.teachers` may name the members to distil
them into one student. Like the recipe's `best` point (`tfxc.runs.members`), the folds are parts: `--num-parts` is K,
`--part i` trains fold i, `--link-parts` combines finished folds; a killed run resumes with the same command.
"""

from __future__ import annotations

import os

from tfxc import artifacts, resolve
from tfxc.errors import ConfigError, TrainingError
from tfxc.model_dir import ModelDir
from tfxc.runs.combine import finished_members, write_ensemble
from tfxc.runs.plan import Options, Outcome, RunPlan

METHOD = "log_average"
OUT_OF_FOLD_FILE = "out_of_fold.jsonl"


def folds_of(config) -> int | None:
    """K when `config` trains every fold (`data.val_fold` "*/K"), else None."""
    from tfxc.data.folds import fold_of

    fold = fold_of(config.data)
    return fold[1] if fold is not None and fold[0] is None else None


def fold_source(source: resolve.ConfigSource, index: int, folds: int) -> resolve.ConfigSource:
    """`source` with fold `index` of `folds` held out."""
    return resolve.member_source(source, None, (f"data.val_fold={index}/{folds}",))


class Folds(RunPlan):
    """The K folds of a config whose `data.val_fold` is "*/K" (see the module docstring)."""

    kind = artifacts.FOLDS
    part_noun = "fold"

    def __init__(self, source, folds: int):
        super().__init__(source)
        self.folds = folds

    def count(self) -> int:
        return self.folds

    def describe(self) -> str:
        return f"data.val_fold '*/{self.folds}'"

    def train(self, model_dir: str, options: Options) -> Outcome:
        """Trains the folds into `model_dir` (`options.part`: one) and combines them (`options.link`: only
        that); returns the ensemble's test metrics."""
        from tfxc.launch import start_run
        from tfxc.training.trainer import Trainer

        root = ModelDir(model_dir)
        self.check_part(options.part)
        if options.merge:
            raise ConfigError("--merge-parts: the folds stay separate models; --link-parts combines them")
        if os.path.exists(root.config_path):
            raise TrainingError(f"{root.path} holds a single model (config.json); train the folds into another "
                                "--model-dir")
        todo = [] if options.link else ([options.part] if options.part is not None else range(self.folds))
        for n, index in enumerate(todo):
            member = root.member(index)
            run = start_run(fold_source(self.source, index, self.folds), member.path, what="a k-fold run",
                            before_conversion=options.before_conversion if n == 0 else None)
            if n == 0:
                options.announce(run.reasons, member.config_path)
            options.show(f"fold {index} of 0..{self.folds - 1} -> {member.path}")
            if run.lock is not None:
                artifacts.record(member.path, artifacts.SINGLE)
            Trainer(run.config, member.path, run.info, run.strategy, lock=run.lock, prepared_from=run.prepared_from,
                    final_evaluation=False, trust_imports=options.trust_imports).train()
        if options.part is not None:
            return Outcome({})
        return Outcome(self._combine(root, options))

    def _combine(self, root: ModelDir, options: Options) -> dict:
        """Writes out_of_fold.jsonl, then makes `root` the ensemble of its finished folds."""
        from tfxc.ensemble import DEFAULT_LIST_SIZE
        from tfxc.eval.out_of_fold import write_out_of_fold

        members = finished_members(root, self.folds, "fold")
        rows = write_out_of_fold([member.path for member in members], root.file(OUT_OF_FOLD_FILE))
        record = {"folds": self.folds, "method": METHOD, "list_size": DEFAULT_LIST_SIZE,
                  "select_metric": self.source.config.trainer.select_metric, "validation": {}}
        options.show(f"ensemble: {METHOD} of {self.folds} folds; out-of-fold predictions of {rows} train points in "
                     f"{root.file(OUT_OF_FOLD_FILE)}")
        return write_ensemble(root, members, record, options.final_evaluation, self.kind)
