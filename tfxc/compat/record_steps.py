"""The upgrade steps of the records tfxc writes beside data and models (`tfxc.compat.formats`), each a pure
function of the record (a dict as read from its JSON file)."""

from __future__ import annotations

# The files a directory written before artifact.json may hold, as its reader lists them for
# `artifact_from_files` (the names its writers used).
HOLDS_ENSEMBLE, HOLDS_CONFIG, HOLDS_PARTS, HOLDS_CHECKPOINT = "ensemble.json", "config.json", "parts/", "checkpoint"
# The TF-IDF featurizer's tokenizer before the unicode one (format 1): lowercased runs of ASCII letters and digits.
_V1_TOKEN_PATTERN = r"[a-z0-9]+"


class UnreadableRecord(ValueError):
    """An old record a step cannot turn into today's layout (`field`: the key at fault, or None)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def artifact_from_files(record: dict) -> dict:
    """Format 0 -> 1 (artifact.json appeared 2026-11-29): a directory written before has no record, so its reader
    lists what it holds ({"holds": [HOLDS_* names]}) and the kind is read off that, as readers did before:
    ensemble.json is an ensemble; config.json with parts/ and no checkpoint of its own is linked parts, with a
    checkpoint a model directory. The run that trained it was not recorded ("run": None).

    Raises:
      UnreadableRecord: it holds neither config.json nor ensemble.json.
    """
    holds = set(record.get("holds", ()))
    if HOLDS_ENSEMBLE in holds:
        artifact = "ensemble"
    elif HOLDS_CONFIG in holds:
        artifact = "linked_parts" if HOLDS_PARTS in holds and HOLDS_CHECKPOINT not in holds else "model_dir"
    else:
        raise UnreadableRecord("not a trained tfxc model (no artifact.json, config.json or ensemble.json)")
    return {"run": None, "artifact": artifact}


def export_defaults(record: dict) -> dict:
    """Format 0 -> 1 (export.json versioned 2026-11-29): the keys exports made before lack get the values they
    stood for: "input" "features" (before text and image inputs), "num_train_points" 0 (before it was
    recorded) and "index" {} (before the label index, 2026-11-26: the scores of every label)."""
    index = record.get("index")
    return {**record, "input": record.get("input", "features"),
            "num_train_points": record.get("num_train_points", 0), "index": index if isinstance(index, dict) else {}}


def data_versioned(record: dict) -> dict:
    """Format 0 -> 1 (stats.json versioned 2026-11-29): the keys are today's. Conversions of format 0 may lack
    files beside it (label_freq.npy before 2026-11-21: the counts were the list "label_freq" here) and their
    "source_fingerprint" may hash paths, sizes and mtimes (before "source_files", 2026-11-26);
    `tfxc.compat.stand_ins` reads those by the version."""
    return record


def ensemble_versioned(record: dict) -> dict:
    """Format 0 -> 1 (ensemble.json versioned 2026-11-29): the layout did not change."""
    return record


# The recipe's words an ensemble.json before format 2 held as "preset", and the run kinds (`tfxc.artifacts`)
# that made those ensembles.
_RUN_OF_ENSEMBLE_PRESET = {"best": "members", "folds": "folds"}


def ensemble_run(record: dict) -> dict:
    """Format 1 -> 2 (2026-11-29, one meaning of "preset"): the run that made the ensemble is "run" ("members",
    "folds"); before, "preset" held the recipe point ("best") or "folds". A record without one keeps none.

    Raises:
      UnreadableRecord: "preset" holds another word.
    """
    if "preset" not in record:
        return record
    record = dict(record)
    preset = record.pop("preset")
    if preset not in _RUN_OF_ENSEMBLE_PRESET:
        raise UnreadableRecord(f'"preset" {preset!r} is none of {sorted(_RUN_OF_ENSEMBLE_PRESET)}', "preset")
    return {"run": _RUN_OF_ENSEMBLE_PRESET[preset], **record}


def best_versioned(record: dict) -> dict:
    """Format 0 -> 1 (best.json versioned 2026-11-29): the layout did not change."""
    return record


def feature_store_versioned(record: dict) -> dict:
    """Format 0 -> 1 (extract.json versioned 2026-11-29): the layout did not change."""
    return record


def featurizer_tokenizer(record: dict) -> dict:
    """Format 1 -> 2 (2026-11-27, the unicode tokenizer): a featurizer saved before names no "tokens" or
    "accents"; it tokenised lowercased runs of ASCII letters and digits, today's "ascii" with accents kept.

    Raises:
      UnreadableRecord: it was saved with another token pattern or without lowercasing.
    """
    if record.get("token_pattern") != _V1_TOKEN_PATTERN or record.get("lowercase") is not True:
        raise UnreadableRecord(f"written with a different tokenizer ({record.get('token_pattern')!r}, "
                               f"lowercase={record.get('lowercase')!r})", field="token_pattern")
    return {**record, "tokens": "ascii", "accents": "keep"}
