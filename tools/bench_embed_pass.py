"""One embedding pass of a converted text split through the offline all-MiniLM-L6-v2, in file order or by length.

  python tools/bench_embed_pass.py --data-dir runs/data/DIR --split val --order length [--max-points 2048]

XR-Transformer embeds every training row once per level and the ranker's evaluations run the encoder over
validation: `--order file` batches the rows as they are stored (each batch padded to its longest text),
`--order length` as `embed_split` and the evaluator now do (`tfxc.data.pipeline.length_sorted_batches`).
Prints one line: rows, seconds, rows/s and the real and padded tokens per row.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tfxc.cli import positive_int


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="a directory written by tfxc.convert from text")
    parser.add_argument("--split", default="val")
    parser.add_argument("--order", choices=("file", "length"), default="length")
    parser.add_argument("--max-points", type=positive_int, default=None, help="the split's first rows only")
    parser.add_argument("--max-length", type=positive_int, default=64)
    parser.add_argument("--batch-size", type=positive_int, default=256)
    args = parser.parse_args(argv)

    from tfxc.data.info import DatasetInfo
    from tfxc.data.pipeline import eval_dataset, length_sorted_batches
    from tfxc.encoders.pretrained import PretrainedEncoder, default_preset_dir
    from tfxc.utils.graph import BatchFunction

    info = DatasetInfo.load(args.data_dir)
    encoder = PretrainedEncoder(default_preset_dir(), max_length=args.max_length, dropout=0.0)
    embed = BatchFunction(lambda batch: encoder(batch, training=False))
    batches = (eval_dataset if args.order == "file" else length_sorted_batches)(
        info.files(args.split), args.batch_size, args.max_points or 0, preprocess=encoder.preprocess)
    start, rows, real, padded = time.time(), 0, 0, 0
    for batch in batches:
        embed(batch).numpy()
        mask = batch["padding_mask"].numpy()
        rows, real, padded = rows + mask.shape[0], real + int(mask.sum()), padded + mask.size
    seconds = time.time() - start
    print(f"{args.order} order: {rows} {args.split} rows in {seconds:.1f}s ({rows / seconds:.0f} rows/s), "
          f"{real / rows:.1f} tokens a row padded to {padded / rows:.1f}", flush=True)
    return np.array([seconds])


if __name__ == "__main__":
    main()
