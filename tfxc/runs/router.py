"""The one router from a config to the run that trains it."""

from __future__ import annotations

from tfxc.runs.folds import Folds, folds_of
from tfxc.runs.members import Members
from tfxc.runs.plan import RunPlan, Single, model_plan


def plan_for(source) -> RunPlan:
    """The plan of `source` (a config as read, `tfxc.resolve.ConfigSource`): `Folds` for `data.val_fold`
    "*/K", `Members` for a thin config at the recipe's `best` point, else the plan of its one model (`model_plan`;
    a thin config's, once its recipe has read the data)."""
    folds = folds_of(source.config)
    if folds:
        return Folds(source, folds)
    if source.thin and Members.wanted(source):
        return Members(source)
    return Single(source) if source.thin else model_plan(source, source.config)
