"""Reading back tfxc's own files: damage is a `DamagedFile` naming the file, never a decoder's traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfxc.errors import DamagedFile, TfxcError
from tfxc.utils.files import read_cache, read_json, read_json_lines, read_json_object, read_npy, read_npz, read_text


def cut(path, keep: float = 0.5) -> None:
    """Cuts `path` short, as a full disk or a crash mid-copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_cut_short_or_foreign_json_file_is_named_with_the_advice(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"num_labels": 3, "splits": {"train": {"num_points": 10}}}, indent=2))
    assert read_json_object(str(path))["num_labels"] == 3
    cut(path)
    with pytest.raises(DamagedFile, match=r"stats.json: damaged file: not valid JSON: .*\(line \d+, column \d+\); "
                                          r"convert again") as e:
        read_json(str(path), advice="convert again")
    assert isinstance(e.value, TfxcError) and "\n" not in str(e.value)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(DamagedFile, match="not UTF-8 text"):
        read_text(str(path))
    path.write_text("[1, 2]")
    with pytest.raises(DamagedFile, match="expected a JSON object, found list"):
        read_json_object(str(path))


def test_a_damaged_log_line_is_skipped_and_the_others_kept(tmp_path, caplog):
    path = tmp_path / "eval_log.jsonl"
    path.write_bytes(b'{"step": 8}\n{"step": 16, "spl\n[3]\n\xff\n{"step": 24}\n')
    assert read_json_lines(str(path)) == [{"step": 8}, {"step": 24}]
    assert "eval_log.jsonl:2: damaged line skipped" in caplog.text and "eval_log.jsonl:4:" in caplog.text


def test_damaged_arrays_are_named_and_never_unpickled(tmp_path):
    npy, npz = tmp_path / "label_freq.npy", tmp_path / "lookup.npz"
    np.save(npy, np.arange(100, dtype=np.int64))
    np.savez(npz, a=np.arange(100), b=np.ones(3))
    assert read_npy(str(npy)).sum() == 4950 and set(read_npz(str(npz))) == {"a", "b"}
    with pytest.raises(DamagedFile, match="expected an .npz archive"):
        read_npz(str(npy))
    with pytest.raises(DamagedFile, match=r"not an \.npy array"):
        read_npy(str(npz))
    cut(npy), cut(npz)
    for read, path in ((read_npy, npy), (read_npz, npz)):
        with pytest.raises(DamagedFile, match=path.name + ": damaged file"):
            read(str(path))
    np.save(npy, np.array([{"x": 1}], dtype=object))  # pickled objects: code could run on load
    with pytest.raises(DamagedFile, match="Object arrays cannot be loaded"):
        read_npy(str(npy))


def test_a_damaged_cache_is_computed_again(tmp_path, caplog):
    path = tmp_path / "train_idf.npy"
    assert read_cache(str(path), read_npy) is None  # none yet
    np.save(path, np.ones(50, np.float32))
    assert read_cache(str(path), read_npy).shape == (50,)
    cut(path)
    assert read_cache(str(path), read_npy) is None and "computing it again" in caplog.text
