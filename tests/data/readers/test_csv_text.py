"""CSV/TSV text files (text_classifier's sentence,label layout) read as the records of JSONL text, end to end."""

from __future__ import annotations

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
    ("sentence,label\nhello\n", "has 1 cells"),
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
