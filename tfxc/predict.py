"""python -m tfxc.predict --model DIR --input FILE --output FILE [--top-k K] [--threshold T]
python -m tfxc.predict --model DIR --interactive      (models of text: type a text, see its labels)

Runs a trained model (a SavedModel, a model directory or an ensemble's; `--saved-model` is the older
spelling of `--model`) over a data file and writes one JSON line per
input row: {"row": i, "label_ids": [...], "labels": [...], "scores": [...]}.
With --threshold, a row keeps only the labels of its top k scored above T: the
multi-label prediction of one-vs-all models (scores are sigmoids; 0.5 is σ > 0.5),
and a row may then have no label.

Input formats (by --format, or guessed from the file name):
  xc     Extreme Classification Repository BoW text (.txt, .txt.gz; labels ignored)
  jsonl  {"text": ...} lines (.jsonl, .jsonl.gz): raw strings for a model with a text
         encoder (tokenised inside the SavedModel), else featurized with the TF-IDF
         featurizer saved in the model
  pecos  a PECOS X .npz feature matrix
With an --output ending in .npz, the predictions are one matrix instead, as PECOS's `XLinearModel.predict`
returns them: a SciPy CSR float32 [rows, labels] of each row's top-k scores (`scipy.sparse.load_npz`, PECOS's
`smat_util.load_matrix`), --threshold applied.
Image models (an `image` encoder) read images instead: --input a folder (every .jpg, .jpeg, .png, .gif and
.bmp under it, in sorted order) or a text file of image paths, one per line (relative to its folder); each
output line then also names its image ("ref").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator

import numpy as np

from tfxc.cli import (AsciiInt, Progress, add_trust_args, finite_float, keep_out_of_import_path, main_wrapper,
                      positive_int, setup_logging)
from tfxc.data.sources import source_format
from tfxc.errors import DataError, TfxcError
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_writer, refuse_to_overwrite_inputs

DEFAULT_TOP_K = 10  # a model directory's, which records no k of its own


def csr_batches(rows, batch_size: int, num_features: int):
    """CSR float32 [n <= batch_size, num_features] batches of (feat_idx, feat_val) rows."""
    import scipy.sparse

    from tfxc.utils.batches import batched

    for batch in batched(rows, batch_size):
        indptr = np.cumsum([0] + [len(idx) for idx, _ in batch])
        indices = np.concatenate([idx for idx, _ in batch]).astype(np.int64)
        values = np.concatenate([val for _, val in batch]).astype(np.float32)
        yield scipy.sparse.csr_matrix((values, indices, indptr), shape=(len(batch), num_features))


def iter_feature_rows(path: str, fmt: str, num_features: int, index_base: int = 0) -> Iterator[tuple[np.ndarray,
                                                                                                   np.ndarray]]:
    """Yields (feat_idx int64, feat_val float32) per row of an XC BoW or PECOS X file, ids checked against the
    model's `num_features`."""
    from tfxc.data import readers

    if fmt == "xc":
        rows = readers.XcBowReader(path, index_base=index_base, num_features=num_features)
    elif fmt == "pecos":
        rows = readers.PecosNpzReader(path, None)
        if rows.num_features > num_features:
            raise DataError(f"has {rows.num_features} feature columns but the model knows {num_features}",
                            path=path)
    else:
        raise TfxcError(f"unknown input format '{fmt}' (xc, jsonl, pecos)")
    for row in rows:
        yield row.feat_idx, row.feat_val


def text_batches(path: str, batch_size: int) -> Iterator[list[str]]:
    """The "text" of a JSONL file's lines, `batch_size` at a time."""
    from tfxc.data import readers
    from tfxc.utils.batches import batched

    return batched((record.text for record in readers.iter_jsonl(path, require_labels=False)), batch_size)


def image_batches(path: str, batch_size: int) -> Iterator[tuple[list[str], list[bytes]]]:
    """(refs, encoded images) of a folder's images or of a file listing image paths, `batch_size` at a time."""
    from tfxc.images.sources import IMAGE_SUFFIXES, UNDECODABLE_IMAGE_SUFFIXES, list_note, no_images_error

    if os.path.isdir(path):
        files = sorted(os.path.relpath(os.path.join(d, f), path) for d, _, names in os.walk(path) for f in names)
        refs = [f for f in files if f.lower().endswith(IMAGE_SUFFIXES)]
        skipped = [f for f in files if f.lower().endswith(UNDECODABLE_IMAGE_SUFFIXES)]
        if not refs:
            raise no_images_error(path, "in it", skipped)
        list_note(path, skipped)
        root = path
    else:
        with open(path, encoding="utf-8") as f:
            refs = [line.strip() for line in f if line.strip()]
        root = os.path.dirname(os.path.abspath(path))
    if not refs:
        raise DataError("no images in it", path=path)
    for start in range(0, len(refs), batch_size):
        chunk, data = refs[start:start + batch_size], []
        for ref in chunk:
            try:
                with open(os.path.join(root, ref), "rb") as f:
                    data.append(f.read())
            except OSError as e:
                raise DataError(f"cannot read the image ({e.strerror})", path=os.path.join(root, ref)) from None
        yield chunk, data


def interactive(predictor, k: int, threshold: float | None = None) -> int:
    """The prompt loop of --interactive: one text per line in, its top-k labels and scores out."""
    from tfxc.data.files import surrogate_problem

    print(f"type a text and press enter (top {k} labels); an empty line or Ctrl-D ends", file=sys.stderr)
    while True:
        try:
            text = input("> ")
        except EOFError:
            break
        if not text.strip():
            break
        problem = surrogate_problem(text)  # undecodable terminal bytes arrive as lone surrogates
        if problem:
            print(f"tfxc: error: the text {problem} (is the terminal's encoding UTF-8?)", file=sys.stderr)
            continue
        start = time.perf_counter()
        ids, scores = predictor.top_k([text], k)
        elapsed = (time.perf_counter() - start) * 1000
        for label, score in zip(ids[0], scores[0]):
            if label >= 0 and (threshold is None or score > threshold):
                print(f"  {score:8.4f}  {predictor.label_names[label]}")
        print(f"  ({elapsed:.1f} ms)", file=sys.stderr)
    return 0


def write_score_matrix(path: str, results, num_labels: int, threshold: float | None = None) -> int:
    """Writes the (ids, scores) batches of `results` as PECOS's prediction matrix: a SciPy CSR float32
    [rows, num_labels], each row's kept labels in ascending id order, to `path` (.npz, atomically).
    Returns the rows written."""
    import scipy.sparse as sp

    progress = Progress("predicted")
    indptr, indices, data = [np.zeros(1, np.int64)], [], []
    for ids, scores in results:
        ids, scores = np.asarray(ids, np.int64), np.asarray(scores, np.float32)
        keep = ids >= 0  # a beam search may reach fewer than k labels (id -1)
        if threshold is not None:
            keep &= scores > threshold
        indptr.append(indptr[-1][-1] + np.cumsum(keep.sum(axis=1)))
        indices.append(ids[keep])
        data.append(scores[keep])
        progress.update(int(ids.shape[0]))
    progress.close()
    indptr = np.concatenate(indptr)
    matrix = sp.csr_matrix((np.concatenate(data) if data else np.zeros(0, np.float32),
                            np.concatenate(indices) if indices else np.zeros(0, np.int64), indptr),
                           shape=(indptr.size - 1, num_labels))
    matrix.sort_indices()
    with atomic_writer(path, binary=True) as out:
        sp.save_npz(out, matrix)
    return matrix.shape[0]


@main_wrapper
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfxc.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a trained model: a SavedModel, a model directory or an ensemble's "
                                         "(required)")
    # An old spelling, still accepted: tfxc.compat.spellings.
    parser.add_argument("--saved-model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--input", help="the rows to predict (see the formats above)")
    parser.add_argument("--output", help="JSONL predictions, or with .npz PECOS's CSR score matrix (written "
                                          "atomically)")
    parser.add_argument("--interactive", action="store_true",
                        help="read texts from the terminal (one per line, empty line or EOF ends) and print the "
                             "top-k labels of each; for models that read raw text")
    parser.add_argument("--top-k", type=positive_int, default=None,
                        help=f"labels per row, >= 1 (default: a SavedModel's k, else {DEFAULT_TOP_K})")
    parser.add_argument("--threshold", type=finite_float, default=None,
                        help="keep only the labels of the top k scored above this (multi-label prediction: 0.5 "
                             "for one-vs-all sigmoids); a row may then have none")
    parser.add_argument("--format", choices=["xc", "jsonl", "pecos"], default=None)
    parser.add_argument("--batch-size", type=positive_int, default=512)
    parser.add_argument("--index-base", type=AsciiInt(0, 1), default=0,
                        help="1 for XC files with 1-based feature ids")
    add_trust_args(parser)
    args = parser.parse_args(argv)
    setup_logging()
    from tfxc.compat.spellings import flag_of

    args.model = flag_of(args.model, args.saved_model, "--saved-model {}", "--model {}", "models")
    if args.model is None:
        parser.error("the following arguments are required: --model")
    keep_out_of_import_path([args.model])
    from tfxc.eval.classification import threshold_meaning
    from tfxc.predictors import load

    if not args.interactive and not (args.input and args.output):
        raise TfxcError("give --input and --output, or --interactive")
    if not args.interactive and not os.path.exists(args.input):
        raise DataError("file not found", path=args.input)
    if not args.interactive:
        refuse_to_overwrite_inputs(args.output, {"input": args.input, "model": args.model}, "--output")
    predictor = load(args.model, trust_imports=args.trust_imports)
    if args.threshold is not None:  # a softmax's scores sum to 1: say what the threshold can keep
        note = threshold_meaning(predictor.info["head"], args.threshold)
        if note:
            print(f"tfxc: note: {note}", file=sys.stderr)
    k = args.top_k or predictor.info.get("top_k") or DEFAULT_TOP_K
    reads_text = predictor.input_kind == "text" or predictor.reads_text_as_features
    if args.interactive:
        if not reads_text:
            raise TfxcError(f"{args.model} reads feature rows, not text: use --input")
        return interactive(predictor, k, args.threshold)
    start, count = time.time(), 0
    fmt = args.format or source_format(args.input, default="xc")
    refs = []  # image models: each row's image
    if predictor.input_kind == "image":
        def image_results():
            for chunk, data in image_batches(args.input, args.batch_size):
                refs.extend(chunk)
                yield predictor.top_k(data, k, batch_size=len(data), names=chunk.__getitem__)

        results = image_results()
    elif fmt == "jsonl":  # strings: tokenised by a text encoder, or featurized by the model's TF-IDF
        if not reads_text:
            raise TfxcError(f"{args.model} was not trained on text; give BoW input instead")
        results = (predictor.top_k(texts, k, batch_size=len(texts))
                   for texts in text_batches(args.input, args.batch_size))
    elif predictor.input_kind == "text":
        raise TfxcError(f"{args.model} reads raw text: give a JSONL file of {{\"text\": ...}} lines")
    else:
        rows = iter_feature_rows(args.input, fmt, predictor.num_features, args.index_base)
        results = (predictor.top_k(x, k, batch_size=x.shape[0])
                   for x in csr_batches(rows, args.batch_size, predictor.num_features))
    if args.output.endswith(".npz"):
        count = write_score_matrix(args.output, results, predictor.num_labels, args.threshold)
        print(f"wrote {count} rows of scores to {args.output} in {time.time() - start:.1f}s", file=sys.stderr)
        return 0
    progress = Progress("predicted")
    with atomic_writer(args.output) as out:
        for ids, scores in results:
            progress.update(int(ids.shape[0]))
            for i in range(ids.shape[0]):
                found = ids[i] >= 0  # a beam search may reach fewer than k labels (id -1)
                if args.threshold is not None:
                    found &= scores[i] > args.threshold
                out.write(json_text({"row": count, **({"ref": refs[count]} if refs else {}),
                                     "label_ids": ids[i][found].tolist(),
                                     "labels": [predictor.label_names[j] for j in ids[i][found]],
                                     "scores": [round(float(x), 6) for x in scores[i][found]]}) + "\n")
                count += 1
    progress.close()
    print(f"wrote {count} predictions to {args.output} in {time.time() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
