"""A JSONL text data set end to end: convert (TF-IDF fit on train), train a softmax head, export, and
predict from raw text with the featurizer that travels inside the SavedModel."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, tiny_config


@pytest.mark.slow(reason="time: tests/test_recipe.py's Chinese CSV trains, exports and predicts from text by default")
def test_jsonl_text_model_trains_exports_and_predicts_from_text(shared_data, tmp_path):
    config = tiny_config(
        tmp_path,
        data={"format": "jsonl", "train": f"{shared_data}/banking77/train.jsonl",
              "test": f"{shared_data}/banking77/test.jsonl", "dir": str(tmp_path / "data")},
        model={"encoder": {"name": "sparse_bow", "embedding_dim": 64}, "head": {"name": "softmax"}},
        trainer={"global_batch_size": 128, "train_steps": 160, "steps_per_loop": 20, "log_every_steps": 80,
                 "checkpoint_every_steps": 160})
    model_dir, export_dir = tmp_path / "model", tmp_path / "saved_model"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["Acc@1"] > 60.0, metrics  # 77 intents; frequency baseline ~1.3 %
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(export_dir))

    texts = ["I still have not received my new card, when will it arrive?",
             "How do I top up my account with a bank transfer?"]
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    run_cli("tfxc.predict", "--model", str(export_dir), "--input", str(tmp_path / "queries.jsonl"),
            "--output", str(tmp_path / "out.jsonl"), "--top-k", "3")
    preds = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert preds[0]["labels"][0] == "card_arrival", preds[0]
    assert any(name.startswith("top") for name in preds[1]["labels"]), preds[1]


INTENTS = {  # a small Chinese intent set: each intent's phrasings share its key words, not their wording
    "查询余额": ["我的账户还有多少钱", "帮我查一下余额", "账户余额是多少", "余额还剩多少", "查询我的余额",
             "想知道账户里还有多少钱", "请告诉我余额", "我卡里还有多少钱"],
    "挂失银行卡": ["我的银行卡丢了", "卡丢了怎么办", "我要挂失银行卡", "银行卡被偷了", "帮我挂失我的卡",
              "卡不见了请帮我冻结", "钱包和卡都丢了", "我想挂失丢失的卡"],
    "转账": ["我想给朋友转账", "怎么转账到别的银行", "转一千块钱给我妈妈", "转账要多久到账", "帮我转账",
           "转账失败了怎么办", "给这个账户转钱", "我要转钱给同事"],
    "修改密码": ["我想修改密码", "忘记密码了怎么办", "怎么重置登录密码", "密码要改一下", "帮我改密码",
             "密码被锁了", "修改支付密码", "我记不住密码了"],
}


@pytest.mark.slow(reason="time: tests/test_recipe.py's Chinese CSV covers the path by default")
def test_a_chinese_jsonl_set_trains_and_serves_from_strings(tmp_path):
    def write(name, rows):
        (tmp_path / name).write_text("".join(json.dumps({"text": t, "labels": [label]}, ensure_ascii=False) + "\n"
                                             for t, label in rows), encoding="utf-8")

    rows = [(text, label) for label, texts in INTENTS.items() for text in texts]
    write("train.jsonl", [r for i, r in enumerate(rows) if i % 4])
    write("test.jsonl", [r for i, r in enumerate(rows) if not i % 4])
    config = tiny_config(
        tmp_path,
        data={"format": "jsonl", "train": str(tmp_path / "train.jsonl"), "test": str(tmp_path / "test.jsonl"),
              "dir": str(tmp_path / "data"), "text": {"ngram_max": 2, "min_df": 1}},
        model={"encoder": {"name": "sparse_bow", "embedding_dim": 32}, "head": {"name": "softmax"}},
        trainer={"global_batch_size": 8, "train_steps": 120, "steps_per_loop": 20, "log_every_steps": 60,
                 "checkpoint_every_steps": 120}, optimizer={"name": "adam", "learning_rate": 0.02})
    model_dir, export_dir = tmp_path / "model", tmp_path / "saved_model"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    vocabulary = json.loads((tmp_path / "data" / "featurizer.json").read_text(encoding="utf-8"))["vocabulary"]
    assert {"余", "额", "余 额", "密 码"} <= set(vocabulary)  # characters and character bigrams
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(export_dir))
    queries = ["请帮我查余额", "我的卡丢了，快帮我挂失", "给我妈妈转账", "密码忘了"]
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps({"text": q}, ensure_ascii=False) + "\n"
                                                    for q in queries), encoding="utf-8")
    run_cli("tfxc.predict", "--model", str(export_dir), "--input", str(tmp_path / "queries.jsonl"),
            "--output", str(tmp_path / "out.jsonl"), "--top-k", "1")
    preds = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [p["labels"][0] for p in preds] == list(INTENTS), preds
