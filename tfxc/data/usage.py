"""Who uses a converted directory: the processes that read it (a shared lease on `DIR.readers`), and the
models trained on it (`DIR.dependents`), whose conversion is kept aside when it is replaced."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os

from tfxc.data.info import DatasetInfo
from tfxc.errors import TfxcError

log = logging.getLogger("tfxc.convert")


@contextlib.contextmanager
def directory_lock(path: str):
    """Holds an exclusive flock on the file `path` (created if needed): one converter of a directory at a time."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # several workers of one job may start at once
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class DataInUse(TfxcError):
    """A converted directory cannot be replaced: a running process reads it."""


# The converted directories this process reads: {absolute dir: open file holding a shared flock on
# `DIR.readers`}. A conversion replaces a directory only under an exclusive flock on that file, so it never
# swaps the shards under a training that reads them (tf.data reopens them by name every epoch).
_leases: dict[str, object] = {}


def _readers_path(directory: str) -> str:
    return os.path.abspath(directory) + ".readers"


def take_lease(directory: str) -> None:
    """Holds a shared flock on `DIR.readers` until `release_data` or the process ends: while any process holds
    one, `claim_for_replacing` refuses to replace `directory`. Waits only for a replacement under way."""
    key = os.path.abspath(directory)
    if key in _leases:
        return
    f = open(_readers_path(directory), "a")  # noqa: SIM115  (held until released or the process ends)
    fcntl.flock(f, fcntl.LOCK_SH)
    _leases[key] = f


def release_data(directory: str) -> None:
    """Lets other processes convert `directory` again (this process no longer reads it)."""
    f = _leases.pop(os.path.abspath(directory), None)
    if f is not None:
        f.close()  # closing the file drops its flock


def claim_for_replacing(directory: str):
    """An open file holding the exclusive flock on `DIR.readers`, or `DataInUse` if another process reads it.

    This process's own lease on `directory` is given up first: a process that converts a directory again
    has finished reading the old one.
    """
    release_data(directory)
    f = open(_readers_path(directory), "a")  # noqa: SIM115
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise DataInUse(f"{directory} holds converted data that a running tfxc process reads; converting "
                        "other sources into it would change that run's data under it. Give this run another "
                        "data.dir, or wait for the other run to finish") from None
    return f


# === Conversions replaced under the models trained on them ===
# DIR.dependents: one JSON object a line, {"card": a directory holding a copy of the card of the conversion
# something (a model) depends on}. DIR.superseded/<fingerprint>/: a conversion replaced while a dependent
# still needed it, kept (moved, not copied) so that the model can still be evaluated on its rows.
DEPENDENTS_SUFFIX, SUPERSEDED_SUFFIX = ".dependents", ".superseded"


def add_dependent(data_dir: str, card_dir: str) -> None:
    """Records that `card_dir` holds a copy of the card of a conversion in `data_dir` that something (a model
    directory) depends on: replacing that conversion then keeps it (`conversion_for`)."""
    path = os.path.abspath(data_dir) + DEPENDENTS_SUFFIX
    line = json.dumps({"card": os.path.abspath(card_dir)}) + "\n"
    with directory_lock(os.path.abspath(data_dir) + ".lock"):
        if line in _dependent_lines(path):
            return
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)


def _dependent_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line if line.endswith("\n") else line + "\n" for line in f if line.strip()]
    except (OSError, UnicodeDecodeError):
        return []


def _dependent_cards(data_dir: str) -> list[DatasetInfo]:
    """The cards of the live dependents of `data_dir` (a card that is gone or unreadable: no longer one)."""
    cards = []
    for line in _dependent_lines(os.path.abspath(data_dir) + DEPENDENTS_SUFFIX):
        try:
            cards.append(DatasetInfo.load(json.loads(line)["card"]))
        except (ValueError, KeyError, TypeError, TfxcError, OSError):
            continue
    return cards


def keep_for_dependents(data_dir: str, new: DatasetInfo) -> None:
    """Moves the conversion in `data_dir` aside into DIR.superseded/ when a dependent was trained on it, and
    drops the superseded conversions that no dependent needs any more or that `new` (the conversion about
    to take `data_dir`'s place) holds. Called under the directory's locks."""
    import shutil

    cards = _dependent_cards(data_dir)
    kept_root = os.path.abspath(data_dir) + SUPERSEDED_SUFFIX
    try:
        current = DatasetInfo.load(data_dir)
    except TfxcError:  # damaged: nobody can read its rows anyway
        current = None
    if current is not None and not current.same_data_as(new) and any(card.same_data_as(current) for card in cards):
        target = os.path.join(kept_root, current.fingerprint(rows=False)[:16])
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(kept_root, exist_ok=True)
        os.replace(data_dir, target)
        log.info("%s: the conversion replaced here is kept in %s for the models trained on it", data_dir, target)
    for name in os.listdir(kept_root) if os.path.isdir(kept_root) else ():
        path = os.path.join(kept_root, name)
        try:
            kept = DatasetInfo.load(path)
        except TfxcError:
            kept = None
        if kept is None or kept.same_data_as(new) or not any(card.same_data_as(kept) for card in cards):
            shutil.rmtree(path, ignore_errors=True)


def conversion_for(data_dir: str, card: DatasetInfo) -> DatasetInfo | None:
    """The conversion of `data_dir` whose data `card` describes: the current one, or one kept when it was
    replaced (see `add_dependent`); None if neither holds it."""
    candidates = [data_dir]
    kept_root = os.path.abspath(data_dir) + SUPERSEDED_SUFFIX
    if os.path.isdir(kept_root):
        candidates.append(os.path.join(kept_root, card.fingerprint(rows=False)[:16]))
    for path in candidates:
        try:
            info = DatasetInfo.load(path)
        except TfxcError:
            continue
        if card.same_data_as(info):
            return info
    return None
