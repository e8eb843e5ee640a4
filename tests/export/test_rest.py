"""`tfxc.export.rest`: TensorFlow Serving's REST predict bodies decoded and answered as the model server does.

The server's JSON code is C++ that no Python package ships, so these tests hold tfxc's reading of its
documented rules to the cases a client meets: both request forms, base64 strings, lossless numbers, the
refusals a server answers with HTTP 400, and the response layouts; then the bodies docs/serving.md shows,
answered by an export's own signatures.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from helpers import run_cli

from tfxc.export.rest import RestError, decode_request, encode_response

CSR = {"feat_idx": np.int64, "feat_val": np.float32, "row_splits": np.int64}
SIGNATURES = {"serving_default": CSR, "top_k": {**CSR, "k": np.int32}, "text": {"text": object}}


def inputs_of(name):
    if name not in SIGNATURES:
        raise RestError(f"no signature {name}")
    return SIGNATURES[name]


def decode(body: dict):
    return decode_request(json.dumps(body), inputs_of)


def test_the_columnar_form_takes_each_input_whole():
    name, inputs, rows = decode({"signature_name": "top_k", "inputs": {
        "feat_idx": [3, 17, 42], "feat_val": [1.0, 0.5, 0.2], "row_splits": [0, 2, 3], "k": 3, "extra": "ignored"}})
    assert (name, rows, sorted(inputs)) == ("top_k", False, ["feat_idx", "feat_val", "k", "row_splits"])
    assert inputs["feat_idx"].dtype == np.int64 and inputs["feat_idx"].tolist() == [3, 17, 42]
    assert inputs["feat_val"].dtype == np.float32 and inputs["k"].shape == () and inputs["k"] == 3
    # An input's integers are numbers of a float input too; the default signature is serving_default.
    assert decode({"inputs": {"feat_idx": [], "feat_val": [1], "row_splits": [0]}})[1]["feat_val"].tolist() == [1.0]


def test_the_row_form_stacks_one_value_a_row():
    _, inputs, rows = decode({"signature_name": "text", "instances": ["a card", {"b64": base64.b64encode(
        b"\xff\x00bytes").decode()}]})
    assert rows and inputs["text"].tolist() == [b"a card", b"\xff\x00bytes"]
    _, inputs, _ = decode({"signature_name": "text", "inputs": ["one", "two"]})
    assert inputs["text"].shape == (2,)
    _, inputs, _ = decode({"instances": [{"feat_idx": [1, 2], "feat_val": [1.0, 2.0], "row_splits": [0, 2]},
                                         {"feat_idx": [4, 5], "feat_val": [3.0, 4.0], "row_splits": [0, 2]}]})
    assert inputs["feat_idx"].shape == (2, 2) and inputs["row_splits"].tolist() == [[0, 2], [0, 2]]


@pytest.mark.parametrize("body, message", [
    ({"instances": [{"feat_idx": [1, 2], "feat_val": [1.0, 2.0], "row_splits": [0, 2]},
                    {"feat_idx": [4], "feat_val": [3.0], "row_splits": [0, 1]}]},
     r"instances\[1\].feat_idx: shape \[1\], but instances\[0\] has \[2\]; .* columnar form"),
    ({"instances": [[1, 2]]}, r"plain values, but the signature takes 3 inputs"),
    ({"instances": [{"feat_idx": [1], "feat_val": [1.0]}]}, r"instances\[0\]: has keys .*expected exactly"),
    ({"instances": []}, r"'instances' must be a non-empty list"),
    ({"instances": [{"text": "a"}], "inputs": {}}, r"exactly one of 'instances'"),
    ({"signature_name": "top_k"}, r"exactly one of 'instances'"),
    ({"inputs": {"feat_idx": [1], "feat_val": [1.0]}}, r"'inputs' has no value for row_splits"),
    ({"inputs": [1, 2]}, r"'inputs' is a plain value, but the signature takes 3 inputs"),
    ({"inputs": {"feat_idx": [1.5], "feat_val": [1.0], "row_splits": [0, 1]}},
     r"inputs.feat_idx\[0\]: number 1.5, expected an integer \(int64\)"),
    ({"inputs": {"feat_idx": [True], "feat_val": [1.0], "row_splits": [0, 1]}},
     r"inputs.feat_idx\[0\]: boolean true, expected an integer"),
    ({"inputs": {"feat_idx": [1], "feat_val": [16777216], "row_splits": [0, 1]}},
     r"inputs.feat_val\[0\]: 16777216 does not fit float32 without loss"),
    ({"inputs": {"feat_idx": [1], "feat_val": [1e39], "row_splits": [0, 1]}}, r"1e\+39 does not fit float32"),
    ({"inputs": {"feat_idx": [[1, 2], [3]], "feat_val": [1.0], "row_splits": [0, 1]}},
     r"inputs.feat_idx\[1\]: a list of 1 at depth 1, expected 2"),
    ({"inputs": {"feat_idx": [[1], 2], "feat_val": [1.0], "row_splits": [0, 1]}},
     r"inputs.feat_idx\[1\]: a value at depth 1"),
    ({"signature_name": "top_k", "inputs": {"feat_idx": [1], "feat_val": [1.0], "row_splits": [0, 1],
                                            "k": 2**31}}, r"inputs.k: 2147483648 is outside int32's range"),
    ({"signature_name": "text", "inputs": [{"b64": "not base64!"}]}, r"inputs.text\[0\]: 'b64' is not base64"),
    ({"signature_name": "text", "inputs": [3]}, r"inputs.text\[0\]: number 3, expected a string or"),
    ({"signature_name": 7, "inputs": []}, r"'signature_name' must be a string"),
    ({"signature_name": "nope", "inputs": []}, r"no signature nope"),
])
def test_bodies_a_server_refuses_name_the_element_and_the_rule(body, message):
    with pytest.raises(RestError, match=message):
        decode(body)


def test_a_body_that_is_not_a_json_object_is_refused():
    with pytest.raises(RestError, match="not JSON"):
        decode_request("{'inputs': 1}", inputs_of)
    with pytest.raises(RestError, match="a JSON list, not an object"):
        decode_request("[1]", inputs_of)


def test_responses_have_the_servers_layouts():
    outputs = {"label_ids": np.array([[4, 1], [2, 0]]), "scores": np.array([[0.2, 0.1], [0.7, np.nan]], np.float32),
               "labels": np.array([[b"a", b"b"], [b"c", "\u00e9".encode()]], object)}
    rows = encode_response(outputs, row_form=True)
    assert rows["predictions"][1] == {"label_ids": [2, 0], "labels": ["c", "\u00e9"], "scores": [0.7, rows[
        "predictions"][1]["scores"][1]]} and np.isnan(rows["predictions"][1]["scores"][1])
    # A float32 is written as its shortest decimal, not widened to a double's noise digits.
    assert '"scores": [0.2, 0.1]' in json.dumps(rows)
    columns = encode_response(outputs, row_form=False)
    assert columns["outputs"]["label_ids"] == [[4, 1], [2, 0]]
    assert encode_response({"embedding": np.ones((2, 1), np.float32)}, True) == {"predictions": [[1.0], [1.0]]}
    assert encode_response({"image_bytes": np.array([b"\x00\x01"], object)}, False) == {"outputs": [{"b64": "AAE="}]}
    with pytest.raises(RestError, match=r"same first dimension; the outputs have a \[2\], b \[3\]"):
        encode_response({"a": np.zeros(2), "b": np.zeros(3)}, row_form=True)


def test_the_docs_bodies_are_answered_by_the_exports_signatures(trained):
    """The bodies docs/serving.md sends a feature-row model give what its signatures give the same tensors."""
    import tensorflow as tf

    from tfxc.export.rest import answer

    _, _, export_dir = trained
    body = {"signature_name": "serving_default",
            "inputs": {"feat_idx": [3, 17, 42], "feat_val": [1.0, 0.5, 0.2], "row_splits": [0, 2, 3]}}
    response = answer(str(export_dir), json.dumps(body))["outputs"]
    direct = tf.saved_model.load(str(export_dir)).signatures["serving_default"](
        feat_idx=tf.constant([3, 17, 42], tf.int64), feat_val=tf.constant([1.0, 0.5, 0.2]),
        row_splits=tf.constant([0, 2, 3], tf.int64))
    assert response["label_ids"] == direct["label_ids"].numpy().tolist()
    assert np.array(response["scores"], np.float32).tolist() == direct["scores"].numpy().tolist()  # exact
    assert response["labels"] == [[name.decode() for name in row] for row in direct["labels"].numpy()]
    top3 = answer(str(export_dir), json.dumps({"signature_name": "top_k", "inputs": {
        "feat_idx": [3], "feat_val": [1.0], "row_splits": [0, 1], "k": 3}}))["outputs"]
    assert np.shape(top3["label_ids"]) == (1, 3)
    # The graph's own checks answer as the server's 400: an id outside the features, a row form of CSR rows.
    with pytest.raises(RestError, match=r"^signature serving_default: feature ids must be in \[0, \d+\); "
                                        r"got 1000000000$"):
        answer(str(export_dir), json.dumps({"inputs": {"feat_idx": [10**9], "feat_val": [1.0], "row_splits": [0, 1]}}))
    with pytest.raises(RestError, match="signature serving_default: "):
        answer(str(export_dir), json.dumps({"instances": [{"feat_idx": [3], "feat_val": [1.0], "row_splits": [0, 1]}]}))


def test_the_command_prints_the_answer_or_the_error(trained):
    _, _, export_dir = trained
    ok = run_cli("tfxc.export.rest", str(export_dir), "-d",
                 '{"inputs": {"feat_idx": [3], "feat_val": [1.0], "row_splits": [0, 1]}}')
    assert np.shape(json.loads(ok.stdout)["outputs"]["label_ids"]) == (1, 5)
    bad = run_cli("tfxc.export.rest", str(export_dir), "-d", '{"inputs": {"feat_idx": [3]}}', check=False)
    assert bad.returncode == 1 and json.loads(bad.stdout) == {"error": "'inputs' has no value for feat_val, row_splits"}
