"""Face verification end to end: an image encoder with insightface's embedding under MHS-ArcFace, trained on
seven digit 'identities' and verified on LFW-format pairs of the three it never saw, through the SavedModel's
`embed` signature."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from helpers import digit_images, run_cli, tiny_vision_preset
from tfxc.errors import DataError
from tfxc.eval.verification import pair_scores, read_pairs, roc_curve, verification_report, write_roc


def write_lfw(root, digits, identities, pairs_per_fold=15, folds=4, seed=0):
    """LFW's layout (root/name/name_000n.jpg) of the digits of `identities`, and a pairs.txt of `folds` folds."""
    rng = np.random.default_rng(seed)
    people = {}
    for data, label in digits:
        if label in identities:
            name = f"Digit_{label}"
            people.setdefault(name, []).append(data)
            os.makedirs(root / name, exist_ok=True)
            (root / name / f"{name}_{len(people[name]):04d}.jpg").write_bytes(data)
    names = sorted(people)
    lines = [f"{folds}\t{pairs_per_fold}"]
    for _ in range(folds):
        for _ in range(pairs_per_fold):
            name = names[rng.integers(len(names))]
            a, b = rng.choice(len(people[name]), 2, replace=False) + 1
            lines.append(f"{name}\t{a}\t{b}")
        for _ in range(pairs_per_fold):
            x, y = rng.choice(len(names), 2, replace=False)
            lines.append(f"{names[x]}\t{rng.integers(len(people[names[x]])) + 1}\t{names[y]}\t"
                         f"{rng.integers(len(people[names[y]])) + 1}")
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return str(root / "pairs.txt")


def test_read_pairs_lfw_and_csv(tmp_path):
    (tmp_path / "pairs.txt").write_text("2\t1\nAl_A\t1\t3\nAl_A\t2\tBo_B\t1\nBo_B\t1\t2\nAl_A\t1\tBo_B\t2\n")
    pairs, same, folds = read_pairs(str(tmp_path / "pairs.txt"), "/lfw")
    assert pairs[1] == ("/lfw/Al_A/Al_A_0002.jpg", "/lfw/Bo_B/Bo_B_0001.jpg")
    assert same.tolist() == [True, False, True, False] and folds.tolist() == [0, 0, 1, 1]
    (tmp_path / "pairs.csv").write_text("image_a,image_b,same\na.jpg,b.jpg,1\nc.jpg,d.jpg,false\n")
    pairs, same, folds = read_pairs(str(tmp_path / "pairs.csv"))
    assert pairs[0] == (str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")) and same.tolist() == [True, False]
    assert folds is None
    (tmp_path / "bad.txt").write_text("1\t1\nAl_A\tone\t3\n")
    with pytest.raises(DataError, match=r"bad.txt:2: expected 'name n1 n2'"):
        read_pairs(str(tmp_path / "bad.txt"))


@pytest.mark.parametrize("fold", ["x", "²", "1.5", ""])
def test_read_pairs_csv_fold_not_an_integer_names_its_line(tmp_path, fold):
    (tmp_path / "pairs.csv").write_text(f"image_a,image_b,same,fold\na.jpg,b.jpg,1,0\nc.jpg,d.jpg,0,{fold}\n",
                                        encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs.csv:3: .*fold.*not a non-negative integer"):
        read_pairs(str(tmp_path / "pairs.csv"))


@pytest.mark.parametrize("content, line, message", [
    ("10 0\nA 1 2\n", 1, "FOLDS and PAIRS must be at least 1"),  # was ZeroDivisionError
    ("0 1\nA 1 2\n", 1, "FOLDS and PAIRS must be at least 1"),
    ("1 \u00b2\nA 1 2\n", 1, "expected LFW's header"),  # '²'.isdigit() is True, int('²') a ValueError
    ("1 1\nA \u00b2 2\nA 1 B 2\n", 2, "expected 'name n1 n2'"),
    ("1 1\nA 1 2\nA 1 B \u0663\n", 3, "expected 'name n1 n2'"),  # an Arabic-Indic three
    ("1 1\nA 0 2\nA 1 B 2\n", 2, "image numbers start at 1"),
    ("1 1\nA 1 " + "9" * 5000 + "\nA 1 B 2\n", 2, "image numbers start at 1"),  # int() refuses 5000 digits
    ("1 1\nA 1 2\nA 1 B 2\nA 2 3\n", 4, "the header declares 1 fold of 1 genuine and 1 impostor pair"),
    ("2 1\nA 1 2\nA 1 B 2\n", None, "the header declares 2 folds of 1 genuine and 1 impostor pair .4 pairs., "
                                     "the file has 2"),
])
def test_read_pairs_lfw_refuses_bad_numbers_naming_the_line(tmp_path, content, line, message):
    (tmp_path / "pairs.txt").write_text(content, encoding="utf-8")
    where = "pairs.txt" + (f":{line}" if line else "")
    with pytest.raises(DataError, match=rf"{where}: .*{message}"):
        read_pairs(str(tmp_path / "pairs.txt"))


def test_evaluate_pairs_reports_a_bad_pair_list_in_one_line_before_loading_a_model(tmp_path):
    (tmp_path / "p0.txt").write_text("10 0\nA 1 2\n")
    out = run_cli("tfxc.evaluate", "--model-dir", str(tmp_path / "model"), "--pairs", str(tmp_path / "p0.txt"),
                  check=False)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [f"tfxc: error: {tmp_path / 'p0.txt'}:1: FOLDS and PAIRS must be at "
                                               "least 1, got '10 0'"]


@pytest.mark.parametrize("name, content, line", [
    ("pairs.txt", b"1 1\nA 1 2\nJos\xe9 1 B 2\n", 3),
    ("pairs.csv", b"image_a,image_b,same\na.jpg,b.jpg,1\nJos\xe9.jpg,b.jpg,0\n", 3),
])
def test_read_pairs_not_utf8_names_the_line_as_the_other_readers(tmp_path, name, content, line):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=rf"{name}:{line}: not valid UTF-8 text: byte 0xe9 at byte 4"):
        read_pairs(str(tmp_path / name))


def test_read_pairs_csv_rows_keep_the_first_rows_cell_count(tmp_path):
    (tmp_path / "pairs.csv").write_text("image_a,image_b,same\na.jpg,b.jpg,1\nc, d.jpg,e.jpg,0\n")
    with pytest.raises(DataError, match=r"pairs.csv:3: has 4 cells where the first row has 3"):
        read_pairs(str(tmp_path / "pairs.csv"))


def test_roc_is_drawn_as_an_svg_beside_its_csv(tmp_path):
    rng = np.random.default_rng(0)
    same = np.arange(400) % 4 == 0
    scores = rng.normal(same * 1.5, 1.0)
    far, tar, thresholds = roc_curve(scores, same)
    svg_path = write_roc(str(tmp_path / "roc.csv"), far, tar, thresholds)
    assert svg_path == str(tmp_path / "roc.svg")
    assert sorted(os.listdir(tmp_path)) == ["roc.csv", "roc.svg"]  # no temporaries left
    csv_points = np.loadtxt(tmp_path / "roc.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(csv_points, np.c_[far, tar, thresholds], rtol=1e-7)
    root = ET.parse(svg_path).getroot()  # well-formed XML
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = " ".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "FAR" in texts and "TAR" in texts and "log scale" in texts
    (curve,) = root.findall(".//svg:polyline[@class='roc']", ns)
    (frame,) = root.findall(".//svg:rect[@class='frame']", ns)
    x0, y0, w, h = (float(frame.get(k)) for k in ("x", "y", "width", "height"))
    drawn = np.array([[float(v) for v in point.split(",")] for point in curve.get("points").split()])
    # Read back through the frame's axes: log10 FAR from data-log-far-min to 0, TAR from 0 (bottom) to 1; a
    # FAR of 0 sits on the left edge.
    left = float(curve.get("data-log-far-min"))
    read = np.c_[left + (drawn[:, 0] - x0) / w * -left, 1 - (drawn[:, 1] - y0) / h]
    expected = np.c_[np.log10(np.maximum(far, 10.0 ** left)), tar]
    assert len(drawn) == len(far)  # 400 pairs: no two points within 0.05 px
    np.testing.assert_allclose(read, expected, atol=1e-4)
    assert left <= np.log10(far[far > 0].min())


def test_pair_scores_embed_each_image_once():
    calls = []

    def embed(images):
        calls.append(list(images))
        return np.array([[1.0, 0.0] if "a" in i else [0.6, 0.8] for i in images])

    scores = pair_scores([("a1", "b1"), ("a1", "a2"), ("b1", "a2")], embed)
    np.testing.assert_allclose(scores, [0.6, 1.0, 0.6])
    assert calls == [["a1", "a2", "b1"]]


def test_mhs_arcface_on_digit_identities_verified_on_unseen_ones(tmp_path):
    digits = digit_images(size=16, fmt="jpeg")
    seen = [(data, label) for data, label in digits if label < 7]
    for i, (data, label) in enumerate(seen):
        split = "test" if i % 6 == 0 else "train"
        os.makedirs(tmp_path / "ids" / split / f"id{label}", exist_ok=True)
        (tmp_path / "ids" / split / f"id{label}" / f"{i:04d}.jpg").write_bytes(data)
    pairs = write_lfw(tmp_path / "lfw", digits, identities={7, 8, 9})
    preset = tiny_vision_preset("resnet", tmp_path / "preset", image_size=16, width=32)
    config = {"data": {"format": "images", "train": str(tmp_path / "ids" / "train"),
                       "test": str(tmp_path / "ids" / "test"), "dir": str(tmp_path / "data")},
              "model": {"encoder": {"name": "image", "preset": preset, "augment": ["flip"], "embedding_dim": 32},
                        "head": {"name": "mhs", "num_classes": [4, 2], "margin": "arcface", "margin_scale": 16.0,
                                 "margin_m": 0.3}},
              "optimizer": {"name": "adam", "learning_rate": 0.003},
              "trainer": {"global_batch_size": 64, "epochs": 8, "steps_per_loop": 20, "log_every_steps": 40}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    model_dir, export_dir = str(tmp_path / "model"), str(tmp_path / "export")
    run_cli("tfxc.train", "--config", str(tmp_path / "config.json"), "--model-dir", model_dir, timeout=600)
    run_cli("tfxc.export", "--model-dir", model_dir, "--out", export_dir, timeout=300)
    roc = tmp_path / "roc.csv"
    report = json.loads(run_cli("tfxc.evaluate", "--model-dir", export_dir, "--pairs", pairs, "--json",
                                "--roc", str(roc), timeout=300).stdout.strip().splitlines()[-1])
    assert report["pairs"] == 120 and report["genuine_pairs"] == 60 and report["folds"] == 4
    assert 55.0 < report["accuracy"] <= 100.0, report  # identities never trained on: chance is 50
    # The same figures from the SavedModel's embed signature, read here.
    import tensorflow as tf

    embed = tf.saved_model.load(export_dir).signatures["embed"]
    read, same, folds = read_pairs(pairs)
    scores = pair_scores(read, lambda images: embed(image=tf.constant([open(p, "rb").read() for p in images]))
                         ["embedding"].numpy())
    expected = verification_report(scores, same, folds)
    for key in ("accuracy", "roc_auc", "tar@far=0.1" if "tar@far=0.1" in expected else "roc_auc"):
        assert report[key] == pytest.approx(expected[key], abs=1e-6), key
    assert open(roc).readline().strip() == "far,tar,threshold"
    ET.parse(tmp_path / "roc.svg")
    # A REST body of JPEG bytes in base64, one a row, answered as TF Serving reads it: embed's outputs come
    # back as one object a row.
    import base64

    from tfxc.export.rest import answer

    images = sorted({path for pair in read for path in pair})[:4]
    body = {"signature_name": "embed",
            "instances": [{"b64": base64.b64encode(open(p, "rb").read()).decode()} for p in images]}
    rest = np.array([row["embedding"] for row in answer(export_dir, json.dumps(body))["predictions"]], np.float32)
    np.testing.assert_array_equal(rest, embed(image=tf.constant([open(p, "rb").read() for p in images]))["embedding"])
    # IJB-style templates of the same unseen identities, flip-tested: a still and a two-frame video each.
    from tfxc.eval.templates import pair_scores as template_scores
    from tfxc.eval.templates import template_features, template_report
    from tfxc.evaluate import verify_templates
    from tfxc.images.preprocessing import mirrored_png

    lfw, listing, owner = tmp_path / "lfw", [], {}
    for name in sorted(p.name for p in lfw.iterdir() if p.is_dir()):
        files = sorted(os.listdir(lfw / name))[:24]
        for start in range(0, len(files), 3):
            template = len(owner) + 1
            owner[template] = name
            listing += [(f"{name}/{file}", template, 2 * template + (k > 0)) for k, file in
                        enumerate(files[start:start + 3])]
    (tmp_path / "tid_mid.txt").write_text("".join(f"{i} {a} {m}\n" for i, a, m in listing))
    ids = sorted(owner)
    (tmp_path / "t_pairs.txt").write_text("".join(f"{a} {b} {int(owner[a] == owner[b])}\n"
                                                  for i, a in enumerate(ids) for b in ids[i + 1:]))
    report = verify_templates(export_dir, str(tmp_path / "tid_mid.txt"), str(tmp_path / "t_pairs.txt"), str(lfw),
                              str(tmp_path / "t_roc.csv"), flip=True)
    assert (report["templates"], report["images"], report["pairs"]) == (24, 72, 276), report
    data = [open(lfw / image, "rb").read() for image, _, _ in listing]
    raw = embed(image=tf.constant(data))["raw_embedding"].numpy() + \
        embed(image=tf.constant([mirrored_png(d) for d in data]))["raw_embedding"].numpy()
    template_ids, features = template_features(raw, [a for _, a, _ in listing], [m for *_, m in listing])
    pairs_a, pairs_b = np.triu_indices(len(ids), 1)
    scores = template_scores(template_ids, features, template_ids[pairs_a], template_ids[pairs_b])
    expected = template_report(scores, [owner[template_ids[i]] == owner[template_ids[j]]
                                        for i, j in zip(pairs_a, pairs_b)])
    for key in ("roc_auc", "tar@far=0.1", "tar@far=0.01"):
        assert report[key] == pytest.approx(expected[key], abs=1e-4), key
    assert report["roc_auc"] > 55  # unseen identities: chance is 50
    ET.parse(tmp_path / "t_roc.svg")
