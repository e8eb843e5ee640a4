"""python -m tfxc.encode --text-path X.trn.txt --model-dir MODEL --save-emb-path X.trn.emb.npy [--batch-size 64]

Writes the encoder's embedding of every text: a float32 [N, dim] .npy, row i for
text i, not normalised (PECOS's `pecos.xmc.xtransformer.encode` writes the same;
normalise rows yourself, or pass --normalize). It is the "raw_embedding" of the
model's SavedModel `embed` signature.

Texts: one per line (PECOS's X.*.txt; an empty line is an empty text), or JSONL
lines {"text": ...} for a .jsonl / .jsonl.gz / .json file. --model-dir takes a
tfxc model directory, an ensemble's (its first member embeds, as in its
SavedModel) or an exported SavedModel; any model whose encoder reads text, or
that was trained on text converted to TF-IDF rows. For an image model, each line
is an image's path (relative to the file's folder). The output is written in
batches to a temporary file, renamed into place when complete.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator

import numpy as np

from tfxc.cli import Progress, add_trust_args, keep_out_of_import_path, main_wrapper, positive_int, setup_logging
from tfxc.errors import DataError, TfxcError
from tfxc.utils.io import atomic_writer, refuse_to_overwrite_inputs

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")


def iter_texts(path: str) -> Iterator[str]:
    """The texts of `path`: JSONL "text" fields (by the suffixes above), else one text per line."""
    from tfxc.data.files import text_lines
    from tfxc.data.readers import iter_jsonl

    if path.endswith(JSONL_SUFFIXES):
        yield from (record.text for record in iter_jsonl(path, require_labels=False))
        return
    yield from text_lines(path)


def text_batches(path: str, batch_size: int) -> Iterator[list[str]]:
    """The texts of `path` (`iter_texts`), `batch_size` at a time."""
    from tfxc.utils.batches import batched

    return batched(iter_texts(path), batch_size)


def write_embeddings(out, batches, num_rows: int, progress: Progress | None = None) -> tuple[int, int]:
    """Streams float32 [n_b, dim] `batches` into the open binary file `out` as one [num_rows, dim] .npy.

    The .npy header needs the shape first: `num_rows` is counted beforehand, the
    width is the first batch's. Returns (rows, dim) written.
    """
    rows, dim = 0, None
    for batch in batches:
        batch = np.ascontiguousarray(batch, dtype="<f4")
        if dim is None:
            dim = batch.shape[1]
            np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False,
                                                       "shape": (num_rows, dim)})
        out.write(batch.tobytes())
        rows += batch.shape[0]
        if progress is not None:
            progress.update(batch.shape[0])
    if rows != num_rows:  # the file changed while it was read
        raise DataError(f"counted {num_rows} texts, then read {rows}")
    return rows, dim


@main_wrapper
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfxc.encode", description=__doc__.splitlines()[0])
    parser.add_argument("-t", "--text-path", required=True,
                        help="the texts: one per line, or JSONL {\"text\": ...} lines (.jsonl, .jsonl.gz, .json)")
    parser.add_argument("-m", "--model-dir", required=True,
                        help="a tfxc model directory, an ensemble's, or an exported SavedModel")
    parser.add_argument("-o", "--save-emb-path", required=True, help="the .npy to write, float32 [N, dim]")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="texts per encoder call (default 64)")
    parser.add_argument("--normalize", action="store_true", help="scale each embedding to unit L2 norm")
    add_trust_args(parser)
    args = parser.parse_args(argv)
    setup_logging()
    refuse_to_overwrite_inputs(args.save_emb_path, {"texts": args.text_path, "model": args.model_dir},
                               "--save-emb-path")
    keep_out_of_import_path([args.model_dir])
    from tfxc.api import load

    start = time.time()
    num_rows = sum(1 for _ in iter_texts(args.text_path))  # also checks every line before the model loads
    if num_rows == 0:
        raise DataError("no texts", path=args.text_path)
    classifier = load(args.model_dir, trust_imports=args.trust_imports)
    if classifier.input_kind not in ("text", "image") and not classifier.reads_text_as_features:
        raise TfxcError(f"{args.model_dir} reads feature rows and has no TF-IDF featurizer: it cannot encode texts")
    progress = Progress("encoded")
    batches = text_batches(args.text_path, args.batch_size)
    if classifier.input_kind == "image":  # lines are image paths, relative to the list's folder
        base = os.path.dirname(os.path.abspath(args.text_path))
        batches = ([os.path.join(base, path) for path in paths] for paths in batches)
    embedded = (classifier.encode(texts, batch_size=args.batch_size, normalize=args.normalize) for texts in batches)
    with atomic_writer(args.save_emb_path, binary=True) as out:
        rows, dim = write_embeddings(out, embedded, num_rows, progress)
    progress.close()
    print(f"wrote {rows} embeddings [{rows}, {dim}] to {args.save_emb_path} in {time.time() - start:.1f}s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
