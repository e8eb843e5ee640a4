"""An LFW-style verification pair list for a folder-per-identity image set, drawn with a seed.

LFW's protocol (View 2): `folds` folds, each of `pairs` genuine pairs (two images of one identity) and
`pairs` impostor pairs (images of two identities), the folds' identities disjoint, so each fold's threshold
is chosen on people the fold does not hold. `tfxc.evaluate --pairs FILE --images ROOT` reads the list.

  python tools/make_pairs.py --images runs/faces --out runs/faces-pairs.csv --folds 10 --pairs 300
      -> image_a,image_b,same,fold lines, paths relative to --images (any file names)
  python tools/make_pairs.py --images data/lfw --out runs/pairs.txt --format lfw
      -> LFW's pairs.txt (a "FOLDS PAIRS" header; "name n1 n2" and "name1 n1 name2 n2" lines), for sets whose
         files are named as LFW's are: NAME/NAME_0001.jpg

The same images, seed and counts give the same file. An identity needs two images to give a genuine
pair; a fold needs two identities to give an impostor. Prints one JSON line with the counts.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np

from tfxc.cli import non_negative_int, positive_int
from tfxc.images.sources import IMAGE_SUFFIXES, UNDECODABLE_IMAGE_SUFFIXES, list_note
from tfxc.utils.display import json_text

LFW_NAME = re.compile(r"^(?P<name>.+)_(?P<n>\d{4})\.jpg$")


def identities(root: str) -> dict[str, list[str]]:
    """{identity: its image paths relative to root, sorted} of ROOT/<identity>/<image> (nested folders read)."""
    out, skipped = {}, []
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(folder) for f in names)
        images = [f for f in files if f.lower().endswith(IMAGE_SUFFIXES)]
        skipped += [f for f in files if f.lower().endswith(UNDECODABLE_IMAGE_SUFFIXES)]
        if images:
            out[name] = images
    list_note(root, skipped)  # the images the decoder cannot read are named, not passed over
    return out


def draw_pairs(people: dict[str, list[str]], folds: int, pairs: int, seed: int) -> list[tuple[str, str, bool, int]]:
    """(image_a, image_b, same, fold) of every pair, fold by fold, each fold's genuine pairs first (LFW's order).

    Identities are dealt to the folds in a seeded order; within a fold, pairs are drawn without repeats.

    Raises:
      SystemExit: a fold cannot give `pairs` distinct pairs of a kind (too few identities or images).
    """
    rng = np.random.default_rng(seed)
    names = sorted(people)
    if len(names) < 2 * folds:
        raise SystemExit(f"{len(names)} identities cannot fill {folds} folds: each needs two for its impostor pairs "
                         "(fewer --folds)")
    order = [names[i] for i in rng.permutation(len(names))]
    out = []
    for fold in range(folds):
        mine = order[fold::folds]
        several = [n for n in mine if len(people[n]) >= 2]
        genuine_total = sum(len(people[n]) * (len(people[n]) - 1) // 2 for n in several)
        impostor_total = sum(len(people[a]) * len(people[b]) for i, a in enumerate(mine) for b in mine[i + 1:])
        if min(genuine_total, impostor_total) < pairs:
            raise SystemExit(f"fold {fold} ({len(mine)} identities, {len(several)} with two images or more) has "
                             f"{genuine_total} distinct genuine and {impostor_total} impostor pairs, fewer than "
                             f"{pairs} (fewer --pairs or --folds)")
        for same in (True, False):
            seen = set()
            while len(seen) < pairs:
                if same:
                    name = several[rng.integers(len(several))]
                    a, b = sorted(rng.choice(len(people[name]), 2, replace=False))
                    pair = (people[name][a], people[name][b])
                else:
                    x, y = sorted(rng.choice(len(mine), 2, replace=False))
                    pair = (people[mine[x]][rng.integers(len(people[mine[x]]))],
                            people[mine[y]][rng.integers(len(people[mine[y]]))])
                if pair not in seen:
                    seen.add(pair)
                    out.append((*pair, same, fold))
    return out


def lfw_lines(drawn, folds: int, pairs: int) -> list[str]:
    """LFW's pairs.txt lines of the pairs (files named NAME/NAME_0001.jpg, else SystemExit)."""

    def person(path: str) -> tuple[str, int]:
        folder, file = os.path.split(path)
        match = LFW_NAME.match(file)
        if not match or match.group("name") != folder:
            raise SystemExit(f"{path} is not named as LFW's images are (NAME/NAME_0001.jpg): write --format csv")
        return folder, int(match.group("n"))

    lines = [f"{folds}\t{pairs}"]
    for a, b, same, _ in drawn:
        (name_a, n_a), (name_b, n_b) = person(a), person(b)
        lines.append(f"{name_a}\t{n_a}\t{n_b}" if same else f"{name_a}\t{n_a}\t{name_b}\t{n_b}")
    return lines


def write_pairs(images: str, out: str, folds: int = 10, pairs: int = 300, seed: int = 0, fmt: str = "csv") -> dict:
    """Writes the pair list and returns its counts."""
    import csv
    import io

    from tfxc.utils.io import atomic_write_text

    people = identities(images)
    drawn = draw_pairs(people, folds, pairs, seed)
    if fmt == "lfw":
        text = "\n".join(lfw_lines(drawn, folds, pairs)) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image_a", "image_b", "same", "fold"])
        writer.writerows((a, b, int(same), fold) for a, b, same, fold in drawn)
        text = buffer.getvalue()
    atomic_write_text(out, text)
    return {"identities": len(people), "folds": folds, "genuine": sum(d[2] for d in drawn),
            "impostor": sum(not d[2] for d in drawn), "format": fmt}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--images", required=True, help="ROOT/<identity>/<image>")
    parser.add_argument("--out", required=True, help="the pair list to write (paths in it relative to --images)")
    parser.add_argument("--folds", type=positive_int, default=10)
    parser.add_argument("--pairs", type=positive_int, default=300,
                        help="genuine pairs per fold, and as many impostor pairs")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--format", choices=("csv", "lfw"), default="csv")
    args = parser.parse_args(argv)
    if args.folds < 1 or args.pairs < 1:
        parser.error("--folds and --pairs must be >= 1")
    if not os.path.isdir(args.images):
        parser.error(f"--images {args.images} is not a directory")
    print(json_text(write_pairs(args.images, args.out, args.folds, args.pairs, args.seed, args.format)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
