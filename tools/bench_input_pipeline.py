"""Input-pipeline throughput: examples/s of tfxc's training stream (read, shuffle, batch, parse).

  python tools/bench_input_pipeline.py --config configs/wordnet_hypernyms.json [--epochs 3]

Converts the config's data if needed, then iterates whole epochs of
`tfxc.data.pipeline.train_dataset` (no model) and reports examples/s per epoch.
"""

from __future__ import annotations

import argparse
import time

from tfxc.cli import add_set_args, positive_int
from tfxc.data.pipeline import train_dataset
from tfxc.resolve import load_with_data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--epochs", type=positive_int, default=3)
    add_set_args(parser)
    args = parser.parse_args()
    config, info = load_with_data(args.config, args.overrides)  # a thin config: the recipe for its data
    gb = config.trainer.global_batch_size
    for epoch in range(args.epochs):
        ds = train_dataset(info.files("train"), num_points=info.num_points("train"), global_batch_size=gb,
                           seed=config.runtime.seed, shuffle_buffer=config.data.shuffle_buffer, epoch=epoch)
        start, examples, nnz = time.perf_counter(), 0, 0
        for batch in ds:
            examples += int(batch["row_id"].shape[0])
            nnz += int(batch["feat_idx"].values.shape[0])
        seconds = time.perf_counter() - start
        print(f"epoch {epoch}: {examples} examples ({nnz / examples:.1f} features/example, batch {gb}) in "
              f"{seconds:.2f}s = {examples / seconds:,.0f} examples/s")


if __name__ == "__main__":
    main()
