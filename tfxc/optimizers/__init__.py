"""Optimizers built from `OptimizerConfig`; embedding tables are always updated row-sparsely."""

from __future__ import annotations

from tfxc.optimizers.lazy import LazyAdadelta, LazyAdagrad, LazyAdam, LazyRMSprop, LazySGD
from tfxc.optimizers.schedules import WarmupDecay


def build_optimizer(config, *, total_steps: int, sparse_variables=(), swa=(0, 0.0, 1)):
    """Returns a Keras optimizer for `config` (an `OptimizerConfig`).

    `swa` = (first averaged step, 1-based; SWA learning rate, 0 = none; anneal steps) adds SWA's anneal to
    the schedule (`WarmupDecay`).

    Weight decay is never applied to `sparse_variables`: Keras applies decay
    with a dense assign over the whole variable, which would undo the point of
    lazy updates on a large table.
    """
    swa_start, swa_learning_rate, swa_anneal_steps = swa
    schedule = WarmupDecay(config.learning_rate, config.warmup_steps, total_steps, config.schedule,
                           swa_start=max(swa_start - 1, 0), swa_learning_rate=swa_learning_rate,
                           swa_anneal_steps=swa_anneal_steps)
    decay = config.weight_decay or None
    if config.name == "adam":
        opt = LazyAdam(learning_rate=schedule, beta_1=config.beta_1, beta_2=config.beta_2,
                       epsilon=config.epsilon, weight_decay=decay)
    elif config.name == "sgd":
        opt = LazySGD(learning_rate=schedule, momentum=config.momentum, weight_decay=decay)
    elif config.name == "adagrad":
        opt = LazyAdagrad(learning_rate=schedule, initial_accumulator_value=config.initial_accumulator,
                          epsilon=config.epsilon, weight_decay=decay)
    elif config.name == "rmsprop":
        opt = LazyRMSprop(learning_rate=schedule, rho=config.rho, momentum=config.momentum, epsilon=config.epsilon,
                          centered=config.centered, weight_decay=decay)
    elif config.name == "adadelta":
        opt = LazyAdadelta(learning_rate=schedule, rho=config.rho, epsilon=config.epsilon, weight_decay=decay)
    else:  # validated in OptimizerConfig
        raise ValueError(config.name)
    if decay and (sparse_variables or config.weight_decay_exclude):
        opt.exclude_from_weight_decay(var_list=list(sparse_variables), var_names=list(config.weight_decay_exclude))
    return opt


def slots_per_weight(config) -> int:
    """How many values the optimizer of `config` (an `OptimizerConfig`) keeps per weight (its slot variables)."""
    momentum = 1 if config.momentum else 0
    return {"adam": 2, "sgd": momentum, "adagrad": 1, "rmsprop": 1 + momentum + int(config.centered),
            "adadelta": 2}[config.name]


__all__ = ["LazyAdadelta", "LazyAdagrad", "LazyAdam", "LazyRMSprop", "LazySGD", "WarmupDecay", "build_optimizer",
           "slots_per_weight"]
