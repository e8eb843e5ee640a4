"""Assembling a head trained in independent parts (e.g. MACH repetitions) into one model.

Each part `r` is trained alone by `tfxc.train --part r` into
`ModelDir(model_dir).part(r)`, possibly in another process or on another
machine; `merge_parts` checks that every part finished with the same config
and has the head copy their weights into the whole model (`Head.merge_parts`).
"""

from __future__ import annotations

import logging

from tfxc._tf import tf
from tfxc.build_context import BuildContext
from tfxc.config import config_to_json
from tfxc.errors import ConfigError, TrainingError
from tfxc.model import build_model, num_parts
from tfxc.model_dir import ModelDir
from tfxc.training.length import TrainingLength

log = logging.getLogger("tfxc.train")


def merge_parts(config, model_dir, info) -> str:
    """Writes the whole model of `model_dir` from its finished parts; returns the merged checkpoint's path.

    Writes `config.json` and `checkpoints/` (and the head's assets), so
    `tfxc.evaluate` and `tfxc.export` work on the merged model.

    Args:
      config: the `ExperimentConfig` every part was trained with.
      model_dir: a path or `ModelDir`.
      info: the converted data's `DatasetInfo`.

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
        if part_dir.config_text() != expected_config:
            raise TrainingError(f"part {r} in {part_dir.path} was trained with a different config")
        if step != total:
            raise TrainingError(f"part {r} stopped at step {step} of {total}; resume it with "
                                f"`python -m tfxc.train --config ... --part {r}`")
        parts.append(part_dir.restore(config, part=r).model)
    lock = model_dir.lock("a tfxc.train --merge-parts run")
    try:
        merged = build_model(config.model, BuildContext.from_info(info, seed=config.runtime.seed,
                                                                  model_dir=model_dir.path))
        merged.head.merge_parts(merged, parts)
        model_dir.bind_data(info, resuming=False)
        model_dir.write_config(config)
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=merged), model_dir.checkpoint_dir,
                                             max_to_keep=1)
        path = manager.save(checkpoint_number=0)
    finally:
        lock.release()
    log.info("merged %d parts into %s", count, path)
    return path
