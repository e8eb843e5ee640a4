"""python -m tfxc.evaluate --model-dir DIR [--json] [--split test] [--bad-cases FILE] [--report [FILE]]

Evaluates a trained model directory: its selected weights (`trainer.select_metric`), else its
latest checkpoint. A model trained in parts (MACH repetitions, `train.sh`) is scored one part at a
time (`tfxc.eval.parts`); an ensemble (`--preset best`, `tfxc.members`) by its members' combined lists. With --json the last line printed is one JSON object of all metrics, in percent.
"""

from __future__ import annotations

import argparse
import json
import sys

from tfxc.cli import add_set_args, add_trust_args, keep_out_of_import_path, main_wrapper, setup_logging
from tfxc.errors import TfxcError
from tfxc.model_dir import ModelDir


@main_wrapper
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfxc.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--split", default="test",
                        help="the converted split to evaluate: test (default), val when the data has one, or train")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object (last line)")
    parser.add_argument("--bad-cases", metavar="FILE",
                        help="also write the rows whose first prediction is wrong (text, labels, top-5 with scores) "
                             "to FILE as JSON lines, and print the most frequent confusions")
    parser.add_argument("--report", nargs="?", const="-", metavar="FILE",
                        help="also score the predicted label sets (precision, recall, F1: micro, macro, weighted, "
                             "samples; accuracy) and print the per-label table, or write it to FILE as CSV. A "
                             "multi-class split predicts its top label, a multi-label one every label scored above "
                             "eval.threshold (0.5: --set eval.threshold=0.3 to change it)")
    add_set_args(parser, "evaluation settings of the trained config",
                 "--set eval.ks=[1,3,5,10] or --set model.head.eval_top_buckets=50, MACH's approximate evaluation")
    add_trust_args(parser)
    args = parser.parse_args(argv)
    setup_logging()
    if args.report:
        args.overrides = [*args.overrides, "eval.classification=true"]
    keep_out_of_import_path([args.model_dir])
    model_dir = ModelDir(args.model_dir)
    from tfxc.eval.evaluator import format_metrics, metric_lines, rounded_metrics

    record = model_dir.ensemble()
    if record is not None:  # the best preset's directory: its members' lists combined (tfxc.members)
        if args.bad_cases or args.report:
            raise TfxcError(f"{args.model_dir} is an ensemble; --bad-cases and --report read one model: give a "
                            f"member ({', '.join(model_dir.ensemble_members())}), or combine the members with "
                            "python -m tfxc.ensemble")
        from tfxc.ensemble import run_ensemble

        metrics = run_ensemble(model_dir.ensemble_members(), record["method"], args.split, record["list_size"],
                               args.overrides, trust_imports=args.trust_imports)["ensemble"]
    else:
        metrics = evaluate_model(model_dir, args)
    if args.json:
        print(json.dumps(rounded_metrics(metrics)))
    else:
        print(f"{args.split}: " + format_metrics(metrics))
        print("\n".join(metric_lines(metrics)))
    return 0


def evaluate_model(model_dir: ModelDir, args) -> dict:
    """The metrics of one model's directory (trained whole or in parts) on `args.split`, in percent."""
    config = model_dir.load_config(args.overrides, trust_imports=args.trust_imports)
    from tfxc.data.info import damaged_shards_named
    from tfxc.eval.evaluator import Evaluator

    if model_dir.has_finished_parts(config) and not args.bad_cases:
        # Trained in parts: scored one part at a time, never the whole model in memory (tfxc.eval.parts).
        from tfxc.data.folds import converted_dir
        from tfxc.data.info import DatasetInfo
        from tfxc.eval.parts import PartsEvaluator

        evaluator = PartsEvaluator(config, model_dir, DatasetInfo.load(converted_dir(config.data)), split=args.split)
    else:
        trained = model_dir.restore(config)
        evaluator = Evaluator(trained.model, trained.info, config.eval, split=args.split)
    with damaged_shards_named(evaluator.info, args.split):  # a DataLossError does not say which shard
        metrics = evaluator.evaluate()
        if args.bad_cases:
            from tfxc.eval.bad_cases import write_bad_cases

            bad, seen, confusions = write_bad_cases(evaluator, args.bad_cases)
    if args.bad_cases:
        print(f"{bad} bad cases of {seen} rows written to {args.bad_cases}; most frequent confusions "
              "(true -> predicted: count):", file=sys.stderr)
        for true, predicted, count in confusions:
            print(f"  {true} -> {predicted}: {count}", file=sys.stderr)
    if args.report:
        from tfxc.eval.report import report_text, write_report_csv

        rows = evaluator.classification.report(evaluator.info.label_names())
        if args.report == "-":
            print(report_text(rows, metrics), file=sys.stderr if args.json else sys.stdout)
        else:
            write_report_csv(args.report, rows)
            print(f"per-label report of {len(rows)} labels written to {args.report}", file=sys.stderr)
    return metrics


if __name__ == "__main__":
    sys.exit(main())
