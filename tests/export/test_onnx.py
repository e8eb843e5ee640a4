"""The ONNX twin (`tfxc.export.onnx`) of every head ranks as its SavedModel.

For each head of tests/export/head_models.py: onnxruntime, in a fresh process that imports only it and
NumPy, answers 1,000 random feature rows; its scores match the SavedModel's `serving_default` to 1e-4
(max abs) and its top-10 ids are the SavedModel's (labels of equal scores in either order). Then the
command line and `Predictor.export` write the twin of a trained model, and what has no twin is refused.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from head_models import HEADS, K
from helpers import run_cli
from onnx_harness import ROWS, assert_same_ranking, csr_rows, random_rows, run_onnx

from tfxc.export.serving_modules import FLOAT32_SERVING_MAX_ROWS

@pytest.fixture(scope="module")
def onnx_answers(head_models, tmp_path_factory) -> dict:
    """{case: (feeds, onnxruntime's answer, what the fresh process imported)} for every head of HEADS."""
    root = tmp_path_factory.mktemp("onnx_answers")
    cases, feeds = [], {}
    for name, (_, twin) in head_models.items():
        record = json.loads(open(f"{twin}/onnx.json", encoding="utf-8").read())
        feeds[name] = random_rows(record["num_features"])
        np.savez(root / f"{name}-in.npz", **feeds[name])
        cases.append((f"{twin}/model.onnx", str(root / f"{name}-in.npz"), str(root / f"{name}-out.npz")))
    imported = run_onnx(cases)
    return {name: (feeds[name], dict(np.load(root / f"{name}-out.npz")), imported) for name in head_models}


@pytest.mark.parametrize("name", HEADS)
def test_every_heads_onnx_twin_ranks_as_its_saved_model(head_models, onnx_answers, name):
    from tfxc._tf import tf

    saved, twin = head_models[name]
    feeds, answer, imported = onnx_answers[name]
    assert imported["modules"] == [], imported  # onnxruntime and NumPy only
    # The reference's lists run past k, for ties at the k-th place. A bfloat16 head's SavedModel serves batches
    # of up to FLOAT32_SERVING_MAX_ROWS rows in float32, as the twin serves every batch: asked so.
    serve = tf.saved_model.load(saved).signatures["top_k"]
    rows = FLOAT32_SERVING_MAX_ROWS if name.endswith("bfloat16") else ROWS
    served = [serve(**{key: tf.constant(value) for key, value in csr_rows(feeds, start, start + rows).items()},
                    k=tf.constant(K + 20)) for start in range(0, ROWS, rows)]
    served = {key: np.concatenate([answer[key].numpy() for answer in served]) for key in ("label_ids", "scores")}
    record = json.loads(open(f"{twin}/onnx.json", encoding="utf-8").read())
    assert [o["name"] for o in record["outputs"]] == ["label_ids", "scores"] and record["top_k"] == K
    assert answer["label_ids"].dtype == np.int64 and answer["scores"].dtype == np.float32
    assert_same_ranking(answer["label_ids"], answer["scores"], served["label_ids"], served["scores"], name)


def test_the_tie_rule_tells_a_reordered_tie_from_another_ranking():
    scores = np.array([[0.9, 0.5, 0.5, 0.1, 0.1]], np.float32)
    ids = np.array([[3, 1, 2, 0, 4]])
    assert_same_ranking(np.array([[3, 2, 1, 0]]), scores[:, :4], ids, scores, "a tie in either order")
    assert_same_ranking(np.array([[3, 2, 1, 4]]), scores[:, :4], ids, scores, "a tie cut at the k-th place")
    with pytest.raises(AssertionError, match="row 0 ranks"):
        assert_same_ranking(np.array([[1, 3, 2, 0]]), scores[:, :4], ids, scores, "two labels swapped")
    with pytest.raises(AssertionError, match="row 0 ranks"):
        assert_same_ranking(np.array([[3, 1, 2, 5]]), scores[:, :4], ids, scores, "another label at the tie")
    with pytest.raises(AssertionError, match="scores differ"):
        assert_same_ranking(ids[:, :4], scores[:, :4] + 1e-3, ids, scores, "scores")


def test_the_command_line_and_the_predictor_write_the_twin_of_a_trained_model(trained, tmp_path):
    import tfxc

    _, model_dir, export_dir = trained
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(tmp_path / "cli"), "--format", "onnx",
            "--top-k", "3")
    record = json.loads((tmp_path / "cli" / "onnx.json").read_text())
    assert record["format_version"] == 1 and record["input"] == "features" and record["top_k"] == 3
    assert [i["name"] for i in record["inputs"]] == ["feat_idx", "feat_val", "row_splits"]
    model = tfxc.load(str(model_dir))
    assert (tmp_path / "cli" / "labels.txt").read_text().splitlines() == list(model.label_names)
    model.export(str(tmp_path / "api"), top_k=3, format="onnx")
    feeds = random_rows(record["num_features"], rows=50)
    np.savez(tmp_path / "in.npz", **feeds)
    cases = [(str(tmp_path / d / "model.onnx"), str(tmp_path / "in.npz"), str(tmp_path / f"{d}.npz"))
             for d in ("cli", "api")]
    run_onnx(cases)
    import scipy.sparse

    rows = scipy.sparse.csr_matrix((feeds["feat_val"], feeds["feat_idx"], feeds["row_splits"]),
                                   shape=(50, record["num_features"]))
    ids, scores = model.top_k(rows, 10)
    for d in ("cli", "api"):
        answer = np.load(tmp_path / f"{d}.npz")
        assert_same_ranking(answer["label_ids"], answer["scores"], ids, scores, d)
    with pytest.raises(Exception, match="export the ONNX twin from its model directory"):
        tfxc.load(str(export_dir)).export(str(tmp_path / "from_saved"), format="onnx")
    with pytest.raises(Exception, match="unknown export format 'tflite'"):
        model.export(str(tmp_path / "x"), format="tflite")


@pytest.mark.parametrize("bag", ["auto", "full"])
def test_a_bag_too_big_for_one_product_has_a_twin_with_the_same_sums(tmp_path, bag):
    """A table over `SMALL_TABLE_BYTES` serves a few non-zeros by TensorFlow's sparse-dense product, which ONNX
    lacks: its twin sums them as a batch is summed (a full bag's as one product with the whole table), to the
    same ranking."""
    from helpers import tiny_config

    from tfxc._tf import tf
    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.encoders.sparse_bow import SMALL_TABLE_BYTES
    from tfxc.export.onnx import export_onnx
    from tfxc.export.saved_model import export_saved_model
    from tfxc.model import build_model

    config = load_config(tiny_config(tmp_path, model={"encoder": {"name": "sparse_bow", "embedding_dim": 512,
                                                                  "bag": bag}, "head": {"name": "softmax"}}))
    info = ensure_converted(config.data)
    assert info.num_features * 512 * 4 > SMALL_TABLE_BYTES
    model = build_model(config.model, BuildContext.from_info(info, seed=3))
    feeds = random_rows(info.num_features, rows=40)
    csr = {key: tf.constant(value) for key, value in feeds.items()}
    model.top_k({"feat_idx": tf.RaggedTensor.from_row_splits(csr["feat_idx"], csr["row_splits"]),
                 "feat_val": tf.RaggedTensor.from_row_splits(csr["feat_val"], csr["row_splits"])}, 5)
    saved = export_saved_model(model, config, info, str(tmp_path / "sm"), top_k=5)
    twin = export_onnx(model, config, info, str(tmp_path / "onnx"), top_k=5)
    serve = tf.saved_model.load(saved).signatures["top_k"]
    cases, wanted = [], []
    for rows in (1, 40):  # one row: the sparse-dense product in the SavedModel; 40 rows: the batch's sums
        part = csr_rows(feeds, 0, rows)
        np.savez(tmp_path / f"in{rows}.npz", **part)
        cases.append((f"{twin}/model.onnx", str(tmp_path / f"in{rows}.npz"), str(tmp_path / f"out{rows}.npz")))
        answer = serve(**{key: tf.constant(value) for key, value in part.items()}, k=tf.constant(25))
        wanted.append((rows, answer["label_ids"].numpy(), answer["scores"].numpy()))
    run_onnx(cases)
    for rows, ids, scores in wanted:
        answer = np.load(tmp_path / f"out{rows}.npz")
        assert_same_ranking(answer["label_ids"], answer["scores"], ids, scores, f"{rows} rows")


def test_an_op_without_an_onnx_form_is_refused_by_name_even_inside_a_branch():
    from onnx import TensorProto, helper

    from tfxc.errors import ConfigError
    from tfxc.export.onnx import _check

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    branch = helper.make_graph([helper.make_node("SparseTensorDenseMatMul", ["x"], ["y"])], "branch", [], [y])
    keep = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "keep", [], [y])
    flag = helper.make_tensor_value_info("flag", TensorProto.BOOL, [])
    graph = helper.make_graph([helper.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=keep)],
                              "g", [flag, x], [y])
    with pytest.raises(ConfigError, match="no ONNX form at opset 17: SparseTensorDenseMatMul"):
        _check(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), 17)
