"""In-memory training data as the source files the converter reads: what `tfxc.fit` writes.

Features as a SciPy sparse matrix or a dense 2-D array become PECOS `X.<split>.npz`, labels (a matrix or
lists of ids) `Y.<split>.npz` of one width for every split; lists of strings become JSONL lines of
`{"text", "labels"}`. The converter then treats them as any data set, so the model is bound to their
content like one trained from files.
"""

from __future__ import annotations

import io
import json
import os

import scipy.sparse

from tfxc.data.csr import as_csr, label_lists, labels_csr
from tfxc.data.files import check_strings
from tfxc.errors import DataError
from tfxc.utils.io import atomic_writer

# Where `fit` keeps, inside its model directory, the arrays it wrote and their conversion: a copy of the
# model (`Predictor.save`) leaves both out.
SOURCES_DIR = "sources"
CONVERTED_DIR = "tfrecords"


def source_files(splits: dict, label_names, directory: str) -> tuple[dict, dict[str, bytes]]:
    """Each split's arrays as the files the converter reads: (the `data` fields that name them,
    {path under `directory`: contents}), written by the caller once it holds the model directory."""
    texts = isinstance(splits["train"][0], (list, tuple)) and all(isinstance(t, str) for t in splits["train"][0])
    fields, files = {}, {}
    if texts:
        for split, (x, y) in splits.items():
            if len(x) != len(y):
                raise DataError(f"{split}: {len(x)} texts but {len(y)} label lists")
            check_strings(x, f"X ({split})")
            lists = label_lists(y, f"Y ({split})")
            check_strings(lists, f"Y ({split})")
            path = os.path.join(directory, f"{split}.jsonl")
            lines = (json.dumps({"text": text, "labels": [str(label) for label in labels]}) + "\n"
                     for text, labels in zip(x, lists))
            files[path] = "".join(lines).encode("utf-8")
            fields[split] = path
        return {"format": "jsonl", **fields, **{f"{s}_labels": "" for s in ("train", "val", "test")}}, files
    matrices = {split: (as_csr(x, f"X ({split})"), labels_csr(y, f"Y ({split})")) for split, (x, y) in splits.items()}
    # One label space for every split: as wide as the widest Y, or the names given.
    width = max([y.shape[1] for _, y in matrices.values()] + [len(label_names or ())])
    for split, (x, y) in matrices.items():
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{split}: X has {x.shape[0]} rows but Y has {y.shape[0]}")
        y.resize((y.shape[0], width))
        fields[split] = os.path.join(directory, f"X.{split}.npz")
        fields[f"{split}_labels"] = os.path.join(directory, f"Y.{split}.npz")
        for path, matrix in ((fields[split], x), (fields[f"{split}_labels"], y)):
            buffer = io.BytesIO()
            scipy.sparse.save_npz(buffer, matrix)
            files[path] = buffer.getvalue()
    if label_names is not None:
        check_strings(label_names, "label_names", item="label id")
        path = os.path.join(directory, "labels.txt")
        files[path] = "".join(f"{name}\n" for name in label_names).encode("utf-8")
        fields["label_names"] = path
    return {"format": "pecos", **{k: "" for k in ("val", "val_labels", "test", "test_labels")}, **fields}, files


def write_if_changed(path: str, content: bytes) -> None:
    """Writes `content` atomically unless the file already holds it (an unchanged source keeps its time
    stamp, so a second `fit` on the same data need not hash it again to find it converted)."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            if f.read() == content:
                return
    with atomic_writer(path, binary=True) as f:
        f.write(content)
