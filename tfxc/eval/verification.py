"""Face verification from pair similarities: the ROC, TAR at fixed FARs, and LFW's 10-fold accuracy.

A protocol is a list of image pairs, each genuine (same identity) or impostor (different identities),
scored by the cosine similarity of the two embeddings (the SavedModel's `embed`). A pair is accepted when
its similarity is at least the threshold.

* ROC: the false-accept rate (impostors accepted) and true-accept rate (genuine pairs accepted) at every
  distinct similarity taken as the threshold, as `sklearn.metrics.roc_curve(drop_intermediate=False)`
  gives them.
* TAR@FAR (IJB-B/C's figure): the true-accept rate at the lowest threshold whose false-accept rate is at
  most the FAR (`tfxc.eval.open_set.tar_at_far`).
* Accuracy (LFW's "unrestricted with labeled outside data" protocol, Huang et al., 2007; insightface's
  `verification.py`): the pairs fall into 10 folds (LFW's pairs.txt defines them); for each fold the
  threshold that classifies the other nine best is chosen, and the fold is classified with it. The mean
  and standard deviation of the ten accuracies are reported, with the mean threshold.
"""

from __future__ import annotations

import numpy as np

from tfxc.eval.open_set import tar_at_far


def roc_curve(scores, same) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far float64 [T], tar float64 [T], thresholds float64 [T]): thresholds from +inf down through every
    distinct score, each with the rates of accepting `scores >= threshold`.

    Args:
      scores: float [n], a similarity per pair.
      same: bool [n], whether the pair is genuine.
    """
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    if same.all() or not same.any():
        raise ValueError("a ROC needs genuine and impostor pairs")
    order = np.argsort(-scores, kind="mergesort")
    scores, same = scores[order], same[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # the last pair of each distinct score
    tp, fp = np.cumsum(same)[last], np.cumsum(~same)[last]
    far = np.r_[0.0, fp / (~same).sum()]
    tar = np.r_[0.0, tp / same.sum()]
    return far, tar, np.r_[np.inf, scores[last]]


def roc_auc(scores, same) -> float:
    """The area under the ROC (trapezoids over `roc_curve`)."""
    far, tar, _ = roc_curve(scores, same)
    return float(np.trapezoid(tar, far))


def best_threshold(scores, same) -> tuple[float, float]:
    """(threshold, accuracy): the threshold that classifies the pairs best (accept: score >= threshold),
    halfway between the two scores it separates; the lowest such when several tie."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    order = np.argsort(scores, kind="mergesort")
    scores, same = scores[order], same[order]
    # Cut before position i (i = 0..n): the pairs below are rejected, the rest accepted.
    correct = (np.r_[0, np.cumsum(~same)] + np.r_[same[::-1].cumsum()[::-1], 0])
    valid = np.r_[True, scores[1:] > scores[:-1], True]  # a cut between equal scores cannot be made
    correct = np.where(valid, correct, -1)
    i = int(np.argmax(correct))
    if i == 0:
        threshold = scores[0] - 1.0
    elif i == scores.size:
        threshold = scores[-1] + 1.0
    else:
        threshold = (scores[i - 1] + scores[i]) / 2.0
    return float(threshold), float(correct[i] / scores.size)


def kfold_accuracy(scores, same, folds=None, num_folds: int = 10) -> dict:
    """LFW's accuracy (module docstring).

    Args:
      scores: float [n] similarities; same: bool [n].
      folds: int [n], each pair's fold (LFW's pairs.txt order); None: `num_folds` consecutive blocks.

    Returns:
      {"accuracy": mean %, "accuracy_std": std %, "threshold": mean threshold, "folds": number of folds}.
    """
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    if folds is None:
        folds = np.arange(scores.size) * num_folds // max(scores.size, 1)
    folds = np.asarray(folds)
    accuracies, thresholds = [], []
    for fold in np.unique(folds):
        held = folds == fold
        threshold, _ = best_threshold(scores[~held], same[~held])
        accuracies.append(np.mean((scores[held] >= threshold) == same[held]))
        thresholds.append(threshold)
    return {"accuracy": float(np.mean(accuracies) * 100), "accuracy_std": float(np.std(accuracies) * 100),
            "threshold": float(np.mean(thresholds)), "folds": len(accuracies)}


def verification_report(scores, same, folds=None, fars=(1e-2, 1e-3, 1e-4)) -> dict:
    """Every figure above for one protocol: pair counts, k-fold accuracy, TAR at each FAR (%), ROC AUC (%)."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    out = {"pairs": int(scores.size), "genuine_pairs": int(same.sum()), "impostor_pairs": int((~same).sum())}
    out.update(kfold_accuracy(scores, same, folds))
    for far in fars:
        if far * (~same).sum() >= 1:  # fewer impostors than 1/FAR cannot measure that rate
            out[f"tar@far={far:g}"] = tar_at_far(scores[same], scores[~same], far) * 100
    out["roc_auc"] = roc_auc(scores, same) * 100
    return out


def read_pairs(path: str, image_root: str = "") -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray | None]:
    """(image path pairs, same bool [n], folds int [n] or None) of a pair list (UTF-8, optionally gzip).

    Two layouts:
      * LFW's pairs.txt: a header "FOLDS PAIRS" (or one number PAIRS: one set), then per fold PAIRS genuine
        lines "name n1 n2" and PAIRS impostor lines "name1 n1 name2 n2"; image n (from 1) of a person is
        `image_root/name/name_000n.jpg`. The file holds exactly the 2 * FOLDS * PAIRS pairs the header declares.
      * a CSV (.csv) of "image_a,image_b,same[,fold]" lines (same: 1/0 or true/false; an optional header
        starting with image_a), every line with as many cells as the first, paths relative to `image_root`
        (default: the file's folder).
    Numbers are ASCII digits ('²' and '٣' are digits to `str.isdigit`, not to `int`).

    Raises:
      DataError: the file is unreadable or a line does not fit its layout (named by line).
    """
    import os

    from tfxc.data.files import open_text
    from tfxc.errors import DataError

    root = image_root or os.path.dirname(os.path.abspath(path))
    if path.lower().endswith(".csv"):
        return _read_pairs_csv(path, root)
    pairs, same, folds = [], [], []
    with open_text(path) as lines:
        header_line = next(lines, "")
        header = header_line.split()
        if not header or not all(_is_number(h) and len(h) <= 9 for h in header) or len(header) > 2:
            raise DataError(f"expected LFW's header 'FOLDS PAIRS', got {header_line.rstrip(chr(10))!r}", path=path,
                            line=1)
        num_folds, per_set = (int(h) for h in (["1", *header] if len(header) == 1 else header))
        if min(num_folds, per_set) < 1:
            raise DataError(f"FOLDS and PAIRS must be at least 1, got {header_line.strip()!r}", path=path, line=1)
        declared = (f"the header declares {num_folds} fold{'s' * (num_folds > 1)} of {per_set} genuine and "
                    f"{per_set} impostor pair{'s' * (per_set > 1)} ({2 * num_folds * per_set} pairs)")

        def image(name: str, n: str, lineno: int) -> str:
            if not 1 <= len(n) <= 9 or int(n) < 1:
                raise DataError(f"image numbers start at 1 and have at most 9 digits, got {n[:20]!r}", path=path,
                                line=lineno)
            return os.path.join(root, name, f"{name}_{int(n):04d}.jpg")

        for lineno, line in enumerate(lines, 2):
            fields = line.split()
            if not fields:
                continue
            if len(fields) == 3 and _is_number(fields[1]) and _is_number(fields[2]):
                pairs.append((image(fields[0], fields[1], lineno), image(fields[0], fields[2], lineno)))
                same.append(True)
            elif len(fields) == 4 and _is_number(fields[1]) and _is_number(fields[3]):
                pairs.append((image(fields[0], fields[1], lineno), image(fields[2], fields[3], lineno)))
                same.append(False)
            else:
                raise DataError(f"expected 'name n1 n2' or 'name1 n1 name2 n2', got {line.rstrip(chr(10))!r}",
                                path=path, line=lineno)
            if len(pairs) > 2 * num_folds * per_set:
                raise DataError(f"one pair too many: {declared}", path=path, line=lineno)
            folds.append((len(pairs) - 1) // (2 * per_set))
    if len(pairs) != 2 * num_folds * per_set:
        raise DataError(f"{declared}, the file has {len(pairs)}", path=path)
    return pairs, np.array(same, bool), np.array(folds) if len(header) == 2 else None


def _is_number(text: str) -> bool:
    """Whether `text` is a non-negative integer in ASCII digits (`int` reads it)."""
    return text.isascii() and text.isdigit()


def _read_pairs_csv(path: str, root: str):
    import os

    from tfxc.data.files import delimited_rows
    from tfxc.errors import DataError

    pairs, same, folds = [], [], []
    for lineno, row in delimited_rows(path, first="the first row"):
        if not pairs and row[0] == "image_a":
            continue
        flag = row[2].strip().lower() if len(row) >= 3 else ""
        if len(row) not in (3, 4) or flag not in ("0", "1", "true", "false"):
            raise DataError(f"expected image_a,image_b,same[,fold], got {row!r}", path=path, line=lineno)
        pairs.append((os.path.join(root, row[0]), os.path.join(root, row[1])))
        same.append(flag in ("1", "true"))
        if len(row) == 4:
            fold = row[3].strip()
            if not _is_number(fold) or len(fold) > 9:  # int() also reads '1_0' and '٣'
                raise DataError(f"the fold {row[3]!r} is not a non-negative integer", path=path, line=lineno,
                                field="fold")
            folds.append(int(fold))
    return pairs, np.array(same, bool), np.array(folds) if folds else None


def write_roc(path: str, far, tar, thresholds) -> str:
    """Writes the ROC as CSV (far,tar,threshold lines) at `path` and draws it as an SVG beside it (`path` with
    .svg for .csv, or .svg appended), both atomically; returns the SVG's path. Arrays as `roc_curve` gives."""
    from tfxc.utils.io import atomic_write_text

    far, tar, thresholds = (np.asarray(a, np.float64) for a in (far, tar, thresholds))
    atomic_write_text(path, "far,tar,threshold\n" + "".join(f"{a:.8g},{b:.8g},{t:.8g}\n"
                                                            for a, b, t in zip(far, tar, thresholds)))
    svg_path = (path[:-4] if path.lower().endswith(".csv") else path) + ".svg"
    atomic_write_text(svg_path, roc_svg(far, tar))
    return svg_path


def roc_svg(far, tar) -> str:
    """An SVG picture (480x360) of a ROC: TAR (linear, 0 to 1) over FAR on a log scale, as verification
    results are read (TAR at FAR 1e-4, 1e-3 ...), from the decade below the smallest FAR above 0 to 1.

    The plot's frame (`rect class="frame"`) spans log10 FAR from the polyline's `data-log-far-min` (left) to
    0 (right) and TAR from 0 (bottom) to 1 (top); points at FAR 0 (no log) sit on its left edge. Points that
    land within 0.05 px of the last one drawn are left out (a protocol of millions of pairs would otherwise
    give a picture of millions of points).

    Args:
      far, tar: float [T], the ROC (`roc_curve`), FAR ascending.
    """
    from xml.sax.saxutils import escape

    far, tar = np.asarray(far, np.float64), np.asarray(tar, np.float64)
    width, height, left, right, top, bottom = 480, 360, 64, 16, 28, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    positive = far[far > 0]
    lo = int(np.floor(np.log10(positive.min()))) if positive.size else -1
    lo = min(lo, -1)
    sx, sy = plot_w / -lo, plot_h  # pixels per decade, per unit TAR
    x = np.log10(np.maximum(far, 10.0 ** lo))
    keep, last = [], None
    for i, point in enumerate(zip(x * sx, tar * sy)):
        if last is None or i == x.size - 1 or max(abs(point[0] - last[0]), abs(point[1] - last[1])) >= 0.05:
            keep.append(i)
            last = point

    def px(log_far):
        return left + (log_far - lo) * sx

    def py(rate):
        return top + (1 - rate) * plot_h

    points = " ".join(f"{px(x[i]):.3f},{py(tar[i]):.3f}" for i in keep)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">ROC</text>']
    step = max(1, -lo // 6)  # at most about six labelled decades
    for k in range(lo, 1):
        out.append(f'<line x1="{px(k):.2f}" y1="{top}" x2="{px(k):.2f}" y2="{top + plot_h}" stroke="#ddd"/>')
        if (k - lo) % step == 0 or k == 0:
            label = "1" if k == 0 else f"1e{k}"
            out.append(f'<text x="{px(k):.2f}" y="{top + plot_h + 16}" text-anchor="middle">{label}</text>')
    for tenth in range(0, 11, 2):
        out.append(f'<line x1="{left}" y1="{py(tenth / 10):.2f}" x2="{left + plot_w}" y2="{py(tenth / 10):.2f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(tenth / 10) + 4:.2f}" text-anchor="end">{tenth / 10:.1f}</text>')
    out += [f'<rect class="frame" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
            'stroke="black"/>',
            f'<text x="{left + plot_w / 2}" y="{height - 12}" text-anchor="middle">'
            f'{escape("FAR (false accept rate, log scale)")}</text>',
            f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" '
            f'transform="rotate(-90 16 {top + plot_h / 2})">TAR (true accept rate)</text>',
            f'<polyline class="roc" data-log-far-min="{lo}" fill="none" stroke="#1f5fbf" stroke-width="2" '
            f'stroke-linejoin="round" points="{points}"/>',
            "</svg>"]
    return "\n".join(out) + "\n"


def pair_scores(pairs: list[tuple[str, str]], embed) -> np.ndarray:
    """float64 [n]: the cosine similarity of each pair, every distinct image embedded once by `embed` (a list
    of image paths -> float [m, dim])."""
    images = sorted({p for pair in pairs for p in pair})
    index = {image: i for i, image in enumerate(images)}
    x = np.asarray(embed(images), np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    a = np.array([index[p] for p, _ in pairs])
    b = np.array([index[q] for _, q in pairs])
    return np.einsum("ij,ij->i", x[a], x[b])
