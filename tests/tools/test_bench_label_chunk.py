"""tools/bench_label_chunk.py: blocks of labels merged into the ranking of one block over all labels."""

from __future__ import annotations

from helpers import tool_module


def test_blocks_of_labels_rank_as_one_block_over_all_labels(capsys):
    tool_module("bench_label_chunk").main(["--chunk", "300", "--labels", "1000", "--dim", "8", "--batch", "16", "--calls", "2", "--check"])
    out = capsys.readouterr().out
    assert "chunk=300:" in out and "same ids as one block: True" in out
