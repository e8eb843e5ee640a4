"""Conversion to TFRecords (real data sets, atomic output, caching) and the training input pipeline."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.config import load_config
from tfxc.data.convert import convert, ensure_converted
from tfxc.data.pipeline import train_dataset
from tfxc.data.readers import XcBowReader
from tfxc.data.tfrecord import read_all
from tfxc.errors import DataError
from tfxc.data.propensity import dataset_propensities


def xc_config(shared_data, out, name="bibtex", **extra):
    sets = ["data.format=xc", f"data.dir={out}", f"data.train={shared_data}/{name}/train.txt",
            f"data.test={shared_data}/{name}/test.txt", f"data.label_names={shared_data}/{name}/labels.txt"]
    return load_config(None, sets + [f"data.{k}={v}" for k, v in extra.items()]).data


@pytest.mark.slow(reason='time: a whole bibtex conversion')
def test_bibtex_converts_to_the_same_rows_with_stats(shared_data, tmp_path):
    info = convert(xc_config(shared_data, tmp_path / "bib", num_shards=3))
    assert (info.num_features, info.num_labels) == (1836, 159)
    assert info.num_points("train") == 4880 and info.num_points("test") == 2515
    assert info.splits["train"]["avg_labels_per_point"] == pytest.approx(2.380, abs=1e-3)
    assert len(info.files("train")) == 3
    assert info.label_names()[:1] == open(f"{shared_data}/bibtex/labels.txt").readline().split("\n")[:1]
    rows = sorted(read_all(info.files("train")), key=lambda r: int(r["row_id"]))
    source = list(XcBowReader(f"{shared_data}/bibtex/train.txt"))
    assert [int(r["row_id"]) for r in rows] == list(range(4880))
    for got, want in zip(rows[::97], source[::97]):
        np.testing.assert_array_equal(got["feat_idx"], want.feat_idx)
        np.testing.assert_array_equal(got["feat_val"], want.feat_val)
        np.testing.assert_array_equal(got["labels"], want.labels)
    assert info.label_freq.sum() == sum(r.labels.size for r in source)
    p = dataset_propensities(info)
    assert p.shape == (159,) and np.all((p > 0) & (p <= 1))


def test_failed_conversion_leaves_nothing_behind(shared_data, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("2 1836 159\n1 0:1\n2 3:oops\n")
    out = tmp_path / "out"
    config = load_config(None, ["data.format=xc", f"data.dir={out}", f"data.train={shared_data}/bibtex/train.txt",
                                f"data.test={bad}"]).data
    with pytest.raises(DataError, match=r"bad.txt:3"):
        convert(config)
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".out")]


def test_conversion_is_cached_until_the_sources_change(shared_data, tmp_path):
    config = xc_config(shared_data, tmp_path / "med", name="medical")
    first = ensure_converted(config)
    stamp = os.path.getmtime(os.path.join(first.dir, "stats.json"))
    ensure_converted(config)
    assert os.path.getmtime(os.path.join(first.dir, "stats.json")) == stamp
    changed = xc_config(shared_data, tmp_path / "med", name="medical", num_shards=2)
    assert len(ensure_converted(changed).files("train")) == 2


def test_a_source_named_by_a_relative_path_reuses_the_conversion_of_its_absolute_path(shared_data, tmp_path,
                                                                                      monkeypatch):
    # (CI reaches the shared data through a symlink, which the working directory below resolves.)
    absolute = xc_config(os.path.abspath(shared_data), tmp_path / "med", name="medical")
    stamp = os.path.getmtime(os.path.join(ensure_converted(absolute).dir, "stats.json"))
    monkeypatch.chdir(os.path.join(shared_data, "medical"))
    relative = xc_config("..", tmp_path / "med", name="medical")
    assert relative.train != absolute.train
    ensure_converted(relative)
    assert os.path.getmtime(os.path.join(absolute.dir, "stats.json")) == stamp

def test_a_killed_conversions_leftovers_are_cleared_and_force_converts_again(shared_data, tmp_path):
    # A SIGKILLed conversion leaves its hidden temporary directory behind; the next one (under the lock)
    # removes it, and leaves unrelated siblings alone.
    stale = tmp_path / ".med.tmp-dead1234"
    stale.mkdir()
    (stale / "train-00000-of-00001.tfrecord").write_bytes(b"partial")
    (tmp_path / ".other.tmp-keep").mkdir()
    config = xc_config(shared_data, tmp_path / "med", name="medical")
    info = ensure_converted(config)
    assert not stale.exists() and (tmp_path / ".other.tmp-keep").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".med")] == []
    stamp = os.path.getmtime(os.path.join(info.dir, "stats.json"))
    os.utime(os.path.join(info.dir, "stats.json"), (stamp - 10, stamp - 10))
    ensure_converted(config, force=True)
    assert os.path.getmtime(os.path.join(info.dir, "stats.json")) > stamp - 10


def test_jsonl_text_converts_with_a_train_vocabulary(shared_data, tmp_path):
    config = load_config(None, ["data.format=jsonl", f"data.dir={tmp_path / 'b77'}",
                                f"data.train={shared_data}/banking77/train.jsonl",
                                f"data.test={shared_data}/banking77/test.jsonl"]).data
    info = convert(config)
    assert info.num_labels == 77 and info.featurizer_path is not None
    assert info.splits["train"]["avg_labels_per_point"] == 1.0
    assert info.label_names() == open(f"{shared_data}/banking77/labels.txt").read().split("\n")[:77]


def global_batches(files, n, gb, pipelines, replicas_per_pipeline, epoch=0, skip=0, num_epochs=1, key="row_id",
                   **options):
    """`key` (row ids) of each global batch, reassembled from every pipeline's per-replica batches."""
    per_pipeline = []
    for p in range(pipelines):
        ctx = tf.distribute.InputContext(pipelines, p, pipelines * replicas_per_pipeline)
        ds = train_dataset(files, num_points=n, global_batch_size=gb, seed=5, shuffle_buffer=1000,
                           epoch=epoch, skip_steps=skip, input_context=ctx, num_epochs=num_epochs, **options)
        per_pipeline.append([b[key].numpy() for b in ds])
    steps = len(per_pipeline[0]) // replicas_per_pipeline
    return [np.concatenate([per_pipeline[p][s * replicas_per_pipeline + r] for p in range(pipelines)
                            for r in range(replicas_per_pipeline)]) for s in range(steps)]


def test_global_batches_do_not_depend_on_the_cluster_shape(shared_data, tmp_path):
    info = convert(xc_config(shared_data, tmp_path / "med", name="medical"))
    files, n = info.files("train"), info.num_points("train")
    one = global_batches(files, n, 32, 1, 1)
    assert len(one) == n // 32
    for pipelines, replicas in ((1, 2), (2, 1), (2, 2)):
        other = global_batches(files, n, 32, pipelines, replicas)
        assert all(np.array_equal(a, b) for a, b in zip(one, other))
    # An epoch is a permutation (minus the dropped remainder), different per epoch, and resumable.
    ids = np.concatenate(one)
    assert len(set(ids)) == len(ids)
    assert not np.array_equal(one[0], global_batches(files, n, 32, 1, 1, epoch=1)[0])
    assert all(np.array_equal(a, b) for a, b in zip(one[3:], global_batches(files, n, 32, 1, 1, skip=3)))
    # One stream over several epochs is the epochs one after another, the skip applying to the first only.
    epoch_1, epoch_2 = (global_batches(files, n, 32, 1, 1, epoch=e) for e in (1, 2))
    stream = global_batches(files, n, 32, 2, 2, epoch=1, skip=2, num_epochs=2)
    assert len(stream) == len(epoch_1) - 2 + len(epoch_2)
    assert all(np.array_equal(a, b) for a, b in zip(stream, epoch_1[2:] + epoch_2))


def test_batches_grouped_by_length_are_an_epoch_of_texts_of_about_one_length(shared_data, tmp_path):
    config = load_config(None, ["data.format=jsonl", f"data.dir={tmp_path / 'clinc'}",
                                f"data.train={shared_data}/clinc150/train.jsonl"]).data
    info = convert(config)
    files, n = info.files("train"), info.num_points("train")
    grouped = global_batches(files, n, 32, 1, 1, group_by_length=16)
    ids = np.concatenate(grouped)
    assert len(grouped) == n // 32 and len(set(ids)) == len(ids)  # an epoch, its remainder dropped
    plain = np.concatenate(global_batches(files, n, 32, 1, 1))
    assert len(set(ids) & set(plain)) > 0.99 * len(ids)  # the same shuffled stream, regrouped
    for pipelines, replicas in ((1, 2), (2, 2)):  # whatever the cluster's shape, and resumable
        assert all(np.array_equal(a, b) for a, b in
                   zip(grouped, global_batches(files, n, 32, pipelines, replicas, group_by_length=16)))
    assert all(np.array_equal(a, b) for a, b in zip(grouped[5:], global_batches(files, n, 32, 1, 1, skip=5,
                                                                                   group_by_length=16)))
    assert not np.array_equal(grouped[0], global_batches(files, n, 32, 1, 1, epoch=1, group_by_length=16)[0])

    def padded_share(batches):  # of each batch's texts padded to its longest, the share that is padding
        lengths = [np.array([len(t) for t in batch]) for batch in batches]
        return 1 - sum(x.sum() for x in lengths) / sum(x.max() * x.size for x in lengths)

    texts = {key: padded_share(global_batches(files, n, 32, 1, 1, key="text", **options))
             for key, options in (("plain", {}), ("grouped", {"group_by_length": 16}))}
    assert texts["plain"] > 0.4 and texts["grouped"] < 0.1, texts  # measured: 0.49 and 0.08


def test_dense_source_dir_converts_train_val_and_test(tmp_path):
    from tfxc.data.synthetic import write_dense_classification

    source = tmp_path / "src"
    write_dense_classification(str(source), num_classes=7, dim=5, num_train=40, num_val=9, num_test=11, seed=2)
    config = load_config(None, ["data.format=dense", f"data.source_dir={source}", f"data.dir={tmp_path / 'out'}"])
    info = ensure_converted(config.data)
    assert {s: info.num_points(s) for s in info.splits} == {"train": 40, "val": 9, "test": 11}
    assert info.num_features == 5
    x = np.load(source / "val" / "features.npy")
    rows = read_all(info.files("val"))
    np.testing.assert_allclose(rows[3]["feat_val"], x[3], rtol=1e-6)  # no exact zeros in N(0, 1) draws
    assert rows[3]["labels"].tolist() == [int(np.load(source / "val" / "labels.npy")[3])]
    # A val directory without rows is an error, not a validation split whose metrics are all NaN.
    np.save(source / "val" / "features.npy", np.zeros((0, 5), np.float32))
    np.save(source / "val" / "labels.npy", np.zeros(0, np.int64))
    with pytest.raises(DataError, match="the val split has no points"):
        ensure_converted(config.data)
    # Without a val directory there is no val split; a missing test file is named.
    os.remove(source / "val" / "features.npy")
    os.remove(source / "val" / "labels.npy")
    assert "val" not in ensure_converted(config.data).splits
    os.remove(source / "test" / "labels.npy")
    with pytest.raises(DataError, match=r"test/labels.npy: missing; a dense source_dir holds"):
        ensure_converted(config.data)


def test_xc_files_with_a_val_split(shared_data, tmp_path):
    medical = os.path.join(shared_data, "medical")
    config = load_config(None, ["data.format=xc", f"data.train={medical}/train.txt", f"data.test={medical}/test.txt",
                                f"data.val={medical}/test.txt", f"data.dir={tmp_path / 'out'}"])
    info = ensure_converted(config.data)
    assert info.num_points("val") == info.num_points("test") == 645


def test_label_frequencies_live_in_npy_and_older_layouts_still_load(shared_data, tmp_path):
    """stats.json stays small however many labels there are; counts go to label_freq.npy."""
    import json

    from tfxc.data.info import LABEL_FREQ_FILE, STATS_FILE, DatasetInfo

    info = convert(xc_config(shared_data, tmp_path / "med", name="medical"))
    freq = np.load(os.path.join(info.dir, LABEL_FREQ_FILE), allow_pickle=False)
    assert freq.dtype == np.int64 and freq.shape == (45,) and freq.sum() == info.label_freq.sum() > 333
    stats_path = os.path.join(info.dir, STATS_FILE)
    stats = json.loads(open(stats_path).read())
    assert "label_freq" not in stats and "propensities" not in stats

    # A directory converted before label_freq.npy: the counts were a list in stats.json (format 0, unversioned).
    os.remove(os.path.join(info.dir, LABEL_FREQ_FILE))
    stats["label_freq"] = freq.tolist()
    stats.pop("format_version")
    open(stats_path, "w").write(json.dumps(stats))
    np.testing.assert_array_equal(DatasetInfo.load(info.dir).label_freq, freq)

    np.save(os.path.join(info.dir, LABEL_FREQ_FILE), freq[:10])
    with pytest.raises(DataError, match=r"label frequencies have shape \(10,\), expected \(45,\)"):
        DatasetInfo.load(info.dir)


def test_label_names_must_match_the_label_count(tmp_path):
    def convert_with(header: str, names: list[str]):
        (tmp_path / "train.txt").write_text(header + "0,1 0:1\n1 1:1\n")
        (tmp_path / "test.txt").write_text(header.replace("2 ", "1 ", 1) + "0 0:1\n")
        (tmp_path / "labels.txt").write_text("".join(n + "\n" for n in names))
        config = load_config(None, ["data.format=xc", f"data.train={tmp_path / 'train.txt'}",
                                    f"data.test={tmp_path / 'test.txt'}", f"data.label_names={tmp_path / 'labels.txt'}",
                                    f"data.dir={tmp_path / 'data'}"])
        return convert(config.data)

    # A labels.txt copied from other data: more names than the header's L is refused, naming both counts.
    with pytest.raises(DataError, match=r"labels.txt: has 3 label names but the data declares 2 labels"):
        convert_with("2 2 2\n", ["a", "b", "c"])
    with pytest.raises(DataError, match=r"has 1 label names but the data declares 2 labels"):
        convert_with("2 2 2\n", ["a"])
    assert convert_with("2 2 2\n", ["a", "b"]).label_names() == ["a", "b"]
    # Without a header the names define L: labels that never occur keep their names.
    info = convert_with("", ["a", "b", "c"])
    assert info.num_labels == 3 and info.label_names() == ["a", "b", "c"] and info.label_freq.tolist() == [1, 2, 0]
    with pytest.raises(DataError, match=r"has 1 label names but the data uses label ids up to 1"):
        convert_with("", ["a"])


def test_val_percent_carves_the_holdout_split_of_the_tool(shared_data, tmp_path):
    import importlib.util

    from helpers import REPO

    spec = importlib.util.spec_from_file_location("holdout_split", os.path.join(REPO, "tools", "holdout_split.py"))
    holdout_split = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(holdout_split)
    info = convert(xc_config(shared_data, tmp_path / "med", name="medical", val_percent=10))
    n_train, n_val = holdout_split.split(f"{shared_data}/medical/train.txt", None, str(tmp_path / "files"), 10, ":")
    assert (info.num_points("train"), info.num_points("val")) == (n_train, n_val)
    assert n_val == pytest.approx(33, abs=15) and info.num_points("test") == 645
    want = {split: list(XcBowReader(str(tmp_path / "files" / f"{split}.txt"))) for split in ("train", "val")}
    for split, rows in want.items():
        got = sorted(read_all(info.files(split)), key=lambda r: int(r["row_id"]))
        assert len(got) == len(rows)
        for a, b in zip(got, rows):
            np.testing.assert_array_equal(a["feat_idx"], b.feat_idx)
            np.testing.assert_array_equal(a["labels"], b.labels)
    # Label frequencies (and so propensities and PIFA) count the points left for training only.
    assert info.label_freq.sum() == sum(r.labels.size for r in want["train"])


def test_val_percent_keeps_groups_together_and_checks_the_group_file(shared_data, tmp_path):
    import json

    from tfxc.data.holdout import in_validation

    # 60 groups of 4 near-identical points; the JSONL ids say which group a point is in.
    ids = [f"n{g:08d}:{i + 1}" for g in range(60) for i in range(4)]
    rows = [f"{g % 7} {g % 5}:0.5 {5 + i % 3}:0.5" for g in range(60) for i in range(4)]
    xc, groups = tmp_path / "train.txt", tmp_path / "train.jsonl"
    xc.write_text(f"{len(rows)} 8 7\n" + "\n".join(rows) + "\n")
    groups.write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    config = load_config(None, ["data.format=xc", f"data.dir={tmp_path / 'out'}", f"data.train={xc}",
                                "data.val_percent=25", f"data.val_groups={groups}"]).data
    info = convert(config)
    held_out = [g for g in range(60) if in_validation(f"n{g:08d}", 25)]
    assert 0 < len(held_out) < 60
    assert (info.num_points("train"), info.num_points("val")) == (4 * (60 - len(held_out)), 4 * len(held_out))
    # The val split holds exactly the rows of the held-out groups.
    want = sorted((g % 7, g % 5, 5 + i % 3) for g in held_out for i in range(4))
    got = sorted((int(r["labels"][0]), *map(int, r["feat_idx"])) for r in read_all(info.files("val")))
    assert got == want
    short = tmp_path / "short.jsonl"
    short.write_text('{"id": "a"}\n{"id": "b"}\n')
    with pytest.raises(DataError, match="short.jsonl has fewer points than"):
        convert(xc_config(shared_data, tmp_path / "bad", val_percent=10, val_groups=short))
    with pytest.raises(Exception, match="either a val source or val_percent"):
        xc_config(shared_data, tmp_path / "x", val_percent=10, val=f"{shared_data}/bibtex/test.txt")


def test_k_fold_validation_splits_partition_the_train_rows(shared_data, tmp_path):
    texts = {}
    for fold in range(3):
        config = load_config(None, ["data.format=jsonl", f"data.dir={tmp_path / str(fold)}",
                                    f"data.train={shared_data}/banking77/test.jsonl", f"data.val_fold={fold}/3"]).data
        info = convert(config)
        texts[fold] = {r["text"] for r in read_all(info.files("val"))}
        train = {r["text"] for r in read_all(info.files("train"))}
        assert not texts[fold] & train
        assert 800 < len(texts[fold]) < 1250  # about a third of 3,080
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    with pytest.raises(Exception, match="val_fold '3/3'"):
        load_config(None, ["data.format=jsonl", "data.dir=x", "data.train=y", "data.val_fold=3/3"])


def test_stats_json_keeps_non_ascii_text_as_itself(tmp_path):
    """stats.json named a source under 数据/ as "\\u6570\\u636e"; the card is UTF-8 text, as every file tfxc
    writes for a person to read (`tfxc.utils.display.json_text`)."""
    import json

    source = tmp_path / "数据"
    source.mkdir()
    for split in ("train", "test"):
        (source / f"{split}.jsonl").write_text("".join(json.dumps({"text": f"今天 天气 {i}", "labels": ["天气"]}) + "\n"
                                                       for i in range(4)), encoding="utf-8")
    config = load_config(None, ["data.format=jsonl", f"data.train={source / 'train.jsonl'}",
                                f"data.test={source / 'test.jsonl'}", f"data.dir={tmp_path / 'out'}",
                                "data.text.min_df=1"])
    info = ensure_converted(config.data)
    text = (tmp_path / "out" / "stats.json").read_text(encoding="utf-8")
    assert "数据" in text and "\\u" not in text, text[:300]
    assert info.num_points("train") == 4  # and it reads back
