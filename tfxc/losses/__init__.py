"""Training objectives, one registry: the head's own loss, or a dual-variable objective.

`{"loss": {"name": "head"}}` (the default) trains `Head.per_example_loss`;
`{"loss": {"name": "distill", "teacher": DIR}}` distils a trained teacher into the model
(`tfxc.losses.distill`);
`{"loss": {"name": "active_set", "size": 2048}}` trains an exact head on active sets of labels
(`tfxc.losses.active_set`).
The others are the extreme multi-class objectives of algorithms.md §4 (SCENT,
arXiv 2602.02877, and its baselines), which score only the batch's unique
labels through `Head.label_logits`:

| name | ν update | config |
|---|---|---|
| bsgd | none: log-sum-exp over the sampled negatives | `SampledSoftmaxConfig` |
| asgd | SGD on ν | `DualConfig` |
| softplus | SGD on ν of the softplus surrogate | `SoftplusConfig` |
| umax | ASGD, then ν ← ν̂ if ν < ν̂ − δ | `UmaxConfig` |
| sox | moving average of the inner mean | `DualConfig` |
| scent | stochastic proximal mirror step | `DualConfig` |
"""

from tfxc.losses.active_set import ActiveSetConfig, ActiveSetObjective
from tfxc.losses.base import HeadLoss, HeadLossConfig, Objective
from tfxc.losses.distill import DistillConfig, DistillObjective
from tfxc.losses.dual import DualConfig, DualObjective, SampledSoftmaxConfig, SoftplusConfig, UmaxConfig
from tfxc.registry import Registry

LOSSES = Registry("loss")
LOSSES.register("head", config=HeadLossConfig)(HeadLoss)
LOSSES.register("distill", config=DistillConfig)(DistillObjective)
LOSSES.register("active_set", config=ActiveSetConfig)(ActiveSetObjective)
# One objective class serves every dual algorithm; each name gets its own config class.
for _name, _config in (("bsgd", SampledSoftmaxConfig), ("asgd", DualConfig), ("softplus", SoftplusConfig),
                       ("umax", UmaxConfig), ("sox", DualConfig), ("scent", DualConfig)):
    LOSSES.register(_name, config=_config)(DualObjective)

__all__ = ["LOSSES", "ActiveSetConfig", "ActiveSetObjective", "DistillConfig", "DistillObjective", "DualConfig", "DualObjective", "HeadLoss", "HeadLossConfig", "Objective",
           "SampledSoftmaxConfig", "SoftplusConfig", "UmaxConfig"]
