"""Where a training step's time goes, op by op: the TF profiler over real training loops, summed per op type.

  python tools/profile_ops.py --config configs/delicious.json [--steps 100] [--set KEY=VALUE] [--top 25]

Builds the run as `tfxc.train` does (`build_components`, `TrainLoop`, the config's `steps_per_loop`
chunks), warms it up, then traces --steps steps with `tf.profiler.experimental` and reads the trace
(XPlane) back: the self time of every TensorFlow op executed on the host's thread pools, summed by op
type and by op name, as a share of the traced wall time. Two threads run ops at once on a 2-core machine,
so the op times can add up to more than the wall time; "idle" is the wall time no op ran.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import tempfile
import time

from tfxc._tf import tf
from tfxc.cli import add_set_args, positive_int
from tfxc.model_dir import ModelDir
from tfxc.resolve import load_with_data
from tfxc.training.components import build_components
from tfxc.training.loop import TrainLoop

_OP_EVENT = re.compile(r"^[^ :]+:[A-Z_][A-Za-z0-9_]*$")  # "scope/op_name:OpType"


def read_op_times(logdir: str) -> tuple[dict, dict, float]:
    """(seconds per op type, seconds per "op_name:OpType", traced span in seconds) from the newest XPlane in `logdir`.

    TF's executor reports every op it runs as an event named "op_name:OpType" on the line of the thread
    that ran it (inside its own bookkeeping events); an op inside another op's span is counted there.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    by_type, by_name = collections.Counter(), collections.Counter()
    first, last = None, None
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            ops = sorted((line.timestamp_ns * 1000 + e.offset_ps, e.duration_ps, names.get(e.metadata_id, ""))
                         for e in line.events if _OP_EVENT.match(names.get(e.metadata_id, "")))
            outer_end = -1
            for start, duration, name in ops:
                if start < outer_end:  # inside another op (a function call's body): counted there
                    continue
                outer_end = start + duration
                op_name, _, op_type = name.rpartition(":")
                by_type[op_type] += duration / 1e12
                by_name[name] += duration / 1e12
                first = start if first is None else min(first, start)
                last = outer_end if last is None else max(last, outer_end)
    span = (last - first) / 1e12 if first is not None else 0.0
    return dict(by_type), dict(by_name), span


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    add_set_args(parser)
    parser.add_argument("--steps", type=positive_int, default=100, help="traced training steps")
    parser.add_argument("--top", type=positive_int, default=25, help="rows of each table")
    args = parser.parse_args()
    config, info = load_with_data(args.config, args.overrides)
    strategy = tf.distribute.get_strategy()
    tc = config.trainer
    with tempfile.TemporaryDirectory(prefix="tfxc-ops-") as directory:
        directory = os.environ.get("KEEP_PROFILE", directory)
        components = build_components(config, strategy, info, ModelDir(directory))
        loop = TrainLoop(strategy, components.model, components.optimizer, components.objective,
                         tc.global_batch_size, config.optimizer.clip_norm, components.average)
        per_epoch = components.length.steps_per_epoch
        iterator = components.train_iterator(0, num_epochs=1000)  # a lazy stream
        position = [0]

        def run(num_steps):
            while num_steps:
                position[0] %= per_epoch
                n = min(tc.steps_per_loop, num_steps, per_epoch - position[0])
                loop(iterator, n)
                position[0] += n
                num_steps -= n

        run(min(tc.steps_per_loop, per_epoch))  # trace and warm up
        logdir = os.path.join(directory, "profile")
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        run(args.steps)
        wall = time.perf_counter() - started
        tf.profiler.experimental.stop()
        by_type, by_name, span = read_op_times(logdir)
    busy = sum(by_type.values())
    print(f"{args.config}: {args.steps} steps in {wall:.2f} s ({1000 * wall / args.steps:.2f} ms/step; "
          f"op time {1000 * busy / args.steps:.2f} ms/step over all threads)")
    for title, table in (("op type", by_type), ("op (name:type)", by_name)):
        print(f"\n| {title} | ms/step | % of wall |\n|---|---|---|")
        for name, seconds in sorted(table.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"| {name[-90:]} | {1000 * seconds / args.steps:.3f} | {100 * seconds / wall:.1f} |")


if __name__ == "__main__":
    main()
