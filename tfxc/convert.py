"""python -m tfxc.convert: source files -> sharded TFRecords + labels.txt + stats.json.

Either name the sources:
  python -m tfxc.convert --format xc --train train.txt --test test.txt --out DIR
  python -m tfxc.convert --format pecos --train X.trn.npz --train-labels Y.trn.npz \\
      --test X.tst.npz --test-labels Y.tst.npz --out DIR
  python -m tfxc.convert --format jsonl --train train.jsonl --test test.jsonl --out DIR
  python -m tfxc.convert --format dense --train X.npy --train-labels y.npy ... --out DIR
or convert the data section of a config:
  python -m tfxc.convert --config configs/bibtex.json
(`tfxc.train` converts on first use too; this is for preparing data ahead of time.)
"""

from __future__ import annotations

import argparse
import json
import sys

from tfxc.cli import AsciiInt, add_config_args, main_wrapper, positive_int, setup_logging
from tfxc.config import load_config
from tfxc.config.data_schema import DATA_FORMATS


@main_wrapper
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfxc.convert", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_config_args(parser)
    parser.add_argument("--format", choices=[f for f in DATA_FORMATS if f != "tfrecord"])
    parser.add_argument("--train")
    parser.add_argument("--test")
    parser.add_argument("--train-labels", default="")
    parser.add_argument("--test-labels", default="")
    parser.add_argument("--label-names", default="", help="labels.txt with one label name per line")
    parser.add_argument("--index-base", type=AsciiInt(0, 1), default=0,
                        help="1 for 1-based feature ids (header-less XC)")
    parser.add_argument("--num-shards", type=positive_int, default=4)
    parser.add_argument("--out", help="output directory")
    parser.add_argument("--force", action="store_true", help="convert even if DIR is up to date")
    args = parser.parse_args(argv)
    setup_logging()
    if args.config:
        overrides = list(args.overrides) + ([f"data.dir={json.dumps(args.out)}"] if args.out else [])
        data = load_config(args.config, overrides).data
    else:
        if not (args.format and args.out):
            parser.error("give --config, or --format, --train, --test and --out")
        overrides = [f"data.format={args.format}", f"data.dir={json.dumps(args.out)}", f"data.num_shards={args.num_shards}",
                     f"data.index_base={args.index_base}"]
        for key in ("train", "test", "train_labels", "test_labels", "label_names"):
            if getattr(args, key):
                overrides.append(f"data.{key}={json.dumps(getattr(args, key))}")
        data = load_config(None, overrides + list(args.overrides)).data
    from tfxc.data.convert import ensure_converted

    info = ensure_converted(data, force=args.force)
    print(json.dumps({"dir": info.dir, "num_features": info.num_features, "num_labels": info.num_labels,
                      "splits": {k: v["num_points"] for k, v in info.splits.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
