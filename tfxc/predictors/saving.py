"""A trained model copied for loading elsewhere: what `Predictor.save` writes."""

from __future__ import annotations

import os

from tfxc.data.in_memory import CONVERTED_DIR, SOURCES_DIR
from tfxc.errors import TfxcError


def copy_model(source: str, path: str) -> None:
    """Copies the model directory (or SavedModel) `source` to the new directory `path` (`Predictor.save`)."""
    import shutil
    import tempfile

    from tfxc.model_files import CHECKPOINT_DIR, LOCK_FILE, TENSORBOARD_DIR
    from tfxc.utils import checkpoint_state

    real, target = os.path.realpath(source), os.path.realpath(path)
    if target == real or target.startswith(real.rstrip(os.sep) + os.sep):
        raise TfxcError(f"cannot save the model into {path}: it is (inside) the model's own directory {source}; "
                        "choose a path outside it")
    if os.path.lexists(path):
        raise TfxcError(f"cannot save the model into {path}: it exists; choose a new path")
    left_out = {LOCK_FILE, TENSORBOARD_DIR, SOURCES_DIR, CONVERTED_DIR}

    def ignore(directory: str, names: list[str]) -> set[str]:
        if os.path.basename(directory) != CHECKPOINT_DIR:
            return {name for name in names if name in left_out} if os.path.isfile(
                os.path.join(directory, "config.json")) else set()
        newest = checkpoint_state.checkpoints(directory)[:1]
        keep = {os.path.basename(p) for p in newest}
        return {name for name in names if name.split(".", 1)[0] not in keep}

    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(path))}.saving-", dir=parent)
    try:
        copy = os.path.join(tmp, "model")
        shutil.copytree(source, copy, ignore=ignore)
        for directory, _, names in os.walk(copy):  # each kept checkpoint's state file names it alone
            if os.path.basename(directory) == CHECKPOINT_DIR:
                kept = sorted({n.split(".", 1)[0] for n in names if n.endswith(".index")})
                state = "".join(f'model_checkpoint_path: "{k}"\nall_model_checkpoint_paths: "{k}"\n'
                                for k in kept[:1])
                with open(os.path.join(directory, checkpoint_state.STATE_FILE), "w") as f:
                    f.write(state)
        os.rename(copy, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
