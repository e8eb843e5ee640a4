"""`tfxc.export --tf-serving`: the layout TensorFlow Serving's model server loads, and its warm-up requests.

The server binary is not installable here (no package of it for this machine, no Docker), so the tests
stop where it would start: the version directories it polls, the warm-up records read back with
tensorflow-serving-api's protos and replayed through the loaded SavedModel's signatures (what the server
does with them at load), answering as the model does.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import run_cli


def test_each_export_is_the_next_version_with_warmup_requests_that_replay(trained, tmp_path):
    import tfxc
    from tfxc.export.tf_serving import WARMUP_BATCH, read_warmup, replay, sample_requests

    _, model_dir, _ = trained
    base = tmp_path / "models" / "medical"
    for version in (1, 2):
        run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(base), "--tf-serving")
        assert sorted(os.listdir(base)) == [str(v) for v in range(1, version + 1)]  # nothing staged is left
    records = read_warmup(str(base / "2" / "assets.extra" / "tf_serving_warmup_requests"))
    requests = [(r.predict_log.request.model_spec.name, r.predict_log.request.model_spec.signature_name,
                 int(r.predict_log.request.inputs["row_splits"].tensor_shape.dim[0].size) - 1) for r in records]
    assert requests == [("medical", name, rows) for name in ("embed", "serving_default", "top_k")
                        for rows in (1, WARMUP_BATCH)]
    answers = replay(str(base / "2"), records)
    model = tfxc.load(str(model_dir))
    batch = sample_requests("features", model.num_features, WARMUP_BATCH)
    import scipy.sparse

    rows = scipy.sparse.csr_matrix((batch["feat_val"], batch["feat_idx"], batch["row_splits"]),
                                   shape=(WARMUP_BATCH, model.num_features))
    ids, _ = model.top_k(rows, 5)
    assert (answers[3]["label_ids"] == ids).all()  # serving_default on the batch ranks as the model does
    assert answers[4]["label_ids"].shape == (1, 5) and answers[0]["embedding"].shape[0] == 1
    # A feature-row model's CSR requests do not join into server batches: no batching settings are written.
    assert not (base / "batching_parameters.txt").exists()


def test_the_layout_needs_a_saved_model(trained, tmp_path):
    _, model_dir, _ = trained
    result = run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(tmp_path / "m"), "--tf-serving",
                     "--format", "onnx", check=False)
    assert result.returncode == 2 and "--tf-serving lays out a SavedModel" in result.stderr


def test_the_batching_settings_come_from_the_timed_latencies():
    from tfxc.export import tf_serving

    text = tf_serving.batching_parameters.__doc__
    assert "max_batch_size" in text and "batch_timeout_micros" in text
    assert tf_serving.next_version("/nonexistent") == 1
    requests = tf_serving.sample_requests("text", 0, 3)
    assert requests["text"].shape == (3,) and all(isinstance(t, bytes) and t for t in requests["text"])
    pixels = tf_serving.sample_requests("image", 0, 2)
    assert pixels["image"][0].startswith(b"\x89PNG")
    csr = tf_serving.sample_requests("features", 5, 4)
    assert csr["row_splits"].tolist() == [0, 5, 10, 15, 20] and np.all(csr["feat_idx"] < 5)


@pytest.mark.parametrize("rows_per_second, want", [
    ({1: 1000, 2: 1900, 4: 3500, 8: 3600}, 4),  # 4 -> 8 adds 3%: not worth the wait
    ({1: 1000, 2: 1050}, 1),
])
def test_max_batch_size_is_where_a_doubling_stops_paying(monkeypatch, rows_per_second, want):
    from tfxc.export import tf_serving

    sizes = tuple(rows_per_second)
    monkeypatch.setattr(tf_serving, "TIMED_BATCHES", sizes)

    class Serve:
        def __call__(self, **request):
            rows = len(request["text"].numpy())
            return {"label_ids": _Instant(rows / rows_per_second[rows] * 1000)}

    monkeypatch.setattr(tf_serving.time, "perf_counter", lambda: _Instant.now)
    text = tf_serving.batching_parameters(Serve(), "text", 0, cores=2)
    assert f"max_batch_size {{ value: {want} }}" in text and "num_batch_threads { value: 2 }" in text


class _Instant:
    """A fake clock advanced by each fake call's latency (ms)."""

    now = 0.0

    def __init__(self, ms: float):
        _Instant.now += ms / 1000

    def numpy(self):
        return None
