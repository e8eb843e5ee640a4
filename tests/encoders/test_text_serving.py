"""Every text encoder's SavedModel against the requests a server must survive (issue 39: D9, D14, fuzz).

One tiny, untrained model per encoder kind (plus a feature model) is exported once; a fresh
process that imports only TensorFlow and tensorflow-text, as a server would, then sends:

  * a zero-row request to every signature: zero-row outputs of the usual widths (D14: TextCNN's
    Conv1D returned its [0, T, E] input, so `embed` was [0, E] and the head's product failed);
  * multi-MB strings: each text's tokens come from its first `max_bytes` bytes only (D9: FastText
    hashed every n-gram of the whole text, 2.1 M ids for 1 MB), and a 4 MB request to the FastText
    model leaves the process's peak RSS nearly where it was;
  * hostile strings (empty, whitespace, NUL, invalid UTF-8, mixed scripts, emoji, random bytes):
    finite scores and valid label ids, or an InvalidArgumentError, never a crash.

Models are random-init (no training): shapes, caps and robustness do not depend on the weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import cli_env
from text_harness import text_config

from tfxc._tf import tf

K = 5
CNN = {"name": "text_cnn", "embedding_dim": 8, "num_filters": 4, "kernel_sizes": [1, 3], "max_length": 16,
       "dropout": 0.0, "projection_dim": 6}
ENCODERS = {
    "fasttext": {"name": "fasttext", "embedding_dim": 8, "word_buckets": 512, "ngram_buckets": 1024},
    "text_cnn": CNN,
    "text_rnn": {"name": "text_rnn", "embedding_dim": 8, "hidden_dim": 4, "max_length": 16, "dropout": 0.0},
    "text_rcnn": {"name": "text_rcnn", "cell": "gru", "embedding_dim": 8, "hidden_dim": 4, "output_dim": 6,
                  "max_length": 16, "dropout": 0.0},
    "text_transformer": {"name": "text_transformer", "embedding_dim": 8, "num_heads": 2, "num_layers": 1,
                         "intermediate_dim": 16, "max_length": 16, "dropout": 0.0},
    # A bag of words on the converted rows: the export puts the TF-IDF featurizer in front of it (export.inputs),
    # the same graph ops `raw_text` runs inside the encoder (tests/encoders/test_text_encoders.py).
    "tfidf_bag": {"name": "sparse_bow", "embedding_dim": 8, "bag": "sparse"},
}
# Other heads on TextCNN: the zero-row guard sits in the serving module, below every head.
HEADS = {"text_cnn+mach": (CNN, {"name": "mach", "num_buckets": 8, "num_repetitions": 2}),
         "text_cnn+sparse_term": (CNN, {"name": "softmax", "sparse_support": 4, "sparse_max_nnz": 8})}

HOSTILE = ["", " ", "   \t\n\r  ", "\x00", "a\x00b\x00c", "混合 scripts мир عربى हिन्दी",
           "😀👍🏽🇫🇷 family: 👨‍👩‍👧‍👦", "\u200b\u200d\ufeff", "ǅ İ ß ﬁ Ω", "x" * 5000, "word " * 3000,
           "\U0010ffff\ue000"]
HOSTILE_BYTES = [b"\xff\xfe\xfd", b"caf\xc3", b"\xc3(", b"\xed\xa0\x80 surrogate", b"\xf4\x90\x80\x80 too big",
                 b"\x80\x80\x80 stray", b"ok \xe2\x82"]


def _build(directory, shared_data, encoder: dict, head: dict | None = None, data: dict | None = None) -> str:
    """A random-init model of `encoder`, exported to directory/sm; returns that path. `data`: the data section
    to read instead of the config's own (the models of one fixture share one conversion)."""
    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.data.pipeline import eval_dataset
    from tfxc.export.onnx import export_onnx
    from tfxc.export.saved_model import export_saved_model
    from tfxc.model import build_model

    directory.mkdir(parents=True)
    config = load_config(text_config(directory, shared_data, encoder, head, **({} if data is None else {"data": data})))
    info = ensure_converted(config.data)
    model = build_model(config.model, BuildContext.from_info(info, seed=3))
    model.top_k(next(iter(eval_dataset(info.files("test"), 4, preprocess=model.encoder.preprocess))), K)
    export_onnx(model, config, info, str(directory / "onnx"), top_k=K)  # the twin: test_every_text_models_onnx_twin...
    return export_saved_model(model, config, info, str(directory / "sm"))


def _build_features(directory) -> str:
    """A feature (CSR) model on synthetic data, exported to directory/sm."""
    from helpers import tiny_config

    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.data.pipeline import eval_dataset
    from tfxc.export.saved_model import export_saved_model
    from tfxc.model import build_model

    directory.mkdir(parents=True)
    config = load_config(tiny_config(directory))
    info = ensure_converted(config.data)
    model = build_model(config.model, BuildContext.from_info(info, seed=3))
    model.top_k(next(iter(eval_dataset(info.files("test"), 4, preprocess=model.encoder.preprocess))), K)
    return export_saved_model(model, config, info, str(directory / "sm"))


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory, shared_data) -> dict:
    from helpers import text_data, tiny_bert_preset

    from tfxc.data.info import DatasetInfo
    from tfxc.encoders.text_common import train_texts
    from tfxc.text import learn_wordpiece_vocabulary, write_vocabulary

    root = tmp_path_factory.mktemp("text_serving")
    # One conversion and one WordPiece vocabulary for every model here (each would learn the same one).
    (root / "data").mkdir()
    data = text_data(root / "data", shared_data)
    _build(root / "fasttext", shared_data, ENCODERS["fasttext"], data=data)
    vocabulary = str(root / "vocab.txt")
    write_vocabulary(vocabulary, learn_wordpiece_vocabulary(train_texts(DatasetInfo.load(data["dir"]).dir), 30000))

    def build(name: str, encoder: dict, head: dict | None = None) -> str:
        encoder = {**encoder, "vocabulary": vocabulary} if encoder["name"].startswith("text_") else encoder
        return _build(root / name.replace("+", "_"), shared_data, encoder, head, data)

    models = {"fasttext": str(root / "fasttext" / "sm")}
    models.update({name: build(name, encoder) for name, encoder in ENCODERS.items() if name != "fasttext"})
    preset = tiny_bert_preset(root / "preset", shared_data)
    models["pretrained"] = build("pretrained", {"name": "pretrained", "preset": preset, "max_length": 16,
                                               "pooling": "mean", "dropout": 0.0, "backbone_dropout": 0.0})
    for name, (encoder, head) in HEADS.items():
        models[name] = build(name, encoder, head)
    models["features"] = _build_features(root / "features")
    return {name: models[name] for name in [*ENCODERS, "pretrained", *HEADS, "features"]}


def _serve(script: str, *args: str, timeout: float = 300) -> list:
    """Runs `script` in a fresh process with only TF and tensorflow-text (no tfxc); its stdout's JSON lines."""
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


# What a server sends each model, from one fresh process that imports only TensorFlow and tensorflow-text (each
# model is loaded once): every signature a zero-row request (and a one-row one, for the widths); a text model
# also multi-MB texts (`long_texts`) and hostile strings (`fuzz`). Every answer is a JSON line with its "part".
SERVER = """
import json, random, sys
import numpy as np, tensorflow as tf, tensorflow_text  # noqa: F401

def zero_rows(m, path):
    for name, fn in m.signatures.items():
        args = {k: v for k, v in fn.structured_input_signature[1].items()}
        if "text" in args:
            empty, single = {"text": tf.constant([], tf.string)}, {"text": tf.constant(["transfer money"])}
        else:
            empty = {"feat_idx": tf.zeros([0], tf.int64), "feat_val": tf.zeros([0]), "row_splits": tf.zeros([1], tf.int64)}
            single = {"feat_idx": tf.constant([1, 2], tf.int64), "feat_val": tf.constant([0.5, 1.0]),
                      "row_splits": tf.constant([0, 2], tf.int64)}
        if "k" in args:
            empty["k"] = single["k"] = tf.constant(3)
        try:
            out = {k: [list(v.shape), v.dtype.name] for k, v in fn(**empty).items()}
        except tf.errors.InvalidArgumentError as e:
            out = {"error": str(e).splitlines()[0]}
        ref = {k: [list(v.shape), v.dtype.name] for k, v in fn(**single).items()}
        print(json.dumps({"part": "zero_rows", "model": path, "signature": name, "empty": out, "single": ref}))

def long_texts(m, path, cap):
    tokenize = m.signatures["tokenize"]
    def sizes(text):
        return {k: int(tf.size(v)) for k, v in tokenize(text=tf.constant([text])).items() if not k.endswith("row_splits")}
    def tokens(text):
        return {k: v.numpy().tolist() for k, v in tokenize(text=tf.constant([text])).items()}
    word = "transfer my card "
    long_text = (word * (3 * 2 ** 20 // len(word)))  # 3 MB
    head = long_text.encode()[:cap].decode()
    out = {"part": "long", "model": path, "long": sizes(long_text), "head": sizes(head),
           "same_as_head": tokens(long_text) == tokens(head),
           # A text's words past the cap are never read: after cap spaces, "transfer" is gone.
           "hidden_word_read": tokens(" " * cap + "transfer") != tokens("")}
    top = m.signatures["serving_default"](text=tf.constant([long_text, "transfer", long_text[:4 * 2 ** 20]]))
    out["finite"] = bool(np.isfinite(top["scores"].numpy()).all())
    print(json.dumps(out))

def fuzz(m, path, texts, num_labels):
    report = {"part": "fuzz", "model": path, "errors": [], "bad": []}
    def check(batch):
        try:
            top = m.signatures["serving_default"](text=tf.constant(batch))
            top_k = m.signatures["top_k"](text=tf.constant(batch), k=tf.constant(2))
            emb = m.signatures["embed"](text=tf.constant(batch))
            m.signatures["tokenize"](text=tf.constant(batch))
        except tf.errors.InvalidArgumentError as e:
            report["errors"].append(str(e).splitlines()[0][:200]); return
        ids = top["label_ids"].numpy()
        ok = (top["scores"].shape == (len(batch), top["scores"].shape[1]) and np.isfinite(top["scores"].numpy()).all()
              and ((ids >= 0) & (ids < num_labels)).all() and np.isfinite(top_k["scores"].numpy()).all()
              and top_k["scores"].shape[1] == 2 and np.isfinite(emb["raw_embedding"].numpy()).all()
              and emb["embedding"].shape[0] == len(batch))
        if not ok:
            report["bad"].append(repr(batch)[:200])
    for text in texts:
        check([text])
    check(texts)
    print(json.dumps(report))

job = json.loads(sys.argv[1])
texts = [t.encode("utf-8") for t in job["hostile"]] + [bytes.fromhex(h) for h in job["hostile_bytes"]]
rng = random.Random(7)
texts += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(30)]
for model in job["models"]:
    m = tf.saved_model.load(model["path"])
    zero_rows(m, model["path"])
    if model["cap"] is not None:
        long_texts(m, model["path"], model["cap"])
        fuzz(m, model["path"], texts, job["num_labels"])
"""


def _cap(name: str) -> int:
    from tfxc.data.text_features import MAX_TEXT_BYTES
    from tfxc.text import DEFAULT_MAX_BYTES

    return MAX_TEXT_BYTES if name == "tfidf_bag" else DEFAULT_MAX_BYTES


TEXT_MODELS = [*ENCODERS, "pretrained"]


@pytest.fixture(scope="module")
def served(saved_models) -> dict:
    """{part: [SERVER's answers of that part, with "model" the model's name]}, from one fresh process."""
    job = {"hostile": HOSTILE, "hostile_bytes": [b.hex() for b in HOSTILE_BYTES], "num_labels": 77,
           "models": [{"path": path, "cap": _cap(name) if name in TEXT_MODELS else None}
                      for name, path in saved_models.items()]}
    names = {path: name for name, path in saved_models.items()}
    parts = {"zero_rows": [], "long": [], "fuzz": []}
    for answer in _serve(SERVER, json.dumps(job), timeout=600):
        parts[answer["part"]].append({**answer, "model": names[answer["model"]]})
    return parts


def test_every_signature_of_every_saved_model_answers_zero_rows(saved_models, served):
    seen = {}
    for r in served["zero_rows"]:
        model, signature = r["model"], r["signature"]
        seen.setdefault(model, set()).add(signature)
        assert "error" not in r["empty"], (model, signature, r["empty"])
        assert r["empty"].keys() == r["single"].keys(), (model, signature)
        for output, (shape, dtype) in r["empty"].items():
            want_shape, want_dtype = r["single"][output]
            if signature == "tokenize":  # ragged components and padded lengths: only the rows matter
                assert dtype == want_dtype and (shape[0] == 0 or output.endswith("_row_splits")), r
                continue
            # [0, k] ids/scores/labels, [0, dim] embeddings: the single-row widths, zero rows.
            assert (shape, dtype) == ([0, *want_shape[1:]], want_dtype), (model, signature, output, shape, want_shape)
    for model, signatures in seen.items():
        expected = {"serving_default", "top_k", "embed"} | ({"tokenize"} if model != "features" else set())
        assert signatures == expected, (model, signatures)
    assert seen.keys() == saved_models.keys()


def test_every_text_models_saved_model_uses_only_ops_a_model_server_runs(saved_models):
    # Core TensorFlow's and TensorFlow Text's ops, no Python, no XLA (tfxc.export.ops; the heads' exports:
    # tests/export/test_servable_ops.py).
    from tfxc.export.ops import read_ops, server_registry, servability_problems

    found = {name: read_ops(path) for name, path in saved_models.items()}
    assert {name: servability_problems(ops) for name, ops in found.items()} == {name: [] for name in found}
    text_ops = {name: ops.everything.ops & server_registry().text for name, ops in found.items()}
    # The in-graph tokenisers run TensorFlow Text's ops: the WordPiece of the keras-hub preset, among others.
    assert "FastWordpieceTokenizeWithOffsets" in text_ops["pretrained"] | text_ops["text_transformer"], text_ops
    assert not text_ops["features"]


@pytest.fixture(scope="module")
def long_text_results(served) -> dict:
    """SERVER's `long_texts` report per text model."""
    return {r["model"]: r for r in served["long"]}


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_a_multi_megabyte_text_is_read_up_to_the_encoder_cap(long_text_results, name):
    out = long_text_results[name]
    assert out["same_as_head"] and out["long"] == out["head"], out
    assert not out["hidden_word_read"], "the text past max_bytes was tokenised"
    assert out["finite"]
    if name == "fasttext":
        # ~2 ids a byte at most: 64 KiB of words -> ~55 k ids (3 MB uncapped: 2.5 M).
        assert out["long"]["ngram_ids_values"] < 3 * _cap(name), out


PEAK_RSS = """
import json, resource, sys
import tensorflow as tf, tensorflow_text  # noqa: F401
m = tf.saved_model.load(sys.argv[1])
serve = m.signatures["serving_default"]
serve(text=tf.constant(["transfer my card " * 100]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
text = "transfer my card " * (4 * 2 ** 20 // 17)
serve(text=tf.constant([text]))
print(json.dumps({"grew_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
"""


def test_a_4mb_request_to_fasttext_keeps_the_peak_rss(saved_models):
    # Coarse on purpose: uncapped, this request grew the peak by ~1.5 GB (dim 8; 2.8 GB at dim 64).
    (out,) = _serve(PEAK_RSS, saved_models["fasttext"])
    assert out["grew_mb"] < 300, out


@pytest.fixture(scope="module")
def fuzz_results(served) -> dict:
    """SERVER's `fuzz` report per text model."""
    return {r["model"]: r for r in served["fuzz"]}


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_hostile_strings_give_finite_scores_and_valid_ids(fuzz_results, name):
    report = fuzz_results[name]
    assert not report["bad"], report
    # None of these is invalid input for a text model: every string must be answered.
    assert not report["errors"], report


def test_the_cap_changes_no_normal_text(shared_data):
    """banking77's and reuters' texts tokenise exactly as with no cap (what training and serving did before)."""
    from tfxc.text import DEFAULT_MAX_BYTES, RESERVED_TOKENS, WordPieceSequences, fasttext_ids

    texts = []
    for name in ("banking77", "reuters"):
        with open(f"{shared_data}/{name}/train.jsonl", encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for _, line in zip(range(400), f)]
    texts.sort(key=len)
    texts = tf.constant(texts[-200:] + texts[:20])  # the longest (reuters, up to 13 KB) and a few short ones
    hashing = dict(word_buckets=1 << 10, ngram_buckets=1 << 12)
    capped, uncapped = fasttext_ids(texts, **hashing), fasttext_ids(texts, **hashing, max_bytes=1 << 30)
    np.testing.assert_array_equal(capped.row_splits, uncapped.row_splits)
    np.testing.assert_array_equal(capped.flat_values, uncapped.flat_values)
    vocabulary = [*RESERVED_TOKENS, "the", "##s", "a", "t", "##e"]
    for max_length in (16, 4096):
        capped = WordPieceSequences(vocabulary, max_length)(texts)
        uncapped = WordPieceSequences(vocabulary, max_length, max_bytes=1 << 30)(texts)
        np.testing.assert_array_equal(capped["token_ids"], uncapped["token_ids"])
    assert DEFAULT_MAX_BYTES > max(len(t) for t in texts.numpy())


# === The ONNX twins (tfxc.export.onnx): ids in, the same top k out ===
@pytest.fixture(scope="module")
def onnx_answers(saved_models, shared_data, tmp_path_factory) -> dict:
    """{text model: (its SavedModel's top 10+20 of 1,000 banking77 texts, onnxruntime's top 10 of the ids its
    `tokenize` signature gave, what the fresh process imported)}."""
    from onnx_harness import ROWS, run_onnx

    root = tmp_path_factory.mktemp("text_onnx")
    with open(f"{shared_data}/banking77/test.jsonl", encoding="utf-8") as f:
        texts = tf.constant([json.loads(line)["text"] for _, line in zip(range(ROWS), f)])
    names = [name for name in saved_models if name != "features"]
    references, cases = {}, []
    for name in names:
        saved = tf.saved_model.load(saved_models[name])
        tokens = saved.signatures["tokenize"](text=texts)
        twin = os.path.join(os.path.dirname(saved_models[name]), "onnx")
        record = json.loads(open(os.path.join(twin, "onnx.json"), encoding="utf-8").read())
        np.savez(root / f"{name}-in.npz", **{i["name"]: tokens[i["name"]].numpy() for i in record["inputs"]})
        cases.append((os.path.join(twin, "model.onnx"), str(root / f"{name}-in.npz"), str(root / f"{name}-out.npz")))
        answer = saved.signatures["top_k"](text=texts, k=tf.constant(K + 20))
        references[name] = (answer["label_ids"].numpy(), answer["scores"].numpy(), record)
    imported = run_onnx(cases)
    return {name: (references[name], dict(np.load(root / f"{name}-out.npz")), imported) for name in names}


@pytest.mark.parametrize("name", [*TEXT_MODELS, *HEADS])
def test_every_text_models_onnx_twin_ranks_the_tokenized_texts_as_its_saved_model(onnx_answers, name):
    from onnx_harness import assert_same_ranking

    (want_ids, want_scores, record), answer, imported = onnx_answers[name]
    assert imported["modules"] == [], imported
    assert record["input"] == "text" and record["tokenizer"]["in_graph"] is False
    assert_same_ranking(answer["label_ids"], answer["scores"], want_ids, want_scores, name)


def test_a_text_models_tf_serving_layout_has_batching_settings_and_string_warmup(saved_models, tmp_path):
    import re

    import tfxc
    from tfxc.export.tf_serving import TIMED_BATCHES, WARMUP_BATCH, export_for_tf_serving, read_warmup, replay

    version = export_for_tf_serving(lambda path: tfxc.load(saved_models["text_cnn"]).export(path), str(tmp_path / "cnn"))
    records = read_warmup(f"{version}/assets.extra/tf_serving_warmup_requests")
    assert {r.predict_log.request.model_spec.signature_name for r in records} == {
        "serving_default", "top_k", "embed", "tokenize"}
    answers = replay(version, records)
    rows = [len(r.predict_log.request.inputs["text"].string_val) for r in records]
    assert rows == [1, WARMUP_BATCH] * 4 and all(a[next(iter(a))].shape[0] == n for a, n in zip(answers, rows))
    settings = (tmp_path / "cnn" / "batching_parameters.txt").read_text()
    timed = re.findall(r"^# +(\d+) rows: +([\d.]+) ms", settings, flags=re.M)
    assert [int(rows) for rows, _ in timed] == list(TIMED_BATCHES) and all(float(ms) > 0 for _, ms in timed)
    best = int(re.search(r"^max_batch_size \{ value: (\d+) \}$", settings, flags=re.M).group(1))
    assert best in TIMED_BATCHES
    assert int(re.search(r"^batch_timeout_micros \{ value: (\d+) \}$", settings, flags=re.M).group(1)) >= 100
    # A REST body of strings, in the row form (one object a row) and the columnar form, as the server reads it.
    from tfxc.export.rest import answer

    texts = ["when will my card arrive?", "top up by transfer", "\u00e9t\u00e9 \U0001F600"]
    rows = answer(version, json.dumps({"instances": texts}))["predictions"]
    signature = tfxc.load(version).top_k(texts, len(rows[0]["label_ids"]))
    assert [row["label_ids"] for row in rows] == signature[0].tolist()
    assert np.allclose([row["scores"] for row in rows], signature[1], rtol=1e-6, atol=1e-7)
    columns = answer(version, json.dumps({"signature_name": "top_k", "inputs": {"text": texts, "k": 2}}))["outputs"]
    assert columns["label_ids"] == signature[0][:, :2].tolist()
