"""What a trained artifact is, as recorded when it was written: the one place that tells a model directory,
a directory of linked parts, an ensemble and a SavedModel apart.

A directory a training run writes holds artifact.json:

  {"format_version": 1, "run": "single" | "parts" | "levels" | "members" | "folds" | "part",
   "artifact": "model_dir" | "linked_parts" | "ensemble"}

"run" is the plan that trained it (`tfxc.runs.plan`); "artifact" is how it is read: `model_dir`, its own
checkpoints; `linked_parts`, a head's parts each in parts/part-NNN (scored one part at a time, assembled to
export); `ensemble`, whole member directories and ensemble.json. A SavedModel's record is its export.json
(`tfxc.export.served`), written with it. Readers ask `kind_of(path)` and never look for other files, as
keras-hub's preset loader reads the class a preset was saved with from its config rather than guessing.
Directories written before the record existed are read by `_format_0`, the one place that still infers.
"""

from __future__ import annotations

import os

from tfxc.errors import TfxcError
from tfxc.model_files import CONFIG_FILE, ENSEMBLE_FILE, PARTS_DIR
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_write_text
from tfxc.utils.json_files import read_json_object, required

ARTIFACT_FILE = "artifact.json"
FORMAT_VERSION = 1

# The runs (`tfxc.runs.plan`): a part is one member of a "parts" run, trained alone.
SINGLE, PARTS, LEVELS, MEMBERS, FOLDS, PART = "single", "parts", "levels", "members", "folds", "part"
RUNS = (SINGLE, PARTS, LEVELS, MEMBERS, FOLDS, PART)
# How an artifact is read.
MODEL_DIR, LINKED_PARTS, ENSEMBLE, SAVED_MODEL = "model_dir", "linked_parts", "ensemble", "saved_model"
ARTIFACTS = (MODEL_DIR, LINKED_PARTS, ENSEMBLE, SAVED_MODEL)
# What a run's directory is, unless it says otherwise (linked parts do).
_ARTIFACT_OF_RUN = {SINGLE: MODEL_DIR, PARTS: MODEL_DIR, LEVELS: MODEL_DIR, PART: MODEL_DIR, MEMBERS: ENSEMBLE,
                    FOLDS: ENSEMBLE}


def record(path: str, run: str, artifact: str | None = None) -> None:
    """Writes `path`/artifact.json (atomically): the directory is what `run` trains, read as `artifact`
    (default: the run's usual artifact)."""
    if run not in RUNS or (artifact is not None and artifact not in ARTIFACTS):
        raise ValueError(f"unknown run {run!r} or artifact {artifact!r}")
    os.makedirs(path, exist_ok=True)
    atomic_write_text(os.path.join(path, ARTIFACT_FILE), json_text(
        {"format_version": FORMAT_VERSION, "run": run, "artifact": artifact or _ARTIFACT_OF_RUN[run]},
        indent=2) + "\n")


def kind_of(path: str) -> dict:
    """{"run", "artifact", "format_version"} of the artifact at `path` (a SavedModel: run None).

    Raises:
      TfxcError: nothing tfxc wrote is at `path`, or its record is damaged or from a newer tfxc.
    """
    from tfxc.export.served import ASSETS_PATH, EXPORT_ASSET  # a SavedModel's (imported here: training needs none)

    recorded = os.path.join(path, ARTIFACT_FILE)
    if os.path.isfile(recorded):
        kind = read_json_object(recorded, "the artifact's record")
        version = required(kind, "format_version", recorded, int)
        if version > FORMAT_VERSION:
            raise TfxcError(f"{recorded}: format version {version} is newer than this tfxc reads "
                            f"({FORMAT_VERSION}); upgrade tfxc")
        for key, known in (("run", RUNS), ("artifact", ARTIFACTS)):
            if required(kind, key, recorded, str) not in known:
                raise TfxcError(f"{recorded}: unknown {key} {kind[key]!r} (known: {', '.join(known)})")
        return kind
    if os.path.isfile(os.path.join(path, ASSETS_PATH, EXPORT_ASSET)):
        return {"format_version": FORMAT_VERSION, "run": None, "artifact": SAVED_MODEL}
    return _format_0(path)


def _format_0(path: str) -> dict:
    """The kind of a directory written before artifact.json: read off the files its writer left."""
    from tfxc.export.served import ASSETS_PATH, EXPORT_ASSET, GRAPH_FILE

    kind = {"format_version": 0, "run": None}
    if os.path.isfile(os.path.join(path, ENSEMBLE_FILE)):
        return {**kind, "artifact": ENSEMBLE}
    if os.path.isfile(os.path.join(path, CONFIG_FILE)):
        from tfxc.model_dir import ModelDir

        linked = os.path.isdir(os.path.join(path, PARTS_DIR)) and ModelDir(path).latest_checkpoint() is None
        return {**kind, "artifact": LINKED_PARTS if linked else MODEL_DIR}
    if os.path.isfile(os.path.join(path, GRAPH_FILE)):
        raise TfxcError(f"{path} is a SavedModel that tfxc did not write (no {ASSETS_PATH}/{EXPORT_ASSET}); "
                        "tfxc reads the SavedModels tfxc.export writes")
    raise TfxcError(f"{path}: not a trained tfxc model (no {ARTIFACT_FILE}, {CONFIG_FILE} or {ENSEMBLE_FILE}) "
                    f"nor a tfxc SavedModel ({ASSETS_PATH}/{EXPORT_ASSET})")
