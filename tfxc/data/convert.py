"""Source files -> a converted directory of sharded TFRecords, labels.txt and stats.json.

Layout written (atomically: into a temporary sibling, renamed at the end, so a
failed or killed conversion leaves nothing half-written):

  DIR/train-00000-of-00004.tfrecord ...   (rows dealt round-robin over the shards)
  DIR/test-00000-of-00001.tfrecord
  DIR/val-00000-of-00001.tfrecord          (only when the sources have a validation split)
  DIR/labels.txt        label names, line i = label i (when names are known)
  DIR/featurizer.json   the TF-IDF featurizer fit on train (jsonl sources)
  DIR/stats.json        sizes, per-split counts and the source fingerprint
  DIR/label_freq.npy    train label frequencies, int64 [L] (propensities derive from them)
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable

import numpy as np

from tfxc.data import readers
from tfxc.data.info import FEATURIZER_FILE, LABEL_FREQ_FILE, LABELS_FILE, STATS_FILE, DatasetInfo
from tfxc.data.rows import Row
from tfxc.data.synthetic import SyntheticXmc
from tfxc.data.tfrecord import serialize_row, shard_name
from tfxc.errors import DataError, TfxcError
from tfxc.utils.io import atomic_directory, atomic_write_text

log = logging.getLogger("tfxc.convert")

TEST_SHARDS = 1
# The evaluation splits, written when their sources are given.
EVAL_SPLITS = ("test", "val")
DENSE_FEATURES_FILE, DENSE_LABELS_FILE = "features.npy", "labels.npy"


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


class SplitWriter:
    """Writes rows round-robin into `num_shards` TFRecord files and counts statistics."""

    def __init__(self, directory: str, split: str, num_shards: int):
        from tfxc._tf import tf

        self.split, self.num_shards = split, num_shards
        self.writers = [tf.io.TFRecordWriter(os.path.join(directory, shard_name(split, i, num_shards)))
                        for i in range(num_shards)]
        self.num_points = self.nnz = self.num_positives = self.no_labels = self.no_features = 0
        self.max_feature = self.max_label = -1
        self._label_counts = np.zeros(0, np.int64)
        # The rows' content, in order: two conversions with equal cards but other rows (a shuffled source)
        # are still different data to a model bound to one of them.
        self._digest = hashlib.sha256()

    def write(self, row: Row) -> None:
        self._digest_row(row)
        self.writers[self.num_points % self.num_shards].write(serialize_row(self.num_points, row))
        self.num_points += 1
        self.nnz += row.feat_idx.size
        self.num_positives += row.labels.size
        self.no_labels += row.labels.size == 0
        self.no_features += row.feat_idx.size == 0
        if row.feat_idx.size:
            self.max_feature = max(self.max_feature, int(row.feat_idx[-1]))
        if row.labels.size:
            top = int(row.labels[-1])
            if top >= self._label_counts.size:
                self._label_counts = np.pad(self._label_counts, (0, max(top + 1, 2 * self._label_counts.size)
                                                                  - self._label_counts.size))
            self._label_counts[row.labels] += 1
            self.max_label = max(self.max_label, top)

    def _digest_row(self, row: Row) -> None:
        # The row's values, not its serialised Example: protobuf leaves the order of a map's keys open.
        parts = [np.ascontiguousarray(row.feat_idx, np.int64).tobytes(),
                 np.ascontiguousarray(row.feat_val, np.float32).tobytes(),
                 np.ascontiguousarray(row.labels, np.int64).tobytes(),
                 b"" if row.text is None else row.text.encode("utf-8", "surrogatepass")]
        for part in parts:
            self._digest.update(len(part).to_bytes(8, "little") + part)

    def write_all(self, rows: Iterable[Row]) -> "SplitWriter":
        for row in rows:
            self.write(row)
        return self.close()

    def close(self) -> "SplitWriter":
        for w in self.writers:
            w.close()
        return self

    def label_counts(self, num_labels: int) -> np.ndarray:
        out = np.zeros(num_labels, np.int64)
        out[: min(num_labels, self._label_counts.size)] = self._label_counts[:num_labels]
        return out

    def stats(self, num_labels: int) -> dict:
        n = max(self.num_points, 1)
        return {"num_points": self.num_points, "num_shards": self.num_shards, "nnz": self.nnz,
                "avg_features_per_point": self.nnz / n, "avg_labels_per_point": self.num_positives / n,
                "points_without_labels": self.no_labels, "points_without_features": self.no_features,
                "labels_present": int(np.count_nonzero(self.label_counts(num_labels))),
                "sha256": self._digest.hexdigest()}


_SOURCE_PATH_FIELDS = ("train", "test", "val", "train_labels", "test_labels", "val_labels", "label_names",
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
        entry = self.known.get(real)
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
        paths += [path for pair in dense_source_files(data_config.source_dir).values() for path in pair]
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
    for transient in ("dir", "shuffle_buffer"):
        fields.pop(transient)
    # A source named by a relative, an absolute or a symlinked path is the same source: the runs of one
    # data directory would otherwise convert it again each time the spelling alternates.
    for name in _SOURCE_PATH_FIELDS:
        if fields.get(name):
            fields[name] = os.path.realpath(fields[name])
    # Options added later enter only when set, so older conversions keep their fingerprint.
    for key, default in (("val_percent", 0), ("val_fold", ""), ("val_groups", ""), ("val_group_sep", ":")):
        if fields[key] == default:
            fields.pop(key)
    return fields


def _mtime_fingerprint(data_config) -> str:
    """The fingerprint of conversions written before contents were hashed (by path, size and mtime)."""
    def file_fields(path):
        if not path:
            return {}
        st = os.stat(path) if os.path.exists(path) else None
        return {"path": os.path.realpath(path), "size": st.st_size if st else None,
                "mtime_ns": st.st_mtime_ns if st else None}

    fields = _option_fields(data_config)
    fields["files"] = [file_fields(path) for path in _source_paths(data_config)]
    fields["format_version"] = 1
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def is_conversion_of(stats: dict, data_config) -> bool:
    """Whether `stats` (a converted directory's stats.json) records a conversion of `data_config`'s sources."""
    stored = stats.get("source_fingerprint")
    if SOURCE_FILES_KEY not in stats:  # written before contents were hashed
        return stored == _mtime_fingerprint(data_config)
    known = stats[SOURCE_FILES_KEY]
    return stored == source_fingerprint(data_config, SourceFiles(known if isinstance(known, dict) else None))


def _read_label_names(path: str, seen: int, declared: int | None) -> list[str]:
    """The names of a labels.txt (validated by `LabelVocab.load`), one per label of the data.

    Args:
      path: the labels.txt.
      seen: 1 + the largest label id in the data.
      declared: the label count the sources declare (a header's L, a Y matrix's width), or None.

    Raises:
      DataError: the file has another number of names than the sources declare, or fewer names
        than the data uses (a file written for other data).
    """
    from tfxc.data.label_vocab import LabelVocab

    names = list(LabelVocab.load(path).names)
    if declared is not None and len(names) != declared:
        raise DataError(f"has {len(names)} label names but the data declares {declared} labels "
                        "(data.label_names written for another data set?)", path=path)
    if len(names) < seen:
        raise DataError(f"has {len(names)} label names but the data uses label ids up to {seen - 1}",
                        path=path)
    return names


def _sources(data_config, tmp_dir: str):
    """(per-split row iterators, num_features(), num_labels(), declared_num_labels(), label names or None).

    The three counts are callables because readers know them only after a full pass.
    """
    cfg = data_config
    if cfg.format == "synthetic":
        gen = SyntheticXmc(cfg.synthetic)
        return ({"train": gen.rows("train"), "test": gen.rows("test")}, lambda: gen.num_features,
                lambda: gen.num_labels, lambda: gen.num_labels, None)
    if cfg.format == "jsonl":
        from tfxc.data.label_vocab import LabelVocab
        from tfxc.data.text_features import TfidfFeaturizer

        if cfg.label_names:
            vocab = LabelVocab.load(cfg.label_names)
        else:
            vocab = LabelVocab.build(record.labels for record in readers.iter_jsonl(cfg.train))
        vocab.freeze()
        featurizer = TfidfFeaturizer(ngram_max=cfg.text.ngram_max, min_df=cfg.text.min_df,
                                     max_features=cfg.text.max_features or None)
        featurizer.fit(record.text for record in readers.iter_jsonl(cfg.train))
        featurizer.save(os.path.join(tmp_dir, FEATURIZER_FILE))
        sources = {name: path for name, path in (("train", cfg.train), ("test", cfg.test), ("val", cfg.val)) if path}
        splits = {name: readers.JsonlReader(path, label_vocab=vocab, featurizer=featurizer)
                  for name, path in sources.items()}
        return splits, lambda: featurizer.num_features, lambda: len(vocab), lambda: len(vocab), vocab.names
    options = {"index_base": cfg.index_base} if cfg.format == "xc" else {}
    if cfg.source_dir:
        files = dense_source_files(cfg.source_dir)
    else:
        files = {name: (getattr(cfg, name), getattr(cfg, name + "_labels")) for name in ("train", "test", "val")
                 if getattr(cfg, name)}
    splits = {name: readers.open_reader(cfg.format, x, y or None, **options) for name, (x, y) in files.items()}
    num_features = lambda: max(r.num_features for r in splits.values())  # noqa: E731
    num_labels = lambda: max(r.num_labels for r in splits.values())  # noqa: E731

    def declared_num_labels():
        declared = [r.declared_num_labels for r in splits.values() if r.declared_num_labels is not None]
        return max(declared) if declared else None

    return splits, num_features, num_labels, declared_num_labels, None


def _write_carved(cfg, tmp: str, splits: dict) -> dict[str, SplitWriter]:
    """Writes the train source into train and val splits by group (`data.val_percent` or `data.val_fold`)."""
    from tfxc.data.holdout import group_keys, parse_fold, route

    if "val" in splits:
        raise DataError("data.val_percent carves a validation split from train, but the sources already have one "
                        "(a val/ directory in data.source_dir?)", path=cfg.source_dir or None)
    groups = cfg.val_groups or None
    writers = {"train": SplitWriter(tmp, "train", cfg.num_shards), "val": SplitWriter(tmp, "val", TEST_SHARDS)}
    fold = parse_fold(cfg.val_fold) if cfg.val_fold else None
    for to_val, row in route(splits["train"], group_keys(groups, cfg.val_group_sep), cfg.val_percent,
                             source=cfg.train or "the train split", keys_source=groups, fold=fold):
        writers["val" if to_val else "train"].write(row)
    for writer in writers.values():
        writer.close()
    what = f"data.val_fold {cfg.val_fold}" if fold else f"data.val_percent {cfg.val_percent}"
    log.info("%s: %d train points held out for validation (%s)", what, writers["val"].num_points,
             f"groups from {groups}" if groups else "each point its own group")
    return writers


def convert(data_config, before_replacing=None) -> DatasetInfo:
    """Converts the sources named by `data_config` (a `DataConfig`) into `data_config.dir`.

    Call it through `ensure_converted`, whose lock keeps other writers of the
    directory out (which is what makes clearing a killed run's leftovers safe).
    `before_replacing(tmp)` is called with the finished conversion before it
    replaces the directory; raising there leaves the directory as it was.
    """
    cfg = data_config
    start = time.time()
    files = SourceFiles()
    fingerprint = source_fingerprint(cfg, files)  # before reading: a source changed meanwhile converts again
    with atomic_directory(cfg.dir, marker=STATS_FILE, clear_stale=True) as tmp:
        splits, num_features, num_labels, declared_num_labels, names = _sources(cfg, tmp)
        if cfg.val_percent or cfg.val_fold:
            writers = _write_carved(cfg, tmp, splits)
        else:
            writers = {"train": SplitWriter(tmp, "train", cfg.num_shards).write_all(splits["train"])}
        for name in EVAL_SPLITS:
            if name in splits:
                writers[name] = SplitWriter(tmp, name, TEST_SHARDS).write_all(splits[name])
        if (cfg.val_percent or cfg.val_fold) and writers["val"].num_points == 0:
            raise DataError(f"data.val_percent {cfg.val_percent} / val_fold '{cfg.val_fold}' put none of the {writers['train'].num_points} "
                            "train points into validation (too few points or groups)", path=cfg.train or None)
        nf, nl = int(num_features()), int(num_labels())
        if writers["train"].num_points == 0:
            raise DataError("the train split has no points", path=cfg.train or cfg.dir)
        if cfg.label_names and names is None:
            names = _read_label_names(cfg.label_names, nl, declared_num_labels())
            nl = len(names)  # labels that never occur in the data still have their names
        if names is not None:
            atomic_write_text(os.path.join(tmp, LABELS_FILE), "\n".join(names) + "\n")
        np.save(os.path.join(tmp, LABEL_FREQ_FILE), writers["train"].label_counts(nl).astype(np.int64))
        stats = {
            "format": cfg.format,
            "num_features": nf,
            "num_labels": nl,
            "splits": {name: w.stats(nl) for name, w in writers.items()},
            "source_fingerprint": fingerprint,
            SOURCE_FILES_KEY: files.seen,
        }
        atomic_write_text(os.path.join(tmp, STATS_FILE), json.dumps(stats, indent=1) + "\n")
        if before_replacing is not None:
            before_replacing(tmp)
    log.info("converted %s -> %s in %.1fs: %s points, %d features, %d labels", cfg.format, cfg.dir,
             time.time() - start, " / ".join(f"{w.num_points} {name}" for name, w in writers.items()), nf, nl)
    return DatasetInfo.load(cfg.dir)


@contextlib.contextmanager
def _lock(path: str):
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


def _take_lease(directory: str) -> None:
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


def _claim_for_replacing(directory: str):
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


def ensure_converted(data_config, force: bool = False, accept=None) -> DatasetInfo:
    """Returns the DatasetInfo of `data_config.dir`, converting the sources first if needed.

    A conversion is reused when its stats.json records the same source fingerprint (the same options
    and the same source contents; see `SourceFiles`), unless `force`. Otherwise the sources are converted
    into a fresh sibling directory, which replaces `data_config.dir` only when

    - `accept(new_info)` (if given) returns without raising: a caller bound to other data (a model
      directory resuming) refuses the new conversion before anything it depends on is replaced; and
    - no other process reads the current conversion (see `release_data`); otherwise `DataInUse`.

    Either way this process then holds a shared lease on the directory until `release_data` or exit, so
    no other process replaces it while it is read.
    """
    if data_config.format == "tfrecord":
        return DatasetInfo.load(data_config.dir)
    with _lock(os.path.abspath(data_config.dir) + ".lock"):
        if not force and _current_stats_match(data_config):
            _take_lease(data_config.dir)
            return DatasetInfo.load(data_config.dir)
        claim = None

        def before_replacing(tmp: str) -> None:
            nonlocal claim
            if accept is not None:
                accept(DatasetInfo.load(tmp))
            if os.path.exists(os.path.join(data_config.dir, STATS_FILE)):
                claim = _claim_for_replacing(data_config.dir)
                _keep_for_dependents(data_config.dir, DatasetInfo.load(tmp))

        try:
            info = convert(data_config, before_replacing)
        finally:
            if claim is not None:
                claim.close()
        _take_lease(data_config.dir)
        return info


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
    with _lock(os.path.abspath(data_dir) + ".lock"):
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


def _keep_for_dependents(data_dir: str, new: DatasetInfo) -> None:
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


def _current_stats_match(data_config) -> bool:
    """Whether `data_config.dir` holds a conversion of `data_config`'s sources (a damaged card: no)."""
    stats_path = os.path.join(data_config.dir, STATS_FILE)
    if not os.path.exists(stats_path):
        return False
    try:
        with open(stats_path, encoding="utf-8") as f:
            stats = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        log.warning("%s is unreadable (%s); converting again", stats_path, e)
        return False
    return isinstance(stats, dict) and is_conversion_of(stats, data_config)
