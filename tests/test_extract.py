"""python -m tfxc.extract: real digit scans -> a tiny backbone's features in the dense layout -> a trained head."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest

from helpers import REPO, cli_env, digit_images, huge_png, run_cli, tiny_vision_preset
from tfxc.images.backbones import VisionFeatures, load_vision_backbone
from tfxc.images.preprocessing import batch_inputs, load_converter


@pytest.fixture(scope="module")
def digits():
    return digit_images(size=16)


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("digits")
    for i, (data, label) in enumerate(digits):
        os.makedirs(root / f"digit{label}", exist_ok=True)
        (root / f"digit{label}" / f"{i:04d}.png").write_bytes(data)
    return str(root)


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    return tiny_vision_preset("resnet", tmp_path_factory.mktemp("resnet"), image_size=16)


def extract(*args, **kwargs):
    return json.loads(run_cli("tfxc.extract", *args, **kwargs).stdout)


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.slow(reason="time: docs/images.md's first block extracts a digit folder in the default suite")
def test_folder_to_features(tmp_path, digit_folder, resnet, digits):
    out = str(tmp_path / "features")
    card = extract("--folder", digit_folder, "--preset", resnet, "--out", out, "--batch-size", "100",
                   "--precision", "float32")
    assert card["images"] == 1797 and card["num_labels"] == 10 and card["backbone"] == "ResNetBackbone"
    assert card["splits"] == {"train": 1437, "val": 180, "test": 180} and card["pooling"] == "avg"
    x = np.load(os.path.join(out, "train", "features.npy"))
    y = np.load(os.path.join(out, "train", "labels.npy"))
    assert x.shape == (1437, card["dim"]) and x.dtype == np.float32 and y.dtype == np.int64
    assert open(os.path.join(out, "labels.txt")).read().split() == [f"digit{d}" for d in range(10)]
    refs = open(os.path.join(out, "train", "refs.txt")).read().split()
    # Each row is its image: the label of the folder it came from, and the features the backbone gives it.
    assert [int(r.split(os.sep)[0][5:]) for r in refs] == y.tolist()
    converter = load_converter(resnet)
    features = VisionFeatures(load_vision_backbone(resnet))
    some = refs[:5]
    images = batch_inputs(converter)(np.array([open(os.path.join(digit_folder, r), "rb").read() for r in some]))
    np.testing.assert_allclose(features(images).numpy(), x[:5], rtol=1e-4, atol=1e-5)
    assert not os.path.exists(os.path.join(out, ".extract"))
    # The same command again finds the work done.
    assert extract("--folder", digit_folder, "--preset", resnet, "--out", out, "--batch-size", "100",
                   "--precision", "float32")["already_done"]


@pytest.mark.slow(reason="time: docs/images.md's first block runs the same path in the default suite")
def test_the_features_train_a_head_above_chance(tmp_path, digit_folder, resnet):
    out = str(tmp_path / "features")
    extract("--folder", digit_folder, "--preset", resnet, "--out", out, "--batch-size", "100", "--precision",
            "float32")
    # The output trains with the dense readers as they are: a linear head on random-weight features.
    run = run_cli("tfxc.train", "--train", out, "--model-dir", str(tmp_path / "model"), "--set", "trainer.epochs=30",
                  timeout=400)
    test_line = [line for line in run.stdout.splitlines() if line.startswith("test:")][-1]
    accuracy = float(test_line.split("P@1 ")[1].split()[0])
    assert accuracy > 35.0, test_line  # 10 classes: chance is 10


@pytest.mark.slow(reason='time: a ResNet extraction of 1,797 images')
def test_split_file_and_errors(tmp_path, digit_folder, resnet):
    refs = sorted(os.path.relpath(os.path.join(d, f), digit_folder) for d, _, files in os.walk(digit_folder)
                  for f in files)
    lines = ["ref,split"] + [f"{r},{'test' if i % 4 == 0 else 'train'}" for i, r in enumerate(refs)]
    (tmp_path / "splits.csv").write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "out")
    card = extract("--folder", digit_folder, "--preset", resnet, "--out", out, "--split-file",
                   str(tmp_path / "splits.csv"), "--batch-size", "256")
    assert card["splits"] == {"train": 1347, "val": 0, "test": 450}
    assert open(os.path.join(out, "test", "refs.txt")).read().split() == refs[::4]
    assert not os.path.exists(os.path.join(out, "val"))  # no rows: no folder (the dense layout's val is optional)
    (tmp_path / "short.csv").write_text("\n".join(lines[:10]) + "\n")
    failed = run_cli("tfxc.extract", "--folder", digit_folder, "--preset", resnet, "--out", str(tmp_path / "o2"),
                     "--split-file", str(tmp_path / "short.csv"), check=False)
    assert failed.returncode == 2 and f"image 9 ({refs[9]}) is not in the split file" in failed.stderr
    # Other settings on a finished output are refused, not mixed in.
    failed = run_cli("tfxc.extract", "--folder", digit_folder, "--preset", resnet, "--out", out, check=False)
    assert failed.returncode == 2 and "other settings; add --restart" in failed.stderr


def test_an_undecodable_image_is_named(tmp_path, digits, resnet):
    for i, (data, label) in enumerate(digits[:40]):
        os.makedirs(tmp_path / "src" / f"d{label}", exist_ok=True)
        (tmp_path / "src" / f"d{label}" / f"{i:03d}.png").write_bytes(data if i != 17 else data[:40])
    failed = run_cli("tfxc.extract", "--folder", str(tmp_path / "src"), "--preset", resnet, "--out",
                     str(tmp_path / "out"), "--batch-size", "8", check=False)
    bad = [f for f in os.listdir(tmp_path / "src" / f"d{digits[17][1]}") if f.startswith("017")][0]
    assert failed.returncode == 2 and f"cannot use an image: d{digits[17][1]}/{bad}" in failed.stderr


def extract_in_process(capsys, *args) -> tuple[int, str]:
    """(exit status, stderr) of `python -m tfxc.extract args` run in this process (no interpreter to start)."""
    from tfxc.extract import main

    with pytest.raises(SystemExit) as ended:
        main(list(args))
    return ended.value.code, capsys.readouterr().err


def small_folder(root, digits, count=6):
    for i, (data, label) in enumerate(digits[:count]):
        os.makedirs(root / f"d{i % 2}", exist_ok=True)
        (root / f"d{i % 2}" / f"{i:03d}.png").write_bytes(data)
    return str(root)


def test_an_image_over_the_pixel_budget_is_refused_by_name(tmp_path, digits, resnet, capsys):
    src = small_folder(tmp_path / "src", digits)
    (tmp_path / "src" / "d1" / "bomb.png").write_bytes(huge_png())  # 1.7 MB, 400 M pixels: 1.2 GB decoded
    status, err = extract_in_process(capsys, "--folder", src, "--preset", resnet, "--out", str(tmp_path / "out"),
                                     "--batch-size", "4")
    assert status == 2 and err.count("\n") == 1, err
    assert (f"cannot use an image: d1{os.sep}bomb.png: a PNG of 20000x20000 = 400000000 pixels, over the budget of "
            "89478485 pixels (--max-pixels)") in err
    # The budget is a setting: 16 x 16 digits over a budget of 255 pixels.
    status, err = extract_in_process(capsys, "--folder", src, "--preset", resnet, "--out", str(tmp_path / "o2"),
                                     "--max-pixels", "255", "--restart")
    assert status == 2 and "16x16 = 256 pixels, over the budget of 255 pixels (--max-pixels)" in err, err


def test_an_image_that_cannot_be_opened_is_one_line_not_a_traceback(tmp_path, digits, resnet, capsys):
    src = small_folder(tmp_path / "src", digits)
    os.symlink(str(tmp_path / "nonexistent.png"), tmp_path / "src" / "d1" / "dangling.png")
    status, err = extract_in_process(capsys, "--folder", src, "--preset", resnet, "--out", str(tmp_path / "out"),
                                     "--batch-size", "2", "--split", "train=0.5,test=0.5")
    assert status == 2 and err.count("\n") == 1, err
    assert err.startswith("tfxc: error: ") and "dangling.png" in err and "No such file or directory" in err, err


def test_an_output_over_or_inside_the_image_folder_is_refused(tmp_path, digits, resnet, capsys):
    src = small_folder(tmp_path / "src", digits)
    before = sorted(os.listdir(src))
    for out, says in ((src, "is the image folder"), (os.path.join(src, "d0", "features"), "is inside the image folder"),
                      (str(tmp_path), "contains the image folder")):
        status, err = extract_in_process(capsys, "--folder", src, "--preset", resnet, "--out", out)
        assert status == 2 and says in err, (out, err)
    assert sorted(os.listdir(src)) == before and sorted(os.listdir(os.path.join(src, "d0"))) == ["000.png", "002.png",
                                                                                                 "004.png"]


def test_webdataset_shards_with_class_ids(tmp_path, digits, resnet):
    for shard in range(3):
        with tarfile.open(tmp_path / f"part-{shard}.tar", "w") as tar:
            for i in range(shard * 50, shard * 50 + 50):
                for name, payload in ((f"{i:05d}.png", digits[i][0]), (f"{i:05d}.cls", str(digits[i][1]).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    out = str(tmp_path / "out")
    card = extract("--webdataset", str(tmp_path / "part-{0..2}.tar"), "--preset", resnet, "--out", out,
                   "--split", "train=0.6,test=0.4", "--seed", "3")
    assert card["splits"] == {"train": 90, "val": 0, "test": 60} and card["num_labels"] == 10
    refs = open(os.path.join(out, "test", "refs.txt")).read().split()
    assert np.load(os.path.join(out, "test", "labels.npy")).tolist() == [digits[int(r)][1] for r in refs]
    assert not os.path.exists(os.path.join(out, "labels.txt"))  # integer class ids have no names


def test_a_recordio_set_extracts_as_its_identities(tmp_path, digits, resnet):
    """insightface's train.rec + train.idx (written in the format's own layout): the image records in key order,
    labelled from their headers, embedded as the same images from a folder are."""
    from tfxc.images.recordio import write_recordio

    write_recordio(str(tmp_path / "train.rec"), [(label, data) for data, label in digits[:120]])
    out = str(tmp_path / "out")
    card = extract("--recordio", str(tmp_path / "train.rec"), "--preset", resnet, "--out", out,
                   "--split", "train=0.5,test=0.5", "--seed", "1", "--precision", "float32")
    assert card["splits"]["train"] + card["splits"]["test"] == 120 and card["num_labels"] == 10
    by_label = sorted(((label, data) for data, label in digits[:120]), key=lambda pair: pair[0])
    refs = open(os.path.join(out, "test", "refs.txt")).read().split()
    assert np.load(os.path.join(out, "test", "labels.npy")).tolist() == [by_label[int(r) - 1][0] for r in refs]
    converter, features = load_converter(resnet), VisionFeatures(load_vision_backbone(resnet))
    images = batch_inputs(converter)(np.array([by_label[int(r) - 1][1] for r in refs[:8]]))
    np.testing.assert_allclose(np.load(os.path.join(out, "test", "features.npy"))[:8], features(images).numpy(),
                               rtol=1e-4, atol=1e-5)
    both = run_cli("tfxc.extract", "--recordio", str(tmp_path / "train.rec"), "--folder", str(tmp_path), "--preset",
                   resnet, "--out", str(tmp_path / "o2"), check=False)
    assert both.returncode == 2 and "--recordio reads a RecordIO set alone" in both.stderr


@pytest.mark.slow(reason='kills or signals a process of its own')
def test_resume_after_kill_is_byte_identical(tmp_path, digit_folder, resnet):
    common = ["--folder", digit_folder, "--preset", resnet, "--batch-size", "16", "--chunk-rows", "64",
              "--image-size", "64", "--precision", "float32"]
    whole = str(tmp_path / "whole")
    extract(*common, "--out", whole)
    cut = str(tmp_path / "cut")
    proc = subprocess.Popen([sys.executable, "-m", "tfxc.extract", *common, "--out", cut], env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    progress = os.path.join(cut, ".extract", "progress.json")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(progress) and json.load(open(progress))["done"] >= 256:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.load(open(progress))["done"]
    assert 256 <= killed_at < 1797, "the extraction ended before it could be killed mid-way"
    card = extract(*common, "--out", cut)
    assert card["resumed_at"] >= killed_at
    for split in ("train", "val", "test"):
        for name in ("features.npy", "labels.npy", "refs.txt"):
            assert sha(os.path.join(cut, split, name)) == sha(os.path.join(whole, split, name)), (split, name)


@pytest.mark.parametrize("name", ["extract_glint360k.json", "extract_treeoflife.json"])
def test_shipped_extraction_configs_name_known_options(name):
    from tfxc.extract import build_parser, config_defaults

    options = config_defaults(build_parser(), os.path.join(REPO, "configs", name))
    assert options["preset"] and options["out"] and (options.get("webdataset") or options.get("catalog"))
