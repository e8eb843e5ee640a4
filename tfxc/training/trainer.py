"""The custom training loop: one code path for the default, Mirrored and MultiWorkerMirrored strategies.

Shape (orbit-like): an inner `tf.function` runs `steps_per_loop` steps of
`strategy.run(replica_step)`; the host loop around it checks the loss,
logs progress, writes TensorBoard scalars, checkpoints and evaluates.

Exact resume: the checkpoint holds the model (including dropout RNG state)
and the optimizer (including its step counter); the input stream is rebuilt
at that step (see `tfxc.data.pipeline`), and op determinism is on, so a
killed run continues to the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time


from tfxc import __version__
from tfxc._tf import keras, tf
from tfxc.config import config_to_json
from tfxc.data.convert import ensure_converted
from tfxc.data.pipeline import steps_per_epoch, train_dataset
from tfxc.errors import ConfigError, TrainingError
from tfxc.eval.evaluator import Evaluator
from tfxc.model import build_model
from tfxc.optimizers import build_optimizer
from tfxc.training.distribute import cluster_spec, is_chief, make_strategy
from tfxc.training.dual_objective import DualObjective, check_multiclass
from tfxc.utils.io import atomic_write_text
from tfxc.utils.memory import peak_rss_gb

log = logging.getLogger("tfxc.train")

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
EVAL_LOG_FILE = "eval_log.jsonl"


def set_seeds(runtime) -> None:
    keras.utils.set_random_seed(runtime.seed)  # Python, NumPy and TF global seeds
    if runtime.deterministic:
        tf.config.experimental.enable_op_determinism()


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def restore_model(config, model_dir: str):
    """Builds the model of a trained `model_dir` and loads its latest checkpoint -> (model, DatasetInfo)."""
    from tfxc.data.info import DatasetInfo

    info = DatasetInfo.load(config.data.dir)
    model = build_model(config.model, num_features=info.num_features, num_labels=info.num_labels,
                        seed=config.runtime.seed, model_dir=model_dir)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_DIR))
    if latest is None:
        raise TrainingError(f"{model_dir}: no checkpoint found in {CHECKPOINT_DIR}/; train first")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial().assert_existing_objects_matched()
    return model, info


def rng_state(model) -> tf.Module:
    """The model's non-trainable state (dropout seed-generator states) as a checkpointable module.

    Keras 3 keeps each Dropout's seed state in a variable that
    `tf.train.Checkpoint(model=...)` does not reach; without it a resumed run
    would draw different dropout masks than an uninterrupted one.
    """
    state = tf.Module(name="rng_state")
    state.variables_list = [v.value for v in model.non_trainable_variables if "seed_generator" in v.path]
    return state


def scale_gradient(gradient, factor: float):
    """gradient * factor, keeping IndexedSlices sparse (they support no arithmetic operators)."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor


def repetition_dir(model_dir: str, repetition: int) -> str:
    """Where `--repetition r` trains MACH repetition r of the model in `model_dir`."""
    return os.path.join(model_dir, "repetitions", f"rep-{repetition:03d}")


class Trainer:
    """Trains `config` into `model_dir` (resuming from its latest checkpoint if there is one).

    With `repetition=r` (MACH with separate encoders) only repetition r is
    built and trained, in `repetition_dir(model_dir, r)`; see `merge_repetitions`.
    """

    def __init__(self, config, model_dir: str, repetition: int | None = None):
        self.config, self.repetition = config, repetition
        self.model_dir = model_dir if repetition is None else repetition_dir(model_dir, repetition)
        self.strategy = make_strategy(config.runtime)  # first: logical devices must precede TF's start-up
        set_seeds(config.runtime)
        self.chief = is_chief(self.strategy)
        self.info = ensure_converted(config.data)
        tc = config.trainer
        replicas = self.strategy.num_replicas_in_sync
        if tc.global_batch_size % replicas:
            raise ConfigError(f"trainer.global_batch_size ({tc.global_batch_size}) must be divisible by the "
                              f"number of replicas ({replicas})")
        n_train = self.info.num_points("train")
        if tc.global_batch_size > n_train:
            raise ConfigError(f"trainer.global_batch_size ({tc.global_batch_size}) exceeds the {n_train} "
                              "training points")
        self.steps_per_epoch = steps_per_epoch(n_train, tc.global_batch_size)
        self.total_steps = tc.train_steps or max(1, math.ceil(tc.epochs * self.steps_per_epoch))

        os.makedirs(self.model_dir, exist_ok=True)
        with self.strategy.scope():
            self.model = build_model(config.model, num_features=self.info.num_features,
                                     num_labels=self.info.num_labels, seed=config.runtime.seed,
                                     repetitions=None if repetition is None else [repetition],
                                     model_dir=self.model_dir)
            self.optimizer = build_optimizer(config.optimizer, total_steps=self.total_steps,
                                             sparse_variables=self.model.sparse_variables)
            # Optimizer slots must exist before the first step inside
            # strategy.run (tf-notes §1, pitfall 1).
            self.optimizer.build(self.model.trainable_variables)
        self.objective = None
        if config.optimizer.algorithm:
            check_multiclass(self.info)
            self.objective = DualObjective(config.optimizer, num_train=n_train,
                                           total_epochs=math.ceil(self.total_steps / self.steps_per_epoch),
                                           label_freq=self.info.label_freq, global_batch_size=tc.global_batch_size)
        parts = dict(model=self.model, optimizer=self.optimizer, rng=rng_state(self.model))
        if self.objective is not None:
            parts["dual"] = self.objective  # ν: the per-example dual state must resume with the weights
        self.checkpoint = tf.train.Checkpoint(**parts)
        # Every worker must take part in saving; only the chief's copy is kept.
        num_workers, index = cluster_spec()
        ckpt_dir = os.path.join(self.model_dir, CHECKPOINT_DIR) if self.chief else \
            os.path.join(self.model_dir, f".worker-{index}-tmp", CHECKPOINT_DIR)
        self.manager = tf.train.CheckpointManager(self.checkpoint, ckpt_dir, max_to_keep=tc.keep_checkpoints)
        self.evaluator = Evaluator(self.model, self.info, config.eval)
        # Periodic evaluation during training uses the validation split when there is one.
        self.val_evaluator = (Evaluator(self.model, self.info, config.eval, split="val")
                              if "val" in self.info.splits else self.evaluator)
        self.eval_every = tc.eval_every_steps or (round(tc.eval_every_epochs * self.steps_per_epoch)
                                                  if tc.eval_every_epochs else 0)
        self._train_loop = self._make_train_loop()
        self._weights_finite = tf.function(lambda: tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(v)) for v in self.model.trainable_variables]))

    # === The inner loop ===
    def _replica_step(self, batch):
        gb = self.config.trainer.global_batch_size
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            if self.objective is not None:
                # The dual objectives' weight loss is ≈1 by construction; report the
                # in-batch softmax cross-entropy instead (comparable across algorithms).
                per_example, reported = self.objective.per_example_loss(self.model, batch, training=True)
            else:
                per_example = reported = self.model.per_example_loss(batch, training=True)
            # Divide by the *global* batch: the cross-replica sum of gradients
            # is then the gradient of the global mean loss.
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=gb)
        grads = tape.gradient(loss, variables)
        clip = self.config.optimizer.clip_norm
        if clip:
            # Keras clips per replica before its all-reduce (tf-notes §1, pitfall 4):
            # sum first, clip the true gradient, then undo the sum that
            # apply_gradients will do again.
            ctx = tf.distribute.get_replica_context()
            grads = ctx.all_reduce("SUM", grads)
            grads, _ = tf.clip_by_global_norm(grads, clip)
            grads = [scale_gradient(g, 1.0 / ctx.num_replicas_in_sync) for g in grads]
        self.optimizer.apply_gradients(zip(grads, variables))
        return loss if reported is per_example else tf.nn.compute_average_loss(reported, global_batch_size=gb)

    def _make_train_loop(self):
        """Returns train_loop(iterator, num_steps: int tensor) -> mean global loss over the steps."""
        strategy = self.strategy

        def one_step(iterator):
            return strategy.reduce("SUM", strategy.run(self._replica_step, args=(next(iterator),)), axis=None)

        if strategy.num_replicas_in_sync == 1:
            @tf.function
            def train_loop(iterator, num_steps):
                total = tf.constant(0.0)
                for _ in tf.range(num_steps):
                    total += one_step(iterator)
                return total / tf.cast(num_steps, tf.float32)

            return train_loop

        # With several replicas the sparse-gradient all-reduce (a gather of
        # IndexedSlices of varying length) fails inside a tf.while_loop with
        # "Shape mismatch in the collective instance" on TF 2.21, so each step
        # is its own tf.function call, driven from the host.
        step_fn = tf.function(one_step)

        def host_loop(iterator, num_steps):
            n = int(num_steps)
            return tf.add_n([step_fn(iterator) for _ in range(n)]) / n

        return host_loop

    # === The outer loop ===
    def _step(self) -> int:
        return int(self.optimizer.iterations.value.numpy())  # .value: a MirroredVariable under Mirrored

    def _restore(self) -> int:
        latest = tf.train.latest_checkpoint(os.path.join(self.model_dir, CHECKPOINT_DIR))
        if latest:
            try:
                self.checkpoint.restore(latest).assert_consumed()
            except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
                raise TrainingError(
                    f"{latest} does not fit this config (the model or data shape changed?): "
                    f"{str(e).splitlines()[0][:300]}. Use another --model-dir, or the config in "
                    f"{os.path.join(self.model_dir, CONFIG_FILE)}") from None
            log.info("resumed from %s (step %d)", latest, self._step())
        return self._step()

    def _epoch_iterator(self, epoch: int, skip_steps: int):
        cfg = self.config
        files, num_points = self.info.files("train"), self.info.num_points("train")
        dataset = self.strategy.distribute_datasets_from_function(
            lambda ctx: train_dataset(files, num_points=num_points, global_batch_size=cfg.trainer.global_batch_size,
                                      seed=cfg.runtime.seed, shuffle_buffer=cfg.data.shuffle_buffer, epoch=epoch,
                                      skip_steps=skip_steps, input_context=ctx))
        return iter(dataset)

    def _save(self, step: int, last_saved: int) -> None:
        # The loss of a step is computed before its update, so a finite loss
        # does not prove finite weights: check them before they overwrite anything.
        if not bool(self._weights_finite()):
            raise TrainingError(f"the weights became non-finite before step {step}; stopped without saving, the "
                                f"last good checkpoint (step {last_saved}) is kept. Try a lower "
                                f"optimizer.learning_rate ({self.config.optimizer.learning_rate}) or set "
                                "optimizer.clip_norm.")
        self.manager.save(checkpoint_number=step)

    def _write_run_files(self) -> None:
        if not self.chief:
            return
        os.makedirs(self.model_dir, exist_ok=True)
        atomic_write_text(os.path.join(self.model_dir, CONFIG_FILE), config_to_json(self.config))
        atomic_write_text(os.path.join(self.model_dir, "run_info.json"), json.dumps({
            "tfxc": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "replicas": self.strategy.num_replicas_in_sync, "strategy": self.config.runtime.strategy,
            "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
            "repetition": self.repetition,
            "num_features": self.info.num_features, "num_labels": self.info.num_labels}, indent=2) + "\n")

    def evaluate(self) -> dict[str, float]:
        return self.evaluator.evaluate()

    def _periodic_eval(self, step: int, train_loss: float, writer) -> None:
        """Evaluates the val split (else test) and appends a line to eval_log.jsonl (chief only)."""
        start = time.time()
        metrics = self.val_evaluator.evaluate()
        split = self.val_evaluator.split
        with writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(f"{split}/{name}", value)
        if not self.chief:
            return
        log.info("%s at step %d (epoch %.2f, %.1fs): %s", split, step, step / self.steps_per_epoch,
                 time.time() - start, format_metrics(metrics))
        self._append_eval_log({"step": step, "epoch": step / self.steps_per_epoch, "split": split,
                               "train_loss": train_loss, **metrics})

    def _append_eval_log(self, record: dict) -> None:
        # Rewritten whole (atomically); lines past `step` are from a run that was
        # killed after that evaluation and are replaced on resume.
        path = os.path.join(self.model_dir, EVAL_LOG_FILE)
        lines = []
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                lines = [line for line in f.read().splitlines() if line.strip() and _earlier(json.loads(line), record)]
        lines.append(json.dumps(record))
        atomic_write_text(path, "\n".join(lines) + "\n")

    def train(self) -> dict[str, float]:
        """Runs to `total_steps`, then evaluates; returns the final metrics (percent)."""
        cfg, tc = self.config, self.config.trainer
        step = self._restore()  # before writing config.json: a mismatch must not overwrite the old one
        self._write_run_files()
        start_step = step
        writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "tensorboard")) if self.chief \
            else tf.summary.create_noop_writer()
        if self.chief:
            log.info("training %d steps (%.2f epochs of %d steps, global batch %d, %d replica(s)) from step %d",
                     self.total_steps, self.total_steps / self.steps_per_epoch, self.steps_per_epoch,
                     tc.global_batch_size, self.strategy.num_replicas_in_sync, step)
        t_start = t_log = time.time()
        step_log = step
        last_saved = step
        iterator, iterator_epoch = None, None
        while step < self.total_steps:
            epoch, step_in_epoch = divmod(step, self.steps_per_epoch)
            if epoch != iterator_epoch:
                iterator, iterator_epoch = self._epoch_iterator(epoch, step_in_epoch), epoch
                if self.objective is not None:
                    self.objective.start_epoch(epoch + 1)
            # A loop never crosses an epoch boundary (each epoch has its own stream).
            n = min(tc.steps_per_loop, self.total_steps - step, self.steps_per_epoch - step_in_epoch)
            if self.eval_every:  # stop at evaluation points, so curves are sampled where asked
                n = min(n, self.eval_every - step % self.eval_every)
            prev = step
            try:
                loss = float(self._train_loop(iterator, tf.constant(n)))
            except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                    tf.errors.CancelledError) as e:
                raise TrainingError(f"lost contact with another worker at step {step} "
                                    f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); the last checkpoint "
                                    f"(step {last_saved}) is kept, restart all workers to resume") from None
            step += n
            if not math.isfinite(loss):
                raise TrainingError(
                    f"the training loss became {loss} in steps {step - n + 1}..{step}; stopped without saving, "
                    f"the last good checkpoint (step {last_saved}) is kept in "
                    f"{os.path.join(self.model_dir, CHECKPOINT_DIR)}. Try a lower optimizer.learning_rate "
                    f"({cfg.optimizer.learning_rate}) or set optimizer.clip_norm.")
            with writer.as_default(step=step):
                tf.summary.scalar("train/loss", loss)
                tf.summary.scalar("train/learning_rate", float(self.optimizer.learning_rate))
            if crossed(prev, step, tc.log_every_steps) or step == self.total_steps:
                now = time.time()
                rate = (step - step_log) / max(now - t_log, 1e-9)
                eta = (self.total_steps - step) / max(rate, 1e-9)
                if self.chief:
                    log.info("step %d/%d (%.1f%%) epoch %.2f loss %.5f | %.1f steps/s %.0f ex/s | elapsed %s ETA %s",
                             step, self.total_steps, 100.0 * step / self.total_steps, step / self.steps_per_epoch,
                             loss, rate, rate * tc.global_batch_size, format_duration(now - t_start),
                             format_duration(eta))
                with writer.as_default(step=step):
                    tf.summary.scalar("train/steps_per_second", rate)
                t_log, step_log = now, step
            if crossed(prev, step, tc.checkpoint_every_steps) or step == self.total_steps:
                self._save(step, last_saved)
                last_saved = step
            if self.eval_every and crossed(prev, step, self.eval_every) and step < self.total_steps:
                self._periodic_eval(step, loss, writer)
        if last_saved != step:
            self._save(step, last_saved)
        train_seconds = time.time() - t_start
        if start_step < step and self.chief:
            log.info("trained %d steps in %s (peak resident memory %.2f GB)", step - start_step,
                     format_duration(train_seconds), peak_rss_gb())
        if self.eval_every and start_step < step and self.val_evaluator is not self.evaluator:
            self._periodic_eval(step, loss, writer)  # the validation curve's last point
        metrics = self.evaluate()
        self._log_metrics(metrics, step, writer)
        writer.flush()
        if self.chief and self.eval_every:
            self._append_eval_log({"step": step, "epoch": step / self.steps_per_epoch, "split": "test",
                                   "train_loss": loss if start_step < step else None, **metrics})
        if self.chief:
            # train_seconds: this invocation's training loop (a resumed run counts only its part).
            atomic_write_text(os.path.join(self.model_dir, METRICS_FILE),
                              json.dumps({"step": step, "split": "test", "train_seconds": round(train_seconds, 3),
                                          "steps_trained": step - start_step, **metrics}, indent=2) + "\n")
        else:
            shutil.rmtree(os.path.dirname(self.manager.directory), ignore_errors=True)
        return metrics

    def _log_metrics(self, metrics: dict, step: int, writer) -> None:
        with writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar("eval/" + name, value)
        if self.chief:
            log.info("eval at step %d: %s", step, format_metrics(metrics))


def merge_repetitions(config, model_dir: str) -> str:
    """Stacks the separately trained MACH repetitions of `model_dir` into one model checkpoint.

    Every repetition must have finished (`tfxc.train --repetition r`) with the
    same config. Writes `model_dir/config.json`, `checkpoints/` and
    `mach_lookup.npz`, so `tfxc.evaluate` and `tfxc.export` work on the merged model.

    Returns:
      The path of the merged checkpoint.
    """
    from tfxc.data.info import DatasetInfo

    head = config.model.head
    if head.name != "mach" or not head.separate_encoders:
        raise ConfigError("--merge-repetitions needs model.head.name 'mach' with separate_encoders=true")
    info = DatasetInfo.load(config.data.dir)
    kwargs = dict(num_features=info.num_features, num_labels=info.num_labels, seed=config.runtime.seed)
    os.makedirs(model_dir, exist_ok=True)
    merged = build_model(config.model, model_dir=model_dir, **kwargs)
    kernel, bias = merged.head.kernel.numpy(), merged.head.bias.numpy()
    for i, r in enumerate(merged.head.repetitions):
        directory = repetition_dir(model_dir, r)
        run_info_path = os.path.join(directory, "run_info.json")
        latest = tf.train.latest_checkpoint(os.path.join(directory, CHECKPOINT_DIR))
        if latest is None or not os.path.exists(run_info_path):
            raise TrainingError(f"repetition {r} has no checkpoint in {directory}; train it with "
                                f"`python -m tfxc.train --config ... --repetition {r}`")
        with open(os.path.join(directory, CONFIG_FILE), encoding="utf-8") as f:
            if f.read() != config_to_json(config):
                raise TrainingError(f"repetition {r} in {directory} was trained with a different config")
        with open(run_info_path, encoding="utf-8") as f:
            total = json.load(f)["total_steps"]
        step = int(latest.rsplit("-", 1)[1])
        if step != total:
            raise TrainingError(f"repetition {r} stopped at step {step} of {total}; resume it with "
                                f"`python -m tfxc.train --config ... --repetition {r}`")
        part = build_model(config.model, repetitions=[r], model_dir=directory, **kwargs)
        tf.train.Checkpoint(model=part).restore(latest).expect_partial().assert_existing_objects_matched()
        for target, source in zip(merged.encoder.encoders[i].variables, part.encoder.encoders[0].variables):
            target.assign(source.numpy())
        kernel[i], bias[i] = part.head.kernel.numpy()[0], part.head.bias.numpy()[0]
    merged.head.kernel.assign(kernel)
    merged.head.bias.assign(bias)
    atomic_write_text(os.path.join(model_dir, CONFIG_FILE), config_to_json(config))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=merged), os.path.join(model_dir, CHECKPOINT_DIR),
                                         max_to_keep=1)
    path = manager.save(checkpoint_number=0)
    log.info("merged %d repetitions into %s", len(merged.head.repetitions), path)
    return path


def _earlier(line: dict, record: dict) -> bool:
    return line["step"] < record["step"] or (line["step"] == record["step"] and line["split"] != record["split"])


def crossed(before: int, after: int, every: int) -> bool:
    """True if a multiple of `every` lies in (before, after]."""
    return after // every > before // every


def format_metrics(metrics: dict) -> str:
    keys = [k for k in metrics if k.split("@")[0] in ("P", "nDCG", "PSP", "Acc", "CE")]
    return " ".join(f"{k} {metrics[k]:.2f}" for k in keys)
