"""The trained and exported model the SavedModel tests share (trained once per test session)."""

from __future__ import annotations

import pytest
from helpers import run_cli, tiny_config


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(its directory, the model directory, the SavedModel directory) of a tiny model, exported with k = 5."""
    tmp = tmp_path_factory.mktemp("export")
    config = tiny_config(tmp)
    model_dir, export_dir = tmp / "model", tmp / "saved_model"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(export_dir))
    return tmp, model_dir, export_dir
