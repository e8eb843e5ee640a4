"""The bad-case report: the rows whose best-ranked label is wrong, with their text and scores.

`python -m tfxc.evaluate --model-dir DIR --bad-cases FILE` writes one JSON line per such row
(in file order) and prints the most frequent confusions (true label -> predicted label),
text_classifier's `badcase.csv` and error table for any tfxc model.
"""

from __future__ import annotations

import collections
import json

import numpy as np

from tfxc.data.pipeline import eval_dataset
from tfxc.utils.io import atomic_writer


def write_bad_cases(evaluator, path: str, top: int = 5) -> tuple[int, int, list[tuple[str, str, int]]]:
    """Streams `evaluator`'s split and writes its bad cases to `path` (JSONL, atomically).

    Each line: {"row_id", "text" (text data only), "labels": true names, "predicted": the top
    `top` names, "scores": their scores}. A row is a bad case when its first prediction is not
    one of its labels (rows without labels are skipped).

    Returns:
      (bad cases, rows seen, the 10 most frequent (true label, predicted label, count)); for a
      row with several labels the confusion is counted against its first label.
    """
    names = evaluator.info.label_names()
    raw = eval_dataset(evaluator.info.files(evaluator.split), evaluator.config.batch_size,
                       evaluator.config.max_points)
    confusions: collections.Counter = collections.Counter()
    bad = seen = 0
    with atomic_writer(path) as out:
        for (scores, ids, labels), batch in zip(evaluator.predictions(), raw):
            scores, ids = np.asarray(scores), np.asarray(ids)
            texts = batch["text"].numpy()
            row_ids = batch["row_id"].numpy()
            for i, gold in enumerate(labels.to_list()):
                seen += 1
                if not gold or ids[i, 0] in gold:
                    continue
                bad += 1
                shown = ids[i, :top] >= 0
                record = {"row_id": int(row_ids[i])}
                if texts[i]:
                    record["text"] = texts[i].decode("utf-8")
                record.update(labels=[names[g] for g in gold],
                              predicted=[names[j] for j in ids[i, :top][shown]],
                              scores=[round(float(s), 6) for s in scores[i, :top][shown]])
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                confusions[(names[gold[0]], names[ids[i, 0]])] += 1
    return bad, seen, [(a, b, n) for (a, b), n in confusions.most_common(10)]
