"""tools/request_stream.py and tools/bench_stream.py: a request stream replayed by client threads."""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import numpy as np
import pytest

from helpers import REPO, run_cli, tiny_config

sys.path.insert(0, os.path.join(REPO, "tools"))
from request_stream import replay, request_rows, stream_line  # noqa: E402


def test_every_request_is_sent_once_from_the_asked_number_of_threads():
    seen, threads = [], {}

    def call(request):
        seen.append(request)
        threads[request] = threading.get_ident()
        time.sleep(0.002)  # long enough for the other clients to start

    figures = replay(call, list(range(40)), threads=4, rows_per_request=3, warmup=5)
    assert sorted(seen[5:]) == list(range(40)) and seen[:5] == list(range(5))  # warm-up, then each once
    assert len(set(threads.values())) == 4  # each request's last sender: one of the clients
    assert figures["requests"] == 40 and figures["threads"] == 4 and figures["rows_per_request"] == 3
    assert 2 <= figures["p50_ms"] <= figures["p99_ms"]
    # 4 clients each sleeping 2 ms a request: 120 rows in about 20 ms, far more than one client could send.
    assert figures["rows_per_s"] > 3 * 1000 / 2 * 1.5
    assert "3 rows x 4 clients" in stream_line("onnx", figures)


def test_a_failing_call_stops_the_stream_and_is_raised():
    def call(request):
        if request == 7:
            raise ValueError("request 7 is bad")

    with pytest.raises(ValueError, match="request 7 is bad"):
        replay(call, list(range(50)), threads=2, rows_per_request=1, warmup=0)


def test_the_requests_rows_are_the_same_in_every_process_and_a_shorter_stream_is_a_prefix():
    rows = request_rows(1000, 4, 50)
    assert rows.shape == (50, 4) and rows.dtype == np.int64 and 0 <= rows.min() and rows.max() < 1000
    np.testing.assert_array_equal(request_rows(1000, 4, 10), rows[:10])
    with pytest.raises(ValueError, match="no rows"):
        request_rows(0, 1, 1)


@pytest.mark.slow(reason="time: trains a model and exports it both ways, then replays four streams of each")
def test_the_bench_replays_the_saved_model_and_its_twin(tmp_path, capsys):
    import bench_stream

    config = tiny_config(tmp_path)
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "model"))
    run_cli("tfxc.export", "--model-dir", str(tmp_path / "model"), "--out", str(tmp_path / "saved"))
    run_cli("tfxc.export", "--model-dir", str(tmp_path / "model"), "--out", str(tmp_path / "twin"), "--format", "onnx")
    bench_stream.main(["--saved-model", str(tmp_path / "saved"), "--onnx", str(tmp_path / "twin"), "--data-dir",
                       str(tmp_path / "data"), "--rows-per-request", "1,4", "--threads", "1,2", "--requests", "12",
                       "--out", str(tmp_path / "stream.json")])
    figures = json.loads((tmp_path / "stream.json").read_text())["figures"]
    assert [(f["system"], f["rows_per_request"], f["threads"]) for f in figures] == [
        (system, rows, threads) for rows in (1, 4) for threads in (1, 2) for system in ("savedmodel", "onnx")]
    assert all(f["p50_ms"] > 0 and f["rows_per_s"] > 0 for f in figures)
    assert "savedmodel            4 rows x 2 clients" in capsys.readouterr().out
