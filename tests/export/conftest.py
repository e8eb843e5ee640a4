"""The models the export tests share, each trained or exported once per test session."""

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


@pytest.fixture(scope="session")
def head_models(tmp_path_factory) -> dict:
    """{case name: (SavedModel directory, ONNX directory)} for every entry of head_models.HEADS."""
    from head_models import HEADS, MULTICLASS, export_head_model

    root = tmp_path_factory.mktemp("heads")
    return {name: export_head_model(root / name, head, name in MULTICLASS,
                                    "mixed_bfloat16" if name.endswith("bfloat16") else "float32")
            for name, head in HEADS.items()}


@pytest.fixture(scope="session")
def head_exports(head_models, trained) -> dict:
    """{case name: SavedModel directory} for every entry of head_models.HEADS, and the CLI-trained export."""
    return {**{name: saved for name, (saved, _) in head_models.items()}, "trained": str(trained[2])}
