"""python -m tfxc.ensemble --model-dir DIR --model-dir DIR [...] [--method softmax_average] [--split test] [--json]

Ensembles the top-k lists of several trained model directories (PECOS XR-Transformer's
`CsrEnsembler`; the methods are in `tfxc.eval.ensemble`) and evaluates every model and the
ensemble on one split. All models must be trained on the same converted data. The split is
streamed through all models in lockstep, batch by batch (no [N, L] matrix); each model
contributes its top `--list-size` labels per row, and the combined list is evaluated at the
first model's eval.ks. With --json the last line printed is one JSON object:
{"split", "method", "list_size", "models": [{"model_dir", metric: value, ...}, ...],
"ensemble": {metric: value, ...}}, metrics in percent.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

import numpy as np

from tfxc.cli import add_set_args, add_trust_args, keep_out_of_import_path, main_wrapper, positive_int, setup_logging
from tfxc.errors import TfxcError
from tfxc.eval.ensemble import METHODS, combine
from tfxc.model_dir import ModelDir
from tfxc.utils.display import json_text

log = logging.getLogger("tfxc.ensemble")

DEFAULT_LIST_SIZE = 100


@main_wrapper
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tfxc.ensemble",
        description="Ensembles the top-k lists of several trained models (PECOS CsrEnsembler) and evaluates "
                    "every model and the ensemble on one split")
    parser.add_argument("--model-dir", dest="model_dirs", action="append", default=[], metavar="DIR",
                        help="a trained model directory; give two or more (the same one twice is allowed)")
    parser.add_argument("--method", default="softmax_average",
                        help=f"how to combine the lists: {', '.join(METHODS)} (default softmax_average)")
    parser.add_argument("--split", default="test",
                        help="the converted split to evaluate: test (default), val when the data has one, or train")
    parser.add_argument("--list-size", "--top-k", dest="list_size", type=positive_int, default=DEFAULT_LIST_SIZE,
                        help=f"labels per row taken from each model (default {DEFAULT_LIST_SIZE}; at least "
                             "max(eval.ks), at most the number of labels): longer lists let a label ranked low by "
                             "one model be lifted by the others")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object (last line)")
    parser.add_argument("--out-of-fold", metavar="FILE",
                        help="models of the K folds of one conversion (data.val_fold): also write each train point's "
                             "top max(eval.ks) labels by the fold model that held it out, as JSON lines in the train "
                             "source's order")
    add_set_args(parser, "settings of every model's trained config (the first model's eval settings: ks, "
                         "batch_size and max_points serve all models)", "--set eval.ks=[1,3,5,10]")
    add_trust_args(parser)
    args = parser.parse_args(argv)
    if len(args.model_dirs) < 2:
        raise TfxcError(f"an ensemble needs at least 2 --model-dir, got {len(args.model_dirs)}")
    if args.method not in METHODS:
        raise TfxcError(f"unknown --method {args.method!r}; known: {', '.join(METHODS)}")
    setup_logging()
    keep_out_of_import_path(args.model_dirs)
    result = run_ensemble(args.model_dirs, args.method, args.split, args.list_size, args.overrides,
                          trust_imports=args.trust_imports)
    if args.out_of_fold:
        from tfxc.eval.out_of_fold import write_out_of_fold

        count = write_out_of_fold(args.model_dirs, args.out_of_fold, overrides=args.overrides,
                                  trust_imports=args.trust_imports)
        print(f"out-of-fold predictions of {count} train points written to {args.out_of_fold}", file=sys.stderr)
    if args.json:
        print(json_text(result))
    else:
        _print_text(result)
    return 0


def run_ensemble(model_dirs: list[str], method, split: str = "test", list_size: int = DEFAULT_LIST_SIZE,
                 overrides=(), trust_imports=False) -> dict:
    """Evaluates every model of `model_dirs` and their `method` ensemble on `split`.

    `method` is one of `METHODS`, or a sequence of them: each is evaluated on the same predictions (the
    models score the split once), the first reported as "ensemble". `trust_imports` says which of the model
    directories' `imports` may run (`ModelDir.load_config`).

    Returns:
      {"split", "method", "list_size", "models": [{"model_dir", metrics...}], "ensemble": {metrics...},
      "methods": {method: {metrics...}}}, metrics in percent rounded to 4 decimals (as `tfxc.evaluate --json`).

    Raises:
      TfxcError: models trained on different data, a missing split, or an unknown method.
    """
    from tfxc.eval.classification import ClassificationMetrics, predicted_sets
    from tfxc.eval.evaluator import Evaluator, pad_ids, rounded_metrics
    from tfxc.eval.metrics import XmcMetrics
    from tfxc.data.propensity import dataset_propensities

    methods = (method,) if isinstance(method, str) else tuple(method)
    for name in methods:
        if name not in METHODS:
            raise TfxcError(f"unknown ensemble method {name!r}; known: {', '.join(METHODS)}")
    members = []  # (path, TrainedModel)
    for path in model_dirs:
        model_dir = ModelDir(path)
        trained = model_dir.restore(model_dir.load_config(overrides, trust_imports=trust_imports))
        if members:
            _check_same_data(members[0][0], members[0][1].info, path, trained.info, split)
        members.append((path, trained))
    info = members[0][1].info
    eval_config = members[0][1].config.eval
    for path, trained in members[1:]:
        if trained.config.eval != eval_config:
            log.info("%s: evaluating with the eval settings of %s", path, members[0][0])
    ks, kmax = eval_config.ks, max(eval_config.ks)
    list_k = min(max(kmax, list_size), info.num_labels)
    wide = dataclasses.replace(eval_config, ks=(list_k,))
    evaluators = [Evaluator(trained.model, trained.info, wide, split=split) for _, trained in members]
    propensities = dataset_propensities(info, eval_config.propensity_a, eval_config.propensity_b)

    def new_metrics():
        return XmcMetrics(ks=ks, multiclass=evaluators[0].multiclass, propensities=propensities)

    def new_sets():  # eval.classification: the label sets too, the top label or those above eval.threshold
        return ClassificationMetrics(info.num_labels) if eval_config.classification else None

    threshold = None if evaluators[0].multiclass else eval_config.threshold
    per_model = [new_metrics() for _ in members]
    ensembles = {name: new_metrics() for name in methods}
    model_sets, ensemble_sets = [new_sets() for _ in members], {name: new_sets() for name in methods}
    log.info("ensembling %d models with %s on %s: lists of %d labels per model, evaluated at k in %s",
             len(members), " and ".join(methods), split, list_k, list(ks))
    streams = [evaluator.predictions() for evaluator in evaluators]
    for batch in _lockstep(streams, [path for path, _ in members]):
        labels = batch[0][2]
        indptr, indices = labels.row_splits.numpy().astype(np.int64), labels.values.numpy()
        scores_list, ids_list = [], []
        for (path, _), (scores, ids, other), metrics, sets in zip(members, batch, per_model, model_sets):
            if other is not labels and not (np.array_equal(other.row_splits.numpy(), labels.row_splits.numpy())
                                            and np.array_equal(other.values.numpy(), indices)):
                raise TfxcError(f"{members[0][0]} and {path} read different rows of the '{split}' split; "
                                "were they trained on the same converted data?")
            scores = np.asarray(scores, dtype=np.float32)
            if scores.shape[1] < ids.shape[1]:  # ids padded with -1 to the list length
                scores = np.pad(scores, ((0, 0), (0, ids.shape[1] - scores.shape[1])), constant_values=-np.inf)
            scores_list.append(scores)
            ids_list.append(ids)
            metrics.update(pad_ids(ids, kmax), indptr, indices)
            if sets is not None:
                sets.update(predicted_sets(ids, scores, threshold=threshold), indptr, indices)
        for name, ensemble in ensembles.items():
            combined_scores, combined_ids = combine(scores_list, ids_list, name, kmax)
            ensemble.update(combined_ids, indptr, indices)
            if ensemble_sets[name] is not None:
                ensemble_sets[name].update(predicted_sets(combined_ids, combined_scores, threshold=threshold),
                                           indptr, indices)

    def result(metrics, sets):
        return rounded_metrics({**metrics.result(), **(sets.result() if sets is not None else {})})

    results = {name: result(ensemble, ensemble_sets[name]) for name, ensemble in ensembles.items()}
    return {"split": split, "method": methods[0], "list_size": list_k,
            "models": [{"model_dir": path, **result(m, sets)}
                       for (path, _), m, sets in zip(members, per_model, model_sets)],
            "ensemble": results[methods[0]], "methods": results}


def _check_same_data(first_path: str, first, path: str, info, split: str) -> None:
    """Raises a TfxcError naming both model dirs unless `first` and `info` describe the same converted data."""
    differences = []
    if info.num_labels != first.num_labels:
        differences.append(f"{first.num_labels} vs {info.num_labels} labels")
    if split in first.splits and split in info.splits and first.num_points(split) != info.num_points(split):
        differences.append(f"{first.num_points(split)} vs {info.num_points(split)} {split} points")
    if not differences and not (info.same_data_as(first) or info.fold_siblings(first)):
        differences.append(f"data fingerprints differ ({first.dir} vs {info.dir})")
    if differences:
        raise TfxcError(f"{first_path} and {path} were not trained on the same converted data "
                        f"({'; '.join(differences)}); an ensemble needs models of one data set")


def _lockstep(streams, paths):
    """Yields one tuple of batches per step from all streams; a stream that ends early is an error."""
    done = object()
    while True:
        batch = tuple(next(stream, done) for stream in streams)
        if all(b is done for b in batch):
            return
        if any(b is done for b in batch):
            short = paths[[b is done for b in batch].index(True)]
            raise TfxcError(f"{short} ran out of rows before {paths[[b is not done for b in batch].index(True)]}; "
                            "the models must read the same split with the same eval.batch_size")
        yield batch


def _print_text(result: dict) -> None:
    from tfxc.eval.evaluator import format_metrics, metric_lines

    print(f"{result['split']}: {len(result['models'])} models, {result['method']}, "
          f"lists of {result['list_size']} labels per model")
    for i, model in enumerate(result["models"], 1):
        metrics = {k: v for k, v in model.items() if k != "model_dir"}
        print(f"  model {i} ({model['model_dir']}): " + format_metrics(metrics))
    print(f"ensemble ({result['method']}): " + format_metrics(result["ensemble"]))
    print("\n".join(metric_lines(result["ensemble"])))


if __name__ == "__main__":
    sys.exit(main())
