"""The trainer: a built run (`components`) driven by the outer loop (`controller`) around the inner one (`loop`).

  strategy = make_strategy(config.runtime)     # first: logical devices precede TF's start-up
  info = ensure_converted(config.data)         # data conversion, before anything is built
  trainer = Trainer(config, "runs/x", info, strategy)
  metrics = trainer.train()
"""

from __future__ import annotations

from tfxc.data.usage import release_data
from tfxc.model_dir import ModelDir
from tfxc.training.components import build_components
from tfxc.training.controller import Controller
from tfxc.training.distribute import is_chief
from tfxc.training.memory_plan import check_memory, plan_memory


class Trainer:
    """Trains `config` into `model_dir` (resuming from its latest checkpoint if there is one).

    Args:
      config: the `ExperimentConfig`.
      model_dir: a path or `ModelDir`.
      info: the converted data's `DatasetInfo` (see `tfxc.data.convert.ensure_converted`).
      strategy: from `tfxc.training.distribute.make_strategy(config.runtime)`.
      part: train only this independently trained part of the head (see
        `Head.num_parts`), in `ModelDir(model_dir).part(part)`; `merge_parts`
        assembles the whole model afterwards.
      allow_changed_config: resume a checkpoint under a config that changes more
        than the settings whose role leaves the trained model as it is (`tfxc.config.roles`; refused otherwise).
      final_evaluation: evaluate the test split after training (`--skip-eval` turns it off).
      lock: the directory's lock, when the caller took it already (`lock_for_training`: before the data
        was converted); the trainer releases it when training ends.
      trust_imports: which `imports` of a model directory the run restores (a distillation teacher) may run
        (`--trust-imports`; see `tfxc.config.loading.trusted_imports`).
      ignore_memory_plan: train even when the memory plan (`tfxc.training.memory_plan`) exceeds the
        available memory (a warning instead of the refusal).
      prepared_from: the wall clock (time.time()) when the data was ready (`tfxc.launch.Run`): the time from
        it to the loop's start (the model's set-up) is recorded as metrics.json's `prepare_seconds`.

    Raises:
      TfxcError: another run holds the model directory.
      TrainingError: the checkpoint was trained with another config, or on other data.
      MemoryPlanError: the memory plan exceeds the available memory (and `ignore_memory_plan` is off).
    """

    def __init__(self, config, model_dir, info, strategy, part: int | None = None,
                 allow_changed_config: bool = False, final_evaluation: bool = True, lock=None,
                 ignore_memory_plan: bool = False, trust_imports=False, prepared_from: float | None = None):
        self.model_dir = training_dir(model_dir, part)
        self.chief = is_chief(strategy)
        # The chief writes the directory: it holds the lock from before anything is written until the end.
        self._lock = lock or (self.model_dir.lock("a tfxc.train run") if self.chief else None)
        self._data_dir = info.dir
        try:
            # The memory plan first: logged, and a run that would not fit is refused before anything is written.
            check_memory(plan_memory(config, info, part), ignore=ignore_memory_plan)
            self.model_dir.check_resume(config, allow_changes=allow_changed_config)
            if self.chief:
                self.model_dir.bind_data(info, resuming=self.model_dir.latest_checkpoint() is not None)
            self.components = build_components(config, strategy, info, self.model_dir, part, trust_imports)
            self.controller = Controller(self.components, self.model_dir, final_evaluation, prepared_from)
        except BaseException:
            self.close()
            raise

    def train(self) -> dict[str, float]:
        """Trains to the configured length, then evaluates on test; returns the metrics (percent).

        The model directory stays locked until training ends (or fails).
        """
        try:
            return self.controller.train()
        finally:
            self.close()

    def close(self) -> None:
        """Releases the model directory (idempotent)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        release_data(self._data_dir)


def training_dir(model_dir, part: int | None = None) -> ModelDir:
    """The directory a run writes: `model_dir`, or the directory of its part `part`."""
    root = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
    return root if part is None else root.part(part)


def lock_for_training(model_dir, strategy, part: int | None = None, what: str = "a tfxc.train run"):
    """The lock a training run takes before anything else, the data's conversion included (None on the
    workers that do not write: under MultiWorkerMirroredStrategy only the chief does). Pass it to `Trainer`."""
    return training_dir(model_dir, part).lock(what) if is_chief(strategy) else None

