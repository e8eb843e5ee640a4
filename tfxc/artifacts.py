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
A directory written before the record existed (format 0) is described by what it holds and read through
`tfxc.compat` (`record_steps.artifact_from_files`), like every older record.
"""

from __future__ import annotations

import os

from tfxc.compat import ARTIFACT, FORMAT_VERSIONS, record_steps, stamped, upgrade
from tfxc.errors import TfxcError
from tfxc.model_files import CONFIG_FILE, ENSEMBLE_FILE, PARTS_DIR
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_write_text
from tfxc.utils.json_files import read_json_object, required

ARTIFACT_FILE = "artifact.json"
FORMAT_VERSION = FORMAT_VERSIONS[ARTIFACT]

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
        stamped(ARTIFACT, {"run": run, "artifact": artifact or _ARTIFACT_OF_RUN[run]}), indent=2) + "\n")


def kind_of(path: str) -> dict:
    """{"run", "artifact", "format_version"} of the artifact at `path` (a SavedModel: run None).

    Raises:
      TfxcError: nothing tfxc wrote is at `path`, or its record is damaged or from a newer tfxc.
    """
    from tfxc.export.served import ASSETS_PATH, EXPORT_ASSET  # a SavedModel's (imported here: training needs none)

    recorded = os.path.join(path, ARTIFACT_FILE)
    if os.path.isfile(recorded):
        kind = upgrade(ARTIFACT, read_json_object(recorded, "the artifact's record"), recorded)
        for key, known in (("run", RUNS), ("artifact", ARTIFACTS)):
            if required(kind, key, recorded, str) not in known:
                raise TfxcError(f"{recorded}: unknown {key} {kind[key]!r} (known: {', '.join(known)})")
        return kind
    if os.path.isfile(os.path.join(path, ASSETS_PATH, EXPORT_ASSET)):
        return {"format_version": FORMAT_VERSION, "run": None, "artifact": SAVED_MODEL}
    return upgrade(ARTIFACT, {"holds": _holds(path)}, recorded)


def _holds(path: str) -> list[str]:
    """What a directory written before artifact.json holds (format 0), as `record_steps.artifact_from_files`
    reads it.

    Raises:
      TfxcError: it is no tfxc model at all (a SavedModel tfxc did not write, or none).
    """
    from tfxc.export.served import ASSETS_PATH, EXPORT_ASSET, GRAPH_FILE

    holds = [name for name, there in ((record_steps.HOLDS_ENSEMBLE, os.path.isfile(os.path.join(path, ENSEMBLE_FILE))),
                                      (record_steps.HOLDS_CONFIG, os.path.isfile(os.path.join(path, CONFIG_FILE))),
                                      (record_steps.HOLDS_PARTS, os.path.isdir(os.path.join(path, PARTS_DIR))))
             if there]
    if record_steps.HOLDS_CONFIG in holds:
        from tfxc.model_dir import ModelDir

        if ModelDir(path).latest_checkpoint() is not None:
            holds.append(record_steps.HOLDS_CHECKPOINT)
    elif record_steps.HOLDS_ENSEMBLE not in holds:
        if os.path.isfile(os.path.join(path, GRAPH_FILE)):
            raise TfxcError(f"{path} is a SavedModel that tfxc did not write (no {ASSETS_PATH}/{EXPORT_ASSET}); "
                            "tfxc reads the SavedModels tfxc.export writes")
        raise TfxcError(f"{path}: not a trained tfxc model (no {ARTIFACT_FILE}, {CONFIG_FILE} or {ENSEMBLE_FILE}) "
                        f"nor a tfxc SavedModel ({ASSETS_PATH}/{EXPORT_ASSET})")
    return holds
