"""python -m tfxc.evaluate --model-dir DIR [--json] [--split test]

Evaluates the latest checkpoint of a trained model directory. With --json the
last line printed is one JSON object of all metrics, in percent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tfxc.cli import main_wrapper, setup_logging
from tfxc.config import load_config
from tfxc.errors import TfxcError


def load_trained_config(model_dir: str, overrides=()):
    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        raise TfxcError(f"{model_dir}: not a tfxc model directory (no config.json)")
    return load_config(path, overrides)


@main_wrapper
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfxc.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object (last line)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="eval.KEY=VALUE",
                        help="override evaluation settings of the trained config, e.g. --set eval.ks=[1,3,5,10] "
                             "or --set model.head.eval_top_buckets=50 (MACH's approximate evaluation)")
    args = parser.parse_args(argv)
    setup_logging()
    config = load_trained_config(args.model_dir, args.overrides)
    from tfxc.eval.evaluator import Evaluator
    from tfxc.training.trainer import format_metrics, restore_model

    model, info = restore_model(config, args.model_dir)
    metrics = Evaluator(model, info, config.eval, split=args.split).evaluate()
    if args.json:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}))
    else:
        print(f"{args.split}: " + format_metrics(metrics))
        for key, value in metrics.items():
            print(f"  {key:>10} {value:10.4f}" if isinstance(value, float) else f"  {key:>10} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
