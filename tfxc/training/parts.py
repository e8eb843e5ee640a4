"""Assembling a head trained in independent parts (e.g. MACH repetitions) into one model.

Each part `r` is trained alone by `tfxc.train --part r` into
`ModelDir(model_dir).part(r)`, possibly in another process or on another
machine. `ModelDir.finished_parts` checks that every part finished with the
same config; `link_parts` makes the directory the model of its parts (config
and data binding, no weights); `ModelDir.assemble` builds the whole model and
copies the parts in one at a time (`Head.merge_part`), so at most one part is
held next to the whole model (the Amazon-670K-shaped MACH model is 9.4 GB of
float32 weights, a repetition 0.3 GB); `merge_parts` writes the assembled
model as the directory's checkpoint. Evaluation need not assemble at all:
`tfxc.eval.parts` scores the split one part at a time.
"""

from __future__ import annotations

import logging

from tfxc._tf import tf
from tfxc.model import num_parts
from tfxc.model_dir import ModelDir

log = logging.getLogger("tfxc.train")


def link_parts(config, model_dir, info) -> None:
    """Makes `model_dir` the model of its finished parts: its config and data binding, no weights.

    `tfxc.evaluate` then scores the parts one at a time (`tfxc.eval.parts`) and `tfxc.export` /
    `tfxc.predict` assemble them (`ModelDir.restore`), so no copy of the whole model is written.

    Raises:
      ConfigError: the head trains as a whole.
      TrainingError: a part is missing, unfinished or was trained with another config.
    """
    model_dir = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
    model_dir.finished_parts(config, info)
    _write_whole(config, model_dir, info, "--link-parts")
    log.info("%s is the model of its %d parts", model_dir.path, num_parts(config.model))


def merge_parts(config, model_dir, info) -> str:
    """`link_parts`, and the assembled model written as the directory's checkpoint; returns its path.

    Raises:
      ConfigError: the head trains as a whole.
      TrainingError: a part is missing, unfinished or was trained with another config.
    """
    model_dir = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
    path = _write_whole(config, model_dir, info, "--merge-parts", model_dir.assemble(config, info))
    log.info("merged %d parts into %s", num_parts(config.model), path)
    return path


def _write_whole(config, model_dir: ModelDir, info, flag: str, model=None) -> str | None:
    """Under the directory's lock: the whole model's config and data binding, and `model` as its only
    checkpoint when given (returns that checkpoint's path)."""
    lock = model_dir.lock(f"a tfxc.train {flag} run")
    try:
        model_dir.bind_data(info, resuming=False)
        model_dir.write_config(config)
        if model is None:
            return None
        model_dir.repair_checkpoint_state()  # so that the manager sees (and deletes) the checkpoints there
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), model_dir.checkpoint_dir,
                                             max_to_keep=1)
        return manager.save(checkpoint_number=0)
    finally:
        lock.release()
