"""The recipe's `best` point: an ensemble's members trained one after another into one directory, then combined.

`tfxc.train --recipe best` (a thin config, or `--train`), `tfxc.fit(..., recipe="best")` and `train.sh` come
here through `tfxc.runs.plan_for`.
The members are the `default` config with the seeds `tfxc.recipe.points.best_members` names; each is an
ordinary model directory, trained with exact resume like any other:

  MODEL_DIR/members/member-NNN/   member NNN (config.json, checkpoints, best/, ...)
  MODEL_DIR/ensemble.json         written last: the members and the combination chosen on validation
                                  ({"run", "method", "list_size", "members", "select_metric", "validation"})
  MODEL_DIR/metrics.json          the ensemble's test metrics, and its training time (the members' loops)

A run killed anywhere resumes with the same command: finished members are kept (their training ends at
once), an unfinished one resumes from its last checkpoint. The members never communicate, so they are
also parts (`tfxc.train --num-parts` is their number): `bash train.sh THIN_CONFIG` trains them as parallel
processes (`--part m`) and then combines them (`--link-parts`). The combination is the method of
`tfxc.recipe.points.BEST_METHODS` with the best validation score of the trainer's `select_metric` (P@5 without
one); without a validation split, the first. `tfxc.evaluate`, `tfxc.export` and `tfxc.load` read the
directory as one model (its artifact.json says "ensemble"; `tfxc.ensemble.run_ensemble`, `tfxc.export.ensemble`).
"""

from __future__ import annotations

import dataclasses
import logging
import os

from tfxc import artifacts, resolve
from tfxc.ensemble import DEFAULT_LIST_SIZE, run_ensemble
from tfxc.errors import ConfigError, TrainingError
from tfxc.model_dir import ModelDir
from tfxc.recipe.points import BEST, BEST_METHODS, best_members
from tfxc.runs.combine import finished_members, write_ensemble
from tfxc.runs.plan import Options, Outcome, RunPlan

log = logging.getLogger("tfxc.train")

DEFAULT_SELECT_METRIC = "P@5"


class Members(RunPlan):
    """The `best` point of a thin config: its members trained one after another (or one, `--part m`) and
    combined (see the module docstring)."""

    kind = artifacts.MEMBERS
    part_noun = "member"

    @staticmethod
    def wanted(source) -> bool:
        """Whether thin config `source` asks for the recipe's best point."""
        return source.config.recipe == BEST

    def count(self) -> int:
        return len(best_members(self.source.config.runtime.seed))

    def describe(self) -> str:
        return "the recipe's best point"

    def train(self, model_dir: str, options: Options) -> Outcome:
        """Trains the members into `model_dir` and combines them; returns the ensemble's test metrics.

        Raises:
          ConfigError: `options.part` is not a member's number, or `--merge-parts` (the members stay models).
          TrainingError: `options.link` finds a member unfinished.
        """
        root = ModelDir(model_dir)
        member_overrides = best_members(self.source.config.runtime.seed)
        self.check_part(options.part)
        if options.merge:
            raise ConfigError("--merge-parts: the best point's members stay separate models; --link-parts combines "
                              "them")
        if options.part is not None:  # one member in its own process: the others may be training beside it
            self._train_member(root, options.part, member_overrides[options.part], options)
            return Outcome({})
        if self.source.config.runtime.strategy == "multi_worker_mirrored" and not options.link:
            # A process builds one multi-worker strategy; each member needs its own, so each runs as its own part.
            raise ConfigError("the best point under multi_worker_mirrored trains one member per run: give --part m "
                              f"(0 to {len(member_overrides) - 1}) on every worker, then --link-parts once")
        lock = root.lock(options.what)  # a second best run into this directory is refused before any member starts
        try:
            if os.path.exists(root.config_path):
                raise TrainingError(f"{root.path} holds a single model (config.json); train the best point into "
                                    "another --model-dir")
            if not options.link:
                for m, overrides in enumerate(member_overrides):
                    self._train_member(root, m, overrides, options if m == 0 else
                                       dataclasses.replace(options, before_conversion=None))
            return Outcome(self._combine(root, len(member_overrides), options))
        finally:
            lock.release()

    def _train_member(self, root: ModelDir, m: int, overrides: tuple, options: Options) -> None:
        """Trains (or resumes, or finds finished) member `m`: the source at the best point (the default config,
        with the best point's reasons) with `overrides`."""
        from tfxc.launch import start_run
        from tfxc.training.trainer import Trainer

        member = root.member(m)
        run = start_run(resolve.member_source(self.source, BEST, overrides), member.path, what=options.what,
                        before_conversion=options.before_conversion)
        if m == 0:
            options.announce(run.reasons, member.config_path)
        options.show(f"member {m} of 0..{self.count() - 1} ({', '.join(overrides)}) -> {member.path}")
        if run.lock is not None:
            artifacts.record(member.path, artifacts.SINGLE)
        Trainer(run.config, member.path, run.info, run.strategy, lock=run.lock, prepared_from=run.prepared_from,
                final_evaluation=False).train()

    def _combine(self, root: ModelDir, count: int, options: Options) -> dict:
        """Chooses the combination of the finished members on validation and makes `root` their ensemble."""
        members = finished_members(root, count, "member")
        info = members[0].bound_data()
        select = members[0].load_config().trainer.select_metric or DEFAULT_SELECT_METRIC
        record = choose_combination([member.path for member in members], info, select)
        options.show(f"ensemble: {record['method']} of {count} members ({record['chosen_by']})")
        return write_ensemble(root, members, record, options.final_evaluation, self.kind)


def choose_combination(members: list[str], info, select: str) -> dict:
    """The combination of the members' lists with the best validation `select` (ties: the earlier of
    `BEST_METHODS`), as ensemble.json's record without its members."""
    record = {"list_size": DEFAULT_LIST_SIZE, "select_metric": select}
    if "val" not in info.splits:
        return {**record, "method": BEST_METHODS[0], "chosen_by": "no validation split: the first method",
                "validation": {}}
    scores = run_ensemble(members, BEST_METHODS, "val", DEFAULT_LIST_SIZE)["methods"]
    method = max(BEST_METHODS, key=lambda name: (scores[name][select], -BEST_METHODS.index(name)))
    log.info("validation %s of each combination: %s", select,
             ", ".join(f"{name} {scores[name][select]:.2f}" for name in BEST_METHODS))
    return {**record, "method": method, "chosen_by": f"validation {select} {scores[method][select]:.2f}",
            "validation": scores}

