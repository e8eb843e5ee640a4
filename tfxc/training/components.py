"""Building a training run: seeds, the model, the optimizer, the objective and the input stream.

Everything is built once, before the loop starts, from the config, the
strategy and the converted data (conversion happens before, see `tfxc.train`):

  strategy = make_strategy(config.runtime)          # first: logical devices precede TF's start-up
  info = ensure_converted(config.data)
  parts = build_components(config, strategy, info, ModelDir(path))
"""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.build_context import BuildContext
from tfxc.data.length import TrainingLength
from tfxc.data.pipeline import train_dataset
from tfxc.errors import ConfigError
from tfxc.losses import LOSSES
from tfxc.model import build_model
from tfxc.optimizers import build_optimizer
from tfxc.optimizers.averaging import build_average


def set_seeds(runtime) -> None:
    keras.utils.set_random_seed(runtime.seed)  # Python, NumPy and TF global seeds
    if runtime.deterministic:
        tf.config.experimental.enable_op_determinism()


def rng_state(model) -> tf.Module:
    """The model's non-trainable state (dropout seed-generator states) as a checkpointable module.

    Keras 3 keeps each Dropout's seed state in a variable that
    `tf.train.Checkpoint(model=...)` does not reach; without it a resumed run
    would draw different dropout masks than an uninterrupted one.
    """
    state = tf.Module(name="rng_state")
    state.variables_list = [v.value for v in model.non_trainable_variables if "seed_generator" in v.path]
    return state


@dataclass
class TrainingComponents:
    """The parts of one training run.

    Attributes:
      config: the `ExperimentConfig`.
      strategy: the `tf.distribute.Strategy`.
      info: the `DatasetInfo` of the converted data.
      length: the `TrainingLength`.
      model: the `XCModel` (variables under the strategy).
      optimizer: the built Keras optimizer.
      objective: the `tfxc.losses.Objective` (its state lives outside the strategy scope).
      average: the `WeightAverage` of the weights (EMA/SWA), or None.
    """

    config: object
    strategy: tf.distribute.Strategy
    info: object
    length: TrainingLength
    model: object
    optimizer: object
    objective: object
    average: object = None

    def checkpoint(self) -> tf.train.Checkpoint:
        """Everything a resumed run needs to continue bit-exactly."""
        extra = {} if self.average is None else {"average": self.average}
        return tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, rng=rng_state(self.model),
                                   objective=self.objective, **extra)

    def averaged(self):
        """A context in which the model holds its weight average (a no-op without one)."""
        import contextlib

        return self.average.swapped() if self.average is not None else contextlib.nullcontext()

    def train_iterator(self, epoch: int, skip_steps: int = 0, num_epochs: int = 1):
        """An iterator over the distributed batches of epochs `epoch` .. `epoch + num_epochs - 1`, starting
        `skip_steps` steps into the first."""
        cfg, info = self.config, self.info
        files, num_points = info.files("train"), info.num_points("train")
        dataset = self.strategy.distribute_datasets_from_function(
            lambda ctx: train_dataset(files, num_points=num_points, global_batch_size=cfg.trainer.global_batch_size,
                                      seed=cfg.runtime.seed, shuffle_buffer=cfg.data.shuffle_buffer, epoch=epoch,
                                      skip_steps=skip_steps, input_context=ctx, preprocess=self.model.encoder.preprocess,
                                      num_epochs=num_epochs, group_by_length=cfg.data.group_by_length))
        return iter(dataset)


def build_components(config, strategy, info, model_dir, part: int | None = None,
                     trust_imports=False) -> TrainingComponents:
    """Builds the run's parts; `part` trains one independently trained part of the head alone.

    Args:
      config: the `ExperimentConfig`.
      strategy: from `tfxc.training.distribute.make_strategy`.
      info: the converted data's `DatasetInfo`.
      model_dir: the `ModelDir` being trained into (the head keeps its assets there).
      part: see `Head.num_parts`; None trains the whole model.
      trust_imports: which `imports` the config of a model directory the objective restores (a distillation
        teacher) may run (see `tfxc.config.loading.trusted_imports`).
    """
    set_seeds(config.runtime)
    tc = config.trainer
    replicas = strategy.num_replicas_in_sync
    if tc.global_batch_size % replicas:
        raise ConfigError(f"trainer.global_batch_size ({tc.global_batch_size}) must be divisible by the "
                          f"number of replicas ({replicas})")
    length = TrainingLength.from_config(tc, info.num_points("train"))
    context = BuildContext.from_info(info, seed=config.runtime.seed, model_dir=model_dir.path, part=part)
    with strategy.scope():
        model = build_model(config.model, context)
        optimizer = build_optimizer(config.optimizer, total_steps=length.total_steps,
                                    sparse_variables=model.sparse_variables,
                                    swa=(tc.swa_start(length.steps_per_epoch), tc.swa_learning_rate,
                                         tc.swa_anneal_steps))
        # Optimizer slots must exist before the first step inside
        # strategy.run (tf-notes §1, pitfall 1).
        optimizer.build(model.trainable_variables)
        average = build_average(tc, model, length.steps_per_epoch)
    # Outside the scope: an objective's per-example state is one plain variable per process.
    # Only an objective that reads model directories takes the trust: the others' (and plugins') signature stays.
    trust = {"trust_imports": trust_imports} if getattr(LOSSES.get(config.loss.name), "reads_model_dirs", False) else {}
    objective = LOSSES.build(config.loss, info=info, length=length, global_batch_size=tc.global_batch_size, **trust)
    objective.check_model(model)
    return TrainingComponents(config, strategy, info, length, model, optimizer, objective, average)
