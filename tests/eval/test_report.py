"""The per-label report of `tfxc.evaluate --report`: columns aligned by what a terminal shows."""

from __future__ import annotations

import pytest

from tfxc.eval.report import report_text
from tfxc.utils.display import display_width, pad


def test_display_width_counts_wide_characters_twice_and_marks_not_at_all():
    assert display_width("card") == 4
    assert display_width("天气") == 4 and display_width("ｃａｒｄ") == 8  # CJK and fullwidth: 2 columns
    assert display_width("cafe\u0301") == 4  # e + a combining acute accent: one column
    assert display_width("👩\u200d💻") == 4  # two wide emoji joined by a zero-width joiner
    assert pad("天气", 6) == "  天气" and pad("天气", 6, "<") == "天气  " and pad("天气预报", 3) == "天气预报"


def _rows(names):
    return [{"label": name, "precision": 50.0, "recall": 25.0, "f1": 33.33, "support": 4} for name in names]


METRICS = {**{f"{m}-{a}": 10.0 for m in ("P", "R", "F1") for a in ("micro", "macro", "weighted", "samples")},
           "accuracy": 75.0, "num_points": 8}


@pytest.mark.parametrize("names", [["天气", "查询余额", "weather"], ["天气" * 15, "café", "e\u0301t\u0301e\u0301"]])
def test_the_report_s_columns_line_up_whatever_the_label_names(names):
    """Item 19: CJK names were padded by len(), so every number column after them shifted right."""
    lines = [line for line in report_text(_rows(names), METRICS).splitlines() if line]
    ends = {display_width(line) for line in lines}
    assert len(ends) == 1, "\n".join(lines)  # every line, header and averages included, ends in the same column
    header = lines[0]
    for line in lines[1:1 + len(names)]:
        # the precision column ends where its header does
        assert display_width(line[:line.index("50.00") + 5]) == display_width(header[:header.index("precision") + 9])


def test_json_text_keeps_non_ascii_as_itself_unless_it_cannot_be_utf8():
    from tfxc.utils.display import json_text

    assert json_text({"labels": ["天气", "café"]}) == '{"labels": ["天气", "café"]}'
    assert json_text({"ref": "\udcff.png"}) == '{"ref": "\\udcff.png"}'  # a non-UTF-8 file name: escaped
    assert json_text({"a": "天"}, indent=1) == '{\n "a": "天"\n}'
