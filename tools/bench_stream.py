"""Serving as a server's clients see it: a request stream replayed by client threads, per model.

  python tools/bench_stream.py --saved-model S --onnx O --data-dir D
  python tools/bench_stream.py --saved-model S --onnx O --data-dir D --peers pecos-xrlinear,napkinxc-plt \
      --peer-python .peers/bin/python --work runs/stream/medical

Replays the same requests (rows of the converted test split drawn with a fixed seed, `request_stream.
request_rows`) against each way of serving the model, for every number of rows a request and every
number of client threads, and prints each's p50 and p99 latency a request and rows/s over the stream
(`request_stream.replay`: closed-loop clients, each sending its next request when its last is answered):

  savedmodel   the SavedModel's `serving_default`, loaded with tf.saved_model.load as a server would
  onnx         its ONNX twin (`tfxc.export --format onnx`) in ONNX Runtime, from NumPy arrays
  PEER         a peer's in-process predict on the same rows as SciPy CSR (`bench_peers.py --stream`, in the
               peers' interpreter): trained on the converted train split with its defaults first

Before the streams, the twin's parity: on 1,024 test rows, the largest difference of its scores from the
SavedModel's and the share of rows with the same top-k ids in the same order.

A text model's requests are the test rows' strings (kept in the converted rows), which the SavedModel
takes as they are; the twin's line is `tokenize+onnx`, the SavedModel's `tokenize` signature then ONNX
Runtime on its outputs, the route a server without TensorFlow Text would need. The peers read the featurizer's rows of the same texts,
so their figures leave tokenisation out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

from bench_serving import directory_mb  # same folder
from request_stream import replay, request_rows, stream_line  # same folder

from tfxc.cli import non_negative_int, positive_int
from tfxc.data.info import DatasetInfo
from tfxc.data.tfrecord import read_all
from tfxc.utils.display import json_text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def csr_parts(rows: list[dict]) -> dict:
    """The CSR triple of converted rows (read_all's dicts) as NumPy arrays, named as the signatures' inputs."""
    return {"feat_idx": np.concatenate([r["feat_idx"] for r in rows]).astype(np.int64),
            "feat_val": np.concatenate([r["feat_val"] for r in rows]).astype(np.float32),
            "row_splits": np.cumsum([0] + [len(r["feat_idx"]) for r in rows]).astype(np.int64)}


def servers(served, onnx_dir: str | None) -> dict:
    """{name: call(request) -> (label ids, scores)} for the SavedModel and its twin; a request is {input name:
    NumPy array}, the answers NumPy arrays [rows, k]."""
    from tfxc._tf import tf

    serve = served.signature("serving_default")

    def saved_model(request):
        answer = serve(**{name: tf.constant(value) for name, value in request.items()})
        return answer["label_ids"].numpy(), answer["scores"].numpy()

    calls = {"savedmodel": saved_model}
    if onnx_dir:
        import onnxruntime as ort

        session = ort.InferenceSession(os.path.join(onnx_dir, "model.onnx"), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        if served.reads_text:
            tokenize = served.signature("tokenize")

            def tokenized(request):
                tokens = tokenize(text=tf.constant(request["text"]))
                return tuple(session.run(["label_ids", "scores"], {name: tokens[name].numpy() for name in names}))

            calls["tokenize+onnx"] = tokenized
        else:
            calls["onnx"] = lambda request: tuple(session.run(["label_ids", "scores"], request))
    return calls


def parity(calls: dict, requests: list) -> dict:
    """How closely the twin answers as the SavedModel on `requests`: the largest absolute difference of their
    scores, and the fraction of rows whose top-k ids are the same in the same order (labels of tied scores
    may swap places)."""
    twin = next(name for name in calls if name != "savedmodel")
    answers = {name: [calls[name](request) for request in requests] for name in ("savedmodel", twin)}
    ids = {name: np.concatenate([a[0] for a in answers[name]]) for name in answers}
    scores = {name: np.concatenate([a[1] for a in answers[name]]) for name in answers}
    return {"rows": int(ids["savedmodel"].shape[0]),
            "max_abs_score_diff": float(np.abs(scores["savedmodel"] - scores[twin]).max()),
            "same_ids": float((ids["savedmodel"] == ids[twin]).all(axis=1).mean())}


def write_peer_data(data_dir: str, out: str) -> str:
    """X.trn, Y.trn and X.tst .npz of the converted rows (the peers' input; bench_peers.py reads them)."""
    import scipy.sparse as sp

    from tfxc.data.csr import rows_to_csr

    info = DatasetInfo.load(data_dir)
    os.makedirs(out, exist_ok=True)
    for split, name in (("train", "trn"), ("test", "tst")):
        rows = [_row(r) for r in read_all(info.files(split))]
        x, y = rows_to_csr(rows, info.num_features, info.num_labels)
        sp.save_npz(os.path.join(out, f"X.{name}.npz"), x)
        if split == "train":
            sp.save_npz(os.path.join(out, "Y.trn.npz"), y)
    return out


def _row(record: dict):
    from tfxc.data.rows import Row

    return Row(record["feat_idx"], record["feat_val"], record["labels"])


def run_peer(system: str, args, data: str) -> list[dict]:
    """The stream figures of one peer (bench_peers.py in the peers' interpreter)."""
    work = os.path.join(args.work, system)
    command = [args.peer_python, os.path.join(REPO, "tools", "bench_peers.py"), "--system", system, "--data", data,
               "--work", work, "--latency-rows", "0", "--stream-rows", args.rows_per_request,
               "--stream-threads", args.threads, "--stream-requests", str(args.peer_requests or args.requests)]
    done = subprocess.run(command, env={**os.environ, "PYTHONPATH": REPO})
    if done.returncode != 0:  # one peer's crash costs its lines only
        print(f"{system}: exited {done.returncode}, no figures", flush=True)
        return []
    with open(os.path.join(work, "result.json"), encoding="utf-8") as f:
        return json.load(f)["stream"]


def markdown(result: dict) -> str:
    """A Markdown table of one `--out` file: a row a system, a column a (rows a request, clients) stream,
    each cell "p50 / p99 ms, rows/s"."""
    figures = result["figures"]
    streams = sorted({(f["rows_per_request"], f["threads"]) for f in figures})
    systems = list(dict.fromkeys(f["system"] for f in figures))
    cells = {(f["system"], f["rows_per_request"], f["threads"]): f for f in figures}
    lines = ["| server | " + " | ".join(f"{rows} row{'s' * (rows > 1)} x {threads} client{'s' * (threads > 1)}"
                                      for rows, threads in streams) + " |",
             "|---" * (len(streams) + 1) + "|"]
    for system in systems:
        row = []
        for rows, threads in streams:
            f = cells.get((system, rows, threads))
            row.append("" if f is None else f"{f['p50_ms']:.2f} / {f['p99_ms']:.2f} ms, {f['rows_per_s']:,.0f}/s")
        serialised = any(f.get("serialised") for f in figures if f["system"] == system)
        lines.append(f"| {system}{' (serialised)' if serialised else ''} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saved-model", help="a tfxc export (tfxc.export)")
    parser.add_argument("--onnx", default=None, help="its ONNX twin (tfxc.export --format onnx)")
    parser.add_argument("--data-dir", help="the converted data set the model was trained on")
    parser.add_argument("--rows-per-request", default="1,256", help="comma-separated")
    parser.add_argument("--threads", default="1,2,4", help="client threads, comma-separated")
    parser.add_argument("--requests", type=non_negative_int, default=400,
                        help="requests a stream (0: only the twin's parity)")
    parser.add_argument("--peers", default="", help="peer systems of bench_peers.py, comma-separated")
    parser.add_argument("--peer-requests", type=positive_int, default=None,
                        help="requests a stream for the peers (default: --requests; the first ones of the same draw)")
    parser.add_argument("--peer-python", default=sys.executable, help="the peers' interpreter")
    parser.add_argument("--work", default=None, help="the peers' data and models (needed with --peers)")
    parser.add_argument("--out", default=None, help="also write every figure to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="print --out's figures as a Markdown table and stop")
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.out, encoding="utf-8") as f:
            print(markdown(json.load(f)))
        return
    if args.peers and not args.work:
        parser.error("--peers needs --work")
    if not args.saved_model or not args.data_dir:
        parser.error("--saved-model and --data-dir are needed (unless --markdown)")

    from tfxc.export.served import ServedModel

    served = ServedModel(args.saved_model)
    calls = servers(served, args.onnx)
    sizes = {"savedmodel": directory_mb(args.saved_model), **({"onnx": directory_mb(args.onnx)} if args.onnx else {})}
    print("size MB: " + ", ".join(f"{name} {mb:.1f}" for name, mb in sizes.items()))
    rows = read_all(DatasetInfo.load(args.data_dir).files("test"))
    if served.reads_text:  # the converted rows keep their text: the same rows as the peers' features
        texts = np.array([r["text"] for r in rows], dtype=object)
        if not all(texts):
            raise SystemExit(f"{args.data_dir}: the test rows have no text, but the model reads text")
        request = lambda pick: {"text": texts[pick]}  # noqa: E731
    else:
        request = lambda pick: csr_parts([rows[i] for i in pick])  # noqa: E731
    checked = None
    if len(calls) > 1:  # the twin's parity on 1,024 rows, the first requests of a 256-row stream
        checked = parity(calls, [request(pick) for pick in request_rows(len(rows), 256, 4)])
        print(f"parity on {checked['rows']} rows: max |score difference| {checked['max_abs_score_diff']:.2e}, "
              f"top-k ids identical on {100 * checked['same_ids']:.1f}% of rows", flush=True)
    figures = []
    for rows_per_request in map(int, args.rows_per_request.split(",")) if args.requests else []:
        requests = [request(pick) for pick in request_rows(len(rows), rows_per_request, args.requests)]
        for threads in map(int, args.threads.split(",")):
            for name, call in calls.items():
                figures.append({"system": name, **replay(call, requests, threads, rows_per_request)})
                print(stream_line(name, figures[-1]), flush=True)
    if args.peers and args.requests:
        data = write_peer_data(args.data_dir, os.path.join(args.work, "data"))
        for system in args.peers.split(","):
            for line in run_peer(system, args, data):
                figures.append({"system": system, **line})
                print(stream_line(system, line), flush=True)
    if args.out:
        with open(args.out + ".tmp", "w", encoding="utf-8") as f:
            f.write(json_text({"saved_model": args.saved_model, "onnx": args.onnx, "size_mb": sizes,
                               "parity": checked, "figures": figures}, indent=2))
        os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
