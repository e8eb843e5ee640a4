"""Achieved GFLOP/s of training steps against this machine's measured matmul peak, in the same run.

  python tools/step_efficiency.py --configs configs/delicious.json configs/wordnet_hypernyms.json \
      [--steps 30] [--set trainer.global_batch_size=512] [--json benchmarks/step_efficiency.json]

For each config: one real training step runs eagerly with a TF op callback that counts the FLOPs of every
matrix product it executes, forward and backward (MatMul, BatchMatMul, Einsum, Conv2D and its two
gradients: 2 · output elements · contracted size each); embedding lookups, the optimizer update,
elementwise ops and top-k are memory-bound and not counted. Then the training loop itself
(`tfxc.training.loop.TrainLoop`, traced, as `tfxc.train` runs it) is timed over --steps steps after a
warm-up loop. The peak is the median GFLOP/s of a square float32 (and bfloat16) matmul of --peak-size;
a config under `model.precision` mixed_bfloat16 runs its head's products in bfloat16, so its row also
gives the share of the bfloat16 peak (the products run at one or the other; the rest of a step is float32).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from tfxc._tf import tf
from tfxc.cli import add_set_args, positive_int
from tfxc.model_dir import ModelDir
from tfxc.precision import resolve
from tfxc.resolve import load_with_data
from tfxc.training.components import build_components
from tfxc.training.loop import TrainLoop
from tfxc.utils.display import json_text


def matmul_peak_gflops(dtype, size: int = 2048, repeats: int = 20) -> float:
    """Median GFLOP/s of one [size, size] × [size, size] matmul in `dtype` (result read back, as a step is)."""
    a = tf.random.stateless_normal([size, size], seed=[1, 2], dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    product()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product().numpy()
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / float(np.median(times)) / 1e9


def _attrs(attrs) -> dict:
    return dict(zip(attrs[::2], attrs[1::2])) if attrs else {}


def matmul_flops(op_type: str, inputs, attrs, outputs) -> int:
    """FLOPs of one executed op (0 for the ops not counted, see the module docstring)."""
    op_type = op_type.decode() if isinstance(op_type, bytes) else op_type
    attrs = _attrs(attrs)
    if op_type == "MatMul":
        a = inputs[0].shape
        k = a[0] if attrs.get("transpose_a") else a[1]
        return 2 * int(np.prod(outputs[0].shape)) * int(k)
    if op_type.startswith("BatchMatMul"):
        a = inputs[0].shape
        k = a[-2] if attrs.get("adj_x") else a[-1]
        return 2 * int(np.prod(outputs[0].shape)) * int(k)
    if op_type == "Einsum" and len(inputs) == 2:
        equation = attrs["equation"]
        equation = equation.decode() if isinstance(equation, bytes) else equation
        sizes = {}
        for operand, tensor in zip(equation.split("->")[0].split(","), inputs):
            if "." in operand:
                return 0  # broadcasting ellipses: not used by tfxc's heads
            sizes.update(zip(operand, tensor.shape))
        return 2 * int(np.prod([int(s) for s in sizes.values()]))
    if op_type in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"):
        # The forward's output elements × the filter's kh · kw · cin, for all three.
        if op_type == "Conv2D":
            out, kernel = outputs[0].shape, inputs[1].shape
        elif op_type == "Conv2DBackpropInput":  # (input_sizes, filter, out_backprop)
            out, kernel = inputs[2].shape, inputs[1].shape
        else:  # (input, filter_sizes, out_backprop): the filter's shape is the output's
            out, kernel = inputs[2].shape, outputs[0].shape
        return 2 * int(np.prod(out)) * int(kernel[0]) * int(kernel[1]) * int(kernel[2])
    return 0


def step_flops(loop: TrainLoop, iterator) -> int:
    """Matrix-product FLOPs of one training step, counted while it runs eagerly."""
    from tensorflow.python.framework import op_callbacks  # no public API reports executed ops' shapes

    total = [0]

    def count(op_type, inputs, attrs, outputs, op_name=None, graph=None):
        total[0] += matmul_flops(op_type, inputs, attrs, outputs)

    tf.config.run_functions_eagerly(True)
    op_callbacks.add_op_callback(count)
    try:
        loop(iterator, 1)
    finally:
        op_callbacks.remove_op_callback(count)
        tf.config.run_functions_eagerly(False)
    return total[0]


def measure(config_path: str, overrides: list[str], steps: int) -> dict:
    config, info = load_with_data(config_path, overrides)
    strategy = tf.distribute.get_strategy()
    with tempfile.TemporaryDirectory(prefix="tfxc-step-") as directory:
        components = build_components(config, strategy, info, ModelDir(directory))
        iterator = components.train_iterator(0)

        def new_loop():
            return TrainLoop(strategy, components.model, components.optimizer, components.objective,
                             config.trainer.global_batch_size, config.optimizer.clip_norm, components.average)

        per_epoch = components.length.steps_per_epoch
        flops = step_flops(new_loop(), iterator)
        loop = new_loop()
        # Timed from a fresh epoch (one step of epoch 0 went to counting), in the loop's own chunks and never
        # across an epoch's end, as tfxc.train calls it.
        state = {"position": 0, "iterator": components.train_iterator(1, num_epochs=1000)}  # a lazy stream

        def run(num_steps):
            while num_steps:
                state["position"] %= per_epoch
                n = min(config.trainer.steps_per_loop, num_steps, per_epoch - state["position"])
                loop(state["iterator"], n)
                state["position"] += n
                num_steps -= n

        run(min(config.trainer.steps_per_loop, steps))  # trace and warm up
        start = time.perf_counter()
        run(steps)
        seconds = (time.perf_counter() - start) / steps
    return {"config": config_path, "batch": config.trainer.global_batch_size, "labels": info.num_labels,
            "head": config.model.head.name, "precision": resolve(config.model.precision), "gflop_per_step": flops / 1e9, "ms_per_step": 1000 * seconds,
            "gflops": flops / 1e9 / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", required=True)
    add_set_args(parser, "a value of every config", "--set trainer.global_batch_size=512")
    parser.add_argument("--steps", type=positive_int, default=30, help="timed training steps per config")
    parser.add_argument("--peak-size", type=positive_int, default=2048)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    peak = {"float32": matmul_peak_gflops(tf.float32, args.peak_size),
            "bfloat16": matmul_peak_gflops(tf.bfloat16, args.peak_size)}
    print(f"matmul peak ({args.peak_size}²): float32 {peak['float32']:.1f} GFLOP/s, "
          f"bfloat16 {peak['bfloat16']:.1f} GFLOP/s")
    rows = []
    print("| config | head | labels | batch | precision | GFLOP/step | ms/step | GFLOP/s | % of fp32 peak | "
          "% of its dtype's peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in args.configs:
        row = measure(path, args.overrides, args.steps)
        row["percent_of_peak"] = 100 * row["gflops"] / peak["float32"]
        dtype = "bfloat16" if row["precision"] == "mixed_bfloat16" else "float32"
        row["percent_of_dtype_peak"] = 100 * row["gflops"] / peak[dtype]
        rows.append(row)
        print(f"| {path} | {row['head']} | {row['labels']:,} | {row['batch']} | {row['precision']} | "
              f"{row['gflop_per_step']:.2f} | {row['ms_per_step']:.1f} | {row['gflops']:.1f} | "
              f"{row['percent_of_peak']:.0f} % | {row['percent_of_dtype_peak']:.0f} % |", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(json_text({"peak_gflops": peak, "overrides": args.overrides, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
