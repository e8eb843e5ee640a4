"""The start of a training run, shared by `tfxc.train` and `tfxc.fit`.

A run starts in one order, whatever called it:

1. the strategy (`tfxc.training.distribute`): logical devices must be set up
   before anything starts TensorFlow, and the conversion does;
2. the model directory's lock, so that no second run writes beside this one;
3. the checks against what the directory holds (a whole config only: a thin
   config is whole only once its data is known) and whatever the caller writes
   before the conversion (`fit`'s arrays);
4. the conversion (`tfxc.data.convert`), which a model trained on other data refuses
   before it replaces anything;
5. the config made whole (`tfxc.resolve.whole`: a thin config meets the recipe).

A run that is refused at any step has changed nothing, and the lock is released.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

from tfxc import resolve
from tfxc.errors import TrainingError


class Run(NamedTuple):
    """What a started run holds: the whole config, the recipe's reasons (empty for a whole config), the
    converted data (`DatasetInfo`), the strategy and the lock (None where nothing was taken), for `Trainer`;
    `prepared_from`: the wall clock (time.time()) when the data was ready, from which the model's own set-up
    (the recipe's measurements, the label tree, the warm starts) counts as training time."""

    config: object
    reasons: list
    info: object
    strategy: object
    lock: object
    prepared_from: float | None = None


def start_run(source: resolve.ConfigSource, model_dir: str, *, part: int | None = None,
              what: str = "a tfxc.train run", allow_changed_config: bool = False,
              before_conversion: Callable[[], None] | None = None, looking: bool = False) -> Run:
    """Steps 1–5 above for `source` (a config as read, `tfxc.resolve`) training into `model_dir` (or its part
    `part`). `looking=True` (printing a config, counting parts) takes neither the strategy nor the lock."""
    from tfxc.data.convert import ensure_converted
    from tfxc.training.distribute import make_strategy
    from tfxc.training.trainer import lock_for_training, training_dir

    strategy = None if looking else make_strategy(source.config.runtime)
    lock = None if looking else lock_for_training(model_dir, strategy, part, what=what)
    try:
        target = training_dir(model_dir, part)
        if not looking and target.ensemble() is not None:
            raise TrainingError(f"{target.path} holds an ensemble (ensemble.json, the recipe's best point); train another "
                                "model into another --model-dir, or the ensemble again with --recipe best")
        if not source.thin and not looking:
            target.check_resume(source.config, allow_changes=allow_changed_config)
        if before_conversion is not None:
            before_conversion()
        info = ensure_converted(source.config.data, accept=target.refuse_other_data)
        prepared_from = time.time()
        config, reasons = resolve.whole(source, info)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return Run(config, reasons, info, strategy, lock, prepared_from)
