"""The memory plan of a data set that is not there yet: its shape declared instead of read.

  python -m tfxc.train --config configs/mach_amazon670k.json --plan \
      --shape rows=490449,features=135909,labels=670091,labels_per_row=5.45,features_per_row=75.7

`DataShape` stands in for the data's card (`DataShape.info`) in `tfxc.training.memory_plan.plan_memory`; a head
trained in parts (MACH) also gets one part's training time (`tfxc.training.time_plan`) and the SavedModel's size.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from dataclasses import dataclass

import numpy as np

from tfxc.errors import ConfigError
from tfxc.training.memory_plan import MemoryPlan, available_bytes, gib, model_shapes, nbytes, plan_memory

@dataclass(frozen=True)
class DataShape:
    """The shape of a training set declared instead of read (`tfxc.train --plan --shape ...`): the plan of a
    data set not downloaded yet.

    Attributes:
      rows: training rows; features: the feature space; labels: the label space;
      labels_per_row, features_per_row: averages over the training rows (non-zero features).
    """

    rows: int
    features: int
    labels: int
    labels_per_row: float
    features_per_row: float

    @classmethod
    def parse(cls, text: str) -> "DataShape":
        """From "rows=490449,features=135909,labels=670091,labels_per_row=5.45,features_per_row=75.7"."""
        from tfxc.utils.numbers import ascii_float, ascii_int

        keys = [f.name for f in dataclasses.fields(cls)]
        values = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, eq, value = (part.strip() for part in item.partition("="))
            if not eq or key not in keys:
                raise ConfigError(f"--shape: '{item}' is not KEY=VALUE with KEY one of {', '.join(keys)}")
            if key in values:
                raise ConfigError(f"--shape: {key} is given twice")
            # As every number tfxc reads from a person: ASCII, finite (float() and int() take '1_000', '١٢', 'nan').
            number = ascii_float(value) if key.endswith("_per_row") else ascii_int(value)
            if number is None:
                raise ConfigError(f"--shape: {key}={value[:40]!r} is not " + (
                    "a finite number in ASCII decimal notation (e.g. 5.45)" if key.endswith("_per_row")
                    else "a number in ASCII digits (a whole number, e.g. 490449)"))
            if number <= 0:
                raise ConfigError(f"--shape: {key}={value} must be positive")
            values[key] = number
        missing = [key for key in keys if key not in values]
        if missing:
            raise ConfigError(f"--shape: give {', '.join(missing)} too ({SHAPE_EXAMPLE})")
        return cls(**values)

    def describe(self) -> str:
        return ",".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))

    def info(self):
        """A `DatasetInfo` of this shape with no shards behind it (every label seen equally often)."""
        from tfxc.data.info import DatasetInfo

        train = {"num_points": self.rows, "num_shards": 0, "nnz": round(self.rows * self.features_per_row),
                 "avg_features_per_point": self.features_per_row, "avg_labels_per_point": self.labels_per_row,
                 "points_without_labels": 0, "points_without_features": 0}
        freq = np.full(self.labels, max(1, round(self.rows * self.labels_per_row / self.labels)), np.int64)
        return DatasetInfo(os.path.join(os.sep, "nonexistent", "declared-shape"), self.features, self.labels,
                           {"train": train}, freq)

    def profile(self):
        """The shape as `tfxc.training.time_plan.work` reads a data set's."""
        from types import SimpleNamespace

        return SimpleNamespace(num_points=self.rows, num_features=self.features, num_labels=self.labels,
                               labels_per_point=self.labels_per_row, features_per_point=self.features_per_row)


# Amazon-670K's training set (the Extreme Classification Repository's statistics).
SHAPE_EXAMPLE = "e.g. --shape rows=490449,features=135909,labels=670091,labels_per_row=5.45,features_per_row=75.7"


def missing_data(data_config) -> str | None:
    """The training source a plan would need to read but which is not there (None: the data can be read:
    converted already, generated, or its source exists)."""
    from tfxc.data.info import STATS_FILE

    if data_config.format == "synthetic" or os.path.exists(os.path.join(data_config.dir, STATS_FILE)):
        return None
    source = data_config.source_dir or data_config.train or data_config.dir
    return None if source and glob.glob(source) else (source or "data.train")


def no_data_message() -> str:
    """What to do when the plan has neither the data nor a declared shape."""
    return ("not found, and the memory plan reads the training data's shape from it; plan from a declared "
            "shape instead: --plan --shape rows=N,features=D,labels=L,labels_per_row=l,features_per_row=f "
            f"({SHAPE_EXAMPLE})")


def show_shape_plan(config, shape: DataShape, part: int | None = None, rates=None) -> MemoryPlan:
    """Prints the memory plan of training `config` on data of the declared `shape`, read from nowhere, and
    returns it. A head trained in parts (MACH) also gets one part's training time on this machine (`rates`:
    None measures them, `tfxc.training.time_plan.calibrate`) and the SavedModel's size."""
    plan = plan_memory(config, shape.info(), part)
    plan.notes.append(f"planned from the declared shape {shape.describe()} (no data read)")
    whole = _whole_model_bytes(config, shape)
    plan.notes.append(f"the SavedModel (tfxc.export) holds the variables of the whole model: about {gib(whole)}")
    if plan.parts > 1:
        from tfxc.training.time_plan import calibrate, format_seconds, work

        one = _part_config(config)
        seconds = work(one, shape.profile(), val_points=0, bag=_bag(config, shape)).seconds(rates or calibrate())
        plan.notes.append(f"one part trains in {format_seconds(seconds)} on this machine alone "
                          f"({config.trainer.epochs:g} epochs, no validation; tfxc.training.time_plan); "
                          f"{plan.parts} parts, PARALLEL at a time, share its cores")
    print(plan.format(available_bytes()))
    return plan


def _whole_model_bytes(config, shape: DataShape) -> int:
    """Bytes of every variable of the whole model (all parts) at `shape`."""
    from tfxc.build_context import BuildContext

    model, _ = model_shapes(config.model, BuildContext.from_info(shape.info(), seed=config.runtime.seed))
    return nbytes(model.variables)


def _part_config(config) -> dict:
    """The JSON layout of one part's config (`time_plan.work`): a head in parts trains one repetition."""
    import json

    from tfxc.compat import CONFIG, unstamped
    from tfxc.config import config_to_json

    layout = unstamped(CONFIG, json.loads(config_to_json(config)))
    layout["model"]["head"]["num_repetitions"] = 1
    return layout


def _bag(config, shape: DataShape) -> str:
    """How the encoder's bag of features runs at `shape` (`tfxc.encoders.sparse_bow.auto_bag`)."""
    from tfxc.build_context import BuildContext
    from tfxc.encoders.sparse_bow import auto_bag

    bag = getattr(config.model.encoder, "bag", "sparse")
    return auto_bag(bag, BuildContext.from_info(shape.info(), seed=None))
