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


def test_predict_text_input_with_a_lone_surrogate_names_file_line_and_field(tmp_path):
    """D8: a JSON "\\ud800" escape reached tf.constant and failed with 'Error converting unicode string'."""
    import pytest

    from tfxc.errors import DataError

    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "\\ud800 x"}\n')
    with pytest.raises(DataError) as e:
        list(predict.text_batches(str(path), 512))
    assert str(e.value).startswith(f"{path}:2: field 'text': '\\ud800 x' contains a lone surrogate U+D800"), e.value


def test_predict_non_utf8_input_names_the_line(tmp_path):
    import pytest

    from tfxc.errors import DataError

    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "fine"}\n' * 3 + '{"text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(DataError) as e:
        list(predict.text_batches(str(path), 2))
    assert str(e.value).startswith(f"{path}:4: not valid UTF-8 text: byte 0xe9"), e.value
