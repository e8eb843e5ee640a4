"""A SavedModel laid out for TensorFlow Serving's model server: `tfxc.export --tf-serving`.

    python -m tfxc.export --model-dir DIR --out models/NAME --tf-serving
    tensorflow_model_server --model_name=NAME --model_base_path=$PWD/models/NAME --rest_api_port=8501 \\
        [--enable_batching --batching_parameters_file=$PWD/models/NAME/batching_parameters.txt]

  models/NAME/V/                      the SavedModel, V the next version (the server serves the highest)
  models/NAME/V/assets.extra/tf_serving_warmup_requests
                                      `PredictionLog` records (a TFRecord file) the server replays at load,
                                      so the first real request does not pay for the graphs' first runs:
                                      each signature with one row and with a batch
  models/NAME/batching_parameters.txt the server's batching settings for string-input models, with the
                                      latencies they were chosen from (`batching_parameters`)

The server's batcher joins requests along every input's first dimension. A text or image model's
`serving_default` and `embed` take one string a row, which joins; the CSR triple of a feature-row model
does not (each request's `row_splits` starts at 0), nor does `top_k`'s scalar `k`: for those, batch in
the client (a request may hold any number of rows).
"""

from __future__ import annotations

import os
import time

import numpy as np

from tfxc._tf import tf
from tfxc.errors import ConfigError

WARMUP_FILE = "tf_serving_warmup_requests"
BATCHING_FILE = "batching_parameters.txt"
# Rows of the batch each signature is warmed up with (and the largest batch timed for the batching settings).
WARMUP_BATCH = 32
# Batch sizes timed for the batching settings, calls per size.
TIMED_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
TIMED_CALLS = 20
# A larger batch is worth waiting for while it still raises rows/s by this much over the one before.
WORTH_WAITING = 1.15


def _serving_apis():
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        raise ConfigError("--tf-serving needs tensorflow-serving-api (pip install -e '.[serving]')") from None
    return model_pb2, predict_pb2, prediction_log_pb2


def next_version(base: str) -> int:
    """1 + the highest numeric version directory under `base` (1 for a new one)."""
    versions = [int(name) for name in os.listdir(base) if name.isdigit()] if os.path.isdir(base) else []
    return max(versions, default=0) + 1


def sample_requests(input_kind: str, num_features: int, rows: int) -> dict:
    """Inputs of `rows` rows for a model reading `input_kind` (`tfxc.export.serving_modules`), as NumPy."""
    if input_kind == "text":
        words = ["transfer", "card", "arrive", "account", "money", "why", "my", "has", "not"]
        return {"text": np.array([" ".join(words[(r + i) % len(words)] for i in range(1 + r % 7)).encode()
                                  for r in range(rows)], object)}
    if input_kind == "image":
        from tfxc.export.serving_modules import ImageServingModule

        return {"image": np.array([ImageServingModule.filler] * rows, object)}
    per_row = max(1, min(8, num_features))
    ids = np.concatenate([(np.arange(per_row) * 7 + r) % num_features for r in range(rows)])
    return {"feat_idx": ids.astype(np.int64), "feat_val": np.ones(len(ids), np.float32),
            "row_splits": np.arange(0, rows * per_row + 1, per_row, dtype=np.int64)}


def warmup_records(signatures, input_kind: str, num_features: int, model_name: str, top_k: int) -> list:
    """The `PredictionLog`s of the warm-up file: every signature of a loaded SavedModel (`signatures`), with
    one row and with `WARMUP_BATCH` rows (`top_k` at the export's k)."""
    model_pb2, predict_pb2, prediction_log_pb2 = _serving_apis()
    records = []
    for name in sorted(signatures):
        wanted = signatures[name].structured_input_signature[1]
        for rows in (1, WARMUP_BATCH):
            inputs = {**sample_requests(input_kind, num_features, rows), "k": np.int32(top_k)}
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name, signature_name=name))
            for key in wanted:
                request.inputs[key].CopyFrom(tf.make_tensor_proto(inputs[key], dtype=wanted[key].dtype))
            records.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return records


def write_warmup(saved_model: str, records: list) -> str:
    """Writes `records` to SAVED_MODEL/assets.extra/tf_serving_warmup_requests; returns its path."""
    path = os.path.join(saved_model, "assets.extra", WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path


def read_warmup(path: str) -> list:
    """The `PredictionLog`s of a warm-up file."""
    _, _, prediction_log_pb2 = _serving_apis()
    return [prediction_log_pb2.PredictionLog.FromString(raw.numpy()) for raw in tf.data.TFRecordDataset(path)]


def replay(saved_model: str, records: list) -> list[dict]:
    """Runs each warm-up request through the loaded SavedModel's signature, as the server does at load:
    [{output name: NumPy array}] in the records' order."""
    signatures = tf.saved_model.load(saved_model).signatures
    out = []
    for record in records:
        request = record.predict_log.request
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        answer = signatures[request.model_spec.signature_name](**{k: tf.constant(v) for k, v in inputs.items()})
        out.append({key: value.numpy() for key, value in answer.items()})
    return out


def batching_parameters(serve, input_kind: str, num_features: int, cores: int | None = None) -> str:
    """The server's batching settings for a string-input model, from `serve`'s (its `serving_default`) latency at the batch
    sizes of `TIMED_BATCHES` (median of `TIMED_CALLS` calls each), as text-format protobuf with the reasoning
    and the timings in comments:

      max_batch_size        the largest timed size up to which each doubling still raised rows/s by
                            `WORTH_WAITING`: past it, waiting for more rows buys little throughput;
      batch_timeout_micros  one row's latency: a lone request waits at most about as long as it takes;
      num_batch_threads     the cores (each batch is one call, which uses the intra-op threads too).
    """
    timings = {}
    for rows in TIMED_BATCHES:
        request = {k: tf.constant(v) for k, v in sample_requests(input_kind, num_features, rows).items()}
        serve(**request)
        ms = []
        for _ in range(TIMED_CALLS):
            start = time.perf_counter()
            serve(**request)["label_ids"].numpy()
            ms.append((time.perf_counter() - start) * 1000)
        timings[rows] = float(np.median(ms))
    best = TIMED_BATCHES[0]
    for smaller, larger in zip(TIMED_BATCHES, TIMED_BATCHES[1:]):
        if larger / timings[larger] < WORTH_WAITING * smaller / timings[smaller]:
            break
        best = larger
    cores = cores or os.cpu_count() or 1
    lines = ["# TensorFlow Serving batching for this model (--enable_batching --batching_parameters_file=...),",
             "# chosen by tfxc.export from serving_default's median latency on this machine:"]
    lines += [f"#   {rows:4d} rows: {ms:8.3f} ms = {rows / ms * 1000:10,.0f} rows/s" for rows, ms in timings.items()]
    lines += [f"# max_batch_size: the largest size up to which each doubling still gave {WORTH_WAITING:.2f}x the rows/s.",
              "# batch_timeout_micros: one row's latency, the longest a lone request waits.",
              "# num_batch_threads: the machine's cores. Only string inputs join into batches: see docs/serving.md.",
              f"max_batch_size {{ value: {best} }}",
              f"batch_timeout_micros {{ value: {max(100, int(round(timings[1] * 1000)))} }}",
              f"num_batch_threads {{ value: {cores} }}",
              "max_enqueued_batches { value: 100 }"]
    return "\n".join(lines) + "\n"


def export_for_tf_serving(write, base: str, model_name: str | None = None) -> str:
    """A new version of the model under `base` (`base/V`, `next_version`) with its warm-up requests, and the
    batching settings of a string-input model in `base/batching_parameters.txt`; returns the version's path.

    `write(path)` writes the SavedModel (`Predictor.export`). The version directory appears whole, warm-up
    file included, or not at all: the server polls `base` and loads a new version as soon as it sees one.
    """
    from tfxc.export.served import ServedModel
    from tfxc.utils.io import atomic_write_text

    _serving_apis()  # fail before the export, not after
    os.makedirs(base, exist_ok=True)
    version = next_version(base)
    staging = os.path.join(base, f".staging-{version}")  # not a number: the server does not look at it
    write(staging)
    served = ServedModel(staging)
    signatures = served.load().signatures
    name = model_name or os.path.basename(os.path.abspath(base))
    write_warmup(staging, warmup_records(signatures, served.input_kind, served.num_features, name, served.top_k))
    if served.input_kind in ("text", "image"):
        atomic_write_text(os.path.join(base, BATCHING_FILE),
                          batching_parameters(signatures["serving_default"], served.input_kind, served.num_features))
    target = os.path.join(base, str(version))
    os.rename(staging, target)
    return target
