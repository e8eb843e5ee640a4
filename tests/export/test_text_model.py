"""A JSONL text data set end to end: convert (TF-IDF fit on train), train a softmax head, export, and
predict from raw text with the featurizer that travels inside the SavedModel."""

from __future__ import annotations

import json

from helpers import run_cli, tiny_config


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
    run_cli("tfxc.predict", "--saved-model", str(export_dir), "--input", str(tmp_path / "queries.jsonl"),
            "--output", str(tmp_path / "out.jsonl"), "--top-k", "3")
    preds = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert preds[0]["labels"][0] == "card_arrival", preds[0]
    assert any(name.startswith("top") for name in preds[1]["labels"]), preds[1]
