"""The label tree's training step against the dense head's, on the same batch and encoder.

  python tools/bench_tree_step.py --config configs/wordnet_hypernyms.json --recipe fast [--batch 1024]
      [--steps 20] [--set SECTION.KEY=VALUE ...] [--dense-level-max 16384 256 ...] [--no-kernel]

The config (thin configs get the recipe for their data, at the point `--recipe` names) gives the data, the encoder and
the optimizer. Two heads are built on it: the dense head (the config's own when it is an exact head, else
the decoupled softmax the recipe trains below its tree threshold) and the recipe's label tree (PLT form,
with the sparse term per node on sparse inputs), once per `--dense-level-max` (levels of at most that many
nodes are scored whole by one product, bigger ones by their rows' active nodes). Each full step (forward,
loss, backward, optimizer update) is one `tf.function` on one real training batch; the tool prints the
median over --steps calls after one warm-up call, and the tree's time as a share of the dense step's.
`--no-kernel` runs the tree's pairs through TensorFlow ops instead of the compiled kernels
(`tfxc.heads.pair_scores`), for the before/after.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from tfxc._tf import tf
from tfxc.build_context import BuildContext
from tfxc.cli import add_set_args, positive_int
from tfxc.config.loading import from_dict, to_dict
from tfxc.config.schema import ExperimentConfig
from tfxc.data.length import TrainingLength
from tfxc.data.pipeline import train_dataset
from tfxc.heads.label_tree import LabelTreeHead
from tfxc.heads.label_tree.config import LabelTreeHeadConfig
from tfxc.losses import LOSSES
from tfxc.model import build_model
from tfxc.optimizers import build_optimizer
from tfxc.recipe import DataProfile
from tfxc.recipe.rules import SPARSE_IDF, TREE_HEAD, TREE_SPARSE_INIT, TREE_SPARSE_SUPPORT, TREE_WIDTH
from tfxc.resolve import load_with_data

DENSE_HEAD = {"name": "softmax", "multi_label_loss": "decoupled"}


def step_ms(config, info, batch, steps: int) -> float:
    """The median wall time of one full training step of `config` on `batch`, in ms."""
    model = build_model(config.model, BuildContext.from_info(info, seed=0))
    optimizer = build_optimizer(config.optimizer, total_steps=1000, sparse_variables=model.sparse_variables)
    optimizer.build(model.trainable_variables)
    length = TrainingLength.from_config(config.trainer, info.num_points("train"))
    objective = LOSSES.build(config.loss, info=info, length=length,
                             global_batch_size=config.trainer.global_batch_size)
    variables = model.trainable_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(objective.per_example_loss(model, batch, training=True)[0])
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    step().numpy()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step().numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def with_head(config, head: dict, precision: str | None = None):
    """`config` (a resolved `Config`) with `head` as its model's head (JSON layout), re-validated."""
    as_dict = to_dict(config)
    as_dict["model"]["head"] = head
    if precision:
        as_dict["model"]["precision"] = precision
    return from_dict(ExperimentConfig, as_dict)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--recipe", default="", help="for a thin config, the recipe's point: fast, default or best")
    parser.add_argument("--batch", type=positive_int, default=1024)
    parser.add_argument("--steps", type=positive_int, default=20)
    parser.add_argument("--dense-level-max", type=positive_int,
                        nargs="+", default=[LabelTreeHeadConfig.dense_level_max])
    parser.add_argument("--no-kernel", action="store_true", help="the tree's pairs through TensorFlow ops")
    add_set_args(parser, example="--set model.encoder.embedding_dim=256")
    args = parser.parse_args()
    overrides = [f"trainer.global_batch_size={args.batch}"] + args.overrides
    if args.recipe:
        overrides.append(f"recipe={args.recipe}")
    config, info = load_with_data(args.config, overrides)
    batch = next(iter(train_dataset(info.files("train"), num_points=info.num_points("train"),
                                    global_batch_size=args.batch, seed=0, shuffle_buffer=config.data.shuffle_buffer,
                                    epoch=0)))
    profile = DataProfile.from_info(info)
    head = to_dict(config.model.head)
    dense = head if head["name"] != "label_tree" else DENSE_HEAD
    tree = dict(TREE_HEAD)
    if profile.sparse_input:
        tree.update(sparse_support=TREE_SPARSE_SUPPORT, sparse_init=TREE_SPARSE_INIT, sparse_idf=SPARSE_IDF)
    width = config.model.encoder.embedding_dim if hasattr(config.model.encoder, "embedding_dim") else TREE_WIDTH
    print(f"{args.config} {' '.join(overrides)}: batch {args.batch}, {profile.describe()}, encoder width {width}")
    dense_ms = step_ms(with_head(config, dense), info, batch, args.steps)
    print(f"  dense head {dense['name']} (precision {config.model.precision}): {dense_ms:8.2f} ms a step")
    LabelTreeHead.use_pair_kernel = LabelTreeHead.use_pair_kernel and not args.no_kernel
    for level_max in args.dense_level_max:
        tree_config = with_head(config, {**tree, "dense_level_max": level_max}, precision="float32")
        ms = step_ms(tree_config, info, batch, args.steps)
        kernel = "compiled pairs" if LabelTreeHead.use_pair_kernel else "TensorFlow ops"
        print(f"  label tree, levels of <= {level_max} nodes whole ({kernel}): {ms:8.2f} ms a step "
              f"({ms / dense_ms:.2f} of the dense step)")


if __name__ == "__main__":
    main()
