"""The format of every record tfxc writes, and the one way to read an older one: `upgrade(kind, record)`.

Each kind of record (a JSON file tfxc writes beside data and models) has a current version, stamped in it
by its writer (`stamped`), and a chain of steps: step i turns version oldest+i into oldest+i+1. A reader
calls `upgrade(kind, record, where)`, which applies the steps from the record's version on and returns the
record in today's layout, stamped with today's version; the rest of the package reads that layout only.
A record from a newer tfxc is refused with a message naming the file and both versions, rather than read
by guesswork. The shape is optax's `deprecations.py`: the old spellings live in one place, each with the
date and the reason it changed, and leave the rest of the code once nobody writes them.

A record without a version is version `oldest`: records written before the kind was versioned, and the
configs people write by hand, carry none. Steps from version 0 therefore leave today's layout as it is.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

from tfxc.compat import config_steps, record_steps
from tfxc.errors import ConfigError, DataError

# The kinds of record, by the file that holds them.
CONFIG = "config"  # a config: a file a person writes, --print-config, a SavedModel's assets.extra/tfxc/config.json
TRAINED_CONFIG = "trained config"  # MODEL_DIR/config.json: the config a model directory was trained with
ARTIFACT = "artifact"  # MODEL_DIR/artifact.json: what a trained directory is (`tfxc.artifacts`)
EXPORT = "export"  # SAVED_MODEL/assets.extra/tfxc/export.json (`tfxc.export.served`)
DATA = "data"  # DATA_DIR/stats.json: a converted data set's card (`tfxc.data.info`)
ENSEMBLE = "ensemble"  # MODEL_DIR/ensemble.json: how an ensemble's members combine (`tfxc.model_files`)
BEST = "selected weights"  # MODEL_DIR/best/best.json: which evaluation chose them (`tfxc.model_files`)
FEATURIZER = "featurizer"  # featurizer.json: a fitted TF-IDF featurizer (`tfxc.data.text_features`)
FEATURE_STORE = "feature store"  # OUT/extract.json: extracted image features (`tfxc.images.feature_store`)
ONNX = "onnx"  # OUT/onnx.json: an ONNX export's inputs, outputs and sizes (`tfxc.export.onnx`)


@dataclass(frozen=True)
class Format:
    """The versions of one kind of record.

    Attributes:
      what: the record, for messages ("the export's description").
      steps: pure functions dict -> dict; steps[i] upgrades version `oldest + i` to `oldest + i + 1`.
      oldest: the version of the oldest record the steps read (that of a record without a version).
      key: the record's version key.
      error: the error a record that cannot be read raises (`ConfigError` for configs, else `DataError`).
    """

    what: str
    steps: tuple[Callable[[dict], dict], ...]
    oldest: int = 0
    key: str = "format_version"
    error: type = DataError

    @property
    def current(self) -> int:
        """The version this package writes."""
        return self.oldest + len(self.steps)


FORMATS = {
    CONFIG: Format("the config", (config_steps.loss_section, config_steps.prediction_section), error=ConfigError),
    # The same file layout as CONFIG (written by the same writer, so the two stay at one version), plus what
    # a training run left unnamed before its config.json was versioned.
    TRAINED_CONFIG: Format("the model's config", (config_steps.trained_before_versions,
                                                  config_steps.prediction_section), error=ConfigError),
    ARTIFACT: Format("the artifact's record", (record_steps.artifact_from_files,)),
    EXPORT: Format("the export's description", (record_steps.export_defaults,)),
    DATA: Format("the data set's statistics", (record_steps.data_versioned,)),
    ENSEMBLE: Format("the ensemble's record", (record_steps.ensemble_versioned, record_steps.ensemble_run)),
    BEST: Format("the record of the selected weights", (record_steps.best_versioned,)),
    FEATURIZER: Format("the TF-IDF featurizer", (record_steps.featurizer_tokenizer,), oldest=1, key="version"),
    FEATURE_STORE: Format("the feature store's card", (record_steps.feature_store_versioned,)),
    ONNX: Format("the ONNX export's description", (), oldest=1),
}
# {kind: the version this package writes}
FORMAT_VERSIONS = {kind: spec.current for kind, spec in FORMATS.items()}


def version_of(kind: str, record: dict, where: str | None = None) -> int:
    """The version `record` (of `kind`) was written at: its version key, or the kind's oldest without one.

    Raises:
      ConfigError or DataError: the version is not an integer, or older than any tfxc wrote.
    """
    spec = FORMATS[kind]
    version = record.get(spec.key, spec.oldest)
    if isinstance(version, bool) or not isinstance(version, int) or version < spec.oldest:
        raise _error(spec, f"{spec.key} {version!r} is not a version tfxc wrote (an integer from "
                           f"{spec.oldest} to {spec.current})", where, spec.key)
    return version


def upgrade(kind: str, record: dict, where: str | None = None) -> dict:
    """`record` (a JSON object of `kind`, as read from `where`) in today's layout, stamped with today's version.

    Raises:
      ConfigError or DataError: the record is from a newer tfxc (naming `where` and both versions), or an
        old record a step cannot read.
    """
    spec = FORMATS[kind]
    version = version_of(kind, record, where)
    if version > spec.current:
        raise _error(spec, f"{spec.what} is at format version {version}, newer than this tfxc reads "
                           f"({spec.current}); upgrade tfxc to read it", where, spec.key)
    for step in spec.steps[version - spec.oldest:]:
        with warnings.catch_warnings(record=True) as said:  # a step's warnings name the file here
            warnings.simplefilter("always")
            try:
                record = step(record)
            except ValueError as e:  # a step names what it cannot read; the file is said here
                raise _error(spec, f"{spec.what} (format version {version}): {e}", where,
                             getattr(e, "field", None)) from None
        for warning in said:
            warnings.warn(f"{where}: {warning.message}" if where else warning.message, warning.category,
                          stacklevel=2)
    return {**record, spec.key: spec.current}


def stamped(kind: str, record: dict) -> dict:
    """`record` as its writer stores it: today's version first, then the rest."""
    key = FORMATS[kind].key
    return {key: FORMAT_VERSIONS[kind], **{k: v for k, v in record.items() if k != key}}


def unstamped(kind: str, record: dict) -> dict:
    """`record` without its version key (a config's tree, whose schema has no such field)."""
    key = FORMATS[kind].key
    return {k: v for k, v in record.items() if k != key}


def _error(spec: Format, message: str, where: str | None, field: str | None = None) -> Exception:
    if spec.error is DataError:
        return DataError(message, path=where, field=field)
    return spec.error(f"{where}: {message}" if where else message)
