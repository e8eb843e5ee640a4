"""tools/make_templates.py: an IJB-style protocol of a folder per identity, read back by tfxc.eval.templates."""

from __future__ import annotations

import json

import numpy as np
from helpers import tool_module

from tfxc.eval.templates import read_template_list, read_template_pairs


def test_templates_of_a_still_and_a_video_with_every_genuine_pair(tmp_path, capsys):
    for person in range(3):
        (tmp_path / "ids" / f"p{person}").mkdir(parents=True)
        for image in range(7):  # two templates of 3 each; the seventh image is left over
            (tmp_path / "ids" / f"p{person}" / f"{image}.jpg").write_bytes(b"")
    tool = tool_module("make_templates")
    assert tool.main(["--images", str(tmp_path / "ids"), "--out", str(tmp_path / "ijb"), "--impostors", "5"]) == 0
    assert json.loads(capsys.readouterr().out) == {"identities": 3, "templates": 6, "images": 18, "genuine": 3,
                                                   "impostor": 5}
    listed = read_template_list(str(tmp_path / "ijb" / "tid_mid.txt"))
    a, b, same = read_template_pairs(str(tmp_path / "ijb" / "template_pairs.txt"), listed.templates)
    owner = {t: image.split("/")[0] for image, t in zip(listed.images, listed.templates)}
    assert [owner[x] == owner[y] for x, y in zip(a, b)] == same.tolist()
    for template in range(1, 7):  # a still and one two-frame video a template
        frames = np.unique(listed.medias[listed.templates == template], return_counts=True)[1]
        assert sorted(frames.tolist()) == [1, 2]
    assert tool.main(["--images", str(tmp_path / "ids"), "--out", str(tmp_path / "two"), "--per-template", "2",
                      "--max-templates", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 12  # 2 templates of 2 a person, not 3
