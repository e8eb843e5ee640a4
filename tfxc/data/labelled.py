"""A labelled file read whole into (X, Y), for scoring a trained model on data that was never converted
(`tfxc.evaluate --data`, in the forms `tfxc.predictors.Predictor.evaluate` takes).

  XC Repository BoW text (.txt, .svm, ...)   X float32 CSR [n, D], Y float32 CSR [n, L]
  JSONL / CSV text (.jsonl, .jsonl.gz, .csv)  X a list of n strings, Y a list of n lists of label names
  PECOS X .npz with its Y .npz                 X float32 CSR [n, D], Y float32 CSR [n, L]
"""

from __future__ import annotations

from tfxc.data.csr import rows_to_csr
from tfxc.data.sources import source_format
from tfxc.errors import DataError


def read_labelled(path: str, labels_path: str | None = None):
    """(X, Y) of the labelled file `path` (the format from its name; `labels_path`: a PECOS Y beside X).

    Raises:
      DataError: naming the file (and line) that cannot be read, or a PECOS X without its labels.
    """
    from tfxc.data import readers

    fmt = source_format(path, default="xc")
    if fmt == "pecos":
        if not labels_path:
            raise DataError("a PECOS feature matrix: give its label matrix with --labels Y.npz", path=path)
        reader = readers.PecosNpzReader(path, labels_path)
        return rows_to_csr(reader, reader.num_features, reader.num_labels)
    if labels_path:
        raise DataError("--labels is for a PECOS X .npz; this file holds its own labels", path=labels_path)
    if fmt in ("jsonl", "csv"):
        records = list(readers.iter_jsonl(path))
        return [r.text for r in records], [list(r.labels) for r in records]
    if fmt != "xc":
        raise DataError(f"cannot score a '{fmt}' source; give XC BoW text, JSONL text or a PECOS .npz", path=path)
    reader = readers.XcBowReader(path)
    rows = list(reader)
    return rows_to_csr(rows, reader.num_features, reader.num_labels)
