"""The parts of a head trained in independent parts (e.g. MACH's repetitions) inside a model directory.

Each part `r` is a model directory of its own, MODEL_DIR/parts/part-NNN (`ModelFiles.part`), trained by
`tfxc.train --part r` (`tfxc.training.parts` links or merges them). `HeadParts` is the part of `ModelDir`
that checks them finished under one config and assembles the whole model from them, one part in memory at a
time.
"""

from __future__ import annotations

import logging

from tfxc.config.compare import stored_form
from tfxc.config.roles import role_of
from tfxc.errors import TrainingError

log = logging.getLogger("tfxc.model_dir")


class HeadParts:
    """`ModelDir`'s methods for a head trained in parts (it supplies `part`, `latest_step`, `config_text`,
    `config_changes`, `restore` and `path`)."""

    def finished_parts(self, config, info, allowed: tuple = ()) -> list["ModelDir"]:
        """The model directories of all parts, in part order, each checked finished.

        Args:
          config: the `ExperimentConfig` every part was trained with.
          info: the converted data's `DatasetInfo`.
          allowed: the roles of the settings `config` may change from the parts' (`tfxc.config.roles`;
            (PREDICTION,) to evaluate).

        Raises:
          ConfigError: the head trains as a whole.
          TrainingError: a part is missing, unfinished or was trained with another config.
        """
        from tfxc.config import config_to_json
        from tfxc.config.compare import same_stored_config
        from tfxc.errors import ConfigError
        from tfxc.model import num_parts
        from tfxc.data.length import TrainingLength

        count = num_parts(config.model)
        if count < 2:
            raise ConfigError(f"model.head '{config.model.head.name}' trains as a whole; there are no parts")
        total = TrainingLength.from_config(config.trainer, info.num_points("train")).total_steps
        expected_config = config_to_json(stored_form(config))
        parts = []
        for r in range(count):
            part_dir = self.part(r)
            step = part_dir.latest_step()
            if step is None:
                raise TrainingError(f"part {r} has no checkpoint in {part_dir.path}; train it with "
                                    f"`python -m tfxc.train --config ... --part {r}`")
            if not same_stored_config(part_dir.config_text(), expected_config) and (
                    not allowed or not part_dir.config_text()
                    or any(role_of(config, key) not in allowed for key in part_dir.config_changes(config))):
                raise TrainingError(f"part {r} in {part_dir.path} was trained with a different config")
            if step != total:
                raise TrainingError(f"part {r} stopped at step {step} of {total}; resume it with "
                                    f"`python -m tfxc.train --config ... --part {r}`")
            parts.append(part_dir)
        return parts

    def has_finished_parts(self, config) -> bool:
        """Whether this directory holds a checkpoint of every part of the configured head (not checked further)."""
        from tfxc.model import num_parts

        count = num_parts(config.model)
        return count > 1 and all(self.part(r).latest_step() is not None for r in range(count))

    def assemble(self, config, info):
        """The whole model built from the finished parts, restored one at a time (`Head.merge_part`), so at
        most one part is in memory next to it. Returns the `XCModel`."""
        import gc

        from tfxc.build_context import BuildContext
        from tfxc.model import build_model

        parts = self.finished_parts(config, info)
        model = build_model(config.model, BuildContext.from_info(info, seed=config.runtime.seed, model_dir=self.path))
        for r, part_dir in enumerate(parts):
            part = part_dir.restore(config, part=r, need_rows=False).model
            model.head.merge_part(model, r, part)
            del part
            gc.collect()  # the part's variables go before the next one is read
        log.info("assembled %d parts of %s", len(parts), self.path)
        return model
