"""XR-Transformer's ranker solved as XR-Linear, and the guard that keeps it from falling below its TF-IDF part.

With `ranker` "xr_linear" (the default) the ranker is not learned by SGD from a guess: every node of
its tree is solved as PECOS solves XR-Linear (`tfxc.xr.xlinear`), twice — on [TF-IDF ⊕ normalised E],
the paper's ranker, and on the TF-IDF alone, the linear model the ranker contains. Mixes of the two
(`ranker_mix`; a mix is one model of the same shape, `TreeLinear.mix`) are scored on the validation
split through the model itself (its beam search and post-processors). The kept mix is the best on the
selection metric among those that score at least the TF-IDF model alone on every precision and
propensity-scored precision evaluated, up to the validation split's sampling noise (`NOISE_SE` standard
errors): never below the TF-IDF model it contains, on validation. The run says which won and by how
much, so a user sees plainly when the transformer did not help.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from tfxc.heads.label_tree.config import SUPPORT_FILE, TREE_FILE
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_write_text

log = logging.getLogger("tfxc.xr")

JOINT_SOLUTION = "ranker_xlinear.npz"  # on [TF-IDF ⊕ E]
TFIDF_SOLUTION = "ranker_xlinear_tfidf.npz"  # on the TF-IDF alone
MIX_CHOICE = "ranker_mix.json"
# Nodes × padded width a level's solved sparse support may take (its int32 features and float32 weights: 128 MiB):
# a node keeps at most max(sparse_support, this / the level's nodes) weights, so the few nodes near the top keep
# all theirs, as PECOS's do. Cutting them to 4,096 there cost wordnet-hypernyms' TF-IDF model 1.7 P@5 on validation.
LEVEL_SUPPORT_ENTRIES = 1 << 24
# A mix is kept only if it scores at least the TF-IDF model alone on each of these (the ones evaluated).
GUARDED = ("P@1", "P@3", "P@5", "PSP@1", "PSP@3", "PSP@5")
# "At least" allows a shortfall of this many standard errors of the difference of two rates on n validation rows:
# sqrt((p0(1 − p0) + p1(1 − p1)) / n), the rows taken as independent draws. A saturated P@1 (99.95 on wordnet's
# 6,541 validation rows) otherwise vetoes a mix over a handful of rows: 0.11 points there against 99.86.
NOISE_SE = 2.0


def solve(config, info, embeddings: np.ndarray, y, model_dir: str):
    """The two solutions of the module docstring (each solved once, then read from the model directory), and the
    support file the ranker's model is built with: every node's features of either, weighted by the joint one.

    Args:
      embeddings: float32 [N, H], the final encoder's raw embeddings of the training rows (row-id order).
      y: CSR [N, L], their labels.

    Returns:
      (joint, tfidf), `TreeLinear`s over the model directory's tree; with sparse_support 0, (the solution on E
      alone, None).
    """
    from tfxc.tree import LabelTree
    from tfxc.tree.pifa import normalize_rows
    from tfxc.tree.support import save_support
    from tfxc.xr.levels import tfidf_rows
    from tfxc.xr.xlinear import cached_fit, fit_tree_linear, truncate_rows

    head = config.model.head
    tree = LabelTree.load(os.path.join(model_dir, TREE_FILE))
    # The rows as the model reads them (`tfxc.encoders.sparse_input`): each one's sparse_max_nnz largest features.
    if not head.sparse_support:  # the ranker reads the embedding alone
        import scipy.sparse

        return cached_fit(os.path.join(model_dir, JOINT_SOLUTION), lambda: fit_tree_linear(
            scipy.sparse.csr_matrix((len(embeddings), 0), dtype=np.float32), normalize_rows(embeddings), y, tree,
            threshold=head.ranker_threshold)), None
    x = truncate_rows(tfidf_rows(info), head.sparse_max_nnz)
    options = {"threshold": head.ranker_threshold, "max_support": support_caps(tree.sizes, head.sparse_support)}
    joint = cached_fit(os.path.join(model_dir, JOINT_SOLUTION),
                       lambda: fit_tree_linear(x, normalize_rows(embeddings), y, tree, **options))
    tfidf = cached_fit(os.path.join(model_dir, TFIDF_SOLUTION), lambda: fit_tree_linear(x, None, y, tree, **options))
    support = os.path.join(model_dir, SUPPORT_FILE)
    if not os.path.exists(support):
        union = joint.mix(tfidf, 1.0)
        save_support(support, union.support, union.weights)
    return joint, tfidf


def support_caps(sizes: list[int], floor: int) -> list[int]:
    """Per level, the most sparse weights a solved node keeps: `floor` (the head's sparse_support), or more where
    the level has few nodes (`LEVEL_SUPPORT_ENTRIES`)."""
    return [max(floor, LEVEL_SUPPORT_ENTRIES // max(size, 1)) for size in sizes]


def assign(head, solution) -> None:
    """Sets the label tree head's node weights to `solution` (a `TreeLinear` on the head's support)."""
    for t in range(len(head.sizes)):
        head.kernels[t].assign(solution.kernel[t])
        head.biases[t].assign(solution.bias[t])
        if head.sparse_kernels[t] is None:  # no sparse term
            continue
        support = head.support_levels[t].numpy()
        if not np.array_equal(support, solution.support[t]):
            raise ValueError(f"level {t}: the solution's sparse support is not the model's")
        head.sparse_kernels[t].assign(solution.weights[t])


def choose_mix(config, head, joint, tfidf, evaluate, model_dir: str) -> tuple[float, dict | None]:
    """Sets `head` to the best mix on validation (module docstring); returns its α and its validation metrics
    (None when none were measured).

    Args:
      head: the ranker model's `LabelTreeHead`.
      evaluate: () -> the validation metrics (percent) of the model as its head stands, or None (no val split).
    """
    if tfidf is None:  # nothing to mix with (sparse_support 0)
        assign(head, joint)
        return 1.0, None
    mixes = config.model.head.ranker_mix
    metric = config.trainer.select_metric or "P@5"
    path = os.path.join(model_dir, MIX_CHOICE)
    if os.path.exists(path):  # chosen before this run was resumed
        with open(path, encoding="utf-8") as f:
            alpha = json.load(f)["alpha"]
        assign(head, joint.mix(tfidf, alpha))
        return alpha, None
    results = {}
    if len(mixes) > 1 and evaluate is not None:
        for alpha in mixes:
            assign(head, joint.mix(tfidf, alpha))
            results[alpha] = evaluate()
            log.info("ranker mix %.2f x [TF-IDF (+) E] + %.2f x TF-IDF: val %s", alpha, 1 - alpha,
                     "  ".join(f"{k} {v:.2f}" for k, v in results[alpha].items() if "@" in k))
        alpha = best_mix(results, mixes, metric)
        log.info(guard_message(results, alpha, metric))
    else:
        alpha = mixes[0]
        log.info("ranker mix %.2f: %s", alpha, "one value given" if len(mixes) == 1 else "no val split to choose on")
    assign(head, joint.mix(tfidf, alpha))
    atomic_write_text(path, json_text({"alpha": alpha, "metric": metric,
                                       "val": {str(a): m for a, m in results.items()}}, indent=2) + "\n")
    return alpha, results.get(alpha)


def noise(floor: float, value: float, rows: int) -> float:
    """The shortfall (in points) a metric of `value` percent may have under `floor` percent, both measured on
    `rows` validation rows: `NOISE_SE` standard errors of their difference (0 without a row count)."""
    if rows <= 0:
        return 0.0
    p, q = (min(max(v / 100.0, 0.0), 1.0) for v in (floor, value))
    return NOISE_SE * 100.0 * float(np.sqrt((p * (1 - p) + q * (1 - q)) / rows))


def shortfalls(result: dict, floor: dict) -> list[str]:
    """The `GUARDED` metrics on which `result` trails `floor` (the TF-IDF model alone) by more than `noise`."""
    rows = int(floor.get("num_points", 0))
    return [m for m in GUARDED if m in floor
            and floor[m] - result.get(m, 0.0) > noise(floor[m], result.get(m, 0.0), rows)]


def best_mix(results: dict, mixes, metric: str) -> float:
    """The mix with the best validation `metric` among those that score at least the TF-IDF model alone (α 0),
    up to `noise`, on every metric of `GUARDED` it reports, the first of `mixes` on ties; any mix without α 0
    among them."""
    floor = results.get(0.0)
    allowed = [a for a in mixes if floor is None or not shortfalls(results[a], floor)]
    return max(allowed, key=lambda a: (results[a].get(metric, 0.0), -mixes.index(a)))


def guard_message(results: dict, alpha: float, metric: str) -> str:
    """What the choice means to a user: did the transformer help over the TF-IDF model, on validation."""
    chosen = results[alpha]
    parts = [f"ranker: mix {alpha:g} chosen on val {metric} ({chosen.get(metric, 0.0):.2f})"]
    if 1.0 in results and alpha != 1.0:
        parts.append(f"the transformer's ranker alone scores {results[1.0].get(metric, 0.0):.2f}")
    if 0.0 in results:
        tfidf = results[0.0].get(metric, 0.0)
        if alpha == 0.0:
            parts.append("the transformer did not help on validation (no mix with it scored at least the TF-IDF model "
                         f"alone, up to the split's noise, on every one of "
                         f"{', '.join(m for m in GUARDED if m in results[0.0])}): the ranker is the TF-IDF model it "
                         "contains")
        else:
            parts.append(f"{chosen.get(metric, 0.0) - tfidf:+.2f} over the TF-IDF model alone ({tfidf:.2f})")
            below = [m for m in GUARDED if m in results[0.0] and chosen.get(m, 0.0) < results[0.0][m]]
            if below:
                parts.append("below it within the split's noise on " + ", ".join(
                    f"{m} ({chosen.get(m, 0.0) - results[0.0][m]:+.2f})" for m in below))
        refused = {a: shortfalls(r, results[0.0]) for a, r in results.items()}
        parts += [f"mix {a:g} refused: below the TF-IDF model alone on {', '.join(why)}"
                  for a, why in refused.items() if why]
    return "; ".join(parts)
