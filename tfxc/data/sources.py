"""The source files a data config names: their format by their names, the data section that names them
(with the share of train held out for validation), which files they are, and a fingerprint of their contents
that decides whether a converted directory still holds their conversion."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from tfxc.compat import DATA, stand_ins, version_of
from tfxc.errors import ConfigError, DataError

DENSE_FEATURES_FILE, DENSE_LABELS_FILE = "features.npy", "labels.npy"

# === The format and the data section from file names ===
# (format, the name endings that tell it (a ".gz" may follow), what such a file holds). A directory is dense.
SOURCE_FORMATS = (
    ("jsonl", (".jsonl", ".json", ".csv", ".tsv", "_texts.txt"),
     "text (JSON lines, CSV with sentence and label columns, or LightXML's X_texts.txt + X_labels.txt)"),
    ("pecos", (".npz",), "PECOS"),
    ("dense", (".npy",), "dense features"),
    ("xc", (".txt", ".svm", ".libsvm"), "Extreme Classification Repository text"),
)
# The share of train (percent) held out to choose the epoch when no validation source is given.
VAL_PERCENT = 10
# TF-IDF terms of JSONL text. Short texts (at most SHORT_TEXT_TOKENS words on average: queries, intents,
# titles) get words and word bigrams, every term of the training texts, at most the 100,000 most frequent;
# longer texts words seen in at least 2 texts. See docs/benchmarks-history.md, "The recipe's rules".
SHORT_TEXT_TOKENS = 40
SHORT_TEXT_FEATURES = {"ngram_max": 2, "min_df": 1, "max_features": 100_000}
LONG_TEXT_FEATURES = {"ngram_max": 1, "min_df": 2, "max_features": 0}
# Text written without spaces (more than half its tokens are single Chinese, Japanese, Thai... characters):
# characters and character bigrams, the usual TF-IDF terms of Chinese text classification, seen in at least 2
# texts. The length rule does not apply: a character is not a word.
UNSEGMENTED_TEXT_FEATURES = {"ngram_max": 2, "min_df": 2, "max_features": 0}
# Texts read to measure the average length.
TEXT_SAMPLE = 10_000


def source_format(path: str, default: str | None = None) -> str:
    """The format of a source file by its name (`SOURCE_FORMATS`): "xc", "pecos", "jsonl" or "dense".

    Args:
      path: a file (a ".gz" after its suffix is looked through) or a directory (dense).
      default: the format of a name the table does not know; None makes that an error.

    Raises:
      ConfigError: the name tells no format and there is no `default`.
    """
    if os.path.isdir(path):
        return "dense"
    name = (path[:-3] if path.endswith(".gz") else path).lower()
    for fmt, suffixes, _ in SOURCE_FORMATS:
        if name.endswith(suffixes):
            return fmt
    if default is not None:
        return default
    known = ", ".join(f"{'/'.join(suffixes)}: {what}" for _, suffixes, what in SOURCE_FORMATS)
    raise ConfigError(f"cannot tell the format of '{path}' from its name ({known}, a directory: dense "
                      "features); write a config with data.format instead")


def _labels_beside(path: str, option: str) -> str:
    """PECOS/dense label file next to a features file: X.trn.npz -> Y.trn.npz, features.npy -> labels.npy."""
    folder, name = os.path.split(path)
    for features, labels in (("X.", "Y."), ("X_", "Y_"), ("features", "labels")):
        candidate = os.path.join(folder, labels + name[len(features):])
        if name.startswith(features) and os.path.exists(candidate):
            return candidate
    raise ConfigError(f"no label file found beside {path}: give {option}")


def data_section(train: str, test: str = "", val: str = "", *, data_dir: str, train_labels: str = "",
                 test_labels: str = "", val_labels: str = "", label_names: str = "") -> dict:
    """The `data` section of a config (JSON layout) for these sources, the format told by the file names.

    PECOS and dense label files are found beside their features unless given; JSONL text gets the TF-IDF
    terms `text_features` picks. Without a validation source, `VAL_PERCENT` percent of train is held out to
    choose the epoch (`with_validation`).

    Raises:
      ConfigError: a format cannot be told, the sources differ in format, or a label file is missing.
    """
    fmt = source_format(train)
    data = {"format": fmt, "dir": data_dir}
    if fmt == "dense" and os.path.isdir(train):
        data["source_dir"] = train
        names = os.path.join(train, "labels.txt")  # `tfxc.extract` writes the class names there
        if not label_names and os.path.exists(names):
            label_names = names
    else:
        for split, path, labels in (("train", train, train_labels), ("test", test, test_labels),
                                    ("val", val, val_labels)):
            if not path:
                continue
            if source_format(path) != fmt:
                raise ConfigError(f"--{split} {path} is not in the format of --train {train} ({fmt})")
            data[split] = path
            if fmt in ("pecos", "dense"):
                data[split + "_labels"] = labels or _labels_beside(path, f"--{split}-labels")
    if label_names:
        data["label_names"] = label_names
    if fmt == "jsonl":
        data["text"] = text_features(train)
    return with_validation(data)


def text_features(train: str) -> dict:
    """The `data.text` section (TF-IDF terms) for a JSONL train file, from its first `TEXT_SAMPLE` texts:
    `UNSEGMENTED_TEXT_FEATURES` when most of their tokens are CJK or Thai characters, else by their average
    length, `SHORT_TEXT_FEATURES` up to `SHORT_TEXT_TOKENS` words, `LONG_TEXT_FEATURES` above."""
    from tfxc.data.readers import iter_jsonl
    from tfxc.data.text_terms import is_unsegmented, tokenize

    tokens = [tokenize(record.text) for _, record in zip(range(TEXT_SAMPLE), iter_jsonl(train))]
    total = sum(map(len, tokens))
    if sum(is_unsegmented(token) for text in tokens for token in text) * 2 > total:
        return dict(UNSEGMENTED_TEXT_FEATURES)
    short = total / max(len(tokens), 1) <= SHORT_TEXT_TOKENS
    return dict(SHORT_TEXT_FEATURES if short else LONG_TEXT_FEATURES)


def with_validation(data: dict) -> dict:
    """A data section (JSON layout) that holds out `VAL_PERCENT` percent of train when it has no validation part.

    A data section with `val`, a `val_percent` (0 included: no validation split), a `val_fold` or a dense
    `source_dir` with a `val` folder is returned as is. JSONL points of one document (an `id` prefix before
    ':') stay on one side of the split.
    """
    has_val_dir = bool(data.get("source_dir")) and os.path.isdir(os.path.join(data["source_dir"], "val"))
    if data.get("val") or "val_percent" in data or data.get("val_fold") or has_val_dir:
        return data
    data = {**data, "val_percent": VAL_PERCENT}
    if data.get("format") == "jsonl" and data.get("train") and not data.get("val_groups"):
        data["val_groups"] = data["train"]
    return data


# === Which files, and their fingerprint ===


def dense_source_files(source_dir: str) -> dict[str, tuple[str, str]]:
    """{split: (features.npy, labels.npy)} of a `{train,val,test}/` directory (val is optional).

    Raises:
      DataError: train or test is missing, or a split has only one of its two files.
    """
    out = {}
    for split in ("train", "val", "test"):
        x, y = (os.path.join(source_dir, split, name) for name in (DENSE_FEATURES_FILE, DENSE_LABELS_FILE))
        if not os.path.exists(x) and not os.path.exists(y) and split == "val":
            continue
        for path in (x, y):
            if not os.path.exists(path):
                raise DataError(f"missing; a dense source_dir holds {{train,val,test}}/{DENSE_FEATURES_FILE} "
                                f"and {DENSE_LABELS_FILE} (val optional)", path=path)
        out[split] = (x, y)
    return out


# PECOS's xmc-base layout (algorithms.md §1.1): <set>/X.{trn,tst}.txt, <set>/<tfidf>/X.{trn,tst}.npz, <set>/Y.*.npz.
XMC_BASE_SPLITS = {"train": "trn", "test": "tst"}
XMC_BASE_TFIDF_DIRS = ("tfidf-attnxml", "tfidf")


def xmc_base_files(source_dir: str) -> dict[str, tuple[str, str, str]]:
    """{split: (TF-IDF X.npz, Y.npz, X.txt)} of a PECOS xmc-base data set directory (the TF-IDF from
    tfidf-attnxml/, XR-Transformer's, else tfidf/).

    Raises:
      DataError: a file of the train or test split is missing (naming it and the layout).
    """
    tfidf = next((d for d in XMC_BASE_TFIDF_DIRS if os.path.isdir(os.path.join(source_dir, d))), None)
    if tfidf is None:
        raise DataError(f"no TF-IDF directory ({' or '.join(XMC_BASE_TFIDF_DIRS)}); a PECOS xmc-base set holds "
                        "X.trn.txt, Y.trn.npz and tfidf-attnxml/X.trn.npz (and the .tst. files)", path=source_dir)
    out = {}
    for split, tag in XMC_BASE_SPLITS.items():
        files = (os.path.join(source_dir, tfidf, f"X.{tag}.npz"), os.path.join(source_dir, f"Y.{tag}.npz"),
                 os.path.join(source_dir, f"X.{tag}.txt"))
        for path in files:
            if not os.path.exists(path):
                raise DataError(f"missing from the PECOS xmc-base layout (X.{tag}.txt, Y.{tag}.npz, "
                                f"{tfidf}/X.{tag}.npz)", path=path)
        out[split] = files
    return out


SOURCE_PATH_FIELDS = ("train", "test", "val", "train_labels", "test_labels", "val_labels", "label_names",
                       "val_groups", "source_dir")
SOURCE_FILES_KEY = "source_files"  # stats.json: {real path: {size, mtime_ns, sha256}}, the content cache


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class SourceFiles:
    """The content of the source files, by sha256, read again only when a file's size or mtime changed.

    A fingerprint of contents, not time stamps: `cp -r`, `git checkout` or `rsync` without `-t` give the
    same bytes new mtimes, and must not make a conversion (and every model bound to it) stale.

    Args:
      known: the {real path: {"size", "mtime_ns", "sha256"}} entries of an earlier conversion.
    """

    def __init__(self, known: dict | None = None):
        self.known = dict(known or {})
        self.seen: dict[str, dict] = {}

    def fingerprint(self, path: str) -> dict:
        """{"path", "size", "sha256"} of `path` ({} for no path; None fields for a missing file)."""
        if not path:
            return {}
        real = os.path.realpath(path)
        if not os.path.exists(real):
            return {"path": real, "size": None, "sha256": None}
        st = os.stat(real)
        entry = self.seen.get(real) or self.known.get(real)
        if not (isinstance(entry, dict) and entry.get("size") == st.st_size
                and entry.get("mtime_ns") == st.st_mtime_ns and entry.get("sha256")):
            entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256_of(real)}
        self.seen[real] = entry
        return {"path": real, "size": entry["size"], "sha256": entry["sha256"]}


def _source_paths(data_config) -> list[str]:
    """Every file a conversion of `data_config` reads ("" for the unset ones, in a fixed order)."""
    paths = [getattr(data_config, name) for name in ("train", "test", "val", "train_labels", "test_labels",
                                                     "val_labels", "label_names")]
    if data_config.val_groups:
        paths.append(data_config.val_groups)
    if data_config.source_dir:
        layout = xmc_base_files if data_config.format == "pecos" else dense_source_files
        paths += [path for files in layout(data_config.source_dir).values() for path in files]
    if data_config.format == "images":  # a folder or catalog names its images; the images are the data
        from tfxc.data.readers.images import source_files

        options = dataclasses.asdict(data_config.images)
        for split in ("train", "test", "val"):
            path = getattr(data_config, split)
            if path:  # a directory or a shard pattern has no content of its own
                paths[paths.index(path)] = ""
                paths += source_files(path, **options)
    return paths


def source_fingerprint(data_config, files: SourceFiles | None = None) -> str:
    """Hash of everything that determines the converted output: the options and the sources' contents.

    Args:
      data_config: the `DataConfig`.
      files: the content cache to read (and record) the sources' hashes through.
    """
    files = files or SourceFiles()
    fields = _option_fields(data_config)
    fields["files"] = [files.fingerprint(path) for path in _source_paths(data_config)]
    fields["format_version"] = 2
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _option_fields(data_config) -> dict:
    fields = dataclasses.asdict(data_config)
    for transient in ("dir", "shuffle_buffer", "group_by_length"):
        fields.pop(transient)
    # A source named by a relative, an absolute or a symlinked path is the same source: the runs of one
    # data directory would otherwise convert it again each time the spelling alternates.
    for name in SOURCE_PATH_FIELDS:
        if fields.get(name):
            fields[name] = os.path.realpath(fields[name])
    # Options added later enter only when set, so older conversions keep their fingerprint.
    for key, default in (("val_percent", 0), ("val_fold", ""), ("val_groups", ""), ("val_group_sep", ":"),
                         ("num_classes", 0)):
        if fields[key] == default:
            fields.pop(key)
    if "val_fold" in fields:  # one conversion serves every fold (tfxc.data.folds): only their number counts
        fields["val_fold"] = "folds/" + fields["val_fold"].partition("/")[2]
    if fields["images"] == dataclasses.asdict(type(data_config.images)()):
        fields.pop("images")
    # The tokenizer of the conversions before these options existed.
    for key, before in (("tokens", "ascii"), ("accents", "keep")):
        if fields["text"][key] == before:
            fields["text"].pop(key)
    return fields


def is_conversion_of(stats: dict, data_config, files: SourceFiles | None = None) -> bool:
    """Whether `stats` (a converted directory's stats.json) records a conversion of `data_config`'s sources.

    `files`, when given, keeps the hashes read here, so that a conversion that follows reads no source twice.
    """
    stored = stats.get("source_fingerprint")
    try:
        version = version_of(DATA, stats)
    except DataError:
        return False
    if stand_ins.fingerprinted_by_mtime(stats, version, SOURCE_FILES_KEY):
        return stored == stand_ins.mtime_fingerprint(_option_fields(data_config), _source_paths(data_config))
    files = files or SourceFiles()
    if isinstance(stats.get(SOURCE_FILES_KEY), dict):
        files.known.update(stats[SOURCE_FILES_KEY])
    return stored == source_fingerprint(data_config, files)


def with_absolute_paths(data_config):
    """`data_config` (a `DataConfig`) with its relative source paths and `dir` made absolute (against the
    working directory), as a model directory keeps them: read from anywhere, they name the same files."""
    absolute = {name: os.path.abspath(getattr(data_config, name)) for name in SOURCE_PATH_FIELDS + ("dir",)
                if getattr(data_config, name) and not os.path.isabs(getattr(data_config, name))}
    return dataclasses.replace(data_config, **absolute) if absolute else data_config
