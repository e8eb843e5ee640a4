"""The `best` preset: an ensemble's members trained one after another into one directory, then combined.

`tfxc.train --preset best` (a thin config, or `--train`) and `tfxc.fit(..., preset="best")` come here.
The members are the `default` config with the seeds `tfxc.presets.best_members` names; each is an ordinary
model directory, trained with exact resume like any other:

  MODEL_DIR/members/member-NNN/   member NNN (config.json, checkpoints, best/, ...)
  MODEL_DIR/ensemble.json         written last: the members and the combination chosen on validation
                                  ({"preset", "method", "list_size", "members", "select_metric", "validation"})
  MODEL_DIR/metrics.json          the ensemble's test metrics, and its training time (the members' loops)

A run killed anywhere resumes with the same command: finished members are kept (their training ends at
once), an unfinished one resumes from its last checkpoint. The members never communicate, so they are
also parts (`tfxc.train --num-parts` is their number): `bash train.sh THIN_CONFIG` trains them as parallel
processes (`--part m`) and then combines them (`--link-parts`). The combination is the method of
`tfxc.presets.BEST_METHODS` with the best validation score of the trainer's `select_metric` (P@5 without
one); without a validation split, the first. `tfxc.evaluate`, `tfxc.export` and `tfxc.load` read the
directory as one model (`tfxc.ensemble.run_ensemble`, `tfxc.export.ensemble`).
"""

from __future__ import annotations

import logging
import os

from tfxc import resolve
from tfxc.ensemble import DEFAULT_LIST_SIZE, run_ensemble
from tfxc.errors import ConfigError, TrainingError
from tfxc.model_dir import ModelDir
from tfxc.model_files import METRICS_FILE
from tfxc.presets import BEST, BEST_MEMBERS, BEST_METHODS, DEFAULT, best_line, best_members

log = logging.getLogger("tfxc.train")

DEFAULT_SELECT_METRIC = "P@5"


def train_ensemble(source: resolve.ConfigSource, model_dir: str, *, part: int | None = None, link: bool = False,
                   what: str = "a tfxc.train run", before_conversion=None, final_evaluation: bool = True,
                   show=print) -> dict:
    """Trains the `best` preset of thin config `source` into `model_dir` (see the module docstring).

    Args:
      source: a thin config as read, at preset "best".
      model_dir: the ensemble's directory.
      part: train member `part` only (`tfxc.train --part`, `train.sh` runs the members as parallel parts);
        nothing is combined.
      link: combine the finished members only (`tfxc.train --link-parts`), training none.
      what: what the directories' locks say holds them.
      before_conversion: called under the first member's lock before the data is converted (`tfxc.fit`
        writes its arrays there).
      final_evaluation: evaluate the ensemble on the test split (when the data has one).
      show: where the recipe's reasons and the results are printed.

    Returns:
      The ensemble's test metrics (percent; {} without a test split, `final_evaluation` or a combination).

    Raises:
      ConfigError: `part` is not a member's number.
      TrainingError: `link` finds a member unfinished.
    """
    root = ModelDir(model_dir)
    member_overrides = best_members(source.config.runtime.seed)
    if part is not None:  # one member in its own process: the others may be training beside it
        if not 0 <= part < len(member_overrides):
            raise ConfigError(f"--part {part}: the best preset has members 0 to {len(member_overrides) - 1}")
        _train_member(source, root, part, member_overrides[part], what, before_conversion, show)
        return {}
    if source.config.runtime.strategy == "multi_worker_mirrored" and not link:
        # A process builds one multi-worker strategy; each member needs its own, so each runs as its own part.
        raise ConfigError("the best preset under multi_worker_mirrored trains one member per run: give --part m "
                          f"(0 to {len(member_overrides) - 1}) on every worker, then --link-parts once")
    lock = root.lock(what)  # a second best run into this directory is refused before any member starts
    try:
        if os.path.exists(root.config_path):
            raise TrainingError(f"{root.path} holds a single model (config.json); train the best preset into "
                                "another --model-dir")
        if not link:
            for m, overrides in enumerate(member_overrides):
                _train_member(source, root, m, overrides, what, before_conversion if m == 0 else None, show)
        return _combine(root, len(member_overrides), final_evaluation, show)
    finally:
        lock.release()


def _train_member(source, root: ModelDir, m: int, overrides: tuple, what: str, before_conversion, show) -> None:
    """Trains (or resumes, or finds finished) member `m`: the default config of `source` with `overrides`."""
    from tfxc.launch import start_run
    from tfxc.training.trainer import Trainer

    member = root.member(m)
    run = start_run(resolve.member_source(source, DEFAULT, overrides), member.path, what=what,
                    before_conversion=before_conversion)
    if m == 0:
        reasons = _best_reasons(run.reasons, source.config.runtime.seed)
        show("recipe (tfxc.recipe):\n" + "\n".join(f"  {line}" for line in reasons))
    show(f"member {m} of 0..{BEST_MEMBERS - 1} ({', '.join(overrides)}) -> {member.path}")
    Trainer(run.config, member.path, run.info, run.strategy, lock=run.lock, prepared_from=run.prepared_from,
            final_evaluation=False).train()


def _combine(root: ModelDir, count: int, final_evaluation: bool, show) -> dict:
    """Chooses the combination of the `count` finished members of `root` on validation, writes ensemble.json
    and metrics.json, and returns the test metrics ({} without a test split or `final_evaluation`)."""
    members = [root.member(m) for m in range(count)]
    for m, member in enumerate(members):
        if not os.path.exists(member.file(METRICS_FILE)):  # written when its training ends
            raise TrainingError(f"member {m} ({member.path}) has not finished training: train it with "
                                f"--part {m}, or run the same command without --link-parts")
    info = members[0].bound_data()
    select = members[0].load_config().trainer.select_metric or DEFAULT_SELECT_METRIC
    paths = [member.path for member in members]
    record = choose_combination(paths, info, select)
    record["members"] = [os.path.relpath(path, root.path) for path in paths]
    root.write_ensemble(record)
    show(f"ensemble: {record['method']} of {count} members ({record['chosen_by']})")
    metrics = {}
    if final_evaluation and "test" in info.splits:
        metrics = run_ensemble(paths, record["method"], "test", record["list_size"])["ensemble"]
    # train_seconds: the members' training loops of their last invocations, one after another.
    seconds = [member.metrics().get("train_seconds", 0.0) for member in members]
    root.write_metrics({"split": "test", "train_seconds": round(sum(seconds), 3), "members_train_seconds": seconds,
                        "method": record["method"], **metrics})
    return metrics


def choose_combination(members: list[str], info, select: str) -> dict:
    """The combination of the members' lists with the best validation `select` (ties: the earlier of
    `BEST_METHODS`), as ensemble.json's record without its members."""
    record = {"preset": BEST, "list_size": DEFAULT_LIST_SIZE, "select_metric": select}
    if "val" not in info.splits:
        return {**record, "method": BEST_METHODS[0], "chosen_by": "no validation split: the first method",
                "validation": {}}
    scores = run_ensemble(members, BEST_METHODS, "val", DEFAULT_LIST_SIZE)["methods"]
    method = max(BEST_METHODS, key=lambda name: (scores[name][select], -BEST_METHODS.index(name)))
    log.info("validation %s of each combination: %s", select,
             ", ".join(f"{name} {scores[name][select]:.2f}" for name in BEST_METHODS))
    return {**record, "method": method, "chosen_by": f"validation {select} {scores[method][select]:.2f}",
            "validation": scores}


def _best_reasons(reasons: list[str], seed: int) -> list[str]:
    """The first member's reasons (the default preset's) as the best preset's."""
    named = [line.replace(f"preset: {DEFAULT} ", f"preset: {BEST} ", 1) if line.startswith("preset:") else line
             for line in reasons]
    return [*named, best_line(seed)]
