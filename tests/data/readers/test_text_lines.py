"""open_text's line-by-line decoding (exact lines for bad bytes) and the lone-surrogate checks of Python strings."""

from __future__ import annotations

import gzip
import io

import pytest

from tfxc.data.files import check_strings, open_text, surrogate_problem
from tfxc.errors import DataError


@pytest.mark.parametrize("content", [b"", b"a", b"a\n", b"\xef\xbb\xbfa\r\nb\rc\n\r\n", b"x\x0by\x1cz\xe2\x80\xa8w\n",
                                     b"\xef\xbb\xbf", b"long " * 40000 + b"\r\n" + b"\r" * 3])
def test_lines_are_those_of_a_universal_newline_text_file(tmp_path, content):
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    with open_text(path) as f:
        lines = list(f)
    # Only \n, \r\n and \r end a line (not \x0b, \x1c or U+2028), as in Python's text files.
    assert lines == list(io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig"))
    with open_text(path) as f:
        assert [f.readline(), f.read(), f.readline()] == [lines[0] if lines else "", "".join(lines[1:]), ""]


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_byte_that_is_not_utf8_names_its_exact_line_far_into_the_file(tmp_path, gzipped):
    content = "ok\n".encode() * 100_000 + "caf\xe9\n".encode("latin-1") + b"ok\n"
    path = tmp_path / "t.txt"
    path.write_bytes(gzip.compress(content) if gzipped else content)
    seen = []
    with pytest.raises(DataError) as e, open_text(path) as f:
        seen.extend(f)
    assert str(e.value) == (f"{path}:100001: not valid UTF-8 text: byte 0xe9 at byte 4 of the line (invalid "
                            "continuation byte); is the file in another encoding, e.g. Latin-1? Save it as UTF-8")
    assert len(seen) == 100_000  # every line before the bad one was handed out first


def test_surrogate_problem_refuses_only_lone_surrogates():
    assert surrogate_problem("plain") is None and surrogate_problem("\u00e9t\u00e9 \U0001f600") is None
    assert "lone surrogate U+D800 at character 3" in surrogate_problem("ab\ud800")
    assert "U+DC80" in surrogate_problem("\udc80")  # what undecodable bytes become under surrogateescape


def test_check_strings_names_the_row():
    check_strings(["a", ["b", "c"], 3, None], "X")
    with pytest.raises(DataError, match=r"^X \(train\) row 2: 'b\\ud800' contains a lone surrogate U\+D800"):
        check_strings(["a", "\u00e9", "b\ud800"], "X (train)")
    with pytest.raises(DataError, match=r"^Y \(val\) row 1: 'bad\\udfff' contains"):
        check_strings([["x"], ["y", "bad\udfff"]], "Y (val)")


def test_fit_names_the_row_of_a_text_or_label_it_could_not_store(tmp_path):
    from tfxc.data.in_memory import source_files

    with pytest.raises(DataError, match=r"^X \(train\) row 1: '\\ud800 x' contains a lone surrogate"):
        source_files({"train": (["fine", "\ud800 x"], [["a"], ["b"]])}, None, str(tmp_path))
    assert not list(tmp_path.iterdir())  # refused before anything was written
    with pytest.raises(DataError, match=r"^Y \(test\) row 0: 'bad\\ud800label'"):
        source_files({"train": (["x"], [["a"]]), "test": (["y"], [["bad\ud800label"]])}, None, str(tmp_path))
