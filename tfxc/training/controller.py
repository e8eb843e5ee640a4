"""The outer loop (orbit's Controller): restore, then train in loops with logs, checkpoints and evaluations.

Exact resume: the checkpoint holds the model (including dropout RNG state),
the optimizer (including its step counter) and the objective's state; the
input stream is rebuilt at that step (see `tfxc.data.pipeline`), and op
determinism is on, so a killed run continues to the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import threading
import time

from tfxc._tf import keras, tf
from tfxc._version import __version__
from tfxc.utils.graph import graph_function
from tfxc.data.info import damaged_shards_named
from tfxc.errors import ConfigError, Stopped, TrainingError
from tfxc.eval.evaluator import Evaluator, format_metrics
from tfxc.precision import resolve as resolve_precision
from tfxc.model_dir import EVAL_LOG_FILE, METRICS_FILE, RUN_INFO_FILE, TENSORBOARD_DIR, ModelDir
from tfxc.training.distribute import cluster_spec, evaluation_shard, is_chief
from tfxc.training.loop import TrainLoop
from tfxc.utils.io import atomic_write_text
from tfxc.utils.json_files import read_json_lines
from tfxc.utils.clock import process_age_s
from tfxc.utils.memory import peak_rss_gb

log = logging.getLogger("tfxc.train")

# A lost peer shows up as one of these from a collective.
_LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class StopSignals:
    """SIGTERM (preemption) and SIGINT (Ctrl-C) become a request to stop at the next loop boundary.

    The controller then saves a checkpoint and ends with `Stopped`; a second
    Ctrl-C interrupts at once. Handlers are installed only in the main thread
    and restored on exit.
    """

    def __init__(self):
        self.received: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        log.warning("received %s: stopping after the current steps (with a checkpoint)", signal.Signals(signum).name)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def crossed(before: int, after: int, every: int) -> bool:
    """True if a multiple of `every` lies in (before, after]."""
    return after // every > before // every


class Controller:
    """Drives `TrainLoop` over the epochs of a `TrainingComponents` run in `model_dir`.

    Cadence (in steps unless said): a progress line every `log_every_steps`, a
    checkpoint every `checkpoint_every_steps` and every `checkpoint_every_seconds`
    of wall time, an evaluation of the val split
    (else test) every `eval_every_steps`/`eval_every_epochs`, and always a
    checkpoint and a test evaluation at the end. A non-finite loss or weights
    stop training without saving, keeping the last good checkpoint.

    Args:
      components: the built run (`tfxc.training.components`).
      model_dir: the `ModelDir` to train into.
      final_evaluation: evaluate the test split at the end (off for a part that `train.sh` evaluates
        with the others, `tfxc.eval.parts`).
    """

    def __init__(self, components, model_dir: ModelDir, final_evaluation: bool = True):
        self.components, self.model_dir = components, model_dir
        self.final_evaluation = final_evaluation
        config, info, tc = components.config, components.info, components.config.trainer
        self.config, self.length = config, components.length
        self.chief = is_chief(components.strategy)
        self.loop = TrainLoop(components.strategy, components.model, components.optimizer, components.objective,
                              tc.global_batch_size, config.optimizer.clip_norm, components.average)
        self.checkpoint = components.checkpoint()
        # Every worker must take part in saving; only the chief's copy is kept.
        _, index = cluster_spec()
        directory = model_dir if self.chief else ModelDir(model_dir.worker_scratch_dir(index))
        self.own_dir = directory  # where this worker keeps its copy of the selected weights (best/)
        self._val_history: list[dict] = []
        self._checkpoint_seconds, self._checkpoints_saved = 0.0, 0  # what saving costs the run (logged at the end)
        self._last_checkpoint_time = time.time()  # for trainer.checkpoint_every_seconds
        if self.chief:  # the manager reads the state file itself, and would miss checkpoints a damaged one hides
            model_dir.repair_checkpoint_state()
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory.checkpoint_dir,
                                                  max_to_keep=tc.keep_checkpoints)
        self._config_written = False  # config.json is (re)written with this run's first checkpoint
        # The test split is evaluated at the end (a data set may have none); periodic evaluation during
        # training uses the validation split when there is one, else test.
        # With several workers each evaluates its share of the batches and the metric sums are all-reduced.
        shard, add_up = evaluation_shard(components.strategy)
        self.evaluator = (Evaluator(components.model, info, config.eval, shard=shard, add_up=add_up,
                                    keep_batches="val" not in info.splits)  # evaluated periodically then
                          if "test" in info.splits else None)
        self.val_evaluator = (Evaluator(components.model, info, config.eval, split="val", shard=shard, add_up=add_up,
                                        keep_batches=True)
                              if "val" in info.splits else self.evaluator)
        self.eval_every = tc.eval_every_steps or self.length.steps_in(tc.eval_every_epochs)
        if self.val_evaluator is None:
            self.eval_every = 0  # nothing to evaluate on
        # Model selection (trainer.select_metric) happens on the val split only, never on test.
        if tc.select_metric and "val" not in info.splits:
            raise ConfigError(f"trainer.select_metric '{tc.select_metric}' chooses among evaluations on the val "
                              "split, and the data has none: give data.val, or data.val_percent to hold out a "
                              "share of train (the test split is never used for choices)")
        variables = components.model.trainable_variables
        self._weights_finite = graph_function(
            lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))

    # === State ===
    def step(self) -> int:
        return int(self.components.optimizer.iterations.value.numpy())  # .value: a MirroredVariable under Mirrored

    def restore(self) -> int:
        """Restores the newest intact checkpoint if there is one; returns the step to continue from."""
        try:
            restored = self.model_dir.restore_newest_intact(lambda path: self.checkpoint.restore(path).assert_consumed())
        except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
            raise TrainingError(
                f"the checkpoints in {self.model_dir.checkpoint_dir} do not fit this config (the model or data "
                f"shape changed?): {str(e).splitlines()[0][:300]}. Use another --model-dir, or the config in "
                f"{self.model_dir.config_path}") from None
        except Exception as e:  # every checkpoint is damaged
            raise TrainingError(f"no checkpoint in {self.model_dir.checkpoint_dir} can be restored "
                                f"({type(e).__name__}: {str(e).strip()[:300]})") from None
        if restored:
            log.info("resumed from %s (step %d)", restored, self.step())
        return self.step()

    def _kept(self) -> str:
        """What a stop keeps: the latest checkpoint, or that there is none yet.

        Named in the model directory on every worker: a non-chief worker's manager writes into its scratch
        directory, which is deleted when the run restarts; the chief's copy of the same step is the one to
        resume from.
        """
        latest = self.manager.latest_checkpoint
        if latest is None:
            return "no checkpoint had been written yet"
        chiefs = os.path.join(self.model_dir.checkpoint_dir, os.path.basename(latest))
        return f"the last good checkpoint ({chiefs}) is kept"

    def _advice(self) -> str:
        return (f"Try a lower optimizer.learning_rate ({self.config.optimizer.learning_rate}) or set "
                "optimizer.clip_norm.")

    def save(self, step: int) -> None:
        # The loss of a step is computed before its update, so a finite loss
        # does not prove finite weights: check them before they overwrite anything.
        started = time.time()
        if not bool(self._weights_finite()):
            raise TrainingError(f"the weights became non-finite before step {step}; stopped without saving, "
                                f"{self._kept()}. {self._advice()}")
        previous_config = self._write_run_files()
        try:
            self.manager.save(checkpoint_number=step)
            self._config_written = True
            self._last_checkpoint_time = time.time()
            self._checkpoint_seconds += time.time() - started
            self._checkpoints_saved += 1
        except tf.errors.OpError as e:  # disk full, quota, permissions: no half-written checkpoint stays
            self._restore_config(previous_config)
            directory = self.manager.directory
            for name in os.listdir(directory) if os.path.isdir(directory) else []:
                if name.startswith(f"ckpt-{step}_temp") or name.startswith(f"ckpt-{step}."):
                    target = os.path.join(directory, name)
                    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
            raise TrainingError(f"cannot write the checkpoint of step {step} to {directory} "
                                f"({_first_line(e)}); {self._kept()}") from None

    def _write_run_files(self) -> str | None:
        """Writes config.json and run_info.json just before this run's first checkpoint (chief only).

        Not earlier: a run that saves nothing (stopped by the NaN guard, a signal before its first checkpoint,
        a crash) must leave the config the existing checkpoints were trained with, or the command that trained
        them would be refused as a changed config. Written before the checkpoint rather than after, so that a
        kill between the two errs on the side of a refused resume, never of a silent mix of two configs.

        Returns:
          the config.json text it replaced (None if there was none, or nothing was written), for
          `_restore_config` should the checkpoint fail.
        """
        if not self.chief or self._config_written:
            return None
        os.makedirs(self.model_dir.path, exist_ok=True)
        previous = self.model_dir.config_text()
        self.model_dir.write_config(self.config)
        info = self.components.info
        atomic_write_text(self.model_dir.file(RUN_INFO_FILE), json.dumps({
            "tfxc": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "replicas": self.components.strategy.num_replicas_in_sync, "strategy": self.config.runtime.strategy,
            "total_steps": self.length.total_steps, "steps_per_epoch": self.length.steps_per_epoch,
            "num_features": info.num_features, "num_labels": info.num_labels}, indent=2) + "\n")
        return previous

    def _restore_config(self, previous: str | None) -> None:
        """Puts back the config.json that `_write_run_files` replaced (removes it, if there was none) when the
        checkpoint it went with failed."""
        if not self.chief or self._config_written:
            return
        if previous is not None:
            atomic_write_text(self.model_dir.config_path, previous)
        elif os.path.exists(self.model_dir.config_path):
            os.remove(self.model_dir.config_path)

    # === Evaluation ===
    def _periodic_eval(self, step: int, train_loss: float, writer) -> None:
        """Evaluates the val split (else test), appends a line to eval_log.jsonl (chief only), keeps the best."""
        start = time.time()
        with self.components.averaged():
            metrics = self.val_evaluator.evaluate()
        split = self.val_evaluator.split
        with writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(f"{split}/{name}", value)
        record = {"step": step, "epoch": self.length.epochs_at(step), "split": split, "train_loss": train_loss,
                  **metrics}
        self._val_history = [r for r in self._val_history if r["step"] < step] + [record]
        if self.chief:
            log.info("%s at step %d (epoch %.2f, %.1fs): %s", split, step, self.length.epochs_at(step),
                     time.time() - start, format_metrics(metrics))
            self._append_eval_log(record)
        metric = self.config.trainer.select_metric
        if metric and self._selection()[1] == 0:  # this evaluation is the best so far
            with self.components.averaged():  # keep the weights that were evaluated
                self.own_dir.save_best(self.components.model, {"step": step, "metric": metric,
                                                               "value": metrics[metric]})
            if self.chief:
                log.info("best %s on val so far (%.2f): weights kept in %s", metric, metrics[metric],
                         self.model_dir.best_dir)

    def _best_so_far(self) -> str:
        """" | best val P@5 30.09 (epoch 14)" for the progress line, once a val evaluation has picked one."""
        best, _ = self._selection()
        if best is None:
            return ""
        metric = self.config.trainer.select_metric
        return f" | best val {metric} {best[metric]:.2f} (epoch {best['epoch']:.0f})"

    def _selection(self) -> tuple[dict | None, int]:
        """(the best val record for trainer.select_metric, how many evaluations came after it)."""
        metric = self.config.trainer.select_metric
        records = [r for r in self._val_history if r["split"] == "val"]
        if not metric or not records:
            return None, 0
        best = max(range(len(records)), key=lambda i: (records[i][metric], -i))  # the first of equals
        return records[best], len(records) - 1 - best

    def _out_of_patience(self) -> bool:
        """Whether early stopping is due, agreed by every worker (they must stop at the same step)."""
        patience = self.config.trainer.patience
        due = bool(patience) and self._selection()[1] >= patience
        num_workers, _ = cluster_spec()
        if num_workers == 1 or not patience:
            return due
        # Workers evaluate alike, but only the chief's eval log survives a restart on other machines.
        strategy = self.components.strategy
        votes = strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0 if due else 0.0)), axis=None)
        return float(votes) > 0

    def _read_val_history(self, step: int) -> list[dict]:
        """The periodic evaluations of eval_log.jsonl up to `step` (a resumed run continues its history)."""
        path = self.model_dir.file(EVAL_LOG_FILE)
        if not os.path.exists(path):
            return []
        records = read_json_lines(path, "the evaluation log")
        return [r for r in records if r.get("step", step + 1) <= step and r.get("split") == "val"]

    def _append_eval_log(self, record: dict) -> None:
        # Rewritten whole (atomically); lines past `step` are from a run that was
        # killed after that evaluation and are replaced on resume.
        path = self.model_dir.file(EVAL_LOG_FILE)
        lines = []
        if os.path.exists(path):
            lines = [json.dumps(r) for r in read_json_lines(path, "the evaluation log") if _earlier(r, record)]
        lines.append(json.dumps(record))
        atomic_write_text(path, "\n".join(lines) + "\n")

    # === The loop ===
    def train(self) -> dict[str, float]:
        """Runs to `length.total_steps`, then evaluates on test; returns the final metrics (percent).

        Raises:
          Stopped: a SIGTERM or SIGINT arrived; a checkpoint of the step reached was saved first.
          TrainingError: a non-finite loss or weights, a lost worker, an unwritable checkpoint.
          DamagedFile: a shard of the data is damaged (named).
        """
        # Reading a damaged shard fails with a DataLossError that does not name it: say which one.
        with StopSignals() as signals, damaged_shards_named(self.components.info):
            return self._train(signals)

    def _stop_requested(self, signals: StopSignals) -> int | None:
        """The signal to stop on, agreed by every worker (they must save the same step together)."""
        num_workers, _ = cluster_spec()
        if num_workers == 1:
            return signals.received
        strategy = self.components.strategy
        flag = 1.0 if signals.received else 0.0
        anyone = float(strategy.reduce("SUM", strategy.run(lambda: tf.constant(flag)), axis=None)) > 0
        # A worker that got no signal itself stops as for a preemption.
        return (signals.received or signal.SIGTERM) if anyone else None

    def _checkpoint_due_by_time(self, more_to_come: bool) -> bool:
        """Whether `trainer.checkpoint_every_seconds` have passed since the last checkpoint (or the start),
        agreed by every worker (they must save together; their clocks differ)."""
        every = self.config.trainer.checkpoint_every_seconds
        if not every or not more_to_come:
            return False
        due = time.time() - self._last_checkpoint_time >= every
        num_workers, _ = cluster_spec()
        if num_workers == 1:
            return due
        strategy = self.components.strategy
        return float(strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0 if due else 0.0)), axis=None)) > 0

    def _train(self, signals: StopSignals) -> dict[str, float]:
        tc, total = self.config.trainer, self.length.total_steps
        step = self.restore()
        start_step = step
        self._val_history = self._read_val_history(step)
        stopped_early = self._out_of_patience()  # a resumed run that had already stopped stays stopped
        writer = (tf.summary.create_file_writer(self.model_dir.file(TENSORBOARD_DIR)) if self.chief
                  else tf.summary.create_noop_writer())
        if self.chief:
            log.info("training %d steps (%.2f epochs of %d steps, global batch %d, %d replica(s), %s) from step %d; "
                     "%.1f s after the process started", total, self.length.epochs_at(total),
                     self.length.steps_per_epoch, tc.global_batch_size, self.components.strategy.num_replicas_in_sync,
                     resolve_precision(self.config.model.precision), step, process_age_s())
        t_start = t_log = self._last_checkpoint_time = time.time()
        step_log = last_saved = step
        iterator, iterator_epoch, loss = None, None, math.nan
        while step < total and not stopped_early:
            epoch, step_in_epoch = self.length.position(step)
            if iterator is None:  # one stream from here to the last epoch
                iterator = self.components.train_iterator(epoch, step_in_epoch, self.length.num_epochs - epoch)
            if epoch != iterator_epoch:
                iterator_epoch = epoch
                self.components.objective.start_epoch(epoch + 1)
            # A loop never crosses an epoch boundary (per-epoch objectives start their epochs between loops).
            n = min(tc.steps_per_loop, total - step, self.length.steps_per_epoch - step_in_epoch)
            if self.eval_every:  # stop at evaluation points, so curves are sampled where asked
                n = min(n, self.eval_every - step % self.eval_every)
            prev = step
            try:
                loss = self.loop(iterator, n)
                stop = self._stop_requested(signals) if step + n < total else None
            except _LOST_WORKER_ERRORS as e:
                raise TrainingError(f"lost contact with another worker at step {step} "
                                    f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); {self._kept()}, "
                                    "restart all workers to resume") from None
            if prev == start_step and self.chief:  # start-up cost: everything before the first loop ended
                log.info("first %d step(s) done %.1f s after the process started (%.1f s of them tracing and "
                         "running the first loop)", n, process_age_s(), time.time() - t_start)
            step += n
            if not math.isfinite(loss):
                raise TrainingError(f"the training loss became {loss} in steps {step - n + 1}..{step}; stopped "
                                    f"without saving, {self._kept()}. {self._advice()}")
            with writer.as_default(step=step):
                tf.summary.scalar("train/loss", loss)
                tf.summary.scalar("train/learning_rate", float(self.components.optimizer.learning_rate))
            if crossed(prev, step, tc.log_every_steps) or step == total:
                now = time.time()
                rate = (step - step_log) / max(now - t_log, 1e-9)
                eta = (total - step) / max(rate, 1e-9)
                if self.chief:
                    log.info("step %d/%d (%.1f%%) epoch %.2f loss %.5f | %.1f steps/s %.0f ex/s | elapsed %s ETA %s%s",
                             step, total, 100.0 * step / total, self.length.epochs_at(step), loss, rate,
                             rate * tc.global_batch_size, format_duration(now - t_start), format_duration(eta),
                             self._best_so_far())
                with writer.as_default(step=step):
                    tf.summary.scalar("train/steps_per_second", rate)
                t_log, step_log = now, step
            if ((tc.checkpoint_every_steps and crossed(prev, step, tc.checkpoint_every_steps)) or step == total
                    or self._checkpoint_due_by_time(step < total)):
                self.save(step)
                last_saved = step
            if self.eval_every and crossed(prev, step, self.eval_every) and step < total:
                self._periodic_eval(step, loss, writer)
                if self._out_of_patience():
                    stopped_early = True
                    if last_saved != step:
                        self.save(step)
                        last_saved = step
                    if self.chief:
                        best, _ = self._selection()
                        log.info("stopping early at step %d: %s on val has not improved for %d evaluations "
                                 "(best %.2f at step %d)", step, tc.select_metric, tc.patience,
                                 best[tc.select_metric], best["step"])
            if stop:
                if last_saved != step:
                    self.save(step)
                writer.flush()
                name = signal.Signals(stop).name
                raise Stopped(f"stopped by {name} at step {step} of {total}; its checkpoint is saved in "
                              f"{self.model_dir.checkpoint_dir}, run the same command to resume", stop)
        if last_saved != step:
            self.save(step)
        train_seconds = time.time() - t_start
        if start_step < step and self.chief:
            log.info("trained %d steps in %s (peak resident memory %.2f GB; %d checkpoints written in %.1f s)",
                     step - start_step, format_duration(train_seconds), peak_rss_gb(), self._checkpoints_saved,
                     self._checkpoint_seconds)
        if (self.eval_every and start_step < step and self.val_evaluator is not self.evaluator
                and not (self._val_history and self._val_history[-1]["step"] == step)):
            self._periodic_eval(step, loss, writer)  # the validation curve's last point
        # End with the selected weights: the test evaluation and exports use them.
        selected = self.own_dir.restore_best(self.components.model) if tc.select_metric else None
        if selected is None and tc.select_metric and os.path.isdir(self.own_dir.best_dir):
            # Damaged (warned of): the model may be partly overwritten; the checkpoint just saved is all of it.
            self.checkpoint.restore(self.manager.latest_checkpoint).expect_partial()
        if selected is not None:
            if self.chief:
                log.info("using the weights of step %d, the best %s on val (%.2f)", selected["step"],
                         selected["metric"], selected["value"])
        elif self.components.average is not None:
            self.components.average.copy_to_model()  # the last checkpoint keeps both; the rest uses the average
        if self.evaluator is None or not self.final_evaluation:
            log.info("no final evaluation: %s", "skipped" if self.evaluator else "the data has no test split")
            metrics = {}
        else:
            metrics = self.evaluator.evaluate()
            self._log_metrics(metrics, step, writer)
        writer.flush()
        if self.chief and self.eval_every and metrics:
            self._append_eval_log({"step": step, "epoch": self.length.epochs_at(step), "split": "test",
                                   "train_loss": loss if start_step < step else None, **metrics})
        if self.chief:
            # train_seconds: this invocation's training loop (a resumed run counts only its part).
            selection = ({"selected_step": selected["step"], "select_metric": selected["metric"],
                          "selected_val_value": selected["value"], "stopped_early": stopped_early}
                         if selected is not None else {})
            atomic_write_text(self.model_dir.file(METRICS_FILE),
                              json.dumps({"step": step, "split": "test", "train_seconds": round(train_seconds, 3),
                                          "steps_trained": step - start_step, **selection, **metrics}, indent=2)
                              + "\n")
        else:
            shutil.rmtree(os.path.dirname(self.manager.directory), ignore_errors=True)
        return metrics

    def _log_metrics(self, metrics: dict, step: int, writer) -> None:
        with writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar("eval/" + name, value)
        if self.chief:
            log.info("eval at step %d: %s", step, format_metrics(metrics))


def _first_line(error: Exception) -> str:
    """A TF error's message without the op and function-node decorations."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if text.startswith("{{function_node"):
        text = text.split("}}", 1)[-1].strip()
    return text.split(" [Op:", 1)[0]


def _earlier(line: dict, record: dict) -> bool:
    return line["step"] < record["step"] or (line["step"] == record["step"] and line["split"] != record["split"])
