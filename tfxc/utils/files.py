"""Reading back the files tfxc wrote itself (a model directory's, a converted data directory's): arrays, text
and caches; JSON records are read by `tfxc.utils.json_files`.

Such a file can still be damaged: cut short by a full disk or a crash mid-copy,
overwritten by hand, flipped by a bad disk. Every reader of them goes through
here, so that damage ends in a `DamagedFile` error naming the file (one
`tfxc: error:` line from a CLI) instead of a `ValueError` traceback from deep
inside, and callers that have a fallback can catch just that error.
"""

from __future__ import annotations

import logging
import os
import zipfile

import numpy as np

from tfxc.errors import DamagedFile, DataError

log = logging.getLogger("tfxc.files")


def read_text(path: str, advice: str = "") -> str:
    """The UTF-8 text of `path` (labels.txt, config.json as written).

    Raises:
      DamagedFile: the bytes are not UTF-8 (overwritten, or another file's).
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DamagedFile(f"not UTF-8 text (at byte {e.start})", path=path, advice=advice) from None


def read_npy(path: str, advice: str = "") -> np.ndarray:
    """The array in an .npy file (never unpickling: a damaged or foreign file cannot run code).

    Raises:
      DamagedFile: not a complete .npy array (cut short, overwritten, an .npz, pickled objects).
    """
    try:
        value = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as e:  # cut short: "Failed to read all data"; garbage: "Cannot load file"
        raise DamagedFile(f"not a readable .npy array ({str(e).strip() or type(e).__name__})", path=path,
                          advice=advice) from None
    if not isinstance(value, np.ndarray):
        value.close()
        raise DamagedFile("not an .npy array (an .npz archive)", path=path, advice=advice)
    return value


def read_npz(path: str, advice: str = "") -> dict[str, np.ndarray]:
    """Every array of an .npz archive, read whole (so that a damaged member fails here, not later), unpickled never.

    Raises:
      DamagedFile: not a complete .npz archive.
    """
    try:
        archive = np.load(path, allow_pickle=False)
        if isinstance(archive, np.ndarray):
            raise DamagedFile("expected an .npz archive, found a single array", path=path, advice=advice)
        with archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:  # cut short, bad CRC, not a zip
        raise DamagedFile(f"not a readable .npz archive ({str(e).strip() or type(e).__name__})", path=path,
                          advice=advice) from None


def read_cache(path: str, read):
    """`read(path)` of a cache kept beside the data (PIFA features, idf, a clustered label tree), or None when
    there is none or it is damaged: then a warning says so, and the caller computes it again (and rewrites it).

    A cache holds nothing that cannot be computed again, so its damage must not stop a run.
    """
    if not os.path.exists(path):
        return None
    try:
        return read(path)
    except (DataError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        log.warning("the cached %s cannot be read (%s); computing it again", path, str(e).strip()[:200])
        return None
