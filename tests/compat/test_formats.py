"""One upgrade for every record tfxc writes: the chain from the oldest version, today's record left as it is,
and a record from a newer tfxc refused naming the file and both versions."""

from __future__ import annotations

import inspect

import pytest

from tfxc import compat
from tfxc.compat import formats
from tfxc.errors import ConfigError, DataError


def test_every_kind_has_a_chain_of_documented_pure_steps_that_reaches_its_version():
    for kind, spec in compat.FORMATS.items():
        assert compat.FORMAT_VERSIONS[kind] == spec.oldest + len(spec.steps) >= 1, kind
        for step in spec.steps:
            doc = inspect.getdoc(step)
            # Each step says what changed and when (a date), so that it can go once nobody writes it.
            assert doc and "->" in doc and "2026-" in doc, (kind, step.__name__)


def test_a_model_directorys_config_is_at_the_version_of_the_config_writer():
    # One writer (config_to_json) stamps both: their versions must move together.
    assert compat.FORMAT_VERSIONS[compat.TRAINED_CONFIG] == compat.FORMAT_VERSIONS[compat.CONFIG]


def test_todays_record_reads_as_it_is_and_the_stamp_comes_first():
    for kind in compat.FORMATS:
        if kind in (compat.ARTIFACT, compat.FEATURIZER):
            continue  # their steps need a record of the old layout (below and in test_record_steps)
        record = {"a": 1, "b": [2]}
        written = compat.stamped(kind, record)
        assert list(written)[0] == compat.FORMATS[kind].key
        assert compat.upgrade(kind, written, "f.json") == written
        assert compat.unstamped(kind, written) == record


def test_the_chain_runs_from_the_oldest_version(monkeypatch):
    """Steps run in order from the record's version: v0 -> v1 -> v2, and a v1 record skips the first."""
    calls = []
    steps = (lambda r: calls.append("0->1") or {**r, "one": True},
             lambda r: calls.append("1->2") or {**r, "two": r.get("one", "skipped")})
    monkeypatch.setitem(formats.FORMATS, "demo", formats.Format("the demo", steps))
    assert compat.upgrade("demo", {"x": 1}) == {"x": 1, "one": True, "two": True, "format_version": 2}
    assert calls == ["0->1", "1->2"]
    calls.clear()
    assert compat.upgrade("demo", {"x": 1, "format_version": 1}) == {"x": 1, "two": "skipped", "format_version": 2}
    assert calls == ["1->2"]


@pytest.mark.parametrize("kind, error", [(compat.EXPORT, DataError), (compat.DATA, DataError),
                                         (compat.ARTIFACT, DataError), (compat.CONFIG, ConfigError),
                                         (compat.FEATURIZER, DataError)])
def test_a_record_from_a_newer_tfxc_is_refused_naming_the_file_and_both_versions(kind, error):
    spec = compat.FORMATS[kind]
    newer = spec.current + 1
    with pytest.raises(error) as e:
        compat.upgrade(kind, {spec.key: newer, "x": 1}, "/m/record.json")
    message = str(e.value)
    assert message.startswith("/m/record.json: ") and f"version {newer}" in message
    assert f"({spec.current})" in message and "upgrade tfxc" in message


@pytest.mark.parametrize("version", ["1", 1.0, True, None, -1])
def test_a_version_that_no_tfxc_wrote_is_one_error_naming_the_key(version):
    with pytest.raises(DataError, match=r"^/d/stats.json: field 'format_version': format_version .* is not a "
                                        r"version tfxc wrote"):
        compat.upgrade(compat.DATA, {"format_version": version}, "/d/stats.json")
