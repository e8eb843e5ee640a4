"""The parameters of a config's model, counted without allocating them: `python -m tfxc.train --summary`.

text_classifier's `show_model_info` mode, for any encoder and head: each variable's layer, shape and count, the
encoder's and the head's totals, and how many are trained. The model is built as the memory plan builds it
(`tfxc.training.memory_plan.model_shapes`), so a 10^7-label head is counted without 10^7 rows of memory.
"""

from __future__ import annotations

import numpy as np

from tfxc.build_context import BuildContext
from tfxc.training.memory_plan import model_shapes


def parameter_rows(model) -> list[dict]:
    """One {"part", "variable", "shape", "dtype", "count", "trainable"} per floating-point variable of `model` (an
    `XCModel`); integer ones (random generators' states, counters) are not parameters."""
    trainable = {id(v) for v in model.trainable_variables}
    rows = []
    for part, layer in (("encoder", model.encoder), ("head", model.head)):
        for variable in layer.variables:
            if not np.issubdtype(np.dtype(str(variable.dtype)), np.floating) and "bfloat16" not in str(variable.dtype):
                continue
            rows.append({"part": part, "variable": variable.path, "shape": tuple(int(d) for d in variable.shape),
                         "dtype": str(variable.dtype), "count": int(np.prod(variable.shape, dtype=np.int64)),
                         "trainable": id(variable) in trainable})
    return rows


def summary_text(rows: list[dict], how: str) -> str:
    """The table of `parameter_rows`, then the totals per part and over the model."""
    width = max([8] + [len(row["variable"]) for row in rows])
    lines = [f"{'variable':<{width}}  {'shape':<18} {'dtype':<8} {'parameters':>14}  trained"]
    lines += [f"{row['variable']:<{width}}  {str(list(row['shape'])):<18} {row['dtype']:<8} {row['count']:>14,}  "
              f"{'yes' if row['trainable'] else 'no'}" for row in rows]
    lines.append("")
    for part in ("encoder", "head"):
        count = sum(row["count"] for row in rows if row["part"] == part)
        lines.append(f"{part:<8} {count:>14,} parameters")
    total = sum(row["count"] for row in rows)
    trained = sum(row["count"] for row in rows if row["trainable"])
    lines.append(f"{'total':<8} {total:>14,} parameters, {trained:,} trained ({how})")
    return "\n".join(lines) + "\n"


def show_summary(config, info, part: int | None = None) -> list[dict]:
    """Prints the parameter table of `config`'s model on the converted data `info`, and returns its rows."""
    model, how = model_shapes(config.model, BuildContext.from_info(info, seed=config.runtime.seed, part=part))
    rows = parameter_rows(model)
    print(summary_text(rows, how), end="")
    return rows
