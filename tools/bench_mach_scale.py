"""MACH vs one-vs-all as the label count grows: parameters, peak memory and training step time.

  python tools/bench_mach_scale.py [--labels 1e4,1e5,1e6,1e7] [--steps 20]

For each L and head, a fresh process builds the model (sparse bag-of-features encoder, 10,000 features,
64 wide) and runs --steps Adam steps on random batches (256 rows, 20 features and 5 labels per row),
then reports trainable parameters, the steady step time (median after 3 warm-up steps) and the
process's peak resident memory. MACH uses R=4 repetitions of B=1,000 buckets with separate encoders.
A configuration whose estimated memory exceeds --max-gb is reported as not run instead of started.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from tfxc.cli import FiniteFloat, positive_int
from tfxc.utils.numbers import ascii_float

CHILD = r"""
import json, sys, time
import numpy as np
from tfxc._tf import tf
from tfxc.config import load_config
from tfxc.build_context import BuildContext
from tfxc.model import build_model
from tfxc.optimizers import build_optimizer
from tfxc.utils.memory import peak_rss_gb
sets, L, steps = json.loads(sys.argv[1]), int(float(sys.argv[2])), int(sys.argv[3])
cfg = load_config(None, ["data.dir=unused", "model.encoder.embedding_dim=64", *sets])
t0 = time.time()
model = build_model(cfg.model, BuildContext(num_features=10000, num_labels=L, seed=0))
build_s = time.time() - t0
opt = build_optimizer(cfg.optimizer, total_steps=1000, sparse_variables=model.sparse_variables)
opt.build(model.trainable_variables)
rng = np.random.default_rng(0)
def batch():
    return {"feat_idx": tf.RaggedTensor.from_uniform_row_length(tf.constant(rng.integers(0, 10000, 256 * 20)), 20),
            "feat_val": tf.RaggedTensor.from_uniform_row_length(tf.constant(rng.random(256 * 20, np.float32)), 20),
            "labels": tf.RaggedTensor.from_uniform_row_length(tf.constant(np.sort(rng.integers(0, L, (256, 5)), 1).ravel()), 5)}
@tf.function(reduce_retracing=True)
def step(b):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.per_example_loss(b, training=True))
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return loss
times = []
for i in range(steps):
    b = batch(); t = time.perf_counter(); step(b).numpy(); times.append(time.perf_counter() - t)
params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
print(json.dumps({"params": params, "step_ms": 1000 * float(np.median(times[3:])), "build_s": build_s,
                  "peak_rss_gb": peak_rss_gb()}))
"""


# system -> (config overrides, rough GB of its label-dependent state at L labels).
SYSTEMS = {
    # MACH: only the int32 [R, L] lookup grows with L.
    "mach": (["model.head.name=mach", "model.head.num_buckets=1000", "model.head.num_repetitions=4"],
             lambda num_labels: 0.5 + 4 * num_labels * 4 / 2**30),
    # One-vs-all: the kernel, its Adam slots and gradient, and [256, L] logits and temporaries.
    "one_vs_all": (["model.head.name=one_vs_all"],
                   lambda num_labels: (4 * 65 * num_labels * 4 + 3 * 256 * num_labels * 4) / 2**30 + 0.5),
}


def label_counts(text: str) -> list[int]:
    """argparse type of --labels: "1e4,1e5" -> [10000, 100000] (whole numbers >= 2, written as numbers)."""
    counts = [ascii_float(part.strip()) for part in text.split(",")]
    if not counts or any(c is None or c < 2 or c != int(c) for c in counts):
        raise argparse.ArgumentTypeError(f"expected whole numbers >= 2 separated by commas (1e4,1e5), got {text!r}")
    return [int(c) for c in counts]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=label_counts, default=[10**4, 10**5, 10**6, 10**7])
    parser.add_argument("--steps", type=positive_int, default=20)
    parser.add_argument("--max-gb", type=FiniteFloat(0, low_open=True), default=16.0)
    args = parser.parse_args(argv)
    print("| L | head | trainable params | step (ms) | peak RSS (GB) |")
    print("|---|---|---|---|---|")
    for num_labels in args.labels:
        for head, (sets, estimate_gb) in SYSTEMS.items():
            need = estimate_gb(num_labels)
            if need > args.max_gb:
                print(f"| {num_labels:,} | {head} | {65 * num_labels:,} (head) | not run | needs ~{need:.0f} GB |")
                continue
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(sets), str(num_labels), str(args.steps)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"| {num_labels:,} | {head} | failed: {out.stderr.strip().splitlines()[-1][:80]} | | |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {num_labels:,} | {head} | {r['params']:,} | {r['step_ms']:.1f} | {r['peak_rss_gb']:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
