"""CSV/TSV text files (text_classifier's sentence,label layout) read as the records of JSONL text, end to end."""

from __future__ import annotations

import csv
import json

import pytest
from helpers import run_cli, tiny_config

from tfxc.data.holdout import group_keys
from tfxc.data.readers import iter_jsonl
from tfxc.errors import DataError


def test_columns_by_name_multi_label_cells_quotes_and_line_numbers(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('label,id,sentence\npositive,1,这家酒店很好\n"pay,card",2,"Declined, twice\nand again"\n\n'
                    'negative,3,"He said ""no"""\n', encoding="utf-8")
    records = list(iter_jsonl(path))
    assert [(r.line, r.text, r.labels) for r in records] == [
        (2, "这家酒店很好", ["positive"]), (3, "Declined, twice\nand again", ["pay", "card"]),
        (6, 'He said "no"', ["negative"])]
    assert all(r.id is None for r in records)
    assert list(group_keys(str(path))) == [":2", ":3", ":6"]  # every row a group of its own
    tsv = tmp_path / "queries.tsv"
    tsv.write_text("labels\ttext\n\thow do I top up, today\nlost_card\tmy card\n", encoding="utf-8")
    assert [(r.text, r.labels) for r in iter_jsonl(tsv, require_labels=False)] == [
        ("how do I top up, today", []), ("my card", ["lost_card"])]


@pytest.mark.parametrize("content, message", [
    ("", "file is empty"),
    ("words,label\nhello,x\n", "no text column"),
    ("sentence,label\n", "header but no rows"),
    ("sentence,label\nhello\n", "has 1 cell where the header has 2"),
    ("sentence,label,id\nhello,x\n", "has 2 cells where the header has 3"),  # fewer cells, columns present
    ("sentence,label\nhello,\"x\n", "double quote .* never closed"),  # would read the rest of the file
    ('sentence,label\n"hello" there,x\n', "malformed CSV: ',' expected after '\"'"),  # was the text 'hello there'
    ("sentence,label\nhello,\"a,,b\"\n", "label names must not be empty"),
])
def test_bad_csv_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as error:
        list(iter_jsonl(path))
    assert str(path) in str(error.value)


def test_a_csv_set_trains_from_the_config_and_predicts_from_a_csv(tmp_path):
    intents = {"balance": ["what is my balance", "how much money do I have", "check my balance",
                           "show my account balance", "balance please", "my current balance"],
               "lost_card": ["I lost my card", "my card was stolen", "block my lost card", "card is missing",
                             "I cannot find my card", "report a stolen card"]}
    rows = [(text, label) for label, texts in intents.items() for text in texts]
    rows.append(("check my balance " * 10_000, "balance"))  # a long document: 170,000 characters in one cell
    (tmp_path / "train.csv").write_text("sentence,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows))
    config = tiny_config(tmp_path, data={"format": "jsonl", "train": str(tmp_path / "train.csv"),
                                         "test": str(tmp_path / "train.csv"), "dir": str(tmp_path / "data"),
                                         "text": {"min_df": 1}},
                         model={"encoder": {"name": "sparse_bow", "embedding_dim": 16, "raw_text": True},
                                "head": {"name": "softmax"}},
                         trainer={"global_batch_size": 4, "train_steps": 60, "steps_per_loop": 20,
                                  "log_every_steps": 60, "checkpoint_every_steps": 60},
                         optimizer={"name": "adam", "learning_rate": 0.05})
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "model"))
    assert json.loads((tmp_path / "model" / "metrics.json").read_text())["Acc@1"] == 100.0


def test_a_row_with_more_cells_than_the_header_is_refused_naming_file_line_and_counts(tmp_path):
    # An unquoted comma in a sentence used to shift "how are you" into the label column, rc 0.
    path = tmp_path / "c.csv"
    path.write_text("sentence,label\nhello there,greet\nbye now,leave\nhello, how are you,greet\n")
    with pytest.raises(DataError, match=r"c.csv:4: has 3 cells where the header has 2.*double quotes"):
        list(iter_jsonl(path))
    tsv = tmp_path / "c.tsv"
    tsv.write_text("sentence\tlabel\nhello\tgreet\textra\n")
    with pytest.raises(DataError, match=r"c.tsv:2: has 3 cells where the header has 2.*a tab"):
        list(iter_jsonl(tsv, require_labels=False))
    out = run_cli("tfxc.convert", "--format", "jsonl", "--train", str(path), "--test", str(path),
                  "--out", str(tmp_path / "d"), check=False)
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith(f"tfxc: error: {path}:4: has 3 cells")
    assert not (tmp_path / "d").exists()


def test_cells_longer_than_the_csv_modules_limit_are_read_and_the_limit_is_left_alone(tmp_path):
    # Python's csv refuses a cell over 131,072 characters ("field larger than field limit").
    limit = csv.field_size_limit()
    long = "文" * 200_000 + "x" * 100_000
    path = tmp_path / "long.csv"
    path.write_text(f'sentence,label\n{long},greet\n"{long},\n""quoted""",leave\n', encoding="utf-8")
    records = list(iter_jsonl(path))
    assert [(r.line, r.text, r.labels) for r in records] == [(2, long, ["greet"]), (3, f'{long},\n"quoted"', ["leave"])]
    assert csv.field_size_limit() == limit  # raised only while a row is parsed: other csv users see no change


def test_text_that_is_not_utf8_is_named_by_its_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("sentence,label\n天气,weather\n".encode() + b"caf\xe9,drink\n")
    with pytest.raises(DataError, match=r"latin1.csv:3: not valid UTF-8 text: byte 0xe9"):
        list(iter_jsonl(path))
