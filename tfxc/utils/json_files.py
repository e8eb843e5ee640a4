"""Reading the JSON records tfxc keeps beside data and models (stats.json, best.json, export.json).

These files can be cut short by a full disk, damaged in a copy or edited by hand, and a model
directory or SavedModel may come from someone else: whatever they hold, reading them gives a
dict or a one-line `DataError` naming the file, never a traceback.
"""

from __future__ import annotations

import json

from tfxc.errors import DataError


def read_json_object(path: str, what: str = "the file") -> dict:
    """The JSON object stored in `path`.

    Args:
      path: the file.
      what: what the file is, for the error message (e.g. "the data set's statistics").

    Raises:
      DataError: the file is missing or unreadable, is not JSON, or its top level is not an object.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{what} is missing", path=path) from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise DataError(f"cannot read {what}: {e}", path=path) from None
    if not isinstance(data, dict):
        raise DataError(f"{what} must be a JSON object at the top level, got "
                        f"{'null' if data is None else type(data).__name__}", path=path)
    return data


def required(record: dict, key: str, path: str, kind: type | tuple = object):
    """`record[key]`, checked present and of `kind`; else a DataError naming the file and the key."""
    if key not in record:
        raise DataError(f"no '{key}' entry", path=path)
    value = record[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataError(f"'{key}' has an unexpected value {value!r}", path=path)
    return value


def read_json_lines(path: str, what: str = "the file") -> list[dict]:
    """The JSON objects of a JSON-lines file (blank lines skipped); else a DataError naming the file and line."""
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {what}: {e}", path=path) from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise DataError(f"{what}: invalid JSON ({e})", path=path, line=number) from None
        if not isinstance(record, dict):
            raise DataError(f"{what}: expected a JSON object, got {type(record).__name__}", path=path, line=number)
        records.append(record)
    return records
