"""Records of format 0, as the writers before versions wrote them, read as today's: a directory without
artifact.json, an export.json and its missing assets, a conversion's stats.json (label counts and source
fingerprint), ensemble.json and a featurizer of version 1."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tfxc import artifacts, compat
from tfxc.compat import record_steps, stand_ins
from tfxc.errors import DataError, TfxcError


def _fake_checkpoint(model_dir) -> None:
    """An empty ckpt-8 index and data file: enough for listing it (not for restoring)."""
    directory = model_dir / "checkpoints"
    directory.mkdir(parents=True)
    for suffix in (".index", ".data-00000-of-00001"):
        (directory / f"ckpt-8{suffix}").write_text("")


# === artifact.json (format 0: none) ===
def test_a_directory_without_artifact_json_is_read_off_the_files_its_writer_left(tmp_path):
    single, linked, ensemble = tmp_path / "single", tmp_path / "linked", tmp_path / "ensemble"
    for path in (single, linked):
        path.mkdir()
        (path / "config.json").write_text("{}")
    _fake_checkpoint(single)
    (linked / "parts" / "part-000").mkdir(parents=True)
    ensemble.mkdir()
    (ensemble / "ensemble.json").write_text(json.dumps({"method": "log_average", "list_size": 100, "members": []}))
    for path, artifact in ((single, artifacts.MODEL_DIR), (linked, artifacts.LINKED_PARTS),
                           (ensemble, artifacts.ENSEMBLE)):
        assert artifacts.kind_of(str(path)) == {"format_version": 1, "run": None, "artifact": artifact}
    with pytest.raises(TfxcError, match="not a trained tfxc model"):
        artifacts.kind_of(str(tmp_path))
    with pytest.raises(ValueError, match="not a trained tfxc model"):
        record_steps.artifact_from_files({"holds": []})


def test_a_recorded_artifact_reads_as_written_and_a_newer_one_is_refused(tmp_path):
    artifacts.record(str(tmp_path), artifacts.MEMBERS)
    assert json.loads((tmp_path / "artifact.json").read_text()) == {"format_version": 1, "run": "members",
                                                                     "artifact": "ensemble"}
    (tmp_path / "artifact.json").write_text(json.dumps({"format_version": 2, "run": "single",
                                                        "artifact": "model_dir"}))
    with pytest.raises(DataError, match=rf"^{tmp_path}/artifact.json: field 'format_version': the artifact's "
                                        r"record is at format version 2, newer than this tfxc reads \(1\)"):
        artifacts.kind_of(str(tmp_path))


# === export.json ===
def _export(tmp_path, info: dict, **assets) -> str:
    from tfxc.export import served

    directory = tmp_path / "saved"
    (directory / served.ASSETS_PATH).mkdir(parents=True)
    (directory / served.ASSETS_PATH / served.EXPORT_ASSET).write_text(json.dumps(info))
    for name, content in assets.items():
        (directory / served.ASSETS_PATH / name).write_text(content)
    return str(directory)


def test_the_oldest_export_json_gets_the_values_its_missing_keys_stood_for(tmp_path):
    from tfxc.export.served import ServedModel

    # export.json as the first exporter wrote it (2026-11-21), with no labels.txt or label_freq.npy beside it.
    served = ServedModel(_export(tmp_path, {"top_k": 5, "num_features": 30, "num_labels": 3}))
    assert (served.format_version, served.input_kind, served.num_train_points, served.index) == (0, "features", 0, {})
    assert served.label_names() == ["0", "1", "2"]
    np.testing.assert_array_equal(served.label_freq(), np.zeros(3, np.int64))
    assert record_steps.export_defaults({"top_k": 5, "index": None})["index"] == {}


def test_an_export_of_todays_format_without_its_assets_is_damaged_not_old(tmp_path):
    from tfxc.export.served import ServedModel

    info = compat.stamped(compat.EXPORT, {"top_k": 5, "input": "features", "num_features": 30, "num_labels": 3,
                                          "num_train_points": 10, "index": {}})
    served = ServedModel(_export(tmp_path, info))
    for read, name in ((served.label_names, "labels.txt"), (served.label_freq, "label_freq.npy")):
        with pytest.raises(DataError, match=rf"/{name}: is missing, though the record beside it is of today's "
                                            "format; export the model again"):
            read()
    with pytest.raises(DataError, match=r"export.json: field 'format_version': the export's description is at "
                                        r"format version 2, newer than this tfxc reads \(1\)"):
        ServedModel(_export(tmp_path / "newer", {**info, "format_version": 2}))


# === stats.json of a conversion ===
@pytest.fixture
def converted(tmp_path):
    from helpers import tiny_config

    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted

    config = load_config(tiny_config(tmp_path))
    return config.data, ensure_converted(config.data)


def test_a_conversion_is_stamped_and_its_version_is_not_part_of_what_the_data_is(converted):
    from tfxc.data.info import STATS_FILE

    _, info = converted
    path = os.path.join(info.dir, STATS_FILE)
    stats = json.loads(open(path).read())
    assert list(stats)[0] == "format_version" and stats["format_version"] == compat.FORMAT_VERSIONS[compat.DATA]
    before = info.fingerprint()
    stats.pop("format_version")
    open(path, "w").write(json.dumps(stats))
    assert info.fingerprint() == before  # the same rows under an older card are the same data


def test_a_conversion_fingerprinted_by_mtime_is_reused_until_a_source_is_touched(tmp_path):
    """Format 0 before contents were hashed (2026-11-26): no source_files, a fingerprint of paths, sizes and
    mtimes; it is still recognised, by the same rule."""
    from tfxc.config import load_config
    from tfxc.data.sources import _option_fields, _source_paths, is_conversion_of

    source = tmp_path / "train.txt"
    source.write_text("1 3 2\n0 1:1 2:1\n")
    config = load_config(None, ["data.format=xc", f"data.train={source}", f"data.dir={tmp_path / 'd'}"]).data
    old = {"num_features": 3, "source_fingerprint": stand_ins.mtime_fingerprint(_option_fields(config),
                                                                                 _source_paths(config))}
    assert is_conversion_of(old, config)
    assert not is_conversion_of({**old, "format_version": 1}, config)  # today's: fingerprinted by contents
    os.utime(source, ns=(0, 0))
    assert not is_conversion_of(old, config)


def test_label_counts_of_format_0_come_from_stats_json_and_of_today_from_label_freq_npy(converted):
    from tfxc.data.info import LABEL_FREQ_FILE, STATS_FILE, DatasetInfo

    _, info = converted
    os.remove(os.path.join(info.dir, LABEL_FREQ_FILE))
    with pytest.raises(DataError, match=rf"{LABEL_FREQ_FILE}: is missing, though the record beside it is of "
                                        "today's format; convert the data again"):
        DatasetInfo.load(info.dir)
    stats_path = os.path.join(info.dir, STATS_FILE)
    stats = json.loads(open(stats_path).read())
    stats.pop("format_version")
    stats["label_freq"] = info.label_freq.tolist()
    open(stats_path, "w").write(json.dumps(stats))
    np.testing.assert_array_equal(DatasetInfo.load(info.dir).label_freq, info.label_freq)


# === ensemble.json ===
@pytest.mark.parametrize("preset, run", [("folds", "folds"), ("best", "members")])
def test_an_ensemble_record_of_format_0_or_1_names_the_run_that_made_it(tmp_path, preset, run):
    from tfxc.model_files import ModelFiles

    # As the k-fold runs and the recipe's best point wrote it on 2026-11-28 (no version, "preset").
    old = {"preset": preset, "method": "log_average", "list_size": 100,
           "members": ["members/member-000", "members/member-001"]}
    today = {"format_version": 2, "run": run, **{k: v for k, v in old.items() if k != "preset"}}
    files = ModelFiles(str(tmp_path))
    for version in (None, 1):
        written = old if version is None else {"format_version": version, **old}
        (tmp_path / "ensemble.json").write_text(json.dumps(written))
        assert files.ensemble() == today
    files.write_ensemble(today)
    assert json.loads((tmp_path / "ensemble.json").read_text()) == today
    (tmp_path / "ensemble.json").write_text(json.dumps({**old, "preset": "fast"}))
    with pytest.raises(DataError, match="preset"):
        files.ensemble()


# === best/best.json ===
def test_the_record_of_the_selected_weights_reads_with_or_without_its_version(tmp_path):
    from tfxc.model_files import ModelFiles

    files = ModelFiles(str(tmp_path))
    os.makedirs(files.best_dir)
    record = {"step": 8, "metric": "P@1", "value": 0.5}
    path = os.path.join(files.best_dir, "best.json")
    for written in (record, compat.stamped(compat.BEST, record)):  # format 0 (no version) and today's
        open(path, "w").write(json.dumps(written))
        assert files.best() == record
    open(path, "w").write(json.dumps({**record, "format_version": 2}))
    with pytest.raises(DataError, match=r"best.json: field 'format_version': the record of the selected weights "
                                        r"is at format version 2"):
        files.best()


# === featurizer.json ===
def test_a_featurizer_of_version_1_reads_as_the_ascii_tokenizer_and_a_newer_one_is_refused(tmp_path):
    v1 = {"format": "tfxc.TfidfFeaturizer", "version": 1, "token_pattern": "[a-z0-9]+", "lowercase": True}
    assert compat.upgrade(compat.FEATURIZER, v1) == {**v1, "version": 2, "tokens": "ascii", "accents": "keep"}
    with pytest.raises(DataError, match=r"f.json: field 'token_pattern': the TF-IDF featurizer \(format version "
                                        r"1\): written with a different tokenizer"):
        compat.upgrade(compat.FEATURIZER, {**v1, "lowercase": False}, "f.json")
    with pytest.raises(DataError, match="field 'version'"):
        compat.upgrade(compat.FEATURIZER, {**v1, "version": 0}, "f.json")
