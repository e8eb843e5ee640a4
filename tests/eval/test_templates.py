"""tfxc.eval.templates: IJB-style template verification on a synthetic IJB-shaped protocol."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfxc.errors import DataError
from tfxc.eval import templates as t
from tfxc.evaluate import main as evaluate_main


def ijb_protocol(subjects=12, templates_per_subject=3, dim=8, seed=0):
    """An IJB-shaped protocol: subjects with a direction each, templates of stills and video frames (a video
    is one media of several frames) whose embeddings scatter around it. Returns (images, templates, medias,
    embeddings, pairs [(a, b, label)])."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(subjects, dim))
    images, templates, medias, embeddings, subject_of = [], [], [], [], {}
    template, media = 100, 5000
    for subject in range(subjects):
        for _ in range(templates_per_subject):
            template += 1
            subject_of[template] = subject
            for _ in range(rng.integers(1, 4)):  # media: a still (1 frame) or a video (2-5 frames)
                media += 1
                for _ in range(1 if rng.random() < 0.5 else rng.integers(2, 6)):
                    images.append(f"img/{len(images)}.jpg")
                    templates.append(template)
                    medias.append(media)
                    embeddings.append(centres[subject] + rng.normal(scale=1.2, size=dim))
    ids = sorted(subject_of)
    pairs = [(a, b, int(subject_of[a] == subject_of[b])) for i, a in enumerate(ids) for b in ids[i + 1:]]
    return images, np.array(templates), np.array(medias), np.array(embeddings), pairs


def pooled_as_insightface_does(embeddings, templates, medias):
    """eval_ijbc.py's image2template_feature written plainly: normalise, mean per media, sum per template."""
    x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    out = {}
    for template in np.unique(templates):
        in_t = templates == template
        feature = sum(x[in_t & (medias == m)].mean(0) for m in np.unique(medias[in_t]))
        out[template] = feature / np.linalg.norm(feature)
    return out


def test_templates_pool_each_media_once_then_normalise():
    _, templates, medias, embeddings, _ = ijb_protocol()
    ids, features = t.template_features(embeddings, templates, medias)
    expected = pooled_as_insightface_does(embeddings, templates, medias)
    assert ids.tolist() == sorted(expected)
    np.testing.assert_allclose(features, np.stack([expected[i] for i in ids]), atol=1e-12)
    # A video's frames weigh as one media: ten copies of a frame change nothing.
    frame = np.flatnonzero(templates == templates[0])[0]
    more = np.concatenate([embeddings, np.repeat(embeddings[frame:frame + 1], 10, 0)])
    _, again = t.template_features(more, np.r_[templates, [templates[0]] * 10], np.r_[medias, [medias[frame]] * 10])
    if (medias == medias[frame]).sum() == 1:  # a still: its copies make it a video of identical frames
        np.testing.assert_allclose(again, features, atol=1e-12)


def write_protocol(tmp_path, images, templates, medias, pairs):
    (tmp_path / "tid_mid.txt").write_text("".join(f"{i} {a} {m}\n" for i, a, m in zip(images, templates, medias)))
    (tmp_path / "pairs.txt").write_text("".join(f"{a} {b} {label}\n" for a, b, label in pairs))
    return str(tmp_path / "tid_mid.txt"), str(tmp_path / "pairs.txt")


def write_extraction(directory, refs, features):
    (directory / "train").mkdir(parents=True)
    np.save(directory / "train" / "features.npy", features.astype(np.float32))
    (directory / "train" / "refs.txt").write_text("\n".join(refs) + "\n")
    (directory / "extract.json").write_text("{}")
    return str(directory)


def test_the_protocol_scores_from_extracted_features(tmp_path, capsys):
    images, templates, medias, embeddings, pairs = ijb_protocol()
    listed, pair_file = write_protocol(tmp_path, images, templates, medias, pairs)
    order = np.random.default_rng(1).permutation(len(images))  # the extraction's rows in another order
    features = write_extraction(tmp_path / "features", [images[i] for i in order], embeddings[order])
    roc = tmp_path / "roc.csv"
    assert evaluate_main(["--features", features, "--templates", listed, "--template-pairs", pair_file, "--json",
                          "--roc", str(roc)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    pooled = pooled_as_insightface_does(embeddings.astype(np.float32).astype(np.float64), templates, medias)
    scores = np.array([pooled[a] @ pooled[b] for a, b, _ in pairs])
    same = np.array([label for *_, label in pairs], bool)
    genuine, impostor = np.sort(scores[same]), scores[~same]
    assert (report["templates"], report["pairs"], report["genuine_pairs"]) == (36, 630, 36)
    # TAR@FAR=0.01 by its definition: the impostors' 1 % quantile (6 of 594 may score at or above it).
    threshold = np.sort(impostor)[::-1][int(0.01 * impostor.size)]
    assert report["tar@far=0.01"] == pytest.approx((genuine > threshold).mean() * 100, abs=1e-9)
    assert "tar@far=0.001" not in report  # 594 impostor pairs cannot measure a rate of 1 in 1,000
    assert 90 < report["roc_auc"] <= 100
    assert open(roc).readline().strip() == "far,tar,threshold"
    ET.parse(tmp_path / "roc.svg")


@pytest.mark.parametrize("listing, pairs, message", [
    ("a.jpg 1 2\nb.jpg 1\n", "1 1 1\n", r"tid_mid.txt:2: expected 'image template media', got 'b.jpg 1'"),
    ("a.jpg 1 x7\n", "1 1 1\n", r"tid_mid.txt:1: field 'media': 'x7' is not a non-negative integer id"),
    ("", "1 1 1\n", r"tid_mid.txt: no templates"),
    ("a.jpg 1 2\nb.jpg 2 3\n", "1 2 0\n1 9 1\n", r"pairs.txt:2: field 'template_b': template 9 is not in the "
                                                 r"template list"),
    ("a.jpg 1 2\nb.jpg 2 3\n", "1 2 yes\n", r"pairs.txt:1: expected 'template_a template_b label' \(label 1 or 0\)"),
    ("a.jpg 1 2\nb.jpg 2 3\n", "1 2 0\n2 1 0\n", r"pairs.txt: a protocol needs genuine and impostor pairs; this "
                                                 r"one has 0 genuine of 2"),
])
def test_a_bad_protocol_is_refused_naming_file_and_line(tmp_path, listing, pairs, message):
    (tmp_path / "tid_mid.txt").write_text(listing)
    (tmp_path / "pairs.txt").write_text(pairs)
    with pytest.raises(DataError, match=message):
        listed = t.read_template_list(str(tmp_path / "tid_mid.txt"))
        t.read_template_pairs(str(tmp_path / "pairs.txt"), listed.templates)


def test_an_image_without_features_is_named(tmp_path, capsys):
    listed, pairs = write_protocol(tmp_path, ["a.jpg", "b.jpg", "c.jpg"], [1, 2, 3], [1, 2, 3],
                                   [(1, 2, 1), (1, 3, 0)])
    features = write_extraction(tmp_path / "f", ["a.jpg", "c.jpg"], np.eye(2))
    with pytest.raises(SystemExit) as stopped:
        evaluate_main(["--features", features, "--templates", listed, "--template-pairs", pairs])
    assert stopped.value.code != 0
    assert "image 'b.jpg' (image 2 of the template list) has no extracted features" in capsys.readouterr().err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(listing=st.binary(max_size=200), pairs=st.binary(max_size=200))
def test_any_bytes_as_a_protocol_are_read_or_refused_by_name(tmp_path, listing, pairs):
    """Random bytes as the two files: read, or a DataError naming a file; never another exception."""
    (tmp_path / "tid_mid.txt").write_bytes(listing)
    (tmp_path / "pairs.txt").write_bytes(pairs)
    try:
        listed = t.read_template_list(str(tmp_path / "tid_mid.txt"))
        t.read_template_pairs(str(tmp_path / "pairs.txt"), listed.templates)
    except DataError as error:
        assert "tid_mid.txt" in str(error) or "pairs.txt" in str(error)
