"""The per-label report of `tfxc.evaluate --report`: scikit-learn's classification_report, as text or CSV."""

from __future__ import annotations

import csv
import io

from tfxc.eval.classification import AVERAGES
from tfxc.utils.display import display_width, pad
from tfxc.utils.io import atomic_write_text

COLUMNS = ("label", "precision", "recall", "f1", "support")


def report_text(rows: list[dict], metrics: dict, width: int = 24) -> str:
    """The per-label table (by support), then one line per average and the accuracy, numbers in percent.

    Label names are padded by the columns a terminal gives them (`tfxc.utils.display.pad`: 2 for a CJK
    character), so the numbers after them line up.
    """
    width = max([width] + [display_width(row["label"]) for row in rows])
    lines = [f"{'label':>{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}"]
    lines += [f"{pad(row['label'], width)} {row['precision']:9.2f} {row['recall']:9.2f} {row['f1']:9.2f} "
              f"{row['support']:9d}" for row in rows]
    support = sum(row["support"] for row in rows)
    lines.append("")
    lines += [f"{average + ' avg':>{width}} {metrics[f'P-{average}']:9.2f} {metrics[f'R-{average}']:9.2f} "
              f"{metrics[f'F1-{average}']:9.2f} {support:9d}" for average in AVERAGES]
    lines.append(f"{'accuracy':>{width}} {'':9} {'':9} {metrics['accuracy']:9.2f} {metrics['num_points']:9d}")
    return "\n".join(lines) + "\n"


def write_report_csv(path: str, rows: list[dict]) -> None:
    """The per-label table as CSV (columns `COLUMNS`, percent), written atomically."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({**row, **{key: f"{row[key]:.4f}" for key in ("precision", "recall", "f1")}} for row in rows)
    atomic_write_text(path, out.getvalue())
