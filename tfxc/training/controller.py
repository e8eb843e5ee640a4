"""The outer loop (orbit's Controller): restore, then train in loops with logs, checkpoints and evaluations.

The controller keeps the cadence; the jobs it paces have their own modules: the steps (`loop`), the
checkpoints (`saving`), the choice among evaluations and early stopping (`selection`), and the vote
that keeps the workers' decisions alike (`distribute.any_worker`).

Exact resume: the checkpoint holds the model (including dropout RNG state),
the optimizer (including its step counter) and the objective's state; the
input stream is rebuilt at that step (see `tfxc.data.pipeline`), and op
determinism is on, so a killed run continues to the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import signal
import threading
import time

from tfxc._tf import keras, tf
from tfxc._version import __version__
from tfxc.data.info import damaged_shards_named
from tfxc.errors import Stopped, TrainingError
from tfxc.eval.evaluator import Evaluator, format_metrics
from tfxc.precision import resolve as resolve_precision
from tfxc.model_dir import ModelDir
from tfxc.training.distribute import any_worker, cluster_spec, evaluation_shard, is_chief
from tfxc.training.loop import TrainLoop
from tfxc.training.saving import RunCheckpoints, crossed
from tfxc.training.selection import ModelSelection
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

    def __init__(self, components, model_dir: ModelDir, final_evaluation: bool = True,
                 prepared_from: float | None = None):
        self.components, self.model_dir = components, model_dir
        self.final_evaluation = final_evaluation
        # The model's set-up before the loop (the recipe's measurements, the label tree, the warm starts),
        # from `prepared_from` (the data ready) to the loop's start: training time too, as the peers' own
        # clustering is part of theirs.
        self.prepared_from = prepared_from
        config, info, tc = components.config, components.info, components.config.trainer
        self.config, self.length = config, components.length
        self.chief = is_chief(components.strategy)
        self.loop = TrainLoop(components.strategy, components.model, components.optimizer, components.objective,
                              tc.global_batch_size, config.optimizer.clip_norm, components.average)
        # Every worker must take part in saving; only the chief's copy is kept.
        _, index = cluster_spec()
        own_dir = model_dir if self.chief else ModelDir(model_dir.worker_scratch_dir(index))
        self.checkpoints = RunCheckpoints(components, model_dir, own_dir, self._run_info(), self.chief)
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
        # eval.train_sample: the first rows of train, scored beside val at each evaluation (SCENT's train loss).
        sample = dataclasses.replace(config.eval, max_points=config.eval.train_sample, classification=False)
        self.train_sample = (Evaluator(components.model, info, sample, split="train", shard=shard, add_up=add_up,
                                       keep_batches=True)
                             if config.eval.train_sample and self.eval_every else None)
        # Model selection (trainer.select_metric) happens on the val split only, never on test.
        self.selection = ModelSelection(model_dir, own_dir, tc, "val" in info.splits, model=components.model,
                                        averaged=components.averaged, strategy=components.strategy, chief=self.chief)
        # With trainer.eval_at_start: the val metrics of the starting weights, when whoever set them measured them.
        self.start_metrics: dict | None = None
        # The pace of this invocation (set when its loop starts): its start, and the last progress line's.
        self._t_start = self._t_log = time.time()
        self._step_log = 0

    def _run_info(self) -> dict:
        """What run_info.json records: versions, strategy and sizes of this run."""
        info = self.components.info
        return {"tfxc": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                "replicas": self.components.strategy.num_replicas_in_sync, "strategy": self.config.runtime.strategy,
                "total_steps": self.length.total_steps, "steps_per_epoch": self.length.steps_per_epoch,
                "num_features": info.num_features, "num_labels": info.num_labels}

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

    def _train(self, signals: StopSignals) -> dict[str, float]:
        total = self.length.total_steps
        restored = self.checkpoints.restore()
        step = start_step = self.checkpoints.step()
        if restored:
            log.info("resumed from %s (step %d)", restored, step)
        self.selection.resume(step)
        self.selection.check_patience()  # a resumed run that had already stopped stays stopped
        writer = (tf.summary.create_file_writer(self.model_dir.tensorboard_dir) if self.chief
                  else tf.summary.create_noop_writer())
        self._log_start(step)
        self._t_start = self._t_log = self.checkpoints.last_time = time.time()
        self._step_log = step
        iterator, iterator_epoch, loss = None, None, math.nan
        if step == 0 and self.eval_every and self.config.trainer.eval_at_start and not self.selection.history:
            # The starting weights, which selection may keep (their metrics, if the caller measured them).
            self._evaluate(0, loss, writer, self.start_metrics)
        while step < total and not self.selection.stopped_early:
            epoch, step_in_epoch = self.length.position(step)
            if iterator is None:  # one stream from here to the last epoch
                iterator = self.components.train_iterator(epoch, step_in_epoch, self.length.num_epochs - epoch)
            if epoch != iterator_epoch:
                iterator_epoch = epoch
                self.components.objective.start_epoch(epoch + 1)
            n = self._steps_to_run(step, step_in_epoch)
            loss, stop = self._run_steps(iterator, n, step, signals)
            if step == start_step and self.chief:  # start-up cost: everything before the first loop ended
                log.info("first %d step(s) done %.1f s after the process started (%.1f s of them tracing and "
                         "running the first loop)", n, process_age_s(), time.time() - self._t_start)
            before, step = step, step + n
            self.checkpoints.check_loss(loss, before + 1, step)
            self._report(before, step, loss, writer)
            if self.checkpoints.due(before, step, total):
                self.checkpoints.save(step)
            if self.eval_every and crossed(before, step, self.eval_every) and step < total:
                self._evaluate(step, loss, writer)
                if self.selection.check_patience():
                    self.checkpoints.save_unless_saved(step)
                    self.selection.log_early_stop(step)
            if stop:
                self.checkpoints.save_unless_saved(step)
                writer.flush()
                raise Stopped(f"stopped by {signal.Signals(stop).name} at step {step} of {total}; its checkpoint is "
                              f"saved in {self.model_dir.checkpoint_dir}, run the same command to resume", stop)
        return self._finish(start_step, step, loss, writer)

    def _log_start(self, step: int) -> None:
        if self.chief:
            tc, total = self.config.trainer, self.length.total_steps
            log.info("training %d steps (%.2f epochs of %d steps, global batch %d, %d replica(s), %s) from step %d; "
                     "%.1f s after the process started", total, self.length.epochs_at(total),
                     self.length.steps_per_epoch, tc.global_batch_size, self.components.strategy.num_replicas_in_sync,
                     resolve_precision(self.config.model.precision), step, process_age_s())

    def _steps_to_run(self, step: int, step_in_epoch: int) -> int:
        """How many steps the next loop runs from `step`: trainer.steps_per_loop, cut at the end of the
        epoch (per-epoch objectives start their epochs between loops) and at the next evaluation (so that
        curves are sampled where asked)."""
        n = min(self.config.trainer.steps_per_loop, self.length.total_steps - step,
                self.length.steps_per_epoch - step_in_epoch)
        if self.eval_every:
            n = min(n, self.eval_every - step % self.eval_every)
        return n

    def _run_steps(self, iterator, n: int, step: int, signals: StopSignals) -> tuple[float, int | None]:
        """Runs `n` steps from `step`: (their mean loss, the signal to stop on or None).

        Raises:
          TrainingError: another worker was lost.
        """
        try:
            loss = self.loop(iterator, n)
            return loss, self._stop_requested(signals) if step + n < self.length.total_steps else None
        except _LOST_WORKER_ERRORS as e:
            raise TrainingError(f"lost contact with another worker at step {step} "
                                f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); {self.checkpoints.kept()}, "
                                "restart all workers to resume") from None
        except tf.errors.InvalidArgumentError as e:  # an image input batch refused: one line, not a traceback
            from tfxc.images.preprocessing import refused_in_training

            refused = refused_in_training(e, step)
            if refused is None:
                raise
            raise refused from None

    def _stop_requested(self, signals: StopSignals) -> int | None:
        """The signal to stop on, agreed by every worker (they must save the same step together)."""
        if not any_worker(self.components.strategy, bool(signals.received)):
            return None
        return signals.received or signal.SIGTERM  # a worker that got no signal itself stops as for a preemption

    def _report(self, before: int, step: int, loss: float, writer) -> None:
        """The scalars of the loop that ended at `step`, and every trainer.log_every_steps (and at the end)
        the progress line."""
        tc, total = self.config.trainer, self.length.total_steps
        _scalars(writer, step, "train/", {"loss": loss,
                                          "learning_rate": float(self.components.optimizer.learning_rate)})
        if not (crossed(before, step, tc.log_every_steps) or step == total):
            return
        now = time.time()
        rate = (step - self._step_log) / max(now - self._t_log, 1e-9)
        eta = (total - step) / max(rate, 1e-9)
        if self.chief:
            log.info("step %d/%d (%.1f%%) epoch %.2f loss %.5f | %.1f steps/s %.0f ex/s | elapsed %s ETA %s%s",
                     step, total, 100.0 * step / total, self.length.epochs_at(step), loss, rate,
                     rate * tc.global_batch_size, format_duration(now - self._t_start), format_duration(eta),
                     self.selection.progress())
        _scalars(writer, step, "train/", {"steps_per_second": rate})
        self._t_log, self._step_log = now, step

    def _evaluate(self, step: int, train_loss: float, writer, known: dict | None = None) -> None:
        """Evaluates the val split (else test) and hands the result to model selection; `known`: the metrics of
        the weights as they stand, measured already (not evaluated again)."""
        start = time.time()
        with self.components.averaged():
            metrics = known if known is not None else self.val_evaluator.evaluate()
            sample = self.train_sample.evaluate() if self.train_sample is not None else {}
        sample = {key: sample[key] for key in ("CE", "Acc@1", "P@1") if key in sample}
        split = self.val_evaluator.split
        _scalars(writer, step, f"{split}/", metrics)
        _scalars(writer, step, "train_sample/", sample)
        if self.chief:
            log.info("%s at step %d (epoch %.2f, %.1fs): %s%s", split, step, self.length.epochs_at(step),
                     time.time() - start, format_metrics(metrics),
                     f" | train sample of {self.config.eval.train_sample:,}: " + format_metrics(sample) if sample else "")
        # elapsed_s: this invocation's loop time when the evaluation began (train_seconds' clock), for
        # time-to-accuracy curves.
        self.selection.add({"step": step, "epoch": self.length.epochs_at(step), "split": split,
                            "train_loss": train_loss, "elapsed_s": round(start - self._t_start, 3), **metrics,
                            **{f"train_sample_{key}": value for key, value in sample.items()}})

    def _finish(self, start_step: int, step: int, loss: float, writer) -> dict[str, float]:
        """The last checkpoint, the last point of the validation curve, the selected weights, the test
        evaluation and metrics.json; returns the test metrics."""
        self.checkpoints.save_unless_saved(step)
        train_seconds = time.time() - self._t_start
        prepare_seconds = self._t_start - self.prepared_from if self.prepared_from else 0.0
        if start_step < step and self.chief:
            log.info("trained %d steps in %s after %s of set-up (peak resident memory %.2f GiB; %d checkpoints "
                     "written in %.1f s)", step - start_step, format_duration(train_seconds),
                     format_duration(prepare_seconds), peak_rss_gb(), self.checkpoints.count,
                     self.checkpoints.seconds)
        if (self.eval_every and start_step < step and self.val_evaluator is not self.evaluator
                and not self.selection.evaluated_at(step)):
            self._evaluate(step, loss, writer)  # the validation curve's last point
        # End with the selected weights: the test evaluation and exports use them.
        self.selection.use_selected(self.checkpoints.restore_newest, self.components.average)
        if self.evaluator is None or not self.final_evaluation:
            log.info("no final evaluation: %s", "skipped" if self.evaluator else "the data has no test split")
            metrics = {}
        else:
            metrics = self.evaluator.evaluate()
            _scalars(writer, step, "eval/", metrics)
            if self.chief:
                log.info("%s: %s", final_eval_title(step, self.selection.selected), format_metrics(metrics))
        writer.flush()
        if self.chief and self.eval_every and metrics:
            self.model_dir.append_eval_log({"step": step, "epoch": self.length.epochs_at(step), "split": "test",
                                            "train_loss": loss if start_step < step else None, **metrics})
        if self.chief:
            # train_seconds: this invocation's training loop (a resumed run counts only its part);
            # prepare_seconds: its set-up before the loop (0 where the caller did not clock it).
            self.model_dir.write_metrics({"step": step, "split": "test", "train_seconds": round(train_seconds, 3),
                                          "prepare_seconds": round(prepare_seconds, 3),
                                          "steps_trained": step - start_step, **self.selection.summary(), **metrics})
        else:
            shutil.rmtree(os.path.dirname(self.checkpoints.manager.directory), ignore_errors=True)
        return metrics


def final_eval_title(step: int, selected: dict | None) -> str:
    """The head of the final evaluation's line: the step training ended at, and the step whose weights were
    scored when model selection chose earlier ones (`selected`: best.json's record, or None)."""
    if selected is None:
        return f"eval at step {step}"
    chosen = f"the best val {selected['metric']}"
    if selected["step"] == step:
        return f"eval at step {step} ({chosen})"
    return f"eval of the weights from step {selected['step']} ({chosen}), at step {step}"


def _scalars(writer, step: int, prefix: str, values: dict) -> None:
    """Writes `values` ({name: number}) as TensorBoard scalars `prefix + name` at `step`."""
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(prefix + name, value)
