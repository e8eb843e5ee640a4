"""The precision-recall curve of thresholded multi-label prediction, from top-k lists (never an [N, L] matrix).

A row's predicted label set at threshold t is the labels of its top k scored at least t (`tfxc.predict
--threshold`, `eval.threshold`). Over a split, micro-averaged:

  precision(t) = correct predicted labels / predicted labels,
  recall(t)    = correct predicted labels / the rows' true labels (all of them, not only those in the top k),

at every distinct score taken as t, from the highest down. The lowest threshold predicts the whole top k, so
the curve's recall ends at R@k (micro): what the lists hold.
"""

from __future__ import annotations

import numpy as np


class PrCurve:
    """Accumulates the top-k lists of a split, batch by batch (`update`), then gives the curve (`curve`)."""

    def __init__(self):
        self._scores: list[np.ndarray] = []
        self._hits: list[np.ndarray] = []
        self.positives = 0

    def update(self, scores, ids, row_splits, values) -> None:
        """Adds a batch: scores float [B, k], ids int64 [B, k] (-1 for a missing rank), and the true labels as
        CSR (row_splits int64 [B + 1], values int64 [P])."""
        scores, ids = np.asarray(scores, np.float64), np.asarray(ids, np.int64)
        row_splits, values = np.asarray(row_splits, np.int64), np.asarray(values, np.int64)
        rows, width = ids.shape
        stride = int(max(ids.max(initial=0), values.max(initial=0))) + 1
        true_keys = np.repeat(np.arange(rows, dtype=np.int64), np.diff(row_splits)) * stride + values
        found = ids >= 0
        keys = (np.arange(rows, dtype=np.int64)[:, None] * stride + ids)[found]
        self._scores.append(scores[found])
        self._hits.append(np.isin(keys, true_keys))
        self.positives += int(values.size)

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, precision, recall), float64 [T] each: thresholds descending through every distinct
        score, each with the rates of predicting the labels scored at least it."""
        scores = np.concatenate(self._scores) if self._scores else np.zeros(0)
        hits = np.concatenate(self._hits) if self._hits else np.zeros(0, bool)
        if scores.size == 0 or self.positives == 0:
            raise ValueError("a precision-recall curve needs predicted labels and true labels")
        order = np.argsort(-scores, kind="mergesort")
        scores, hits = scores[order], hits[order]
        last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # the last label of each distinct score
        correct = np.cumsum(hits)[last]
        return scores[last], correct / (last + 1.0), correct / self.positives


def write_pr_curve(path: str, thresholds, precision, recall) -> str:
    """Writes the curve as CSV (threshold,precision,recall lines) at `path` and draws it as an SVG beside it
    (`path` with .svg for .csv, or .svg appended), both atomically; returns the SVG's path."""
    from tfxc.utils.io import atomic_write_text

    atomic_write_text(path, "threshold,precision,recall\n" + "".join(
        f"{t:.8g},{p:.8g},{r:.8g}\n" for t, p, r in zip(thresholds, precision, recall)))
    svg_path = (path[:-4] if path.lower().endswith(".csv") else path) + ".svg"
    atomic_write_text(svg_path, pr_svg(np.asarray(recall), np.asarray(precision)))
    return svg_path


def pr_svg(recall, precision) -> str:
    """An SVG picture (480x360) of the curve: precision over recall, both linear from 0 to 1; points within
    0.05 px of the last one drawn are left out."""
    width, height, left, top, plot_w, plot_h = 480, 360, 64, 28, 400, 280
    points, last = [], None
    for i, (r, p) in enumerate(zip(recall, precision)):
        point = (left + r * plot_w, top + (1 - p) * plot_h)
        if last is None or i == len(recall) - 1 or max(abs(point[0] - last[0]), abs(point[1] - last[1])) >= 0.05:
            points.append(f"{point[0]:.3f},{point[1]:.3f}")
            last = point
    grid = []
    for tenth in range(0, 11, 2):
        x, y = left + tenth / 10 * plot_w, top + (1 - tenth / 10) * plot_h
        grid += [f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#ddd"/>',
                 f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>',
                 f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{tenth / 10:.1f}</text>',
                 f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tenth / 10:.1f}</text>']
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">Precision and recall by threshold</text>',
        *grid,
        f'<rect class="frame" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>',
        f'<text x="{left + plot_w / 2}" y="{height - 12}" text-anchor="middle">recall (micro)</text>',
        f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" transform="rotate(-90 16 {top + plot_h / 2})">'
        'precision (micro)</text>',
        f'<polyline class="pr" fill="none" stroke="#1f5fbf" stroke-width="2" points="{" ".join(points)}"/>',
        "</svg>"]) + "\n"
