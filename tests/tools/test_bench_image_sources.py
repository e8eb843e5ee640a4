"""tools/bench_image_sources.py: the same JPEGs as a folder per identity and as a RecordIO set, both read whole."""

from __future__ import annotations

import json

from helpers import tool_module


def test_both_layouts_hold_and_stream_the_same_images(tmp_path, capsys):
    tool = tool_module("bench_image_sources")
    assert tool.main(["--images", "40", "--identities", "4", "--size", "32", "--batch-size", "16", "--repeats", "1",
                      "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for layout in ("folder", "recordio"):
        assert result[layout]["read_images"] == 40
        assert result[layout]["pipeline_images_per_s"] > 0
    assert result["folder"]["mean_jpeg_bytes"] == result["recordio"]["mean_jpeg_bytes"]  # the same bytes
