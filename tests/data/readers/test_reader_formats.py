"""The format table and open_reader: dispatch, and errors with suggestions."""

from __future__ import annotations


import numpy as np
import pytest
import scipy.sparse
from reader_cases import jsonl, save_npy, save_npz, write

from tfxc.data import readers
from tfxc.data.label_vocab import LabelVocab
from tfxc.data.readers import (DenseReader, JsonlReader, PecosNpzReader, XcBowReader, open_reader)
from tfxc.errors import ConfigError



def test_open_reader_dispatch(tmp_path):
    xc = write(tmp_path, "d.txt", "0,1 2:1\n")
    assert isinstance(open_reader("xc", xc, index_base=1), XcBowReader)
    x = save_npz(tmp_path, "x.npz", scipy.sparse.csr_matrix(np.ones((1, 2))))
    assert isinstance(open_reader("pecos", x, x), PecosNpzReader)
    js = write(tmp_path, "d.jsonl", jsonl([{"text": "t", "labels": []}]))
    assert isinstance(open_reader("jsonl", js, label_vocab=LabelVocab()), JsonlReader)
    xd = save_npy(tmp_path, "x.npy", np.ones((1, 2)))
    assert isinstance(open_reader("dense", xd, write(tmp_path, "y.txt", "0\n")), DenseReader)


@pytest.mark.parametrize("call,fragment", [
    (lambda p: open_reader("pecso", p), "unknown data format 'pecso' (did you mean 'pecos'?); known: dense"),
    (lambda p: open_reader("libsvm", p), "known: dense, images, jsonl, pecos, xc"),
    (lambda p: open_reader("pecos", p), "needs labels_path"),
    (lambda p: open_reader("xc", p, p), "labels_path must be None"),
    (lambda p: open_reader("xc", p, index_bse=1), "did you mean 'index_base'?"),
    (lambda p: open_reader("jsonl", p), "needs option(s) label_vocab"),
])
def test_open_reader_errors(tmp_path, call, fragment):
    path = write(tmp_path, "d.txt", "0 1:1\n")
    with pytest.raises(ConfigError) as e:
        call(path)
    assert fragment in str(e.value)


def test_public_names():
    for name in readers.__all__:
        assert hasattr(readers, name)


def test_the_format_table_drives_the_config_and_the_factory():
    from tfxc.config.data_schema import DATA_FORMATS

    assert set(readers.FORMATS) <= set(DATA_FORMATS)
    for name, spec in readers.FORMATS.items():
        assert issubclass(spec.reader, readers.Reader) and spec.name == name
