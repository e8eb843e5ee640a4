"""python -m tfxc.export --model-dir DIR --out DIR [--format saved_model|onnx] [--tf-serving [--model-name NAME]]
[--top-k K] [--inputs auto|text|features] [--index auto|on|off] [--index-recall R] [--set ...]

Writes a SavedModel of the latest checkpoint (of an ensemble's members, `--recipe best`: one SavedModel that
combines their lists, `tfxc.export.ensemble`); see `tfxc.export.saved_model` for its signatures and
`tfxc.export.index_choice` for the label index (--inputs, --index and --index-recall set export.inputs,
export.index and export.index_recall). `--format onnx` writes the ONNX twin instead (`tfxc.export.onnx`);
`--tf-serving` the next version of a model server's base path (`tfxc.export.tf_serving`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from tfxc.cli import (FiniteFloat, add_set_args, add_trust_args, keep_out_of_import_path, main_wrapper, positive_int,
                      setup_logging)
from tfxc.config.schema import EXPORT_INPUTS
from tfxc.export import FORMATS, SAVED_MODEL
from tfxc.utils.io import recover_directory, refuse_to_overwrite_inputs


@main_wrapper
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfxc.export", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True,
                        help="a trained model: a model directory, an ensemble's, or a SavedModel (copied)")
    parser.add_argument("--out", required=True, help="the SavedModel directory to write")
    parser.add_argument("--format", choices=FORMATS, default=SAVED_MODEL,
                        help="saved_model (default), or onnx: the ONNX twin of the model from ids to its top k "
                             "(tfxc.export.onnx; needs pip install -e '.[onnx]')")
    parser.add_argument("--tf-serving", action="store_true",
                        help="lay the SavedModel out for TensorFlow Serving: --out is the model's base path, "
                             "written to its next version OUT/V with warm-up requests (tfxc.export.tf_serving)")
    parser.add_argument("--model-name", default=None,
                        help="with --tf-serving: the server's --model_name in the warm-up requests (default: "
                             "the name of --out)")
    parser.add_argument("--top-k", type=positive_int, default=None, help="k of serving_default (default: export.top_k)")
    parser.add_argument("--inputs", choices=EXPORT_INPUTS, default=None,
                        help="what the signatures of a model on feature rows take: 'auto' strings where its data "
                             "was converted from text, else feature rows (default: export.inputs, 'auto')")
    parser.add_argument("--index", choices=("auto", "on", "off"), default=None,
                        help="serve top_k through a label index (default: export.index, 'off')")
    parser.add_argument("--index-recall", type=FiniteFloat(0, 1, low_open=True), default=None, metavar="R",
                        help="the recall of the exact top-5 the index must reach, in (0, 1] (default: "
                             "export.index_recall)")
    add_set_args(parser, "prediction settings of the trained config",
                 "--set model.head.prediction.beam_size=20, a label tree's beam")
    add_trust_args(parser)
    args = parser.parse_args(argv)
    setup_logging()
    keep_out_of_import_path([args.model_dir])
    from tfxc.predictors import load

    # A previous export that a killed run left aside comes back first, whatever happens to this run.
    recover_directory(args.out)
    # A previous export at --out is replaced whole: it must not hold the model being exported.
    refuse_to_overwrite_inputs(args.out, {"model directory": args.model_dir}, "--out")
    overrides = list(args.overrides)
    if args.inputs is not None:
        overrides.append(f"export.inputs={args.inputs}")
    if args.index is not None:
        overrides.append(f"export.index={args.index}")
    if args.index_recall is not None:
        overrides.append(f"export.index_recall={args.index_recall}")
    # Any artifact: a model directory (its linked parts assembled), an ensemble (its members combined in the
    # graph, `tfxc.export.ensemble`), or a SavedModel (copied as it is).
    model = load(args.model_dir, trust_imports=args.trust_imports, overrides=overrides)
    out = args.out
    if args.tf_serving:
        from tfxc.export.tf_serving import export_for_tf_serving

        if args.format != SAVED_MODEL:
            parser.error("--tf-serving lays out a SavedModel: leave out --format onnx")
        out = export_for_tf_serving(lambda path: model.export(path, args.top_k), args.out, args.model_name)
    else:
        model.export(args.out, args.top_k, args.format)
    logging.getLogger("tfxc.export").info("wrote %s to %s", "SavedModel" if args.format == SAVED_MODEL else "ONNX", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
