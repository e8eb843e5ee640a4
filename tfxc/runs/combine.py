"""The last step of a run made of whole models (the recipe's `best` point's members, k-fold's folds): the finished
members become one ensemble directory.

Both kinds end the same way (PECOS's `XTransformer.save` writes a composite model as its children plus one
record; here the children are ordinary model directories): every member must have finished training
(its metrics.json is written last), ensemble.json records the members and how their top-k lists combine,
the ensemble is evaluated on the test split, and metrics.json keeps those metrics beside the members'
training time.
"""

from __future__ import annotations

import os

from tfxc import artifacts
from tfxc.ensemble import run_ensemble
from tfxc.errors import TrainingError
from tfxc.model_dir import ModelDir
from tfxc.model_files import METRICS_FILE


def finished_members(root: ModelDir, count: int, noun: str) -> list[ModelDir]:
    """The `count` member directories of `root`, each checked to have finished training.

    Raises:
      TrainingError: naming the first unfinished member (`noun` and its number: "fold 2") and the command
        that trains it.
    """
    members = [root.member(m) for m in range(count)]
    for m, member in enumerate(members):
        if not os.path.exists(member.file(METRICS_FILE)):  # written when its training ends
            raise TrainingError(f"{noun} {m} ({member.path}) has not finished training: train it with --part {m}, "
                                "or run the same command without --link-parts")
    return members


def write_ensemble(root: ModelDir, members: list[ModelDir], record: dict, final_evaluation: bool, run: str) -> dict:
    """Makes `root` the ensemble of `members`: ensemble.json (`record` with the run and the members' relative paths),
    then its test metrics ({} without a test split or `final_evaluation`) in metrics.json with the members'
    training seconds (their loops' last invocations, one after another); artifact.json says it is the
    ensemble `run` ("members", "folds") made. Returns the test metrics."""
    paths = [member.path for member in members]
    root.write_ensemble({"run": run, **record, "members": [os.path.relpath(path, root.path) for path in paths]})
    artifacts.record(root.path, run)
    metrics = {}
    if final_evaluation and "test" in members[0].bound_data().splits:
        metrics = run_ensemble(paths, record["method"], "test", record["list_size"])["ensemble"]
    seconds = [member.metrics().get("train_seconds", 0.0) for member in members]
    root.write_metrics({"split": "test", "train_seconds": round(sum(seconds), 3), "members_train_seconds": seconds,
                        "method": record["method"], **metrics})
    return metrics
