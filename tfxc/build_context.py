"""What a head or an encoder may know about the data and the run when it is built."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BuildContext:
    """The one argument (besides its config) that builds a head or an encoder.

    Attributes:
      num_features: size of the feature space D of the converted data.
      num_labels: size of the label space L.
      seed: `runtime.seed`; seeds initialisers and dropout (None: Keras' global seed).
      label_freq: int64 [L], the train split's label counts (None when not known).
      num_points: the train split's size (0 when not known).
      model_dir: the directory of the model being built, where a head keeps assets
        that must stay fixed for the model's life (e.g. MACH's label->bucket lookup);
        None for a throwaway model.
      part: build only this independently trained part of the head (see
        `Head.num_parts`), e.g. one MACH repetition; None builds the whole head.
      data_dir: the converted data directory (`tfxc.data.info.DatasetInfo`), for heads
        that learn structure from the training rows (the label tree's PIFA
        clustering); None when only the data's card is at hand (a restored model
        then reads that structure from `model_dir`).
      features_per_point: the train split's average non-zero features per point (0 when not
        known), e.g. for choosing how an embedding bag is computed.
    """

    num_features: int
    num_labels: int
    seed: int | None = None
    label_freq: np.ndarray | None = None
    model_dir: str | None = None
    part: int | None = None
    data_dir: str | None = None
    num_points: int = 0
    features_per_point: float = 0.0

    @classmethod
    def from_info(cls, info, *, seed: int | None, model_dir: str | None = None,
                  part: int | None = None) -> "BuildContext":
        """The context of a converted data set (`tfxc.data.info.DatasetInfo`).

        Every model is built through here before it trains (the API, a config, the recipe), so a train split
        without labels is refused here (`DatasetInfo.require_train_labels`), before a head meets it.
        """
        if hasattr(info, "require_train_labels"):  # a stand-in card (tests, a SavedModel's) has no rows
            info.require_train_labels()
        return cls(num_features=info.num_features, num_labels=info.num_labels, seed=seed,
                   label_freq=info.label_freq, model_dir=model_dir, part=part, data_dir=info.dir,
                   num_points=int(info.splits.get("train", {}).get("num_points", 0)),
                   features_per_point=float(info.splits.get("train", {}).get("avg_features_per_point", 0.0)))
