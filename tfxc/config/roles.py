"""What a setting acts on, declared where the setting is defined: the one rule for what a resumed run (or a
trained model read again) may change.

A field carries its role in its metadata (`field(default=..., metadata=role(PREDICTION))`); a section whose
every setting has one role says so as a class attribute (`ROLE = PREDICTION`), as a head's `prediction`
section does. A prediction setting that training reads as well (a label tree's beam, when its nodes are the
negatives) is named by its section's `reads_in_training()` (`read_in_training`): a trained model takes
another value, a resumed run does not. Settings without a role change the model, the data or the
optimisation: resuming a checkpoint under other values would mix two experiments, so
`ModelDir.check_resume` refuses them, and a trained model read for use refuses them too
(`ModelDir.load_config`). The roles that leave the trained model as it is:

  LENGTH      how long training runs (epochs, steps, patience)
  CADENCE     how often it logs, evaluates, checkpoints
  PREDICTION  how a trained model ranks, evaluates and is exported (k, thresholds, re-ranking)
  LAYOUT      where it runs (the strategy and replica layout: the data order does not depend on it)
"""

from __future__ import annotations

import dataclasses

LENGTH, CADENCE, PREDICTION, LAYOUT = "length", "cadence", "prediction", "layout"
ROLES = (LENGTH, CADENCE, PREDICTION, LAYOUT)


def role(name: str) -> dict:
    """The metadata of a field with role `name`."""
    if name not in ROLES:
        raise ValueError(f"unknown role {name!r}; known: {', '.join(ROLES)}")
    return {"role": name}


def role_of(config, dotted_key: str) -> str | None:
    """The role of the setting `dotted_key` ("trainer.epochs", "model.head.propensity_rerank") in `config` (a
    dataclass tree), or None: no role declared, or no such setting (a registry entry replaced whole)."""
    node, parts = config, dotted_key.split(".")
    for i, name in enumerate(parts):
        if not dataclasses.is_dataclass(node):
            return None
        section = getattr(type(node), "ROLE", None)
        if section is not None:
            return section
        fields = {f.name: f for f in dataclasses.fields(node)}
        if name not in fields:
            return None
        if i == len(parts) - 1:
            return fields[name].metadata.get("role") or getattr(type(getattr(node, name)), "ROLE", None)
        node = getattr(node, name)
    return None


def read_in_training(config, dotted_key: str) -> bool:
    """Whether training reads the setting `dotted_key` although its role says otherwise: a section on its path
    names it in `reads_in_training()` (e.g. "prediction.beam_size" of a label tree whose beam picks negatives)."""
    node, parts = config, dotted_key.split(".")
    for i, name in enumerate(parts):
        if not dataclasses.is_dataclass(node):
            return False
        reads = getattr(node, "reads_in_training", None)
        if reads is not None and ".".join(parts[i:]) in reads():
            return True
        node = getattr(node, name, None)
    return False
