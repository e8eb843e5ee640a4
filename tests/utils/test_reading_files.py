"""Reading back tfxc's own arrays, text and caches: damage is a `DamagedFile` naming the file, never a decoder's
traceback (JSON records: tests of `tfxc.utils.json_files`)."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc.errors import DamagedFile, TfxcError
from tfxc.utils.files import read_cache, read_npy, read_npz, read_text


def cut(path, keep: float = 0.5) -> None:
    """Cuts `path` short, as a full disk or a crash mid-copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_text_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"a\nb\xff\n")
    with pytest.raises(DamagedFile, match=r"labels.txt: damaged file: not UTF-8 text \(at byte 3\); convert") as e:
        read_text(str(path), advice="convert again")
    assert isinstance(e.value, TfxcError) and "\n" not in str(e.value)


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
