"""tfxc.predict's progress line (the CLI itself is tested end to end in tests/export/test_saved_model.py)."""

from __future__ import annotations

import io

from tfxc import predict


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_progress_prints_rows_and_rate_every_30_s_to_a_log(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(predict.time, "time", clock)
    stream = io.StringIO()
    progress = predict.Progress(stream)
    progress.update(512)
    assert stream.getvalue() == ""                     # nothing before 30 s
    clock.now += 31
    progress.update(512)
    clock.now += 10
    progress.update(512)                               # 10 s later: still one line
    progress.close()
    assert stream.getvalue() == "predicted 1,024 rows (33 rows/s)\n"
