"""The checkpoints of a training run: restoring the newest intact one, and saving when one is due.

A checkpoint is due every trainer.checkpoint_every_steps steps, every trainer.checkpoint_every_seconds of
wall time, and at the last step (the controller also saves before it stops early or on a signal). The
first checkpoint of a run writes config.json and run_info.json just before it. Weights or a loss that
became non-finite are never saved: the last good checkpoint is kept.

Under MultiWorkerMirroredStrategy every worker takes part in saving; only the chief's copy, in the model
directory, is kept (the others write into their scratch directories, `ModelDir.worker_scratch_dir`).
"""

from __future__ import annotations

import math
import os
import shutil
import time

from tfxc._tf import tf
from tfxc.errors import TrainingError
from tfxc.training.distribute import any_worker
from tfxc.utils.graph import graph_function
from tfxc.utils.io import atomic_write_text


def crossed(before: int, after: int, every: int) -> bool:
    """True if a multiple of `every` lies in (before, after]."""
    return after // every > before // every


class RunCheckpoints:
    """Restores and saves the checkpoint of a training run (see the module docstring).

    Args:
      components: the built run (`tfxc.training.components.TrainingComponents`).
      model_dir: the `ModelDir` trained into.
      own_dir: where this worker's checkpoint manager writes: `model_dir` on the chief, a scratch
        `ModelDir` on the other workers.
      run_info: what run_info.json records about this run.
      chief: this worker writes the model directory.
    """

    def __init__(self, components, model_dir, own_dir, run_info: dict, chief: bool):
        self.config, self.model_dir, self.run_info, self.chief = components.config, model_dir, run_info, chief
        self.optimizer, self.strategy = components.optimizer, components.strategy
        tc = self.config.trainer
        self.every_steps, self.every_seconds = tc.checkpoint_every_steps, tc.checkpoint_every_seconds
        self.checkpoint = components.checkpoint()
        if chief:  # the manager reads the state file itself, and would miss checkpoints a damaged one hides
            model_dir.repair_checkpoint_state()
        self.manager = tf.train.CheckpointManager(self.checkpoint, own_dir.checkpoint_dir,
                                                  max_to_keep=tc.keep_checkpoints)
        self.seconds, self.count = 0.0, 0  # what saving costs the run (logged at the end)
        self.last_time = time.time()  # for trainer.checkpoint_every_seconds (reset when the loop starts)
        self.last_step: int | None = None  # the step of the newest checkpoint (None: not yet restored)
        self._config_written = False  # config.json is (re)written with this run's first checkpoint
        variables = components.model.trainable_variables
        self._weights_finite = graph_function(
            lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))

    def step(self) -> int:
        """The optimizer's step counter: the number of steps trained."""
        return int(self.optimizer.iterations.value.numpy())  # .value: a MirroredVariable under Mirrored

    def restore(self) -> str | None:
        """Restores the newest intact checkpoint if there is one; returns its path (None without one).

        Raises:
          TrainingError: the checkpoints do not fit this config, or every one is damaged.
        """
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
        self.last_step = self.step()
        return restored

    def restore_newest(self) -> None:
        """Restores all of the latest checkpoint this run saved (after damaged selected weights overwrote
        part of the model)."""
        self.checkpoint.restore(self.manager.latest_checkpoint).expect_partial()

    # === Saving ===
    def due(self, before: int, step: int, total: int) -> bool:
        """Whether a checkpoint is due after the steps (before, step] of `total`, agreed by every worker
        (they must save together; their clocks differ). A collective with trainer.checkpoint_every_seconds."""
        if (self.every_steps and crossed(before, step, self.every_steps)) or step == total:
            return True
        if not self.every_seconds:
            return False
        return any_worker(self.strategy, time.time() - self.last_time >= self.every_seconds)

    def save_unless_saved(self, step: int) -> None:
        """Saves the checkpoint of `step` unless it is the newest one already."""
        if self.last_step != step:
            self.save(step)

    def save(self, step: int) -> None:
        """Saves the checkpoint of `step` (and before this run's first one, config.json and run_info.json).

        Raises:
          TrainingError: the weights became non-finite (nothing is saved), or the checkpoint cannot be
            written (nothing half-written stays).
        """
        # The loss of a step is computed before its update, so a finite loss
        # does not prove finite weights: check them before they overwrite anything.
        started = time.time()
        if not bool(self._weights_finite()):
            raise TrainingError(f"the weights became non-finite before step {step}; stopped without saving, "
                                f"{self.kept()}. {self.advice()}")
        previous_config = self._write_run_files()
        try:
            self.manager.save(checkpoint_number=step)
            self._config_written = True
            self.last_time = time.time()
            self.seconds += time.time() - started
            self.count += 1
            self.last_step = step
        except tf.errors.OpError as e:  # disk full, quota, permissions: no half-written checkpoint stays
            self._restore_config(previous_config)
            directory = self.manager.directory
            for name in os.listdir(directory) if os.path.isdir(directory) else []:
                if name.startswith(f"ckpt-{step}_temp") or name.startswith(f"ckpt-{step}."):
                    target = os.path.join(directory, name)
                    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
            raise TrainingError(f"cannot write the checkpoint of step {step} to {directory} "
                                f"({_first_line(e)}); {self.kept()}") from None

    def check_loss(self, loss: float, first: int, last: int) -> None:
        """Raises a TrainingError (nothing is saved) if the training loss of steps first..last is not finite."""
        if not math.isfinite(loss):
            raise TrainingError(f"the training loss became {loss} in steps {first}..{last}; stopped "
                                f"without saving, {self.kept()}. {self.advice()}")

    def kept(self) -> str:
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

    def advice(self) -> str:
        return (f"Try a lower optimizer.learning_rate ({self.config.optimizer.learning_rate}) or set "
                "optimizer.clip_norm.")

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
        self.model_dir.write_run_info(self.run_info)
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


def _first_line(error: Exception) -> str:
    """A TF error's message without the op and function-node decorations."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if text.startswith("{{function_node"):
        text = text.split("}}", 1)[-1].strip()
    return text.split(" [Op:", 1)[0]
