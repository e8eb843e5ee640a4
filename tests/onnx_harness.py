"""Running an ONNX twin (`tfxc.export.onnx`) outside TensorFlow and comparing its rankings with a reference's."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from helpers import cli_env

ROWS = 1000  # rows a parity test ranks
ATOL = 1e-4
# Scores closer than this are ties: either order of their labels is the same ranking.
TIE = 1e-5

RUN_ONNX = """
import json, sys
import numpy as np, onnxruntime as ort
for model, feeds, out in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    data = np.load(feeds)
    answer = session.run(None, {i.name: data[i.name] for i in session.get_inputs()})
    np.savez(out, **dict(zip([o.name for o in session.get_outputs()], answer)))
print(json.dumps({"modules": sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "tfxc"})}))
"""


def random_rows(num_features: int, rows: int = ROWS, seed: int = 0) -> dict:
    """`rows` CSR rows of 1-20 distinct features each, ascending as in tfxc's converted data, with positive
    values: the twin's and the SavedModel's feature-row inputs."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 21, rows)
    ids = np.concatenate([np.sort(rng.choice(num_features, min(n, num_features), replace=False)) for n in sizes])
    splits = np.concatenate([[0], np.cumsum(np.minimum(sizes, num_features))])
    return {"feat_idx": ids.astype(np.int64), "feat_val": rng.uniform(0.1, 1.0, len(ids)).astype(np.float32),
            "row_splits": splits.astype(np.int64)}


def csr_rows(feeds: dict, start: int, stop: int) -> dict:
    """Rows start..stop of the CSR triple `feeds`."""
    splits = feeds["row_splits"]
    lo, hi = splits[start], splits[min(stop, len(splits) - 1)]
    return {"feat_idx": feeds["feat_idx"][lo:hi], "feat_val": feeds["feat_val"][lo:hi],
            "row_splits": splits[start:stop + 1] - lo}


def run_onnx(cases: list[tuple[str, str, str]]) -> dict:
    """RUN_ONNX over (model.onnx, feeds .npz, answer .npz) triples in one fresh process; what it imported."""
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}
    args = [path for case in cases for path in case]
    proc = subprocess.run([sys.executable, "-c", RUN_ONNX, *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_same_ranking(ids, scores, want_ids, want_scores, what: str) -> None:
    """The twin's top k (`ids`, `scores` [n, k]) against a reference's longer lists (`want_*` [n, >= k]): scores
    within ATOL, the same labels in the same order, except that labels of tied scores may come in either order
    and a tie at the k-th place may be cut at other labels of that score."""
    k = ids.shape[1]
    assert ids.shape == scores.shape and len(ids) == len(want_ids), what
    # A beam that reaches fewer than k labels pads with id -1 and score -inf, in both.
    empty = want_ids[:, :k] < 0
    assert (np.isneginf(scores) == empty).all() and (ids[empty] == -1).all(), f"{what}: other empty slots"
    worst = float(np.abs(scores - want_scores[:, :k])[~empty].max()) if (~empty).any() else 0.0
    assert worst <= ATOL, f"{what}: scores differ by {worst:.3g}"
    for row, (got, want, s) in enumerate(zip(ids, want_ids, want_scores)):
        start, listed = 0, int((want[:k] >= 0).sum())
        while start < listed:
            end = start + 1
            while end < listed and abs(s[end] - s[start]) <= TIE:
                end += 1
            if end < k:
                ok = sorted(got[start:end]) == sorted(want[start:end])
            else:  # the last run: any labels of its score, from the longer list
                tied = set(want[np.abs(s - s[start]) <= TIE])
                ok = set(got[start:end]) <= tied and len(set(got[start:end])) == end - start
            assert ok, f"{what}: row {row} ranks {got.tolist()}, the reference {want[:k].tolist()} ({s[:k].tolist()})"
            start = end
