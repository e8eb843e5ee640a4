"""Every record a training run and an export write carries today's format version (`tfxc.compat`)."""

from __future__ import annotations

import json
import os

from helpers import run_cli, tiny_config

from tfxc import compat

# The versioned records, by file name (the other JSON files are a run's logs and resume state).
VERSIONED = {"config.json": compat.CONFIG, "artifact.json": compat.ARTIFACT, "export.json": compat.EXPORT,
             "stats.json": compat.DATA, "ensemble.json": compat.ENSEMBLE, "featurizer.json": compat.FEATURIZER,
             "extract.json": compat.FEATURE_STORE, "best.json": compat.BEST}


def test_a_trained_and_exported_model_stamps_every_record_with_todays_version(tmp_path):
    config = tiny_config(tmp_path)
    model_dir, export_dir = tmp_path / "model", tmp_path / "saved_model"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(export_dir))
    found = {}
    for root in (model_dir, export_dir, tmp_path / "data"):
        for directory, _, names in os.walk(root):
            for name in names:
                if name in VERSIONED:
                    record = json.loads(open(os.path.join(directory, name)).read())
                    kind = VERSIONED[name]
                    assert record[compat.FORMATS[kind].key] == compat.FORMAT_VERSIONS[kind], (directory, name)
                    found.setdefault(name, 0)
                    found[name] += 1
    # The model's and the export's config, the data's card and its copy in the model directory.
    assert found == {"config.json": 2, "artifact.json": 1, "export.json": 1, "stats.json": 2}, found
    # And the config printed for people is the one a model directory keeps.
    printed = run_cli("tfxc.train", "--config", config, "--print-config").stdout
    assert json.loads(printed)["format_version"] == compat.FORMAT_VERSIONS[compat.CONFIG]
