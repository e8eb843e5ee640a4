"""The checkpoint state file of a checkpoint directory, believed only while it agrees with the disk."""

from __future__ import annotations

import logging
import os
import re

log = logging.getLogger("tfxc.model_dir")

STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's list of its checkpoints
_CHECKPOINT_INDEX = re.compile(r"^ckpt-(\d+)\.index$")
_WARNED: set = set()  # (checkpoint dir, problem) already warned about in this process


def checkpoints(directory: str) -> list[str]:
    """Checkpoint paths, newest first.

    The state file `checkpoints/checkpoint` is believed only while it agrees with the `ckpt-N.index`
    files beside it. A damaged, empty, missing or stale one would otherwise hide intact checkpoints:
    evaluation would find none, and training would start over from step 0 and overwrite them. Then
    the files on disk are listed instead (newest step first), with a warning naming the state file;
    a training rewrites it (`repair`).
    """
    on_disk = _on_disk(directory)
    listed, problem = _in_state(directory, on_disk)
    if problem is None:
        return listed
    key = (os.path.abspath(directory), problem)
    if key not in _WARNED:  # checkpoints() is asked often in one run: say it once
        _WARNED.add(key)
        log.warning("the checkpoint state file %s %s; using the checkpoints on disk instead: %s",
                    os.path.join(directory, STATE_FILE), problem,
                    ", ".join(os.path.basename(p) for p in on_disk))
    return on_disk


def _on_disk(directory: str) -> list[str]:
    """The `ckpt-N` prefixes with an index file in checkpoints/, highest step first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    steps = sorted((int(m.group(1)) for m in map(_CHECKPOINT_INDEX.match, names) if m), reverse=True)
    return [os.path.join(directory, f"ckpt-{step}") for step in steps]


def _in_state(directory: str, on_disk: list[str]) -> tuple[list[str], str | None]:
    """(the state file's checkpoints newest first, None) when it agrees with `on_disk`, else ([], what is
    wrong with it)."""
    from tfxc._tf import tf

    if not on_disk:
        return [], None  # nothing to hide: whatever the state file says, there is no checkpoint
    if not os.path.exists(os.path.join(directory, STATE_FILE)):
        return [], "is missing"
    try:
        state = tf.train.get_checkpoint_state(directory)  # None when it does not parse
    except ValueError:  # parses, but names no checkpoint (e.g. an empty file)
        state = None
    if state is None:
        return [], "is damaged (not a checkpoint state)"
    listed = list(reversed(state.all_model_checkpoint_paths))
    names, found = [os.path.basename(p) for p in listed], [os.path.basename(p) for p in on_disk]
    if set(names) != set(found) or os.path.basename(state.model_checkpoint_path) != names[0]:
        # A crash between writing a checkpoint and recording it (or between recording and deleting the
        # oldest) leaves them apart for a moment; anything else is damage or a hand edit.
        unlisted, gone = sorted(set(found) - set(names)), sorted(set(names) - set(found))
        return [], ("does not match the checkpoints on disk"
                    + (f" (not listed: {', '.join(unlisted)})" if unlisted else "")
                    + (f" (listed but missing: {', '.join(gone)})" if gone else ""))
    return [os.path.join(directory, n) for n in names], None


def repair(directory: str) -> None:
    """Rewrites a state file that `checkpoints` does not believe from the checkpoints on disk.

    A training calls this before building its `tf.train.CheckpointManager`, which reads the state file
    itself: from a damaged one it would start with no checkpoints (and never delete the old ones), from
    an empty one it fails. Each checkpoint is recorded with its index file's time, as the manager records
    its own saves, so that it keeps and deletes them as usual.
    """
    from tfxc._tf import tf

    on_disk = _on_disk(directory)
    if not on_disk or _in_state(directory, on_disk)[1] is None:
        return
    oldest_first = list(reversed(on_disk))
    tf.compat.v1.train.update_checkpoint_state(  # the state file as the manager writes it (no TF2 name)
        directory, os.path.basename(oldest_first[-1]),
        all_model_checkpoint_paths=[os.path.basename(p) for p in oldest_first],
        all_model_checkpoint_timestamps=[os.path.getmtime(p + ".index") for p in oldest_first],
        last_preserved_timestamp=0.0)
    log.warning("rewrote the checkpoint state file %s from the checkpoints on disk (newest: %s)",
                os.path.join(directory, STATE_FILE), os.path.basename(on_disk[0]))
