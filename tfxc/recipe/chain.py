"""The recipe as a chain of small pure rules, each `rule(profile, config, context) -> (config, reasons)`.

A rule reads the data's shape (`DataProfile`), the config the rules before it wrote and what was measured
on the data (`Context`), and returns a new config (it copies, never changes what it was given) and the
reasons for what it chose. A point of the recipe (`fast`, `default`, ...; `tfxc.recipe.points`) is a tuple
of rules run in order, as optax chains gradient transforms: `fast` is the default's rules followed by the
rules that make them cheaper.

A reason is a `Reason` record, about one topic ("head", "encoder", "selection", ...). A later rule's
reason of the same topic replaces the earlier one where it stood (fast's "encoder" replaces the
default's), one whose text is None withdraws it, and one of a new topic goes last. Reasons are
rendered to the printed lines ("encoder: a 256-wide bag ...") once, at the end (`render`), so no rule
reads or rewrites another's prose.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Iterable


@dataclass(frozen=True)
class Reason:
    """Why the recipe chose what it did about one topic.

    Attributes:
      topic: what the choice is about ("head", "encoder", "training", "selection", ...): a later reason of
        the same topic replaces this one.
      text: the choice and why, as printed after the topic; None withdraws the topic (the choice no longer
        applies, e.g. no "precision" line once the products are float32 again).
      heading: what the printed line starts with, where it is not the topic itself (the time estimate's
        "time (estimated from ...)").
    """

    topic: str
    text: str | None
    heading: str = ""

    def line(self) -> str:
        return f"{self.heading or self.topic}: {self.text}"


@dataclass(frozen=True)
class Context:
    """What rules read besides the data's shape and the config so far.

    Attributes:
      data: the config's data section (the sources, their format, a text section).
      centroids: the validation P@k of the nearest-centroid classifier the sparse term starts as, and the P@k
        any ranking could reach there (`tfxc.recipe.rules.measure_centroids`); None where not measured.
      label_sets: the labels are read as sets off a threshold (text sources), not as ranked lists.
      validation: the data has a validation split to choose the epoch on.
      val_points: the validation split's points (the time estimates).
      labels_present: the distinct labels of the train split (XR-Transformer's preliminary tree).
      seed: the run's seed (the `best` point's members start from it).
    """

    data: dict = field(default_factory=dict)
    centroids: tuple[float, float] | None = None
    label_sets: bool = False
    validation: bool = True
    val_points: int = 0
    labels_present: int = 0
    seed: int = 0


Rule = Callable[..., "tuple[dict, tuple[Reason, ...]]"]


def merged(reasons: Iterable[Reason], new: Iterable[Reason]) -> list[Reason]:
    """`reasons` with each of `new` in turn: replacing the one of its topic where it stood, withdrawing it
    (text None), or last (a new topic)."""
    out = list(reasons)
    for reason in new:
        at = next((i for i, old in enumerate(out) if old.topic == reason.topic), None)
        if reason.text is None:
            if at is not None:
                del out[at]
        elif at is None:
            out.append(reason)
        else:
            out[at] = reason
    return out


def run(rules: Iterable[Rule], profile, context: Context, config: dict | None = None,
        reasons: Iterable[Reason] = ()) -> tuple[dict, list[Reason]]:
    """The config and the reasons of `rules` applied in order, from `config` (empty) and `reasons`."""
    config, reasons = copy.deepcopy(config or {}), list(reasons)
    for rule in rules:
        config, new = rule(profile, config, context)
        reasons = merged(reasons, new)
    return config, reasons


def render(reasons: Iterable[Reason]) -> list[str]:
    """The printed lines of `reasons`, one each."""
    return [reason.line() for reason in reasons]
