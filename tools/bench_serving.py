"""SavedModel serving latency: single-row and batched calls of the serving_default signature.

  python tools/bench_serving.py --saved-model runs/wordnet-savedmodel --data-dir runs/data/wordnet-hypernyms
  python tools/bench_serving.py --saved-model S --data-dir D --batch-sizes 1 --repeat 3 --baseline
  python tools/bench_serving.py --saved-model S --onnx O --data-dir D      (O: `tfxc.export --format onnx`)

Loads the SavedModel with plain tf.saved_model.load (as a server would), takes real rows from the
converted test split, and reports the median and p99 latency per call for batch sizes 1, 32 and 256.

--baseline also times, on the same requests, a SavedModel whose signature takes the same three inputs
and returns one of them: the fixed cost of calling any signature from Python in this process, which on
a shared machine moves with the time of day (docs/benchmarks-history.md, "Label tree head"), so a model's figure is
best read next to it. --repeat N times every (batch size, model) N times, alternating.
The process's thread pools are TensorFlow's defaults unless TF_NUM_INTRAOP_THREADS /
TF_NUM_INTEROP_THREADS say otherwise.

--onnx O also times the model's ONNX twin (`tfxc.export.onnx`) in ONNX Runtime on the same requests, as
NumPy arrays (what a client of either would hold), and reports its size next to the SavedModel's.

--profile N traces the model's calls of each batch size with the TF profiler and prints the N op types
and ops that took the most time (`profile_ops.read_op_times`), per call; with --onnx, also the twin's
calls with ONNX Runtime's profiler (`onnx_op_times`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from bench_peers import latency_ms  # same folder
from profile_ops import read_op_times  # same folder

from tfxc._tf import tf
from tfxc.cli import non_negative_int, positive_int
from tfxc.data.info import DatasetInfo
from tfxc.data.tfrecord import read_all
from tfxc.export.serving_modules import ServingModule

class _Baseline(tf.Module):
    """The serving signature's inputs, and nothing done with them."""

    @tf.function(input_signature=ServingModule.serve.input_signature)
    def serve(self, feat_idx, feat_val, row_splits):
        return {"label_ids": feat_idx}


class _TextBaseline(tf.Module):
    """A text model's serving input, and nothing done with it."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        return {"label_ids": tf.strings.length(text)}


def load_baseline(directory: str, text: bool = False):
    """The empty signature of a model's inputs (`text`: a text model's strings), saved and loaded as a server
    would."""
    module = _TextBaseline() if text else _Baseline()
    tf.saved_model.save(module, directory, signatures={"serving_default": module.serve})
    return tf.saved_model.load(directory).signatures["serving_default"]


def index_recall(saved_model_dir: str) -> float | None:
    """The serving index's measured recall of the exact top-5 that the export recorded, or None.

    Read from export.json's "index" object (written by the export's index choice: "used", "recall@5", a
    fraction); None when the exact head serves (no index object, or "used": false) or the export predates it.
    """
    import json

    from tfxc.export.served import EXPORT_ASSET, extra_asset

    path = extra_asset(saved_model_dir, EXPORT_ASSET)
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        index = json.load(f).get("index")
    if not isinstance(index, dict) or not index.get("used", False):
        return None
    recall = index.get("recall@5")
    return float(recall) if isinstance(recall, (int, float)) else None


def serving_figures(serve, baseline, singles: list[dict], batches: list[dict], rounds: int = 3) -> dict:
    """One-row latency and batch throughput of `serve` next to the empty signature `baseline`, in this process.

    singles, batches: request dicts (one row each; equal-sized batches). Model and baseline are timed in
    alternating rounds over the same requests, so a busy moment of a shared machine touches both; each
    figure is the median over all rounds' calls (and the model's one-row p99).
    """
    timed = {name: {"one": [], "batch": []} for name in ("model", "empty")}
    for _ in range(rounds):
        for name, call in (("model", serve), ("empty", baseline)):
            timed[name]["one"].append(latency_ms(lambda r: call(**r)["label_ids"].numpy(), singles))
            timed[name]["batch"].append(latency_ms(lambda r: call(**r)["label_ids"].numpy(), batches, warmup=2))
    first = batches[0]
    rows = int(first["row_splits"].shape[0]) - 1 if "row_splits" in first else int(first["text"].shape[0])
    one = {name: float(np.median(np.concatenate(t["one"]))) for name, t in timed.items()}
    batch = {name: rows * 1000 / float(np.median(np.concatenate(t["batch"]))) for name, t in timed.items()}
    return {"latency_ms_median": one["model"], "latency_ms_p99": float(np.percentile(timed["model"]["one"], 99)),
            "empty_latency_ms_median": one["empty"],
            f"batch{rows}_rows_per_s": batch["model"], f"empty_batch{rows}_rows_per_s": batch["empty"]}


def onnx_runner(directory: str):
    """A call like a signature's, `call(**request)["label_ids"]`, of the ONNX twin in `directory` (ONNX Runtime,
    default threads), on the request's tensors as NumPy arrays."""
    import onnxruntime as ort

    session = ort.InferenceSession(os.path.join(directory, "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def call(**request):
        answer = session.run(None, {name: np.asarray(value) for name, value in request.items()})
        return {name: _Array(value) for name, value in zip(names, answer)}

    return call


class _Array:
    """A NumPy answer with the `.numpy()` a TensorFlow one has."""

    def __init__(self, value):
        self.value = value

    def numpy(self):
        return self.value


def directory_mb(path: str) -> float:
    """The size of the files under `path`, in MB."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files) / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saved-model", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--batch-sizes", default="1,32,256")
    parser.add_argument("--calls", type=positive_int, default=200)
    parser.add_argument("--repeat", type=positive_int, default=1, help="time every batch size this many times")
    parser.add_argument("--baseline", action="store_true",
                        help="also time a signature with the same inputs that does nothing (the call's fixed cost)")
    parser.add_argument("--profile", type=non_negative_int, default=0, metavar="N",
                        help="profile the model's calls and print the N costliest op types and ops")
    parser.add_argument("--onnx", default=None, help="the model's ONNX twin (tfxc.export --format onnx): timed too")
    args = parser.parse_args()
    start = time.perf_counter()
    signatures = {"model": tf.saved_model.load(args.saved_model).signatures["serving_default"]}
    print(f"load: {time.perf_counter() - start:.2f}s  size {directory_mb(args.saved_model):.1f} MB")
    if args.onnx:
        start = time.perf_counter()
        signatures["onnx"] = onnx_runner(args.onnx)
        print(f"onnx load: {time.perf_counter() - start:.2f}s  size {directory_mb(args.onnx):.1f} MB")
    with tempfile.TemporaryDirectory() as scratch:
        if args.baseline:
            signatures["baseline"] = load_baseline(scratch)
        rows = read_all(DatasetInfo.load(args.data_dir).files("test"))
        rng = np.random.default_rng(0)
        for batch_size in map(int, args.batch_sizes.split(",")):
            requests = []
            for _ in range(args.calls):
                pick = [rows[i] for i in rng.integers(0, len(rows), batch_size)]
                requests.append({"feat_idx": tf.constant(np.concatenate([r["feat_idx"] for r in pick]), tf.int64),
                                 "feat_val": tf.constant(np.concatenate([r["feat_val"] for r in pick]), tf.float32),
                                 "row_splits": tf.constant(np.cumsum([0] + [len(r["feat_idx"]) for r in pick]),
                                                           tf.int64)})
            for _ in range(args.repeat):
                for name, serve in signatures.items():
                    ms = latency_ms(lambda request: serve(**request)["label_ids"].numpy(), requests)
                    print(f"batch {batch_size:4d} {name:8s}: median {np.median(ms):7.3f} ms  "
                          f"p99 {np.percentile(ms, 99):7.3f} ms  = {batch_size / np.median(ms) * 1000:,.0f} rows/s",
                          flush=True)
            if args.profile:
                profile(signatures["model"], requests, args.profile, os.path.join(scratch, f"profile{batch_size}"))
                if args.onnx:
                    profile_onnx(args.onnx, requests, args.profile, os.path.join(scratch, f"onnx{batch_size}"))


def profile(serve, requests, top: int, logdir: str) -> None:
    """Prints the `top` op types and ops by self time per call over `requests` (profile_ops.read_op_times)."""
    tf.profiler.experimental.start(logdir)
    for request in requests:
        serve(**request)["label_ids"].numpy()
    tf.profiler.experimental.stop()
    by_type, by_name, span = read_op_times(logdir)
    calls = len(requests)
    print(f"  profiled: {1000 * span / calls:.3f} ms of traced span per call, "
          f"op time {1000 * sum(by_type.values()) / calls:.3f} ms per call over all threads")
    for title, table in (("op type", by_type), ("op (name:type)", by_name)):
        for name, seconds in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {title:14s} {1000 * seconds / calls:7.3f} ms  {name[-80:]}")


def onnx_op_times(trace_path: str) -> tuple[dict, dict]:
    """({op type: seconds}, {node name:op type: seconds}) of the kernel times in an ONNX Runtime profile
    (`SessionOptions.enable_profiling`: a JSON list of trace events; a node's run is a "Node" event named
    "NODE_kernel_time" whose args carry its op type)."""
    import collections
    import json

    with open(trace_path, encoding="utf-8") as f:
        events = json.load(f)
    by_type, by_name = collections.Counter(), collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            op = event.get("args", {}).get("op_name", "?")
            by_type[op] += event["dur"] / 1e6
            by_name[f"{event['name'][:-len('_kernel_time')]}:{op}"] += event["dur"] / 1e6
    return by_type, by_name


def profile_onnx(directory: str, requests, top: int, prefix: str) -> None:
    """Prints the `top` op types and nodes of the ONNX twin by kernel time per call over `requests`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling, options.profile_file_prefix = True, prefix
    session = ort.InferenceSession(os.path.join(directory, "model.onnx"), options, providers=["CPUExecutionProvider"])
    for request in requests:
        session.run(None, {name: np.asarray(value) for name, value in request.items()})
    by_type, by_name = onnx_op_times(session.end_profiling())
    calls = len(requests)
    print(f"  onnx profiled: kernel time {1000 * sum(by_type.values()) / calls:.3f} ms per call over all threads")
    for title, table in (("op type", by_type), ("node:op type", by_name)):
        for name, seconds in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {title:14s} {1000 * seconds / calls:7.3f} ms  {name[-80:]}")


if __name__ == "__main__":
    main()
