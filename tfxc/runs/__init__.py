"""Runs made of runs: `plan_for(source)` is the one router from a config to the run that trains it
(`tfxc.runs.plan`: one model, a head of parts, XR-Transformer's levels; `tfxc.runs.members`: the recipe's best
point; `tfxc.runs.folds`: k-fold)."""

from tfxc.runs.plan import Levels, Options, Outcome, Parts, RunPlan, Single, model_plan
from tfxc.runs.router import plan_for

__all__ = ["Levels", "Options", "Outcome", "Parts", "RunPlan", "Single", "model_plan", "plan_for"]
