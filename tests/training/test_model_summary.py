"""`tfxc.train --summary`: the parameters of a config's model, counted without allocating them, equal those of the
model really built."""

from __future__ import annotations

import numpy as np
from helpers import run_cli, tiny_config

from tfxc.build_context import BuildContext
from tfxc.config import load_config
from tfxc.data.convert import ensure_converted
from tfxc.model import build_model
from tfxc.training.model_summary import parameter_rows, show_summary


def test_the_summary_counts_the_parameters_of_the_built_model(tmp_path, capsys):
    config = load_config(tiny_config(tmp_path, model={"encoder": {"name": "sparse_bow", "embedding_dim": 16,
                                                                  "hidden_units": [8]},
                                                      "head": {"name": "softmax"}}))
    info = ensure_converted(config.data)
    rows = show_summary(config, info)
    printed = capsys.readouterr().out
    built = build_model(config.model, BuildContext.from_info(info, seed=1))
    assert parameter_rows(built) == rows
    float_variables = [v for v in built.variables if "float" in str(v.dtype)]
    total = sum(int(np.prod(v.shape)) for v in float_variables)
    # sparse_bow: a 300 x 16 table and its bias, a 16 -> 8 dense layer; softmax over 40 labels: 8 x 40 + 40.
    assert total == sum(row["count"] for row in rows) == 300 * 16 + 16 + 16 * 8 + 8 + 8 * 40 + 40
    assert f"{total:,} parameters, {total:,} trained" in printed
    assert "head/kernel" in printed and "[8, 40]" in printed


def test_the_cli_prints_the_summary_and_trains_nothing(tmp_path):
    config = tiny_config(tmp_path)
    out = run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "model"), "--summary").stdout
    assert "head/kernel" in out and "parameters, " in out and not (tmp_path / "model" / "checkpoints").exists()
