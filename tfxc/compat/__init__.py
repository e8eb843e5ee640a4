"""Compatibility in one place: the format version of every record tfxc writes, the steps that read older
ones (`formats`, `config_steps`, `record_steps`), what older artifacts lack beside their records
(`stand_ins`) and the old spellings of the Python API (`deprecations`). The rest of the package writes and
reads today's formats only.
"""

from tfxc.compat.deprecations import FormatWarning
from tfxc.compat.formats import (ARTIFACT, BEST, CONFIG, DATA, ENSEMBLE, EXPORT, FEATURE_STORE, FEATURIZER, FORMAT_VERSIONS,
                                 FORMATS, ONNX, TRAINED_CONFIG, stamped, unstamped, upgrade, version_of)

__all__ = ["ARTIFACT", "BEST", "CONFIG", "DATA", "ENSEMBLE", "EXPORT", "FEATURE_STORE", "FEATURIZER", "FORMATS",
           "FORMAT_VERSIONS", "FormatWarning", "ONNX", "TRAINED_CONFIG", "stamped", "unstamped", "upgrade", "version_of"]
