"""Assembling a head trained in independent parts (e.g. MACH repetitions) into one model.

Each part `r` is trained alone by `tfxc.train --part r` into
`ModelDir(model_dir).part(r)`, possibly in another process or on another
machine. `finished_parts` checks that every part finished with the same
config; `link_parts` makes the directory the model of its parts (config and
data binding, no weights); `assemble` builds the whole model and copies the
parts in one at a time (`Head.merge_part`), so at most one part is held next
to the whole model (the Amazon-670K-shaped MACH model is 9.4 GB of float32
weights, a repetition 0.3 GB); `merge_parts` writes the assembled model as the
directory's checkpoint. Evaluation need not assemble at all:
`tfxc.eval.parts` scores the split one part at a time.
"""

from __future__ import annotations

import gc
import logging

from tfxc._tf import tf
from tfxc.build_context import BuildContext
from tfxc.config import config_to_json
from tfxc.errors import ConfigError, TrainingError
from tfxc.model import build_model, num_parts
from tfxc.model_dir import ModelDir
from tfxc.training.length import TrainingLength

log = logging.getLogger("tfxc.train")


# Settings that change how a model is evaluated, not the model: an evaluation may override them.
EVALUATION_KEYS = ("eval.", "model.head.eval_")


def finished_parts(config, model_dir, info, allowed: tuple = ()) -> list[ModelDir]:
    """The model directories of all parts of `model_dir`, in part order, each checked finished.

    Args:
      config: the `ExperimentConfig` every part was trained with.
      model_dir: a path or `ModelDir`.
      info: the converted data's `DatasetInfo`.
      allowed: prefixes of keys `config` may change from the parts' (`EVALUATION_KEYS` to evaluate).

    Raises:
      ConfigError: the head trains as a whole.
      TrainingError: a part is missing, unfinished or was trained with another config.
    """
    model_dir = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
    count = num_parts(config.model)
    if count < 2:
        raise ConfigError(f"model.head '{config.model.head.name}' trains as a whole; there are no parts to merge")
    total = TrainingLength.from_config(config.trainer, info.num_points("train")).total_steps
    expected_config = config_to_json(config)
    parts = []
    for r in range(count):
        part_dir = model_dir.part(r)
        step = part_dir.latest_step()
        if step is None:
            raise TrainingError(f"part {r} has no checkpoint in {part_dir.path}; train it with "
                                f"`python -m tfxc.train --config ... --part {r}`")
        if part_dir.config_text() != expected_config and (
                not allowed or not part_dir.config_text()
                or any(not key.startswith(allowed) for key in part_dir.config_changes(config))):
            raise TrainingError(f"part {r} in {part_dir.path} was trained with a different config")
        if step != total:
            raise TrainingError(f"part {r} stopped at step {step} of {total}; resume it with "
                                f"`python -m tfxc.train --config ... --part {r}`")
        parts.append(part_dir)
    return parts


def has_finished_parts(config, model_dir) -> bool:
    """Whether `model_dir` holds a checkpoint of every part of the configured head (not checked further)."""
    model_dir = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
    count = num_parts(config.model)
    return count > 1 and all(model_dir.part(r).latest_step() is not None for r in range(count))


def assemble(config, model_dir, info):
    """The whole model of `model_dir` built from its finished parts, restored one at a time.

    Returns:
      the `XCModel` (its head's assets, e.g. the MACH lookup, live in `model_dir`).
    """
    model_dir = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
    parts = finished_parts(config, model_dir, info)
    model = build_model(config.model, BuildContext.from_info(info, seed=config.runtime.seed,
                                                             model_dir=model_dir.path))
    for r, part_dir in enumerate(parts):
        part = part_dir.restore(config, part=r, need_rows=False).model
        model.head.merge_part(model, r, part)
        del part
        gc.collect()  # the part's variables go before the next one is read
    log.info("assembled %d parts of %s", len(parts), model_dir.path)
    return model


def link_parts(config, model_dir, info) -> None:
    """Makes `model_dir` the model of its finished parts: its config and data binding, no weights.

    `tfxc.evaluate` then scores the parts one at a time (`tfxc.eval.parts`) and `tfxc.export` /
    `tfxc.predict` assemble them (`ModelDir.restore`), so no copy of the whole model is written.

    Raises:
      ConfigError: the head trains as a whole.
      TrainingError: a part is missing, unfinished or was trained with another config.
    """
    model_dir = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
    finished_parts(config, model_dir, info)
    lock = model_dir.lock("a tfxc.train --link-parts run")
    try:
        model_dir.bind_data(info, resuming=False)
        model_dir.write_config(config)
    finally:
        lock.release()
    log.info("%s is the model of its %d parts", model_dir.path, num_parts(config.model))


def merge_parts(config, model_dir, info) -> str:
    """`link_parts`, and the assembled model written as the directory's checkpoint; returns its path.

    Raises:
      ConfigError: the head trains as a whole.
      TrainingError: a part is missing, unfinished or was trained with another config.
    """
    model_dir = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
    merged = assemble(config, model_dir, info)
    lock = model_dir.lock("a tfxc.train --merge-parts run")
    try:
        model_dir.bind_data(info, resuming=False)
        model_dir.write_config(config)
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=merged), model_dir.checkpoint_dir,
                                             max_to_keep=1)
        path = manager.save(checkpoint_number=0)
    finally:
        lock.release()
    log.info("merged %d parts into %s", num_parts(config.model), path)
    return path
