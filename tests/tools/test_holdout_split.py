"""tools/holdout_split.py: whole groups go to one side, rows stay intact, and mismatched files are refused."""

from __future__ import annotations

import gzip
import json

import pytest
from helpers import tool_module

from tfxc.data.readers import XcBowReader
from tfxc.errors import DataError



def write_pair(tmp_path, groups: int, per_group: int, header_points=None):
    ids, rows = [], []
    for g in range(groups):
        for i in range(per_group):
            ids.append(f"n{g:08d}:{i + 1}")
            rows.append(f"{(g + i) % 7} {g % 5}:0.5 {5 + i % 3}:0.5")
    xc, jl = tmp_path / "train.txt.gz", tmp_path / "train.jsonl"
    with gzip.open(xc, "wt") as f:  # gzipped, and the last row without a newline
        f.write(f"{header_points or len(rows)} 8 7\n" + "\n".join(rows))
    jl.write_text("".join(json.dumps({"id": i, "text": "x", "labels": ["y"]}) + "\n" for i in ids))
    return str(xc), str(jl), ids, rows


def test_groups_are_kept_whole_and_rows_intact(tmp_path):
    tool = tool_module("holdout_split")
    xc, jl, ids, rows = write_pair(tmp_path, groups=60, per_group=4)
    n_train, n_val = tool.split(xc, jl, str(tmp_path / "out"), percent=25, group_sep=":")
    assert n_train + n_val == len(rows) and n_val % 4 == 0 and 0 < n_val < len(rows)
    expected = {"train": [], "val": []}
    for i, row in zip(ids, rows):
        expected["val" if tool.in_validation(i.split(":")[0], 25) else "train"].append(row)
    for part in ("train", "val"):
        lines = (tmp_path / "out" / f"{part}.txt").read_text().splitlines()
        assert lines[0] == f"{len(expected[part])} 8 7"
        assert lines[1:] == expected[part]
        # The output is a valid XC file for tfxc's own reader.
        reader = XcBowReader(str(tmp_path / "out" / f"{part}.txt"))
        assert sum(1 for _ in reader) == reader.num_rows == len(expected[part])


def test_files_with_different_point_counts_are_refused(tmp_path):
    tool = tool_module("holdout_split")
    xc, jl, _, _ = write_pair(tmp_path, groups=3, per_group=2, header_points=7)
    with pytest.raises(DataError, match="6 points read, the header says 7"):
        tool.split(xc, jl, str(tmp_path / "out"), percent=50, group_sep=":")
    assert not (tmp_path / "out" / "train.txt").exists()
    lines = open(jl).readlines()
    open(jl, "w").writelines(lines[:-1])
    with pytest.raises(DataError, match=r"train.txt.gz:7: .*train.jsonl has fewer points"):
        tool.split(xc, jl, str(tmp_path / "out"), percent=50, group_sep=":")
    open(jl, "w").writelines(lines + lines[:1])
    with pytest.raises(DataError, match="train.jsonl: more points than"):
        tool.split(xc, jl, str(tmp_path / "out"), percent=50, group_sep=":")


def test_without_ids_every_point_is_its_own_group(tmp_path):
    tool = tool_module("holdout_split")
    xc, _, _, rows = write_pair(tmp_path, groups=50, per_group=4)
    n_train, n_val = tool.split(xc, None, str(tmp_path / "out"), percent=20, group_sep=":")
    assert n_train + n_val == len(rows)
    assert n_val == sum(tool.in_validation(str(i), 20) for i in range(len(rows)))


def test_pecos_matrices_split_point_by_point(tmp_path):
    import numpy as np
    import scipy.sparse as sp

    tool = tool_module("holdout_split")
    x = sp.random(200, 30, density=0.2, format="csr", random_state=0, dtype=np.float32)
    y = sp.csr_matrix((np.ones(200, np.float32), np.arange(200) % 7, np.arange(201)), shape=(200, 7))
    sp.save_npz(tmp_path / "X.npz", x)
    sp.save_npz(tmp_path / "Y.npz", y)
    n_train, n_val = tool.split_npz(str(tmp_path / "X.npz"), str(tmp_path / "Y.npz"), str(tmp_path / "out"), 20)
    assert n_train + n_val == 200 and 20 < n_val < 60
    val = np.array([tool.in_validation(str(i), 20) for i in range(200)])
    for name, rows in (("train", ~val), ("val", val)):
        assert (sp.load_npz(tmp_path / "out" / f"X.{name}.npz") != x[rows]).nnz == 0
        np.testing.assert_array_equal(sp.load_npz(tmp_path / "out" / f"Y.{name}.npz").indices, y[rows].indices)
    sp.save_npz(tmp_path / "Y5.npz", y[:5])
    with pytest.raises(DataError, match="has 200 points but"):
        tool.split_npz(str(tmp_path / "X.npz"), str(tmp_path / "Y5.npz"), str(tmp_path / "o2"), 20)


def test_an_output_that_is_an_input_is_refused_in_one_line(tmp_path, capsys):
    tool = tool_module("holdout_split")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text("2 8 7\n1 0:1\n2 1:1\n")
    before = (data / "train.txt").read_bytes()
    with pytest.raises(SystemExit) as stop:  # `--out` the directory of `--xc`: train.txt would be replaced
        tool.main(["--xc", str(data / "train.txt"), "--out", str(data)])
    assert stop.value.code == 2 and "is the --xc" in capsys.readouterr().err
    assert (data / "train.txt").read_bytes() == before


@pytest.mark.parametrize("header", ["abc 8 7", "٣ 8 7", "6 8"])
def test_a_header_that_is_not_three_ascii_integers_is_refused(tmp_path, header):
    tool = tool_module("holdout_split")
    xc, jl, _, rows = write_pair(tmp_path, groups=3, per_group=2)
    with gzip.open(xc, "wt", encoding="utf-8") as f:
        f.write(header + "\n" + "\n".join(rows))
    with pytest.raises(DataError, match=f"{xc}:1: expected the header 'points features labels'"):
        tool.split(xc, jl, str(tmp_path / "out"), percent=50, group_sep=":")
