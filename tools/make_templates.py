"""An IJB-style template protocol of a folder per identity: the template list and the template pairs that
`python -m tfxc.evaluate --templates` scores (`tfxc.eval.templates`).

  python tools/make_templates.py --images runs/faces/unseen --out runs/faces/ijb --per-template 3

Each identity's images (shuffled with --seed) are cut into templates of --per-template images; in each
template (at most --max-templates an identity) the first image is a still (a media of its own) and the others are the frames of one video (one
media), so media pooling has work to do. Every genuine template pair is listed, and impostor pairs drawn at
random up to --impostors (every impostor pair when there are fewer). Writes OUT/tid_mid.txt ("image template
media" lines, paths relative to --images, as IJB-C's ijbc_face_tid_mid.txt) and OUT/template_pairs.txt
("template_a template_b label", as ijbc_template_pair_label.txt). Prints one JSON line with the counts.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from tfxc.cli import non_negative_int, positive_int
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_write_text


def write_templates(images: str, out: str, per_template: int, impostors: int, seed: int,
                    max_templates: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    listing, owner = [], []
    for identity in sorted(d for d in os.listdir(images) if os.path.isdir(os.path.join(images, d))):
        files = sorted(f for f in os.listdir(os.path.join(images, identity)) if not f.startswith("."))
        files = [files[i] for i in rng.permutation(len(files))]
        starts = range(0, len(files) - per_template + 1, per_template)
        for start in starts[:max_templates or None]:
            template = len(owner) + 1
            owner.append(identity)
            for k, name in enumerate(files[start:start + per_template]):
                listing.append((f"{identity}/{name}", template, 2 * template + (k > 0)))
    a, b = np.triu_indices(len(owner), 1)
    same = np.array([owner[i] == owner[j] for i, j in zip(a, b)], bool)
    impostor = np.flatnonzero(~same)
    if impostor.size > impostors:
        impostor = np.sort(rng.choice(impostor, impostors, replace=False))
    chosen = np.sort(np.r_[np.flatnonzero(same), impostor])
    if not same.any() or not impostor.size:
        raise SystemExit(f"{images}: a protocol needs two templates of one identity and two identities; make the "
                         "folders larger or --per-template smaller")
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "tid_mid.txt"), "".join(f"{i} {t} {m}\n" for i, t, m in listing))
    atomic_write_text(os.path.join(out, "template_pairs.txt"),
                      "".join(f"{a[p] + 1} {b[p] + 1} {int(same[p])}\n" for p in chosen))
    return {"identities": len(set(owner)), "templates": len(owner), "images": len(listing),
            "genuine": int(same.sum()), "impostor": int(impostor.size)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="ROOT/<identity>/<image>")
    parser.add_argument("--out", required=True, help="the folder to write tid_mid.txt and template_pairs.txt to")
    parser.add_argument("--per-template", type=positive_int, default=3)
    parser.add_argument("--impostors", type=non_negative_int, default=100_000, help="impostor pairs at most")
    parser.add_argument("--max-templates", type=non_negative_int, default=0,
                        help="templates an identity at most (0: as many as its images fill)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.images):
        parser.error(f"--images {args.images} is not a directory")
    print(json_text(write_templates(args.images, args.out, args.per_template, args.impostors, args.seed,
                                    args.max_templates)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
