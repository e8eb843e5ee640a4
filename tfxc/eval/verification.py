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
    """(image path pairs, same bool [n], folds int [n] or None) of a pair list.

    Two layouts:
      * LFW's pairs.txt: a header "FOLDS PAIRS" (or one number: one set), then per fold PAIRS genuine lines
        "name n1 n2" and PAIRS impostor lines "name1 n1 name2 n2"; image n of a person is
        `image_root/name/name_000n.jpg`.
      * a CSV (.csv) of "image_a,image_b,same[,fold]" lines (same: 1/0 or true/false; an optional header
        starting with image_a), paths relative to `image_root` (default: the file's folder).

    Raises:
      DataError: the file is unreadable or a line does not fit its layout (named by line).
    """
    import csv
    import os

    from tfxc.errors import DataError

    root = image_root or os.path.dirname(os.path.abspath(path))
    pairs, same, folds = [], [], []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if path.lower().endswith(".csv"):
                for lineno, row in enumerate(csv.reader(f), 1):
                    if not row or (lineno == 1 and row[0] == "image_a"):
                        continue
                    flag = row[2].strip().lower() if len(row) >= 3 else ""
                    if len(row) not in (3, 4) or flag not in ("0", "1", "true", "false"):
                        raise DataError(f"expected image_a,image_b,same[,fold], got {row!r}", path=path, line=lineno)
                    pairs.append((os.path.join(root, row[0]), os.path.join(root, row[1])))
                    same.append(flag in ("1", "true"))
                    fold = row[3].strip() if len(row) == 4 else "-1"
                    if len(row) == 4 and not (fold.isascii() and fold.isdigit()):  # int() also reads '1_0' and '٣'
                        raise DataError(f"the fold {row[3]!r} is not a non-negative integer", path=path, line=lineno,
                                        field="fold")
                    folds.append(int(fold))
                return pairs, np.array(same, bool), None if -1 in folds else np.array(folds)
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the pair list ({e})", path=path) from None
    header = lines[0].split()
    if not header or not all(h.isdigit() for h in header) or len(header) > 2:
        raise DataError(f"expected LFW's header 'FOLDS PAIRS', got {lines[0]!r}", path=path, line=1)
    per_fold = 2 * int(header[-1])
    image = lambda name, n: os.path.join(root, name, f"{name}_{int(n):04d}.jpg")  # noqa: E731
    for lineno, line in enumerate(lines[1:], 2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            pairs.append((image(fields[0], fields[1]), image(fields[0], fields[2])))
            same.append(True)
        elif len(fields) == 4 and fields[1].isdigit() and fields[3].isdigit():
            pairs.append((image(fields[0], fields[1]), image(fields[2], fields[3])))
            same.append(False)
        else:
            raise DataError(f"expected 'name n1 n2' or 'name1 n1 name2 n2', got {line!r}", path=path, line=lineno)
        folds.append((len(pairs) - 1) // per_fold)
    return pairs, np.array(same, bool), np.array(folds) if len(header) == 2 else None


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
