"""Choosing the serving index at export (`export.index`, `export.index_recall`, `export.index_leaf_size`).

For a head that can be served through a label index (`Head.supports_label_index`), the export
clusters its label vectors (`tfxc.heads.label_index.build_index_tables`) and measures, on
validation rows (the data's `val` split, else the first rows of `train`; never `test`), the
recall of the exact top-5 for beams 1, 2, 4, ...; it keeps the smallest beam that meets
`export.index_recall`. With "auto" it then times the exact head against the index on batches
of 1, 32 and 256 of those rows, and serves through the index the batches of up to the largest
size where the index was faster at every size up to it (bigger batches stay exact, as do all
when the index is slower on one row, no beam short of every cluster meets the target, or the
label space is below `AUTO_MIN_LABELS`). "on" serves every batch through the index.

What was chosen goes to export.json under "index" (`IndexChoice.record`), and one log line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from tfxc._tf import tf
from tfxc.errors import ConfigError, TfxcError
from tfxc.heads.label_index import DEFAULT_REACH, LabelIndex, build_index_tables, recall_at_k
from tfxc.utils.graph import BatchFunction, graph_function

log = logging.getLogger("tfxc.export")

# "auto" keeps the exact head below this many labels without measuring: one row of an exact head at
# 2,048 labels reads 4 MB at d = 512, which the index's fixed cost of a few small ops per level does not beat.
AUTO_MIN_LABELS = 2048
# The recall is of the exact top-RECALL_K.
RECALL_K = 5
# Validation rows the recall and the timings are measured on.
SAMPLE_ROWS = 2048
# Batch sizes timed by "auto", and calls per timing (the median is kept).
TIMED_BATCHES = (1, 32, 256)
TIMED_CALLS = 50


@dataclass
class IndexChoice:
    """The export's label index: `index` (None: the exact head serves), the largest batch it serves
    (`max_rows`, None: every batch) and `record`, the JSON-ready summary written to export.json."""

    index: LabelIndex | None = None
    max_rows: int | None = None
    record: dict = field(default_factory=dict)


def sample_features(model, sources, max_rows: int = SAMPLE_ROWS):
    """The encoder's features float32 [N, F] of up to `max_rows` rows of the first of `sources` (DatasetInfo
    loaders, tried in order) that has a `val` split, else of one with a `train` split; (None, None) if none does.

    Returns:
      (features, the split's name).
    """
    from tfxc.data.pipeline import eval_dataset

    found = []
    for load in sources:
        try:
            info = load()
            for split in ("val", "train"):
                if split in info.splits:
                    found.append((split, info.files(split)))
        except (TfxcError, OSError):
            continue
    if not found:
        return None, None
    split, files = min(found, key=lambda pair: pair[0] != "val")
    encode = BatchFunction(lambda batch: tf.cast(model.encoder(batch, training=False), tf.float32))
    parts = [encode(batch) for batch in eval_dataset(files, 256, max_rows, preprocess=model.encoder.preprocess)]
    return tf.concat(parts, axis=0), split


def _in_batches(fn, features, size: int = 256) -> np.ndarray:
    return np.concatenate([fn(features[i:i + size]).numpy() for i in range(0, int(features.shape[0]), size)])


def smallest_beam(head, tables, features, target: float) -> tuple[int, float, dict]:
    """The smallest beam in 1, 2, 4, ... (the last: every cluster) whose recall of the exact top-5 on
    `features` reaches `target`: (beam, its recall, {beam: recall} of every beam tried)."""
    exact = _in_batches(graph_function(lambda h: head.top_k(h, RECALL_K)[1]), features)
    widest = max(tables.sizes)
    tried, beam = {}, 1
    while True:
        index = LabelIndex(tables, beam)
        found = _in_batches(graph_function(lambda h: index.top_k(head, h, RECALL_K)[1]), features)
        tried[beam] = recall_at_k(exact, found)
        if tried[beam] >= target or beam >= widest:
            return beam, tried[beam], tried
        beam = min(2 * beam, widest)


def paired_ms(first, second, features, calls: int = TIMED_CALLS) -> tuple[float, float]:
    """Median ms per call of two functions of `features`, called in turn: on a shared machine the load moves
    between two separate series, and alternating calls share it."""
    times = ([], [])
    for fn in (first, second):
        fn(features)  # traced and warmed up outside the timing
    for _ in range(calls):
        for fn, kept in zip((first, second), times):
            start = time.perf_counter()
            fn(features)[1].numpy()
            kept.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times[0])), 3), round(1000 * float(np.median(times[1])), 3)


def served_rows(head, index, features) -> tuple[int, dict]:
    """The largest timed batch size up to which the index beat the exact head at every timed size (0: not
    even one row), and the timings {rows: [exact ms, index ms]}."""
    exact = graph_function(lambda h: head.top_k(h, RECALL_K))
    through = graph_function(lambda h: index.top_k(head, h, RECALL_K))
    timings, max_rows = {}, 0
    for rows in TIMED_BATCHES:
        if rows > int(features.shape[0]):
            break
        timings[rows] = list(paired_ms(exact, through, features[:rows]))
        if timings[rows][1] >= timings[rows][0]:
            break
        max_rows = rows
    return max_rows, timings


def choose_label_index(model, export_config, sources) -> IndexChoice:
    """The label index the export serves through (module docstring).

    Args:
      model: the trained `XCModel`.
      export_config: its `ExportConfig`.
      sources: DatasetInfo loaders for `sample_features`.

    Raises:
      ConfigError: export.index is "on" and the head cannot be indexed, has too few labels, or there are
        no validation rows to measure the recall on.
    """
    mode, head = export_config.index, model.head
    if mode == "off":
        return IndexChoice(record={"mode": "off"})

    def exact(reason: str, measured: dict | None = None) -> IndexChoice:
        if mode == "on":
            raise ConfigError(f"export.index is 'on' but {reason}; set export.index to 'auto' or 'off'")
        log.info("label index: not used (%s); the exact head serves", reason)
        return IndexChoice(record={**(measured or {}), "mode": mode, "used": False, "reason": reason})

    if not head.supports_label_index:
        return exact("the head's top-k is not one over label vectors")
    if mode == "auto" and head.num_labels < AUTO_MIN_LABELS:
        return exact(f"{head.num_labels} labels: fewer than {AUTO_MIN_LABELS}, the exact head is as fast")
    if head.num_labels < 2 * export_config.index_leaf_size:
        return exact(f"{head.num_labels} labels fill fewer than two leaves of {export_config.index_leaf_size}")
    features, split = sample_features(model, sources)
    if features is None:
        return exact("the model's data has no val or train rows to measure the recall on")
    start = time.perf_counter()
    tables = build_index_tables(head.index_vectors(), leaf_size=export_config.index_leaf_size)
    beam, recall, tried = smallest_beam(head, tables, features, export_config.index_recall)
    record = {"mode": mode, "levels": tables.sizes, "leaf_size": tables.leaf_size, "beam": beam, "reach": DEFAULT_REACH,
              f"recall@{RECALL_K}": round(recall, 4), "recall_target": export_config.index_recall,
              "recall_by_beam": {str(b): round(r, 4) for b, r in tried.items()},
              "measured_on": f"{int(features.shape[0])} {split} rows"}
    index = LabelIndex(tables, beam)
    max_rows = None
    if mode == "auto":
        if recall < export_config.index_recall or index.exhaustive:
            return exact(f"no beam short of every cluster reaches recall@{RECALL_K} {export_config.index_recall} "
                         f"(tried {record['recall_by_beam']})", record)
        max_rows, timings = served_rows(head, index, features)
        record["ms_exact_vs_index"] = {str(rows): ms for rows, ms in timings.items()}
        if not max_rows:
            return exact(f"the index is not faster on one row ({timings})", record)
        if max_rows == max(TIMED_BATCHES):
            max_rows = None  # faster at every timed size: bigger batches too
    record.update(used=True, max_rows=max_rows)
    log.info("label index: %s; beam %d, recall@%d %.4f on %s; serves %s (%.1f s to choose)", tables.describe(),
             beam, RECALL_K, recall, record["measured_on"],
             "every batch" if max_rows is None else f"batches of up to {max_rows} rows",
             time.perf_counter() - start)
    return IndexChoice(index, max_rows, record)
