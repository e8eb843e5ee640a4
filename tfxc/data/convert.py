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

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time

import numpy as np

from tfxc.compat import DATA, stamped
from tfxc.data import readers
from tfxc.data.folds import FOLD_KEY, VAL_SOURCE_ROWS, converted_dir, fold_of, fold_view_name
from tfxc.data.info import FEATURIZER_FILE, LABEL_FREQ_FILE, LABELS_FILE, STATS_FILE, DatasetInfo
from tfxc.data.synthetic import SyntheticXmc
from tfxc.data.split_writer import SplitWriter
from tfxc.data.sources import (SOURCE_FILES_KEY, SOURCE_PATH_FIELDS, SourceFiles, dense_source_files,
                                is_conversion_of, source_fingerprint, xmc_base_files)
# DataInUse and release_data are part of what ensure_converted promises its callers.
from tfxc.data.usage import (DataInUse, claim_for_replacing, directory_lock, keep_for_dependents,  # noqa: F401
                             release_data, take_lease)
from tfxc.errors import DataError
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_directory, atomic_write_text, refuse_to_overwrite_inputs

log = logging.getLogger("tfxc.convert")

TEST_SHARDS = 1
# The evaluation splits, written when their sources are given.
EVAL_SPLITS = ("test", "val")


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


def _declared_num_classes(cfg, seen: int, declared: int | None, names) -> int:
    """`data.num_classes`, checked against the label ids the sources hold (`seen`: the largest + 1), the count
    a source states and the label names; the conversion's label count."""
    where, count = cfg.train or cfg.source_dir or None, cfg.num_classes
    if names is not None and len(names) != count:
        raise DataError(f"data.num_classes is {count}, but the data names {len(names)} labels", path=where)
    if seen > count:
        raise DataError(f"label id {seen - 1} is beyond data.num_classes ({count}): ids must be in [0, {count})",
                        path=where)
    if declared is not None and declared != count:
        raise DataError(f"the source states {declared} labels, data.num_classes {count}", path=where)
    return count


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
                                     max_features=cfg.text.max_features or None, tokens=cfg.text.tokens,
                                     accents=cfg.text.accents)
        featurizer.fit(record.text for record in readers.iter_jsonl(cfg.train))
        featurizer.save(os.path.join(tmp_dir, FEATURIZER_FILE))
        sources = {name: path for name, path in (("train", cfg.train), ("test", cfg.test), ("val", cfg.val)) if path}
        splits = {name: readers.JsonlReader(path, label_vocab=vocab, featurizer=featurizer)
                  for name, path in sources.items()}
        return splits, lambda: featurizer.num_features, lambda: len(vocab), lambda: len(vocab), vocab.names
    if cfg.format == "images":
        return _image_sources(cfg)
    options = {"index_base": cfg.index_base} if cfg.format == "xc" else {}
    if cfg.source_dir and cfg.format == "pecos":  # PECOS's xmc-base layout: the texts beside the matrices
        splits = {name: readers.open_reader("pecos", x, y, text_path=text)
                  for name, (x, y, text) in xmc_base_files(cfg.source_dir).items()}
        files = {}
    elif cfg.source_dir:
        files = dense_source_files(cfg.source_dir)
    else:
        files = {name: (getattr(cfg, name), getattr(cfg, name + "_labels")) for name in ("train", "test", "val")
                 if getattr(cfg, name)}
    if files:
        splits = {name: readers.open_reader(cfg.format, x, y or None, **options) for name, (x, y) in files.items()}
    num_features = lambda: max(r.num_features for r in splits.values())  # noqa: E731
    num_labels = lambda: max(r.num_labels for r in splits.values())  # noqa: E731

    def declared_num_labels():
        declared = [r.declared_num_labels for r in splits.values() if r.declared_num_labels is not None]
        return max(declared) if declared else None

    return splits, num_features, num_labels, declared_num_labels, None


def _image_sources(cfg):
    """`_sources` of labelled images: class names sorted (ImageFolder's order) unless data.label_names gives them,
    integer class ids (a webdataset's cls entries) as they are."""
    from tfxc.data.label_vocab import LabelVocab
    from tfxc.data.readers.images import class_names

    options = dataclasses.asdict(cfg.images)
    if cfg.label_names:
        vocab = LabelVocab.load(cfg.label_names)
    else:
        names = class_names(cfg.train, **options)
        vocab = None if names is None else LabelVocab(names)
    if vocab is not None:
        vocab.freeze()
    splits = {name: readers.ImageReader(path, label_vocab=vocab, **options)
              for name, path in (("train", cfg.train), ("test", cfg.test), ("val", cfg.val)) if path}
    num_labels = (lambda: len(vocab)) if vocab is not None else (lambda: max(r.num_labels for r in splits.values()))
    return splits, lambda: 0, num_labels, lambda: None, None if vocab is None else vocab.names


def _write_card(directory: str, card: dict, writers: dict, label_counts: np.ndarray, names) -> None:
    """A converted directory's card: stats.json (`card` and the splits' statistics), label_freq.npy (the train
    split's label counts) and labels.txt (with names)."""
    num_labels = card["num_labels"]
    if names is not None:
        atomic_write_text(os.path.join(directory, LABELS_FILE), "\n".join(names) + "\n")
    np.save(os.path.join(directory, LABEL_FREQ_FILE), label_counts.astype(np.int64))
    stats = stamped(DATA, {**card, "splits": {name: w.stats(num_labels) for name, w in writers.items()}})
    atomic_write_text(os.path.join(directory, STATS_FILE), json_text(stats, indent=1) + "\n")


def _write_fold_views(cfg, tmp: str, splits: dict, folds: int) -> list[dict[str, SplitWriter]]:
    """Writes every fold's view of the sources (`tfxc.data.folds`): the train source read once, each row to the
    val split of its fold's view and the train split of the others; the eval sources to every view."""
    from tfxc.data.holdout import group_keys, route

    if "val" in splits:
        raise DataError("data.val_fold carves the validation splits from train, but the sources already have one",
                        path=cfg.val or cfg.source_dir or None)
    views = []
    for i in range(folds):
        directory = os.path.join(tmp, fold_view_name(i, folds))
        os.makedirs(directory)
        views.append({"train": SplitWriter(directory, "train", cfg.num_shards),
                      "val": SplitWriter(directory, "val", TEST_SHARDS)})
    groups = cfg.val_groups or None
    held_out = [[] for _ in range(folds)]  # the train source's row number of each fold's val rows
    for index, (fold, row) in enumerate(route(splits["train"], group_keys(groups, cfg.val_group_sep), 0,
                                              source=cfg.train or "the train split", keys_source=groups,
                                              fold=(None, folds))):
        held_out[fold].append(index)
        for i, view in enumerate(views):
            view["val" if i == fold else "train"].write(row)
    for i, rows in enumerate(held_out):
        np.save(os.path.join(tmp, fold_view_name(i, folds), VAL_SOURCE_ROWS), np.asarray(rows, np.int64))
    for name in EVAL_SPLITS:
        if name in splits:
            for view, directory in zip(views, (os.path.join(tmp, fold_view_name(i, folds)) for i in range(folds))):
                view[name] = SplitWriter(directory, name, TEST_SHARDS)
            for row in splits[name]:  # read once, written to every view
                for view in views:
                    view[name].write(row)
    for view in views:
        for writer in view.values():
            writer.close()
    log.info("data.val_fold: the train source's %d points in %d folds of %s points (groups from %s)",
             views[0]["train"].num_points + views[0]["val"].num_points, folds,
             " / ".join(str(view["val"].num_points) for view in views), groups or "each point its own group")
    return views


def _conversion_id(views: list[dict[str, SplitWriter]], num_labels: int) -> str:
    """What the fold views of one conversion share: the digests of their val splits (which partition the train
    source) and of the first view's test split."""
    parts = [view["val"].stats(num_labels)["sha256"] for view in views]
    parts += [views[0][name].stats(num_labels)["sha256"] for name in EVAL_SPLITS if name in views[0]]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _write_carved(cfg, tmp: str, splits: dict) -> dict[str, SplitWriter]:
    """Writes the train source into train and val splits by group (`data.val_percent`)."""
    from tfxc.data.holdout import group_keys, route

    if "val" in splits:
        raise DataError("data.val_percent carves a validation split from train, but the sources already have one "
                        "(a val/ directory in data.source_dir?)", path=cfg.source_dir or None)
    groups = cfg.val_groups or None
    writers = {"train": SplitWriter(tmp, "train", cfg.num_shards), "val": SplitWriter(tmp, "val", TEST_SHARDS)}
    for to_val, row in route(splits["train"], group_keys(groups, cfg.val_group_sep), cfg.val_percent,
                             source=cfg.train or "the train split", keys_source=groups):
        writers["val" if to_val else "train"].write(row)
    for writer in writers.values():
        writer.close()
    log.info("data.val_percent %s: %d train points held out for validation (%s)", cfg.val_percent,
             writers["val"].num_points, f"groups from {groups}" if groups else "each point its own group")
    return writers


def convert(data_config, before_replacing=None, files: SourceFiles | None = None) -> DatasetInfo:
    """Converts the sources named by `data_config` (a `DataConfig`) into `data_config.dir`.

    Call it through `ensure_converted`, whose lock keeps other writers of the
    directory out (which is what makes clearing a killed run's leftovers safe).
    `before_replacing(tmp)` is called with the finished conversion before it
    replaces the directory; raising there leaves the directory as it was.
    """
    cfg = data_config
    start = time.time()
    # Replacing a data.dir that holds a source would delete the source with the old conversion.
    refuse_to_overwrite_inputs(cfg.dir, {f"data.{name}": getattr(cfg, name) for name in SOURCE_PATH_FIELDS},
                               "data.dir")
    files = files or SourceFiles()  # hashes already read (size and mtime unchanged) are not read again
    fingerprint = source_fingerprint(cfg, files)  # before reading: a source changed meanwhile converts again
    fold = fold_of(cfg)
    with atomic_directory(cfg.dir, marker=STATS_FILE, clear_stale=True) as tmp:
        splits, num_features, num_labels, declared_num_labels, names = _sources(cfg, tmp)
        if fold is not None:
            views = _write_fold_views(cfg, tmp, splits, fold[1])
            writers = views[0]
        elif cfg.val_percent:
            writers = _write_carved(cfg, tmp, splits)
        else:
            writers = {"train": SplitWriter(tmp, "train", cfg.num_shards).write_all(splits["train"])}
        if fold is None:
            for name in EVAL_SPLITS:
                if name in splits:
                    writers[name] = SplitWriter(tmp, name, TEST_SHARDS).write_all(splits[name])
                    if writers[name].num_points == 0:  # its metrics would be NaN, and selection on them blind
                        raise DataError(f"the {name} split has no points",
                                        path=getattr(cfg, name) or cfg.source_dir or None)
        if (cfg.val_percent or cfg.val_fold) and writers["val"].num_points == 0:
            raise DataError(f"data.val_percent {cfg.val_percent} / val_fold '{cfg.val_fold}' put none of the {writers['train'].num_points} "
                            "train points into validation (too few points or groups)", path=cfg.train or None)
        nf, nl = int(num_features()), int(num_labels())
        if writers["train"].num_points == 0:
            raise DataError("the train split has no points", path=cfg.train or cfg.dir)
        if cfg.label_names and names is None:
            names = _read_label_names(cfg.label_names, nl, declared_num_labels())
            nl = len(names)  # labels that never occur in the data still have their names
        if cfg.num_classes:
            nl = _declared_num_classes(cfg, nl, declared_num_labels(), names)
        card = {"format": cfg.format, "num_features": nf, "num_labels": nl, "source_fingerprint": fingerprint,
                SOURCE_FILES_KEY: files.seen}
        if fold is None:
            _write_card(tmp, card, writers, writers["train"].label_counts(nl), names)
        else:  # the whole train source's counts in the conversion's own card, each fold's in its view
            whole = writers["train"].label_counts(nl) + writers["val"].label_counts(nl)
            conversion = _conversion_id(views, nl)
            for i, view in enumerate(views):
                directory = os.path.join(tmp, fold_view_name(i, fold[1]))
                if os.path.exists(os.path.join(tmp, FEATURIZER_FILE)):
                    shutil.copyfile(os.path.join(tmp, FEATURIZER_FILE), os.path.join(directory, FEATURIZER_FILE))
                fold_card = {**card, FOLD_KEY: {"index": i, "folds": fold[1], "conversion": conversion}}
                _write_card(directory, fold_card, view, view["train"].label_counts(nl), names)
            _write_card(tmp, {**card, "folds": fold[1]}, {}, whole, names)
        if before_replacing is not None:
            before_replacing(tmp)
    log.info("converted %s -> %s in %.1fs: %s points, %d features, %d labels", cfg.format, cfg.dir,
             time.time() - start, " / ".join(f"{w.num_points} {name}" for name, w in writers.items()), nf, nl)
    return DatasetInfo.load(converted_dir(cfg))


def ensure_converted(data_config, force: bool = False, accept=None) -> DatasetInfo:
    """Returns the DatasetInfo of `data_config.dir` (of its fold's view with `data.val_fold`, `tfxc.data.folds`),
    converting the sources first if needed.

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
    with directory_lock(os.path.abspath(data_config.dir) + ".lock"):
        files = SourceFiles()
        if not force and _current_stats_match(data_config, files):
            take_lease(data_config.dir)
            return DatasetInfo.load(converted_dir(data_config))
        claim = None

        def before_replacing(tmp: str) -> None:
            nonlocal claim
            if accept is not None:
                accept(DatasetInfo.load(converted_dir(dataclasses.replace(data_config, dir=tmp))))
            if os.path.exists(os.path.join(data_config.dir, STATS_FILE)):
                claim = claim_for_replacing(data_config.dir)
                keep_for_dependents(data_config.dir, DatasetInfo.load(tmp))

        try:
            info = convert(data_config, before_replacing, files)
        finally:
            if claim is not None:
                claim.close()
        take_lease(data_config.dir)
        return info


def _current_stats_match(data_config, files: SourceFiles) -> bool:
    """Whether `data_config.dir` holds a conversion of `data_config`'s sources (a damaged card: no); the
    sources' hashes read for it stay in `files`."""
    stats_path = os.path.join(data_config.dir, STATS_FILE)
    if not os.path.exists(stats_path):
        return False
    try:
        with open(stats_path, encoding="utf-8") as f:
            stats = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        log.warning("%s is unreadable (%s); converting again", stats_path, e)
        return False
    if not (isinstance(stats, dict) and is_conversion_of(stats, data_config, files)):
        return False
    try:  # the rest of the card too (label_freq.npy cut short): damaged is as good as not converted
        DatasetInfo.load(data_config.dir)
        DatasetInfo.load(converted_dir(data_config))
    except DataError as e:
        log.warning("%s; converting again", e)
        return False
    return True
