"""python -m tfxc.predict --saved-model DIR --input FILE --output FILE [--top-k K] [--threshold T]
python -m tfxc.predict --saved-model DIR --interactive      (raw-text models: type a text, see its labels)

Runs an exported SavedModel over a data file and writes one JSON line per
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

from tfxc.cli import AsciiInt, Progress, finite_float, main_wrapper, positive_int, setup_logging
from tfxc.data.sources import source_format
from tfxc.errors import DataError, TfxcError
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_writer, refuse_to_overwrite_inputs


def iter_feature_rows(path: str, fmt: str, served, index_base: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields (feat_idx int64, feat_val float32) per input row, ids checked against the feature space of
    `served` (a `ServedModel`), texts featurized with its TF-IDF featurizer."""
    from tfxc.data import readers

    num_features = served.num_features
    if fmt == "xc":
        rows = readers.XcBowReader(path, index_base=index_base, num_features=num_features)
    elif fmt == "pecos":
        rows = readers.PecosNpzReader(path, None)
        if rows.num_features > num_features:
            raise DataError(f"has {rows.num_features} feature columns but the model knows {num_features}",
                            path=path)
    elif fmt == "jsonl":
        featurizer = served.featurizer()
        if featurizer is None:
            raise TfxcError(f"{served.path}: this model was not trained on text; give BoW input instead")
        for record in readers.iter_jsonl(path, require_labels=False):
            yield featurizer.transform(record.text)
        return
    else:
        raise TfxcError(f"unknown input format '{fmt}' (xc, jsonl, pecos)")
    for row in rows:
        yield row.feat_idx, row.feat_val


def text_batches(path: str, batch_size: int) -> Iterator[list[str]]:
    """The "text" of a JSONL file's lines, `batch_size` at a time."""
    from tfxc.data import readers

    batch = []
    for record in readers.iter_jsonl(path, require_labels=False):
        batch.append(record.text)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


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


def batches(rows, batch_size: int):
    idx, val, splits = [], [], [0]
    for feat_idx, feat_val in rows:
        idx.append(feat_idx)
        val.append(feat_val)
        splits.append(splits[-1] + len(feat_idx))
        if len(splits) - 1 == batch_size:
            yield idx, val, splits
            idx, val, splits = [], [], [0]
    if len(splits) > 1:
        yield idx, val, splits


def interactive(signature, k: int, threshold: float | None = None) -> int:
    """The prompt loop of --interactive: one text per line in, its top-k labels and scores out."""
    from tfxc._tf import tf
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
        result = signature(text=tf.constant([text]), k=tf.constant(k, tf.int32))
        elapsed = (time.perf_counter() - start) * 1000
        for name, score in zip(result["labels"].numpy()[0], result["scores"].numpy()[0]):
            if name and (threshold is None or score > threshold):
                print(f"  {score:8.4f}  {name.decode('utf-8')}")
        print(f"  ({elapsed:.1f} ms)", file=sys.stderr)
    return 0


@main_wrapper
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfxc.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--saved-model", required=True)
    parser.add_argument("--input", help="the rows to predict (see the formats above)")
    parser.add_argument("--output", help="JSONL predictions (written atomically)")
    parser.add_argument("--interactive", action="store_true",
                        help="read texts from the terminal (one per line, empty line or EOF ends) and print the "
                             "top-k labels of each; for models that read raw text")
    parser.add_argument("--top-k", type=positive_int, default=None,
                        help="labels per row, >= 1 (default: the export's k)")
    parser.add_argument("--threshold", type=finite_float, default=None,
                        help="keep only the labels of the top k scored above this (multi-label prediction: 0.5 "
                             "for one-vs-all sigmoids); a row may then have none")
    parser.add_argument("--format", choices=["xc", "jsonl", "pecos"], default=None)
    parser.add_argument("--batch-size", type=positive_int, default=512)
    parser.add_argument("--index-base", type=AsciiInt(0, 1), default=0,
                        help="1 for XC files with 1-based feature ids")
    args = parser.parse_args(argv)
    setup_logging()
    from tfxc._tf import tf

    from tfxc.export.served import ServedModel

    served = ServedModel(args.saved_model)
    if args.threshold is not None:  # a softmax's scores sum to 1: say what the threshold can keep
        from tfxc.eval.classification import export_threshold_meaning

        note = export_threshold_meaning(args.saved_model, args.threshold)
        if note:
            print(f"tfxc: note: {note}", file=sys.stderr)
    if not args.interactive and not (args.input and args.output):
        raise TfxcError("give --input and --output, or --interactive")
    if not args.interactive and not os.path.exists(args.input):
        raise DataError("file not found", path=args.input)
    if not args.interactive:
        refuse_to_overwrite_inputs(args.output, {"input": args.input, "SavedModel": args.saved_model}, "--output")
    k = served.top_k if args.top_k is None else args.top_k
    signature = served.signature("top_k")
    if args.interactive:
        if not served.reads_text:
            raise TfxcError(f"{args.saved_model} reads feature rows, not text: use --input")
        return interactive(signature, k, args.threshold)
    start, count = time.time(), 0
    fmt = args.format or source_format(args.input, default="xc")
    refs = []  # image models: each row's image
    if served.input_kind == "image":
        def score(images):
            return signature(image=tf.constant(images, tf.string), k=tf.constant(k, tf.int32))

        def image_results():
            from tfxc.images.preprocessing import refused_images

            for chunk, data in image_batches(args.input, args.batch_size):
                refs.extend(chunk)
                try:
                    result = score(data)
                except tf.errors.InvalidArgumentError as e:  # each image it cannot use named, not a traceback
                    raise refused_images(e, lambda j: score(data[j:j + 1]), len(data), name=chunk.__getitem__) from None
                yield result

        results = image_results()
    elif served.reads_text:
        if fmt != "jsonl":
            raise TfxcError(f"{args.saved_model} reads raw text: give a JSONL file of {{\"text\": ...}} lines")
        results = (signature(text=tf.constant(texts), k=tf.constant(k, tf.int32))
                   for texts in text_batches(args.input, args.batch_size))
    else:
        rows = iter_feature_rows(args.input, fmt, served, args.index_base)
        results = (signature(feat_idx=tf.constant(np.concatenate(idx), tf.int64),
                             feat_val=tf.constant(np.concatenate(val), tf.float32),
                             row_splits=tf.constant(splits, tf.int64), k=tf.constant(k, tf.int32))
                   for idx, val, splits in batches(rows, args.batch_size))
    progress = Progress("predicted")
    with atomic_writer(args.output) as out:
        for result in results:
            progress.update(int(result["label_ids"].shape[0]))
            ids, scores, names = (result["label_ids"].numpy(), result["scores"].numpy(),
                                  result["labels"].numpy())
            for i in range(ids.shape[0]):
                found = ids[i] >= 0  # a beam search may reach fewer than k labels (id -1)
                if args.threshold is not None:
                    found &= scores[i] > args.threshold
                out.write(json_text({"row": count, **({"ref": refs[count]} if refs else {}),
                                     "label_ids": ids[i][found].tolist(),
                                     "labels": [n.decode("utf-8") for n in names[i][found]],
                                     "scores": [round(float(s), 6) for s in scores[i][found]]}) + "\n")
                count += 1
    progress.close()
    print(f"wrote {count} predictions to {args.output} in {time.time() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
