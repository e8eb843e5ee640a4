"""Template verification, as IJB-B / IJB-C score face recognisers (Whitelam et al., 2017; Maze et al., 2018).

A subject is enrolled as a *template*: several still images and video frames, each frame of a video (a
*media*) and each still a media of its own. A protocol is a list of 1:1 template pairs, genuine or impostor.
The scoring follows insightface's `eval_ijbc.py`:

  1. each image's embedding (with `flip`: the embedding of the image plus that of its mirror image), L2-
     normalised;
  2. per template, the mean of each media's normalised embeddings, summed over the template's media (a
     video counts once, however many frames it has), L2-normalised;
  3. a pair's score is the cosine similarity of its two templates.

The figures: TAR at FAR 1e-6 ... 1e-1 (where the impostor pairs are enough to measure that rate), the ROC and
its area. TAR@FAR is the true-accept rate at the lowest threshold whose false-accept rate is at most the FAR
(`tfxc.eval.open_set.tar_at_far`); insightface reads the TPR at the ROC point of FAR nearest to it, which may
lie above the FAR.

Files (UTF-8, optionally gzip; IJB's own layouts, whitespace-separated):
  template list   "image template media" a line (IJB-C's `ijbc_face_tid_mid.txt`), image paths relative to
                  an image root;
  pair list       "template_a template_b label" a line, label 1 (genuine) or 0 (IJB-C's
                  `ijbc_template_pair_label.txt`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfxc.errors import DataError

FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
PAIR_BATCH = 1 << 16  # template pairs scored a batch: memory stays [batch, dim] for IJB-C's 15.7 M pairs


@dataclass(frozen=True)
class TemplateList:
    """The images of a protocol's templates.

    Attributes:
      images: the image paths (as written in the list), one per line.
      templates: int64 [n], each image's template id.
      medias: int64 [n], each image's media id (the video or still it comes from).
    """

    images: list[str]
    templates: np.ndarray
    medias: np.ndarray


def read_template_list(path: str) -> TemplateList:
    """The "image template media" lines of `path`. Raises DataError naming the line and field."""
    from tfxc.data.files import open_text

    images, templates, medias = [], [], []
    with open_text(path) as lines:
        for lineno, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise DataError(f"expected 'image template media', got {line.rstrip(chr(10))[:200]!r}", path=path,
                                line=lineno)
            images.append(fields[0])
            templates.append(_identifier(fields[1], path, lineno, "template"))
            medias.append(_identifier(fields[2], path, lineno, "media"))
    if not images:
        raise DataError("no templates: the list has no 'image template media' line", path=path)
    return TemplateList(images, np.array(templates, np.int64), np.array(medias, np.int64))


def read_template_pairs(path: str, known_templates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(template_a int64 [p], template_b int64 [p], same bool [p]) of the "a b label" lines of `path`.

    Raises DataError naming the line of a malformed pair or of a template the template list lacks.
    """
    from tfxc.data.files import open_text

    known = set(np.unique(known_templates).tolist())
    a, b, same = [], [], []
    with open_text(path) as lines:
        for lineno, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[2] not in ("0", "1"):
                raise DataError(f"expected 'template_a template_b label' (label 1 or 0), got "
                                f"{line.rstrip(chr(10))[:200]!r}", path=path, line=lineno)
            pair = [_identifier(f, path, lineno, name) for f, name in zip(fields, ("template_a", "template_b"))]
            for template, name in zip(pair, ("template_a", "template_b")):
                if template not in known:
                    raise DataError(f"template {template} is not in the template list", path=path, line=lineno,
                                    field=name)
            a.append(pair[0])
            b.append(pair[1])
            same.append(fields[2] == "1")
    same = np.array(same, bool)
    if same.all() or not same.any():
        raise DataError(f"a protocol needs genuine and impostor pairs; this one has {int(same.sum())} genuine of "
                        f"{same.size}", path=path)
    return np.array(a, np.int64), np.array(b, np.int64), same


def _identifier(text: str, path: str, line: int, field: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise DataError(f"{text[:40]!r} is not a non-negative integer id", path=path, line=line, field=field)
    return int(text)


def template_features(embeddings, templates, medias) -> tuple[np.ndarray, np.ndarray]:
    """(template ids int64 [T] ascending, features float64 [T, dim] L2-normalised): steps 1 and 2 above.

    Args:
      embeddings: float [n, dim], an image's embedding a row (flip-summed already where asked).
      templates, medias: int [n], each image's template and media.
    """
    x = np.asarray(embeddings, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    pairs = np.stack([np.asarray(templates, np.int64), np.asarray(medias, np.int64)], axis=1)
    media_keys, media_of_image = np.unique(pairs, axis=0, return_inverse=True)
    media_of_image = media_of_image.reshape(-1)
    counts = np.bincount(media_of_image, minlength=len(media_keys)).astype(np.float64)
    media_means = np.zeros((len(media_keys), x.shape[1]))
    np.add.at(media_means, media_of_image, x)
    media_means /= counts[:, None]
    template_ids, template_of_media = np.unique(media_keys[:, 0], return_inverse=True)
    features = np.zeros((len(template_ids), x.shape[1]))
    np.add.at(features, template_of_media.reshape(-1), media_means)
    features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return template_ids, features


def pair_scores(template_ids, features, template_a, template_b) -> np.ndarray:
    """float64 [p]: the cosine similarity of each template pair (step 3), scored in batches."""
    rows_a = np.searchsorted(template_ids, template_a)
    rows_b = np.searchsorted(template_ids, template_b)
    out = np.empty(len(rows_a))
    for start in range(0, len(rows_a), PAIR_BATCH):
        end = start + PAIR_BATCH
        out[start:end] = np.einsum("ij,ij->i", features[rows_a[start:end]], features[rows_b[start:end]])
    return out


def template_report(scores, same, fars=FARS) -> dict:
    """Pair counts, TAR (%) at each FAR the impostors can measure, and the ROC's area (%)."""
    from tfxc.eval.open_set import tar_at_far
    from tfxc.eval.verification import roc_auc

    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    out = {"pairs": int(scores.size), "genuine_pairs": int(same.sum()), "impostor_pairs": int((~same).sum())}
    for far in fars:
        if far * (~same).sum() >= 1:  # fewer impostors than 1/FAR cannot measure that rate
            out[f"tar@far={far:g}"] = tar_at_far(scores[same], scores[~same], far) * 100
    out["roc_auc"] = roc_auc(scores, same) * 100
    return out


def features_of_images(images: list[str], refs: list[str], features: np.ndarray, path: str) -> np.ndarray:
    """float32 [n, dim]: the rows of `features` (an extraction's, one row per ref) of `images`, matched by
    ref. Raises DataError naming the first image no row has."""
    row_of = {ref: i for i, ref in enumerate(refs)}
    missing = next((i for i, image in enumerate(images) if image not in row_of), None)
    if missing is not None:
        raise DataError(f"image {images[missing]!r} (image {missing + 1} of the template list) has no extracted "
                        f"features: no such ref among the {len(refs):,} of the extraction", path=path)
    return features[np.array([row_of[image] for image in images], np.int64)]
