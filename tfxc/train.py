"""python -m tfxc.train --config CONFIG [--set k=v ...] [--model-dir DIR] [--data-dir DIR] [--print-config]

Trains (or resumes) a model, then evaluates it on the test split and prints P@1/P@3/P@5.

Without a config, `--train TRAIN [--test TEST] [--val VAL]` picks the format from
the file names, converts the data and trains the recipe that `tfxc.recipe` reads
off it (printed, and kept as MODEL_DIR/config.json for `--config` later). A
*thin* config (`"recipe": true`) names the data and states only what differs
from that recipe. Both are resolved by `tfxc.resolve`, which reads the config file
once. `--recipe fast|default|best|xrt` (or `"recipe": "fast"` in a thin config) picks the recipe's point
on the speed-accuracy frontier (`tfxc.recipe.points`).

What kind of run a config is (one model, a head trained in parts such as MACH's repetitions,
XR-Transformer's levels, the best point's members, k-fold's folds) is decided once, by
`tfxc.runs.plan_for`. Of a run made of members that train apart, `--num-parts` prints how many there
are, `--part r` trains member r alone, `--link-parts` combines the finished ones (`--merge-parts`: a
head's parts also written as one checkpoint); `train.sh` runs all three.
"""

from __future__ import annotations

import argparse
import os
import sys

from tfxc.cli import add_config_args, add_trust_args, any_int, main_wrapper, non_negative_int, setup_logging
from tfxc.config import config_to_json
from tfxc.errors import ConfigError, DataError


def default_model_dir(config_path: str | None) -> str:
    name = os.path.splitext(os.path.basename(config_path))[0] if config_path else "model"
    return os.path.join("runs", name)


@main_wrapper
def main(argv=None):
    from tfxc.config.schema import RECIPE_POINTS
    from tfxc.recipe import points

    parser = argparse.ArgumentParser(prog="python -m tfxc.train", description=__doc__.splitlines()[0])
    add_config_args(parser)
    parser.add_argument("--model-dir", help="where checkpoints, TensorBoard logs and metrics go "
                                            "(default: runs/<config name>)")
    parser.add_argument("--data-dir", help="dense features: a directory of {train,val,test}/features.npy + "
                                           "labels.npy (shorthand for --set data.source_dir=DIR)")
    recipe = parser.add_argument_group("training without a config (the recipe of tfxc.recipe)")
    recipe.add_argument("--train", help="train source: .txt/.svm (Extreme Classification Repository), .npz (PECOS "
                                        "X; Y beside it), .jsonl (text), .npy or a directory (dense)")
    recipe.add_argument("--test", default="", help="test source, in the format of --train")
    recipe.add_argument("--val", default="", help="validation source (default: 10%% of --train, held out)")
    for split in ("train", "test", "val"):
        recipe.add_argument(f"--{split}-labels", default="", help=argparse.SUPPRESS)
    recipe.add_argument("--label-names", default="", help="labels.txt: one label name per line")
    recipe.add_argument("--recipe", default=None, metavar="{" + ",".join(RECIPE_POINTS) + "}",
                        help="where on the speed-accuracy frontier the recipe's config sits (tfxc.recipe.points): "
                             f"{points.described()}; also \"recipe\": \"fast\" in a thin config")
    # An old spelling (`--preset fast`), still accepted: tfxc.compat.spellings.
    recipe.add_argument("--preset", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--print-config", action="store_true",
                        help="print the fully resolved config (every default included) and exit")
    parser.add_argument("--num-parts", action="store_true",
                        help="print how many members of the run train apart (a head's parts, the best point's "
                             "members, k-fold's folds; 1: it trains as a whole) and exit")
    parser.add_argument("--part", type=non_negative_int, default=None,
                        help="train only this member of the run: a head's part (one MACH repetition, in "
                             "MODEL_DIR/parts/part-NNN), a best-point member or a fold (MODEL_DIR/members/)")
    parser.add_argument("--merge-parts", action="store_true",
                        help="assemble the separately trained parts of MODEL_DIR into one model and write it as "
                             "MODEL_DIR's checkpoint (the parts are read one at a time)")
    parser.add_argument("--link-parts", action="store_true",
                        help="make MODEL_DIR the model of its finished members without writing their weights "
                             "again: a head's parts are scored one at a time and assembled to export, an ensemble's "
                             "members combined (what train.sh does)")
    parser.add_argument("--skip-eval", action="store_true",
                        help="no test evaluation after training (train.sh's parts: the whole model is evaluated "
                             "after the last one)")
    parser.add_argument("--allow-changed-config", action="store_true",
                        help="resume a checkpoint even though the config changed beyond the keys that are safe to "
                             "change (epochs, cadences, evaluation, export, replicas), e.g. to fine-tune with "
                             "another learning rate on purpose")
    add_trust_args(parser)  # for a distillation teacher's model directory (loss.teacher)
    parser.add_argument("--plan", action="store_true",
                        help="print the memory plan (estimated peak memory by component, and the keys that cut "
                             "each part) for the config and the data, and exit without training")
    parser.add_argument("--shape", metavar="rows=N,features=D,labels=L,labels_per_row=l,features_per_row=f",
                        help="with --plan: plan for training data of this shape without reading any (data not "
                             "downloaded yet); --plan without the data asks for it")
    parser.add_argument("--summary", action="store_true",
                        help="print the model's parameters (each variable's shape and count, the encoder's and the "
                             "head's totals, how many are trained) and exit without training")
    parser.add_argument("--ignore-memory-plan", action="store_true",
                        help="train even when the memory plan exceeds the available memory (a warning instead)")
    parser.add_argument("-v", "--verbose", action="store_true")
    # The names before heads had parts in general: refused with the new spelling.
    parser.add_argument("--repetition", type=any_int, help=argparse.SUPPRESS)
    parser.add_argument("--merge-repetitions", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repetition is not None or args.merge_repetitions:
        parser.error("--repetition R and --merge-repetitions are now --part R and --merge-parts")
    if args.config and args.train:
        parser.error("give either --config or --train (a recipe chosen from the data), not both")
    if not args.config and not args.train:
        parser.error("--config (a JSON experiment config, e.g. configs/quickstart.json) or --train (a data file: "
                     "tfxc chooses the recipe) is required")
    from tfxc import resolve
    from tfxc.compat.spellings import point_of
    from tfxc.runs import plan_for

    point = point_of(args.recipe, args.preset, "--preset {}", "--recipe {}")  # the old spelling, still accepted
    overrides = list(args.overrides) + ([f"data.source_dir={args.data_dir}"] if args.data_dir else [])
    if args.train:
        source = resolve.from_sources(_data_section(args), args.overrides, recipe=point)
    else:
        source = resolve.read_config(args.config, overrides, recipe=point)
    if args.shape and (not args.plan or source.thin):
        raise ConfigError("--shape goes with --plan and a whole config (--config; a recipe is chosen from the data "
                          "itself)")
    if args.print_config and not source.thin:
        sys.stdout.write(config_to_json(source.config))
        return 0
    from tfxc.training.shape_plan import missing_data

    if args.plan and not source.thin and (args.shape or missing_data(source.config.data)):
        return plan_from_shape(source.config, args)  # planned before the data exists
    plan = plan_for(source)
    if args.num_parts:  # train.sh asks: the members that can train as separate processes
        print(plan.count())
        return 0
    setup_logging(args.verbose)
    model_dir = args.model_dir or (os.path.join("runs", _stem(args)) if args.train else default_model_dir(args.config))
    if args.print_config or args.plan or args.summary:
        return look(source, plan, model_dir, args)
    from tfxc.eval.evaluator import format_metrics
    from tfxc.runs import Options

    options = Options(part=args.part, link=args.link_parts, merge=args.merge_parts, final_evaluation=not args.skip_eval,
                      ignore_memory_plan=args.ignore_memory_plan, allow_changed_config=args.allow_changed_config,
                      trust_imports=args.trust_imports, announce=lambda reasons, kept: _announce(source, kept, reasons))
    outcome = plan.train(model_dir, options)
    if outcome.baseline is not None:
        print("frequency baseline: " + format_metrics(outcome.baseline))
    if outcome.metrics:
        print("test: " + format_metrics(outcome.metrics))
    return 0


def _announce(source, kept: str, reasons: list, looking: bool = False) -> None:
    """Prints the recipe's reasons for a thin config (nothing for a whole one), and where its whole config is
    `kept`."""
    if not reasons:
        return
    print("recipe (tfxc.recipe):\n" + "\n".join(f"  {line}" for line in reasons))
    if source.overrides:
        print("  then --set " + " ".join(source.overrides))
    if not looking:
        print(f"the whole config is kept as {kept}; edit it and train with --config")


def look(source, plan, model_dir: str, args) -> int:
    """--print-config, --plan and --summary: one model's config, memory plan or parameters, nothing trained
    (the best point's: its members' default config)."""
    from tfxc.launch import start_run
    from tfxc.runs.folds import Folds

    if isinstance(plan, Folds):
        raise ConfigError("--plan, --summary and --print-config read one model: give data.val_fold 'i/K' (one fold)")
    run = start_run(source, model_dir, part=args.part, looking=bool(args.print_config))
    try:
        if args.print_config:
            sys.stdout.write(config_to_json(run.config))
            return 0
        _announce(source, "", run.reasons, looking=True)
        from tfxc.training.memory_plan import show_plan
        from tfxc.training.model_summary import show_summary

        (show_summary if args.summary else show_plan)(run.config, run.info, args.part)
        return 0
    finally:
        if run.lock is not None:
            run.lock.release()


def plan_from_shape(config, args) -> int:
    """--plan of data not read: of the declared --shape; without one, says how to declare it."""
    from tfxc.training.shape_plan import DataShape, missing_data, no_data_message, show_shape_plan

    if not args.shape:
        raise DataError(no_data_message(), path=missing_data(config.data))
    show_shape_plan(config, DataShape.parse(args.shape), args.part)
    return 0


def _data_section(args) -> dict:
    """The data section of `--train`'s sources, converted into one directory per train source (by its absolute
    path), shared by the runs that read it."""
    import hashlib

    from tfxc.data.sources import data_section

    key = hashlib.sha256(os.path.abspath(args.train).encode()).hexdigest()[:8]
    return data_section(args.train, args.test, args.val, data_dir=os.path.join("runs", "data", f"{_stem(args)}-{key}"),
                        train_labels=args.train_labels, test_labels=args.test_labels, val_labels=args.val_labels,
                        label_names=args.label_names)


def _stem(args) -> str:
    return os.path.basename(args.train.rstrip("/")).split(".")[0] or "data"


if __name__ == "__main__":
    sys.exit(main())
