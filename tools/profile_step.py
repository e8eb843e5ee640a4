"""Where a training step's time goes: encoder forward, head forward, loss+backward, optimizer update.

  python tools/profile_step.py --config configs/wordnet_hypernyms.json [--steps 50] [--set SECTION.KEY=VALUE ...]

Times each stage as its own tf.function on one real training batch (median over --steps calls). The loss is
the config's objective (`loss`), e.g. `--set loss.name=active_set --set loss.size=2048`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tfxc._tf import tf
from tfxc.data.pipeline import train_dataset
from tfxc.resolve import load_with_data
from tfxc.build_context import BuildContext
from tfxc.cli import add_set_args, positive_int
from tfxc.data.length import TrainingLength
from tfxc.losses import LOSSES
from tfxc.model import build_model
from tfxc.optimizers import build_optimizer


def median_ms(fn, steps):
    fn()  # trace
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = fn()
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--steps", type=positive_int, default=50)
    add_set_args(parser, example="--set loss.name=active_set --set loss.size=2048")
    args = parser.parse_args()
    cfg, info = load_with_data(args.config, args.overrides)  # a thin config: the recipe for its data
    batch = next(iter(train_dataset(info.files("train"), num_points=info.num_points("train"),
                                    global_batch_size=cfg.trainer.global_batch_size, seed=0,
                                    shuffle_buffer=cfg.data.shuffle_buffer, epoch=0)))
    model = build_model(cfg.model, BuildContext.from_info(info, seed=0))
    opt = build_optimizer(cfg.optimizer, total_steps=1000, sparse_variables=model.sparse_variables)
    opt.build(model.trainable_variables)
    variables = model.trainable_variables
    features = model.encoder(batch, training=True)
    length = TrainingLength.from_config(cfg.trainer, info.num_points("train"))
    objective = LOSSES.build(cfg.loss, info=info, length=length, global_batch_size=cfg.trainer.global_batch_size)
    objective.check_model(model)

    def loss_of_batch():
        return objective.per_example_loss(model, batch, training=True)[0]

    def grads():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_of_batch())
        return tape.gradient(loss, variables)

    def step():
        opt.apply_gradients(zip(grads(), variables))
        return opt.iterations

    stages = {
        "encoder forward": tf.function(lambda: model.encoder(batch, training=True)),
        "head forward (logits)": tf.function(lambda: model.head(features)),
        "forward + loss": tf.function(loss_of_batch),
        "forward + loss + backward": tf.function(grads),
        "full step (+ optimizer)": tf.function(step),
    }
    b = cfg.trainer.global_batch_size
    print(f"{args.config} {' '.join(args.overrides)}: batch {b}, {info.num_features} features, {info.num_labels} labels, "
          f"loss {cfg.loss.name}")
    for name, fn in stages.items():
        ms = median_ms(fn, args.steps)
        print(f"  {name:28s} {ms:8.2f} ms")


if __name__ == "__main__":
    main()
