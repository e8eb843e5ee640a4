"""tfxc.predict's progress line, input checks and export.json checks (the CLI end to end is in
tests/export/test_saved_model.py)."""

from __future__ import annotations

import io

import pytest

from tfxc import cli, predict


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_progress_prints_rows_and_rate_every_30_s_to_a_log(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(cli.time, "time", clock)
    stream = io.StringIO()
    progress = cli.Progress("predicted", stream)
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


def fake_export(tmp_path, export_info: dict):
    """A directory that looks like a tfxc SavedModel up to its export.json (read before the model is loaded)."""
    import json

    saved = tmp_path / "saved"
    (saved / "assets.extra" / "tfxc").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"")
    (saved / "assets.extra" / "tfxc" / "export.json").write_text(json.dumps(export_info))
    return saved


def test_an_export_json_without_a_key_is_one_error_naming_the_file_and_the_key(tmp_path, capsys):
    """A damaged or hand-edited export.json gave a KeyError traceback in tfxc.predict and tfxc.load."""
    import pytest

    import tfxc
    from tfxc.errors import DataError

    whole = {"top_k": 5, "input": "features", "num_features": 30, "num_labels": 7, "num_train_points": 100}
    for key in ("num_features", "num_labels"):
        saved = fake_export(tmp_path / key, {k: v for k, v in whole.items() if k != key})
        with pytest.raises(DataError, match=rf"^{saved / 'assets.extra' / 'tfxc' / 'export.json'}: no '{key}' entry"):
            tfxc.load(str(saved))
    saved = fake_export(tmp_path / "bad", {**whole, "num_labels": "7"})
    with pytest.raises(DataError, match=r"export.json: 'num_labels' has an unexpected value '7'"):
        tfxc.load(str(saved))

    rows = tmp_path / "rows.txt"
    rows.write_text("1 2:0.5\n")
    for key in ("top_k", "num_features"):
        saved = fake_export(tmp_path / f"cli_{key}", {k: v for k, v in whole.items() if k != key})
        with pytest.raises(SystemExit) as e:
            predict.main(["--model", str(saved), "--input", str(rows), "--output", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err == f"tfxc: error: {saved}/assets.extra/tfxc/export.json: no '{key}' entry\n"


class FakePredictor:
    """A text model as `tfxc.predict` sees it (`tfxc.predictors.Predictor`), whose every answer is the labels
    天气 and café."""

    input_kind, reads_text_as_features, num_features = "text", False, 0
    label_names = ["a", "b", "c", "天气", "d", "café"]
    info = {"head": None, "top_k": 2}

    def top_k(self, texts, k, batch_size=1024, names=None):
        import numpy as np

        rows = len(texts)
        return np.array([[3, 5]] * rows, np.int64), np.array([[0.9, 0.2]] * rows, np.float32)


def test_predictions_keep_label_names_in_utf8(tmp_path, monkeypatch):
    """Item 19: preds.jsonl held "\\u5929\\u6c14" for the label 天气."""
    import json

    import tfxc.predictors

    monkeypatch.setattr(tfxc.predictors, "load", lambda path, trust_imports=False: FakePredictor())
    (tmp_path / "in.jsonl").write_text('{"text": "今天"}\n{"text": "x"}\n', encoding="utf-8")
    predict.main(["--model", "fake", "--input", str(tmp_path / "in.jsonl"), "--output",
                  str(tmp_path / "preds.jsonl"), "--threshold", "0.5"])
    lines = (tmp_path / "preds.jsonl").read_bytes().decode("utf-8").splitlines()
    assert lines[0] == '{"row": 0, "label_ids": [3], "labels": ["天气"], "scores": [0.9]}', lines
    assert [json.loads(line)["labels"] for line in lines] == [["天气"], ["天气"]]


def test_the_api_refuses_a_threshold_that_is_not_a_finite_number():
    """P5 through the API: model.predict(X, threshold=nan) kept no label of any row."""
    import numpy as np
    import pytest

    from tfxc.api import Predictor

    class Backend:
        num_features, num_labels, label_names, input_kind = 4, 3, ["a", "b", "c"], "features"

        def top_k(self, x, k):
            return np.full((x.shape[0], k), 0.9, np.float32), np.tile(np.arange(k), (x.shape[0], 1))

    model = Predictor(Backend())
    x = np.eye(2, 4, dtype=np.float32)
    assert model.predict(x, k=2, threshold=0.5).ids.tolist() == [[0, 1], [0, 1]]
    for threshold in (float("nan"), float("inf"), -np.inf):
        with pytest.raises(ValueError, match=r"^threshold must be a finite number, got"):
            model.predict(x, k=2, threshold=threshold)
    with pytest.raises(ValueError, match=r"^threshold must be a finite number, got nan"):
        model.evaluate(x, [[0], [1, 2]], classification=True, threshold=float("nan"))


def test_an_npz_output_is_pecos_csr_score_matrix(tmp_path, monkeypatch):
    """--output X.npz: the top-k as PECOS's XLinearModel.predict returns them, a CSR [rows, labels]."""
    import numpy as np
    import scipy.sparse as sp

    import tfxc.predictors

    class Beam(FakePredictor):
        num_labels = 6

        def top_k(self, texts, k, batch_size=1024, names=None):
            ids = np.array([[3, 5], [1, -1], [4, 0]][:len(texts)], np.int64)  # -1: the beam reached one label
            return ids, np.array([[0.9, 0.2], [0.7, 0.0], [0.6, 0.55]][:len(texts)], np.float32)

    monkeypatch.setattr(tfxc.predictors, "load", lambda path, trust_imports=False: Beam())
    (tmp_path / "in.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c"}\n', encoding="utf-8")
    for batch, threshold in (("2", []), ("3", ["--threshold", "0.5"])):
        out = tmp_path / f"scores-{batch}.npz"
        predict.main(["--model", "fake", "--input", str(tmp_path / "in.jsonl"), "--output", str(out),
                      "--batch-size", batch, *threshold])
        matrix = sp.load_npz(out)
        assert matrix.format == "csr" and matrix.shape == (3, 6) and matrix.dtype == np.float32
        assert matrix.has_sorted_indices
        if threshold:  # rows of batches of 3: [3, 5] [1] [4, 0] with scores above 0.5
            want = {(0, 3): 0.9, (1, 1): 0.7, (2, 4): 0.6, (2, 0): 0.55}
        else:  # batches of 2: the third row is the first of the second batch, [3, 5]
            want = {(0, 3): 0.9, (0, 5): 0.2, (1, 1): 0.7, (2, 3): 0.9, (2, 5): 0.2}
        assert {(int(i), int(j)): float(v) for (i, j), v in matrix.todok().items()} == pytest.approx(want)
