"""Model selection: the validation history of a run, the best evaluation so far and its weights, early stopping.

Every periodic evaluation is a record {"step", "epoch", "split", "train_loss", "elapsed_s", <metric>: value, ...} that
the chief appends to eval_log.jsonl. With trainer.select_metric the val records are compared on that
metric (the first of equal values wins): the best one's weights are kept in best/, and the run ends with
them. With trainer.patience, training stops once that many evaluations have come after the best one.
The test split is never used for a choice.

A resumed run reads its history back from eval_log.jsonl up to its checkpoint, so it takes the decisions
an uninterrupted run takes, and a run that had stopped early stays stopped. Under MultiWorkerMirrored
every worker evaluates alike and keeps its own copy of the best weights (the chief's in the model
directory, the others' in their scratch directories), so all end with the same model; the decision to
stop is voted on, since only the chief's eval log survives a restart on other machines.
"""

from __future__ import annotations

import logging

from tfxc.errors import ConfigError
from tfxc.training.distribute import any_worker

log = logging.getLogger("tfxc.train")


class ModelSelection:
    """Keeps the periodic evaluations of a run and chooses among them (see the module docstring).

    Args:
      model_dir: the `ModelDir` trained into (its eval_log.jsonl is written by the chief only).
      own_dir: where this worker keeps its copy of the selected weights (best/): `model_dir` on the chief.
      trainer: the `TrainerConfig` (select_metric: "" chooses nothing; patience: 0 never stops early).
      has_val: the data has a val split.
      model: the model whose weights are kept.
      averaged: a function returning a context in which the model holds the weights it is evaluated with
        (its weight average, if any; `TrainingComponents.averaged`).
      strategy: the `tf.distribute.Strategy` (for the workers' vote on stopping).
      chief: this worker writes the model directory.

    Raises:
      ConfigError: trainer.select_metric is set and the data has no val split.
    """

    def __init__(self, model_dir, own_dir, trainer, has_val: bool, *, model, averaged, strategy, chief: bool):
        if trainer.select_metric and not has_val:
            raise ConfigError(f"trainer.select_metric '{trainer.select_metric}' chooses among evaluations on the val "
                              "split, and the data has none: give data.val, or data.val_percent to hold out a "
                              "share of train (the test split is never used for choices)")
        self.model_dir, self.own_dir = model_dir, own_dir
        self.metric, self.patience = trainer.select_metric, trainer.patience
        self.model, self.averaged, self.strategy, self.chief = model, averaged, strategy, chief
        self.history: list[dict] = []  # this run's periodic evaluations (a resumed run's val ones before them)
        self.stopped_early = False
        self.selected: dict | None = None  # best.json of the weights the run ended with (`use_selected`)

    def resume(self, step: int) -> None:
        """Continues the history of eval_log.jsonl's val evaluations up to `step` (the checkpoint resumed)."""
        self.history = [r for r in self.model_dir.eval_log()
                        if r.get("step", step + 1) <= step and r.get("split") == "val"]

    def best(self) -> tuple[dict | None, int]:
        """(the best val record for trainer.select_metric, how many evaluations came after it); (None, 0)
        before any, or without a metric to select on."""
        records = [r for r in self.history if r["split"] == "val"]
        if not self.metric or not records:
            return None, 0
        best = max(range(len(records)), key=lambda i: (records[i][self.metric], -i))  # the first of equals
        return records[best], len(records) - 1 - best

    def add(self, record: dict) -> None:
        """Takes the periodic evaluation `record`: logs it, and keeps the weights if it is the best so far.

        A record replaces those of its step and later ones (left by a run killed after them).
        """
        step = record["step"]
        self.history = [r for r in self.history if r["step"] < step] + [record]
        if self.chief:
            self.model_dir.append_eval_log(record)
        if self.metric and self.best()[1] == 0:  # this evaluation is the best so far
            with self.averaged():  # keep the weights that were evaluated
                self.own_dir.save_best(self.model, {"step": step, "metric": self.metric, "value": record[self.metric]})
            if self.chief:
                log.info("best %s on val so far (%.2f): weights kept in %s", self.metric, record[self.metric],
                         self.model_dir.best_dir)

    def evaluated_at(self, step: int) -> bool:
        """Whether the last evaluation taken was at `step`."""
        return bool(self.history) and self.history[-1]["step"] == step

    def check_patience(self) -> bool:
        """Whether early stopping is due (remembered as `stopped_early`), agreed by every worker.

        With trainer.patience a collective: every worker must call it at the same point.
        """
        due = bool(self.patience) and self.best()[1] >= self.patience
        self.stopped_early = any_worker(self.strategy, due) if self.patience else due
        return self.stopped_early

    def log_early_stop(self, step: int) -> None:
        if self.chief:
            best, _ = self.best()
            log.info("stopping early at step %d: %s on val has not improved for %d evaluations (best %.2f at step %d)",
                     step, self.metric, self.patience, best[self.metric], best["step"])

    def progress(self) -> str:
        """" | best val P@5 30.09 (epoch 14)" for the progress line, once a val evaluation has picked one."""
        best, _ = self.best()
        if best is None:
            return ""
        return f" | best val {self.metric} {best[self.metric]:.2f} (epoch {best['epoch']:.0f})"

    def use_selected(self, restore_newest, average=None) -> dict | None:
        """Ends the run with its model: the selected weights if trainer.select_metric chose some (see
        `ModelFiles.use_selected`), else the weights trained last (their average, when there is one).

        Args:
          restore_newest: restores all of the newest checkpoint (needed when damaged selected weights
            overwrote part of the model).
          average: the run's `WeightAverage`, or None.

        Returns:
          the record of the selected weights, or None (also kept as `selected`).
        """
        if self.metric:
            self.selected = self.own_dir.use_selected(self.model, restore_newest, average, holds_newest=True)
        elif average is not None:
            average.copy_to_model()  # the last checkpoint keeps both; the rest uses the average
        if self.selected is not None and self.chief:
            log.info("using the weights of step %d, the best %s on val (%.2f)", self.selected["step"],
                     self.selected["metric"], self.selected["value"])
        return self.selected

    def summary(self) -> dict:
        """The choice, for metrics.json ({} when nothing was selected)."""
        if self.selected is None:
            return {}
        return {"selected_step": self.selected["step"], "select_metric": self.selected["metric"],
                "selected_val_value": self.selected["value"], "stopped_early": self.stopped_early}
