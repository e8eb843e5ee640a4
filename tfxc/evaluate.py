"""python -m tfxc.evaluate --model-dir DIR [--json] [--split test | --data FILE] [--bad-cases FILE] [--report [FILE]]

Evaluates a trained model on a converted split: its selected weights (`trainer.select_metric`), else its
latest checkpoint. A model whose parts were linked (MACH repetitions, `train.sh`) is scored one part at a
time (`tfxc.eval.parts`); an ensemble (the recipe's best point, k-fold) by its members' combined lists. With --data,
any model (a SavedModel too) is scored on a labelled file instead. What the model is comes from the record
written with it (`tfxc.artifacts`). With --json the last line printed is one JSON object of all metrics, in
percent.

With --pairs, the model is scored on a verification protocol instead of a split (face verification: LFW's
pairs.txt or a CSV of image pairs; `tfxc.eval.verification`): the cosine similarity of each pair's
embeddings (the SavedModel's `embed`), LFW's 10-fold accuracy, TAR at FAR 1e-2, 1e-3, 1e-4 and the ROC's area.
The model may be a model directory or a SavedModel.
"""

from __future__ import annotations

import argparse
import sys

from tfxc.cli import add_set_args, add_trust_args, keep_out_of_import_path, main_wrapper, setup_logging
from tfxc.errors import TfxcError
from tfxc.model_dir import ModelDir
from tfxc.utils.display import json_text


@main_wrapper
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfxc.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir",
                        help="a trained model: a model directory (trained whole or in parts), an ensemble's, or a "
                             "SavedModel (with --data, --pairs or --templates); required but with --features")
    parser.add_argument("--data", metavar="FILE",
                        help="score a labelled file instead of a converted split (any model, a SavedModel too): XC "
                             "BoW text, JSONL lines {\"text\", \"labels\": [names]}, or a PECOS X .npz with "
                             "--labels")
    parser.add_argument("--labels", metavar="Y.npz", help="with --data X.npz: its PECOS label matrix")
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
    parser.add_argument("--pairs", metavar="FILE", help="a verification protocol: LFW's pairs.txt, or a CSV of "
                                                         "image_a,image_b,same[,fold] lines")
    parser.add_argument("--images", default="", metavar="DIR", help="the folder the pairs' images are under "
                                                                    "(default: the pair list's folder)")
    parser.add_argument("--roc", metavar="FILE", help="with --pairs, also write the ROC (far,tar,threshold) as CSV, "
                                                  "and draw it beside it as an SVG (FILE with .svg)")
    parser.add_argument("--pr-curve", metavar="FILE",
                        help="also write the precision-recall curve of thresholded multi-label prediction (micro, "
                             "every threshold) as CSV, and draw it beside it as an SVG (FILE with .svg)")
    parser.add_argument("--templates", metavar="FILE",
                        help="template verification (IJB-B/C): a list of 'image template media' lines; needs "
                             "--template-pairs; images under --images, or their features in --features")
    parser.add_argument("--template-pairs", metavar="FILE", help="with --templates: 'template_a template_b label' "
                                                                 "lines")
    parser.add_argument("--features", metavar="DIR", help="with --templates, instead of a model: a tfxc.extract "
                                                          "output whose refs are the list's image paths")
    parser.add_argument("--flip", action="store_true", help="with --templates and a model: embed each image plus its "
                                                            "mirror image (insightface's flip test)")
    add_set_args(parser, "evaluation settings of the trained config",
                 "--set eval.ks=[1,3,5,10] or --set model.head.prediction.top_buckets=50, MACH's approximate evaluation")
    add_trust_args(parser)
    args = parser.parse_args(argv)
    setup_logging()
    if args.report:
        args.overrides = [*args.overrides, "eval.classification=true"]
    if not args.model_dir and not (args.templates and args.features):
        parser.error("--model-dir is required (with --templates, --features may take its place)")
    if bool(args.templates) != bool(args.template_pairs):
        parser.error("--templates and --template-pairs go together")
    if args.features and (not args.templates or args.model_dir or args.flip):
        parser.error("--features (extracted features) goes with --templates, instead of --model-dir and --flip")
    keep_out_of_import_path([args.model_dir] if args.model_dir else [])
    if args.templates:
        report = verify_templates(args.model_dir or args.features, args.templates, args.template_pairs, args.images,
                                  args.roc, from_features=bool(args.features), flip=args.flip,
                                  trust_imports=args.trust_imports)
        print_report(report, args.json)
        return 0
    if args.pairs:
        report = verify_pairs(args.model_dir, args.pairs, args.images, args.roc, args.trust_imports)
        print_report(report, args.json)
        return 0
    from tfxc import artifacts
    from tfxc.eval.evaluator import format_metrics, metric_lines, rounded_metrics

    kind = artifacts.kind_of(args.model_dir)["artifact"]
    model_dir = ModelDir(args.model_dir)
    if args.data:
        if args.bad_cases:
            raise TfxcError("--bad-cases reads a converted split; give no --data")
        metrics = evaluate_file(args)
    elif kind == artifacts.SAVED_MODEL:
        raise TfxcError(f"{args.model_dir} is a SavedModel: it holds no converted split; give --data FILE, a "
                        "labelled file to score it on")
    elif kind == artifacts.ENSEMBLE:  # its members' lists combined (the recipe's best point, k-fold)
        if args.bad_cases or args.report:
            raise TfxcError(f"{args.model_dir} is an ensemble; --bad-cases and --report read one model: give a "
                            f"member ({', '.join(model_dir.ensemble_members())}), or combine the members with "
                            "python -m tfxc.ensemble")
        from tfxc.ensemble import run_ensemble

        record = model_dir.ensemble()
        metrics = run_ensemble(model_dir.ensemble_members(), record["method"], args.split, record["list_size"],
                               args.overrides, trust_imports=args.trust_imports)["ensemble"]
    else:
        metrics = evaluate_model(model_dir, args, linked=kind == artifacts.LINKED_PARTS)
    if args.json:
        print(json_text(rounded_metrics(metrics)))
    else:
        print(f"{args.split}: " + format_metrics(metrics))
        print("\n".join(metric_lines(metrics)))
    return 0


def print_report(report: dict, as_json: bool) -> None:
    """A verification report: one JSON object, or a "key: value" line each."""
    print(json_text(report) if as_json else "\n".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                                                       for k, v in report.items()))


def verify_pairs(model: str, pairs_path: str, image_root: str = "", roc_path: str | None = None,
                 trust_imports=False) -> dict:
    """`tfxc.eval.verification.verification_report` of a model (directory or SavedModel) on a pair list."""
    from tfxc.api import load
    from tfxc.eval.verification import pair_scores, read_pairs, roc_curve, verification_report, write_roc

    pairs, same, folds = read_pairs(pairs_path, image_root)  # a bad list fails before the model loads
    classifier = load(model, trust_imports=trust_imports)
    scores = pair_scores(pairs, lambda images: classifier.encode(images, normalize=True))
    if roc_path:  # the CSV, and its picture beside it (.svg)
        write_roc(roc_path, *roc_curve(scores, same))
    return {"model": model, "pairs_file": pairs_path, **verification_report(scores, same, folds)}


def verify_templates(source: str, templates_path: str, pairs_path: str, image_root: str = "",
                     roc_path: str | None = None, from_features: bool = False, flip: bool = False,
                     trust_imports=False) -> dict:
    """`tfxc.eval.templates.template_report` of a model (directory or SavedModel) or of extracted features
    (`source`) on an IJB-style protocol: a template list and its template pairs."""
    import os

    from tfxc.eval import templates as t
    from tfxc.eval.verification import roc_curve, write_roc

    listed = t.read_template_list(templates_path)  # bad lists fail before the model loads
    a, b, same = t.read_template_pairs(pairs_path, listed.templates)
    if from_features:
        from tfxc.images.feature_store import read_extraction

        refs, features = read_extraction(source)
        embeddings = t.features_of_images(listed.images, refs, features, source)
    else:
        from tfxc.api import load
        from tfxc.images.preprocessing import mirrored_png

        root = image_root or os.path.dirname(os.path.abspath(templates_path))
        paths = [os.path.join(root, image) for image in listed.images]
        model = load(source, trust_imports=trust_imports)
        embeddings = model.encode(paths)
        if flip:
            with_bytes = [open(path, "rb").read() for path in paths]  # encode() has named any unreadable one
            embeddings = embeddings + model.encode([mirrored_png(data) for data in with_bytes])
    ids, features = t.template_features(embeddings, listed.templates, listed.medias)
    scores = t.pair_scores(ids, features, a, b)
    if roc_path:  # the CSV, and its picture beside it (.svg)
        write_roc(roc_path, *roc_curve(scores, same))
    return {"source": source, "templates_file": templates_path, "templates": int(ids.size),
            "images": len(listed.images), "flip": flip, **t.template_report(scores, same)}


def write_pr_curve_of(evaluator, path: str) -> None:
    """The precision-recall curve of the evaluator's top-k lists (`tfxc.eval.pr_curve`), written to `path`."""
    from tfxc.eval.pr_curve import PrCurve, write_pr_curve

    curve = PrCurve()
    for scores, ids, labels in evaluator.predictions():
        curve.update(scores, ids, labels.row_splits.numpy(), labels.values.numpy())
    svg = write_pr_curve(path, *curve.curve())
    print(f"precision-recall curve written to {path} and drawn in {svg}", file=sys.stderr)


def evaluate_file(args) -> dict:
    """The metrics (percent) of any model on the labelled file `args.data` (`tfxc.predictors.Predictor.evaluate`)."""
    from tfxc.data.labelled import read_labelled
    from tfxc.predictors import load

    X, Y = read_labelled(args.data, args.labels)  # a bad file fails before the model loads
    predictor = load(args.model_dir, trust_imports=args.trust_imports, overrides=args.overrides)
    return predictor.evaluate(X, Y, classification=bool(args.report))


def evaluate_model(model_dir: ModelDir, args, linked: bool = False) -> dict:
    """The metrics of one model's directory on `args.split`, in percent; `linked`: its head's parts, scored
    one at a time."""
    config = model_dir.load_config(args.overrides, trust_imports=args.trust_imports)
    from tfxc.data.info import damaged_shards_named
    from tfxc.eval.evaluator import Evaluator

    if linked and not (args.bad_cases or args.pr_curve):  # both read the whole model's top-k lists
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
        if args.pr_curve:
            write_pr_curve_of(evaluator, args.pr_curve)
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
