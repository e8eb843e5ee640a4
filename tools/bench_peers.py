"""Runs one peer system (PECOS, napkinXC, omikuji) on one prepared data set; `tools/bench.py` drives it.

Runs in its own process, possibly under another interpreter (`bench.py --peer-python`):
libpecos pins numpy<2, which TensorFlow 2.21 does not accept, so the peers
usually live in their own virtual environment. Needs only the standard
library, numpy, scipy and the peer's package; never imports tfxc.

Input: `DATA/{X,Y}.{trn,tst}.npz` (CSR, written by bench.py from the same
files tfxc trains on), each row L2-normalised before the peer sees it, the input
their documentation feeds them (`--raw-rows`: as given). Output in `WORK/`: `pred.npz` (`ids` int64 [N, k], −1
padded, best first) and `result.json` (train seconds, prediction throughput
over the whole test split and in 256-row batches, single-row latency, model
bytes on disk, peak RSS) and, with --stream-rows, `stream`: a request stream's figures
(`request_stream.replay`, on the requests `bench_stream.py` sends tfxc's models).

Each system runs with its documented defaults:
  pecos-xrlinear   XLinearModel.train on a hierarchical k-means label tree over
                   PIFA label embeddings (Indexer.gen defaults), predict defaults;
  napkinxc-plt     napkinxc.models.PLT() defaults (hierarchical k-means tree, arity 2);
  omikuji-parabel  omikuji default hyper-parameters (Parabel: balanced 2-means, 3 trees);
  omikuji-bonsai   omikuji's Bonsai-like setting from its README (cluster.k=100,
                   unbalanced clusters, max_depth=3).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import threading
import time

import numpy as np
import scipy.sparse as sp

from request_stream import replay, request_rows  # same folder (standard library and NumPy only)
from tfxc.cli import non_negative_int, positive_int
from tfxc.utils.display import json_text

SYSTEMS = ("pecos-xrlinear", "napkinxc-plt", "omikuji-parabel", "omikuji-bonsai")


def load_csr(path: str) -> sp.csr_matrix:
    return sp.load_npz(path).tocsr().astype(np.float32)  # load_npz never unpickles


def l2_normalised(x: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its Euclidean norm (empty rows stay empty): the input the peers' documentation feeds
    them (PECOS's TF-IDF features, napkinXC's `load_libsvm_file(normalize=True)`, Parabel's and Bonsai's papers)."""
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    out = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ x, dtype=np.float32)
    out.sort_indices()  # PECOS refuses rows whose feature ids are not ascending
    return out


def rows_to_lists(y: sp.csr_matrix) -> list[list[int]]:
    return [y.indices[y.indptr[i]:y.indptr[i + 1]].tolist() for i in range(y.shape[0])]


def write_xc_file(path: str, x: sp.csr_matrix, y: sp.csr_matrix) -> None:
    """Writes the Extreme Classification Repository text format (omikuji's training input)."""
    with open(path, "w", encoding="ascii") as f:
        f.write(f"{x.shape[0]} {x.shape[1]} {y.shape[1]}\n")
        for i in range(x.shape[0]):
            labels = ",".join(map(str, y.indices[y.indptr[i]:y.indptr[i + 1]]))
            feats = " ".join(f"{j}:{v:.6g}" for j, v in zip(x.indices[x.indptr[i]:x.indptr[i + 1]],
                                                            x.data[x.indptr[i]:x.indptr[i + 1]]))
            # omikuji rejects a trailing space, so a row without features is just its labels.
            f.write(f"{labels} {feats}\n" if feats else f"{labels}\n")


def pad_top_k(lists: list[list[int]], k: int) -> np.ndarray:
    out = np.full((len(lists), k), -1, np.int64)
    for i, ids in enumerate(lists):
        out[i, :min(k, len(ids))] = ids[:k]
    return out


def csr_top_k(scores: sp.csr_matrix, k: int) -> list[list[int]]:
    out = []
    for i in range(scores.shape[0]):
        cols = scores.indices[scores.indptr[i]:scores.indptr[i + 1]]
        vals = scores.data[scores.indptr[i]:scores.indptr[i + 1]]
        out.append(cols[np.argsort(-vals, kind="stable")][:k].tolist())
    return out


class Pecos:
    def train(self, x, y, work):
        from pecos.xmc import Indexer, LabelEmbeddingFactory
        from pecos.xmc.xlinear.model import XLinearModel

        cluster_chain = Indexer.gen(LabelEmbeddingFactory.create(y, x, method="pifa"))
        self.model = XLinearModel.train(x, y, C=cluster_chain)
        self.model.save(os.path.join(work, "model"))

    def predict(self, x, k):
        return csr_top_k(self.model.predict(x, only_topk=k), k)


class NapkinPlt:
    # napkinxc's predict crashes the process (SIGSEGV) when two threads call it at once: a server must
    # serialise its calls, and the stream does (`stream`).
    thread_safe = False

    def train(self, x, y, work):
        from napkinxc.models import PLT

        self.model = PLT(os.path.join(work, "model"))
        self.model.fit(x, rows_to_lists(y))

    def predict(self, x, k):
        return [list(row) for row in self.model.predict(x, top_k=k)]


class Omikuji:
    def __init__(self, bonsai: bool, trees: int = 0):
        self.bonsai, self.trees = bonsai, trees

    def train(self, x, y, work):
        import omikuji

        hp = omikuji.Model.default_hyper_param()
        if self.bonsai:
            hp.cluster_k, hp.cluster_balanced, hp.max_depth = 100, False, 3
        if self.trees:  # a smaller forest: a cheaper point of the time-to-accuracy curve
            hp.n_trees = self.trees
        train_file = os.path.join(work, "train.txt")
        write_xc_file(train_file, x, y)
        self.model = omikuji.Model.train_on_data(train_file, hp)
        os.remove(train_file)  # not part of the model
        self.model.save(os.path.join(work, "model"))

    def predict(self, x, k):
        out = []
        for i in range(x.shape[0]):
            row = list(zip(x.indices[x.indptr[i]:x.indptr[i + 1]].tolist(),
                           x.data[x.indptr[i]:x.indptr[i + 1]].tolist()))
            out.append([label for label, _ in self.model.predict(row, top_k=k)])
        return out


# Systems whose training budget has a cheap knob: omikuji's number of trees (default 3).
BUDGETS = {"omikuji-parabel": (1, 2), "omikuji-bonsai": (1, 2)}


def make(system: str, trees: int = 0):
    """The peer `system`; trees > 0 sets the size of omikuji's forest (the others have no such knob)."""
    if trees and system not in BUDGETS:
        raise SystemExit(f"{system} has no --trees")
    return {"pecos-xrlinear": Pecos, "napkinxc-plt": NapkinPlt,
            "omikuji-parabel": lambda: Omikuji(False, trees), "omikuji-bonsai": lambda: Omikuji(True, trees)}[system]()


def latency_ms(call, inputs, warmup: int = 10) -> np.ndarray:
    """Wall time of `call(x)` for each x in `inputs` after `warmup` untimed calls, in ms [len(inputs)].

    Shared by bench.py's SavedModel timing (this module needs no tfxc, so it runs under any interpreter).
    """
    for x in inputs[:warmup]:
        call(x)
    out = []
    for x in inputs:
        start = time.perf_counter()
        call(x)
        out.append(time.perf_counter() - start)
    return np.asarray(out) * 1000


def latency_summary(ms: np.ndarray) -> dict:
    return {"latency_ms_median": float(np.median(ms)), "latency_ms_p99": float(np.percentile(ms, 99))}


def write_result(work: str, result: dict) -> None:
    """Writes `work/result.json` atomically (bench.py reads it once the process has exited)."""
    with open(os.path.join(work, "result.json.tmp"), "w", encoding="utf-8") as f:
        f.write(json_text(result, indent=2))
    os.replace(os.path.join(work, "result.json.tmp"), os.path.join(work, "result.json"))


def peak_rss_gb() -> float:
    """This process's peak resident memory (VmHWM) in GiB; tfxc.utils.memory.peak_rss_gb explains why not ru_maxrss.

    (Copied rather than imported: this module runs without tfxc.)
    """
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 2**20


def directory_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def stream(system, xt: sp.csr_matrix, args) -> list[dict]:
    """`request_stream.replay`'s figures of `system.predict` on the requests bench_stream.py sends tfxc's
    models (the same test rows, drawn with the same seed)."""
    serialised = not getattr(system, "thread_safe", True)
    lock = threading.Lock() if serialised else contextlib.nullcontext()

    def predict(x):
        with lock:
            return system.predict(x, args.k)

    figures = []
    for rows in map(int, args.stream_rows.split(",")):
        requests = [xt[pick] for pick in request_rows(xt.shape[0], rows, args.stream_requests)]
        for threads in map(int, args.stream_threads.split(",")):
            figures.append({**replay(predict, requests, threads, rows), **({"serialised": True} if serialised else {})})
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", required=True, choices=SYSTEMS)
    parser.add_argument("--data", required=True, help="directory with X.trn.npz, Y.trn.npz, X.tst.npz")
    parser.add_argument("--work", required=True, help="output directory (emptied first)")
    parser.add_argument("--k", type=positive_int, default=5)
    parser.add_argument("--trees", type=non_negative_int, default=0,
                        help="omikuji: trees in the forest (0: the default, 3)")
    parser.add_argument("--latency-rows", type=non_negative_int, default=200,
                        help="test rows timed one at a time (0: no serving timings, as for a validation run)")
    parser.add_argument("--stream-rows", default="", help="rows a request of a replayed request stream, "
                        "comma-separated (bench_stream.py; empty: no stream)")
    parser.add_argument("--stream-threads", default="1", help="client threads of the stream, comma-separated")
    parser.add_argument("--stream-requests", type=positive_int, default=400, help="requests a stream")
    parser.add_argument("--raw-rows", action="store_true",
                        help="train and predict on the rows as given, not L2-normalised (the bench before 2026-11-27)")
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    x, y = load_csr(os.path.join(args.data, "X.trn.npz")), load_csr(os.path.join(args.data, "Y.trn.npz"))
    xt = load_csr(os.path.join(args.data, "X.tst.npz"))
    if not args.raw_rows:
        x, xt = l2_normalised(x), l2_normalised(xt)
    system = make(args.system, args.trees)

    start = time.perf_counter()
    system.train(x, y, args.work)
    train_s = time.perf_counter() - start

    start = time.perf_counter()
    ids = pad_top_k(system.predict(xt, args.k), args.k)
    predict_s = time.perf_counter() - start

    serving = {}
    if args.latency_rows:
        singles = [xt[i:i + 1] for i in range(min(args.latency_rows, xt.shape[0]))]
        serving = latency_summary(latency_ms(lambda row: system.predict(row, args.k), singles, warmup=1))
        # 256-row batches of random test rows, as bench.py times tfxc's SavedModel.
        batches = [xt[rows] for rows in np.random.default_rng(0).integers(0, xt.shape[0], (20, 256))]
        ms = latency_ms(lambda rows: system.predict(rows, args.k), batches, warmup=2)
        serving["batch256_rows_per_s"] = 256 * 1000 / float(np.median(ms))

    if args.stream_rows:
        serving["stream"] = stream(system, xt, args)

    np.savez(os.path.join(args.work, "pred.npz"), ids=ids)
    write_result(args.work, {"system": args.system, "input": "raw rows" if args.raw_rows else "l2-normalised rows",
                             "train_s": train_s, "predict_rows_per_s": xt.shape[0] / predict_s,
                             **serving, "model_bytes": directory_bytes(os.path.join(args.work, "model")),
                             "peak_rss_gb": peak_rss_gb()})


if __name__ == "__main__":
    main()
